"""The machine's peak for the "% peak" column, measured with onnxruntime's own GEMM in the same run.

numpy's BLAS is not what onnxruntime runs (here OPENBLAS_CORETYPE pins it to an older kernel), so
a numpy SGEMM figure is not this machine's peak for a model. The peak is instead a one-node
``MatMul`` graph run by the same onnxruntime with the model's session settings: fp32 for fp32
models, and a QDQ MatMul (u8 activations, s8 weights, fused by onnxruntime into its integer GEMM)
for int8 models. Square sizes 256 and 512 are compute-bound and short, so that on a shared machine
some runs go uninterrupted; the peak is the best single run over all sizes and turns, and turns are
taken before and after the sweep.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from edgerun.runtime.session import SessionConfig, session_options

logger = logging.getLogger(__name__)

SIZES = (256, 512)


@functools.lru_cache(maxsize=8)
def matmul_graph(n: int, precision: str) -> bytes:
    """``y = x @ w`` for ``x`` [n, n]; ``precision`` ``int8`` quantizes both operands (QDQ)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(n)
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
    if precision == "fp32":
        w = numpy_helper.from_array(rng.random((n, n), dtype=np.float32), "w")
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "peak", [x_info], [y_info], [w])
    elif precision == "int8":
        inits = [
            numpy_helper.from_array(rng.integers(-127, 128, (n, n)).astype(np.int8), "wq"),
            numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
            numpy_helper.from_array(np.array(0, np.int8), "wz"),
            numpy_helper.from_array(np.array(1 / 255, np.float32), "xs"),
            numpy_helper.from_array(np.array(0, np.uint8), "xz"),
        ]
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
            helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
            helper.make_node("MatMul", ["xd", "wd"], ["y"]),
        ]
        graph = helper.make_graph(nodes, "peak_int8", [x_info], [y_info], inits)
    else:
        raise ValueError(f"no peak graph for precision {precision!r}; expected fp32 or int8")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return model.SerializeToString()


@dataclass
class Peak:
    """Best GFLOP/s (fp32) and GOP/s (int8) seen; ``turns`` keeps every turn's best."""

    config: SessionConfig
    enabled: bool = True  # False: nothing measured, no "% peak" (e.g. for CUDA rows)
    gflops: dict[str, float] = field(default_factory=dict)
    turns: dict[str, list[float]] = field(default_factory=dict)
    #: Why nothing is measured, when it is not.
    reason: str = "not measured: the CPU's GEMM peak says nothing of a GPU's"

    _sessions: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # The MatMul graphs are built with the onnx package, which the runtime install lacks
        # (it is in the tools and dev extras): without it the rows have no "% peak", as they
        # have no FLOPs, and the sweep goes on (edgerun demo runs one on a plain [cpu] install).
        if self.enabled and importlib.util.find_spec("onnx") is None:
            self.enabled = False
            self.reason = "not measured: the onnx package is missing (pip install 'edgerun[tools]')"
            logger.info("%% peak %s", self.reason)

    def _session(self, n: int, precision: str):
        if (n, precision) not in self._sessions:
            import onnxruntime as ort

            session = ort.InferenceSession(
                matmul_graph(n, precision), session_options(self.config), providers=["CPUExecutionProvider"]
            )
            feed = {"x": np.random.default_rng(1).random((n, n), dtype=np.float32)}
            for _ in range(3):
                session.run(None, feed)
            self._sessions[(n, precision)] = (session, feed)
        return self._sessions[(n, precision)]

    def measure(self, seconds: float = 0.4, precisions: tuple[str, ...] = ("fp32", "int8")) -> None:
        """One turn: each precision and size for ``seconds`` in all; keeps the best single run."""
        if not self.enabled:
            return
        for precision in precisions:
            best = 0.0
            for n in SIZES:
                session, feed = self._session(n, precision)
                fastest = None
                deadline = time.perf_counter_ns() + int(seconds / len(precisions) / len(SIZES) * 1e9)
                while fastest is None or time.perf_counter_ns() < deadline:
                    start = time.perf_counter_ns()
                    session.run(None, feed)
                    took = time.perf_counter_ns() - start
                    fastest = took if fastest is None else min(fastest, took)
                best = max(best, 2 * n**3 / fastest)  # FLOP per ns = GFLOP/s
            self.turns.setdefault(precision, []).append(round(best, 1))
            self.gflops[precision] = max(self.gflops.get(precision, 0.0), round(best, 1))

    def source(self) -> str:
        import onnxruntime as ort

        if not self.enabled:
            return self.reason
        threads = self.config.threads or "all"
        return (
            f"onnxruntime {ort.__version__} MatMul {'/'.join(str(n) for n in SIZES)} square "
            f"(fp32; int8 as QDQ u8 x s8), {threads} threads, best single run of "
            f"{len(next(iter(self.turns.values()), []))} turns in this run"
        )

    def to_dict(self) -> dict:
        return {
            "fp32_gflops": self.gflops.get("fp32"),
            "int8_gops": self.gflops.get("int8"),
            "turns": self.turns,
            "source": self.source(),
        }
