"""The fixed reference workload measured beside every model, in the same rounds.

On a shared machine the speed a model gets changes from second to second (other processes take
cores, the host throttles), so a latency alone says little about the code. The gate therefore
never compares latencies: it compares the ratio *model time / reference time*, where the reference
is a fixed ONNX graph run by the same onnxruntime, with the same session settings, interleaved
with the model in the same rounds, so it suffers the same contention.

The reference is a small CNN of the book's MNIST shape (two 3x3 convolutions, max-pool, two dense
layers) with fixed seeded weights. Its size per row is its batch size, chosen once so that it takes
about as long as the model (then a preemption of a few milliseconds hits both alike); a baseline
stores that batch and a comparison reuses it, so the reference is the same work in both runs.
"""

from __future__ import annotations

import functools

import numpy as np

from edgerun.runtime.session import SessionConfig, session_options
from edgerun.runtime.timing import measure

from .backends import Prepared

#: Names the reference graph; a baseline made with another reference cannot be compared.
REFERENCE_ID = "edgerun-ref-cnn-1"
MAX_BATCH = 1024
CALIBRATION_ITERS = 5


@functools.lru_cache(maxsize=1)
def reference_graph() -> bytes:
    """The serialized reference model: NCHW [n, 1, 28, 28] -> [n, 10], weights from a fixed seed."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(20261122)

    def weight(name: str, shape: tuple[int, ...], scale: float):
        return numpy_helper.from_array(rng.normal(0.0, scale, shape).astype(np.float32), name)

    initializers = [
        weight("w1", (32, 1, 3, 3), 0.3),
        weight("b1", (32,), 0.01),
        weight("w2", (64, 32, 3, 3), 0.06),
        weight("b2", (64,), 0.01),
        weight("f1", (9216, 128), 0.01),
        weight("f2", (128, 10), 0.09),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "f1"], ["m1"]),
        helper.make_node("Relu", ["m1"], ["r3"]),
        helper.make_node("MatMul", ["r3", "f2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        REFERENCE_ID,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return model.SerializeToString()


class Reference:
    """The reference graph in an onnxruntime session made with the model's own settings."""

    name = "reference"

    def __init__(self, config: SessionConfig) -> None:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if config.provider == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(reference_graph(), session_options(config), providers=providers)

    def prepare(self, batch: int) -> Prepared:
        x = np.random.default_rng(batch).random((batch, 1, 28, 28), dtype=np.float32)
        session = self.session
        return Prepared(lambda: session.run(None, {"x": x}), session.get_providers())

    def _fastest_ms(self, batch: int) -> float:
        return float(measure(self.prepare(batch).run, warmup=2, iters=CALIBRATION_ITERS).samples_ns.min()) / 1e6

    def calibrate(self, target_ms: float) -> int:
        """The batch size at which the reference's fastest call takes about ``target_ms`` (as the
        model's fastest: the fastest calls are the ones least disturbed on a busy machine)."""
        batch = 1
        for _ in range(2):
            took = self._fastest_ms(batch)
            batch = int(min(MAX_BATCH, max(1, round(batch * target_ms / max(took, 1e-6)))))
        return batch
