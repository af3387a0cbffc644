"""One loaded model: an onnxruntime session, its metadata, and a batch -> probabilities call.

A :class:`Model` is safe to call from several threads (onnxruntime sessions are), warms up once
per batch size, and knows its preprocessing from the model's own metadata. Models exported by
something else run too: layout and size come from the input shape where that is unambiguous,
otherwise from :class:`Overrides`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .metadata import MetadataError, ModelMetadata, Preprocessing, read_metadata
from .providers import ProviderPlan, check_ort_install, plan_providers, verify_providers

logger = logging.getLogger(__name__)

LFS_SIGNATURE = b"version https://git-lfs.github.com/spec/"


class ModelError(Exception):
    """A model file that cannot be used; the message says what was expected and what came."""


@dataclass(frozen=True)
class Overrides:
    """What a user tells edgerun about a foreign model (``None``: read it from the model)."""

    layout: str | None = None  # "nchw" | "nhwc"
    size: tuple[int, int] | None = None
    gray: bool | None = None
    scale: float | None = None
    mean: tuple[float, ...] | None = None


@dataclass(frozen=True)
class SessionConfig:
    """onnxruntime session settings.

    Defaults measured on a 2-core CPU: intra-op threads = all cores with spinning on is the
    fastest for both MNIST-sized and ResNet50-sized models (see README, Benchmarks).
    """

    provider: str = "auto"
    threads: int | None = None  # None: os.cpu_count()
    spinning: bool = True
    optimization: str = "all"  # "basic" | "extended" | "all"
    execution_mode: str = "sequential"  # "sequential" | "parallel" (edgerun tune measures both)
    io_binding: bool = False  # CPU: bind the input and a pre-allocated output (runtime/binding.py)


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


def check_model_file(path: Path) -> None:
    """Refuse, with a clear message, what cannot be an ONNX model: missing, empty, LFS pointer."""
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"{path} is not a file; expected an .onnx model")
    with open(path, "rb") as fh:
        head = fh.read(200)
    if head.startswith(LFS_SIGNATURE):
        raise ModelError(
            f"{path} is a Git LFS pointer, not the model itself. Fetch the real file with "
            "'git lfs install && git lfs pull' in the repository, then try again."
        )
    if not head:
        raise ModelError(f"{path} is empty (0 bytes); expected an ONNX model")


def _session_options(config: SessionConfig):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads or default_threads()
    options.inter_op_num_threads = (config.threads or default_threads()) if config.execution_mode == "parallel" else 1
    options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if config.execution_mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options.graph_optimization_level = levels[config.optimization]
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
    options.log_severity_level = 3
    return options


def _load_failure(path: Path, text: str) -> str:
    """A one-line reason from onnxruntime's load error, without its C++ source paths."""
    first = text.splitlines()[0] if text else "unknown error"
    reason = re.sub(r"/onnxruntime_src/\S+ \S+::\S+\(.*?\) ", "", first)
    if "IR version" in first:
        return (
            f"{path} needs a newer onnxruntime ({reason.split('failed:')[-1].strip()}); "
            "upgrade onnxruntime or export with an older opset"
        )
    lower = first.lower()
    if "external data" in lower or "outside" in lower or "external_data" in lower:
        return f"{path}: refused external data ({reason[:300]}); external files must sit beside the model"
    return f"{path} is not a loadable ONNX model: {reason[:300]}"


def _infer_foreign(inputs, outputs, overrides: Overrides) -> ModelMetadata:
    """Metadata for a model without edgerun's: from its input shape and the user's flags."""
    inp = inputs[0]
    shape = list(inp.shape)
    if len(shape) != 4:
        raise ModelError(
            f"input {inp.name!r} has shape {shape}; edgerun runs image models with a 4-D input "
            "(batch, height, width, channels) or (batch, channels, height, width)"
        )
    layout = overrides.layout.upper() if overrides.layout else None
    if layout is None:
        nchw_like = shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4)
        nhwc_like = shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4)
        if nchw_like == nhwc_like:
            raise ModelError(
                f"cannot tell the layout of input {inp.name!r} with shape {shape}; "
                "pass --layout nchw or --layout nhwc (and --size H W if it is dynamic)"
            )
        layout = "NCHW" if nchw_like else "NHWC"
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])
    if overrides.size:
        h, w = overrides.size
    if not isinstance(h, int) or not isinstance(w, int):
        raise ModelError(f"input {inp.name!r} has dynamic size {shape}; pass --size H W")
    gray = overrides.gray if overrides.gray is not None else c == 1
    pre = Preprocessing(
        recipe="generic",
        size=(h, w),
        color="gray" if gray else "RGB",
        scale=overrides.scale if overrides.scale is not None else 1 / 255.0,
        mean=overrides.mean or (0.0,),
        resize="area",
    )
    n_out = outputs[0].shape[-1] if isinstance(outputs[0].shape[-1], int) else 0
    return ModelMetadata(
        name="foreign",
        classes=tuple(str(i) for i in range(n_out)),
        layout=layout,
        input_name=inp.name,
        output_name=outputs[0].name,
        input_shape=tuple(shape),
        preprocessing=pre,
        output_kind="logits",  # checked per batch: rows that already sum to 1 are left alone
    )


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Model:
    """An ONNX model ready to run. Use :meth:`load`."""

    def __init__(self, session, metadata: ModelMetadata, path: Path, plan: ProviderPlan, foreign: bool):
        self.session = session
        self.metadata = metadata
        self.path = path
        self.plan = plan
        self.foreign = foreign
        self.providers = session.get_providers()
        # On CUDA, IO binding keeps the output on the device between runs and copies once.
        self._iobinding = self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        # The hot path reads these instead of walking the metadata on every call.
        self._input, self._outputs = metadata.input_name, [metadata.output_name]
        self._nchw, self._logits = metadata.layout == "NCHW", metadata.output_kind == "logits"
        self._warm: set[tuple[int, ...]] = set()
        self._lock = threading.Lock()
        self._binder = None  # CPU IO binding with pre-allocated outputs: see bind_outputs()

    def bind_outputs(self) -> None:
        """Run with the input bound and the output pre-allocated per batch shape (CPU IO binding)."""
        from .binding import OutputBinder

        if not self._iobinding:
            self._binder = OutputBinder(self.session, self._input, self._outputs[0])

    @classmethod
    def load(cls, path: str | Path, config: SessionConfig | None = None, overrides: Overrides | None = None) -> Model:
        """Open ``path`` with the providers ``config`` asks for.

        Raises:
            ModelError: missing, empty, LFS pointer, not ONNX, or an input no recipe fits.
            ProviderError: an explicit GPU provider that cannot run here.
            MetadataError: edgerun metadata of an unknown schema.
        """
        import onnxruntime as ort

        config = config or SessionConfig()
        overrides = overrides or Overrides()
        path = Path(path)
        check_model_file(path)
        check_ort_install()
        plan = plan_providers(config.provider, ort.get_available_providers())
        try:
            session = ort.InferenceSession(str(path), sess_options=_session_options(config), providers=plan.providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ModelError(_load_failure(path, str(exc))) from exc
        verify_providers(plan, session.get_providers())
        metadata = read_metadata(session)
        foreign = metadata is None
        if foreign:
            metadata = _infer_foreign(session.get_inputs(), session.get_outputs(), overrides)
        else:
            metadata = _apply_overrides(metadata, overrides)
        model = cls(session, metadata, path, plan, foreign)
        model._check_io()
        if config.io_binding:
            model.bind_outputs()
        logger.info("loaded %s (%s, %s) on %s", path.name, metadata.name, metadata.task, ", ".join(model.providers))
        return model

    def _check_io(self) -> None:
        names = [i.name for i in self.session.get_inputs()]
        if self.metadata.input_name not in names:
            raise MetadataError(f"metadata names input {self.metadata.input_name!r}, the graph has {names}")
        outs = [o.name for o in self.session.get_outputs()]
        if self.metadata.output_name not in outs:
            raise MetadataError(f"metadata names output {self.metadata.output_name!r}, the graph has {outs}")

    @property
    def input_channels(self) -> int:
        return 1 if self.metadata.preprocessing.color == "gray" else 3

    def _feed(self, batch: np.ndarray) -> np.ndarray:
        if batch.ndim != 4:
            raise ModelError(f"a batch must be 4-D (N, H, W, C), got shape {batch.shape}")
        if self._nchw:
            batch = batch.transpose(0, 3, 1, 2)
        if batch.dtype != np.float32 or not batch.flags.c_contiguous:
            batch = np.ascontiguousarray(batch, dtype=np.float32)
        return batch

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a preprocessed NHWC float32 batch; returns probabilities (softmax applied to logits)."""
        feed = self._feed(batch)
        if self._iobinding:
            binding = self.session.io_binding()
            binding.bind_cpu_input(self._input, feed)
            binding.bind_output(self._outputs[0], "cuda")
            self.session.run_with_iobinding(binding)
            out = binding.copy_outputs_to_cpu()[0]
        elif self._binder is not None:
            out = self._binder.run(feed)
        else:
            out = self.session.run(self._outputs, {self._input: feed})[0]
        if self._logits:
            rows = out.reshape(-1, out.shape[-1])
            is_prob = np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3)
            if not is_prob:
                out = softmax(out)
        return out

    def warmup(self, batch_shape: tuple[int, ...]) -> None:
        """Run once per new input shape so the first real call is not the slow one."""
        key = tuple(batch_shape)
        with self._lock:
            if key in self._warm:
                return
            self._warm.add(key)
        self.run(np.zeros(key, np.float32))


def _apply_overrides(metadata: ModelMetadata, overrides: Overrides) -> ModelMetadata:
    pre = metadata.preprocessing
    changes = {}
    if overrides.size:
        changes["size"] = tuple(overrides.size)
    if overrides.scale is not None:
        changes["scale"] = overrides.scale
    if overrides.mean is not None:
        changes["mean"] = tuple(overrides.mean)
    if overrides.gray is not None:
        changes["color"] = "gray" if overrides.gray else "RGB"
    return metadata.replace(preprocessing=replace(pre, **changes)) if changes else metadata
