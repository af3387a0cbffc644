"""The backends a benchmark compares, each behind one small contract.

``edgerun`` is the runtime's own :class:`~edgerun.runtime.model.Model`; the peers run the same
model and inputs through raw onnxruntime with default options (``ort-raw``), TFLite through
``ai-edge-litert`` with XNNPACK (the twin of the same precision: ``NAME.tflite`` for
``NAME.onnx``, ``NAME.int8.tflite`` for ``NAME.int8.onnx``), OpenCV DNN, and Keras/TensorFlow
(a ``tf.function`` over the ``NAME.keras`` twin, fp32 models only), and OpenVINO's CPU plugin on the
same ONNX file (what ``benchmark_app`` measures: the model reshaped to the batch, compiled with
the latency hint, one stream, the same thread count, f32 inference precision, the input set
once and ``infer()`` timed; fp32 and int8 models). Peers are fair or absent: a
twin of another precision is refused. A missing optional peer raises :class:`PeerUnavailable`
with the reason, and the harness skips it with that message. Every backend names its precision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerun.runtime.model import Model, SessionConfig
from edgerun.runtime.modelfile import check_model_file
from edgerun.runtime.modelio import INPUT_DTYPES, Overrides, guess_layout

PEERS = ("ort-raw", "tflite", "opencv", "openvino", "keras")
#: edgerun with its built-in defaults, shown beside the tuned ``edgerun`` row when a tune cache applies.
DEFAULT_BACKEND = "edgerun-default"

logger = logging.getLogger(__name__)


class PeerUnavailable(Exception):
    """A peer that cannot run here (package missing, twin file missing)."""


@dataclass
class Prepared:
    """A backend ready to run one batch: ``run()`` does one inference on the prepared input."""

    run: Callable[[], object]
    providers: list[str]


class Backend:
    name = "backend"
    precision = "fp32"

    def prepare(self, x: np.ndarray) -> Prepared:
        """Bind the NHWC float32 batch ``x``; the returned ``run`` is what gets timed."""
        raise NotImplementedError


class EdgerunBackend(Backend):
    """edgerun's Model. With ``tuned``, each batch size runs with the settings ``edgerun tune``
    stored for this model on this machine (the nearest tuned batch), else with ``config``."""

    name = "edgerun"

    def __init__(
        self,
        path: Path,
        config: SessionConfig,
        precision: str = "fp32",
        tuned: bool = False,
        name: str | None = None,
        overrides: Overrides | None = None,
    ) -> None:
        self.path, self.config, self.tuned = path, config, tuned
        self.precision, self.overrides = precision, overrides
        self.name = name or self.name
        self._models: dict[SessionConfig, Model] = {}
        self.model = self._load(config)

    def _load(self, config: SessionConfig) -> Model:
        if config not in self._models:  # frozen, so hashable: one session per distinct setting
            self._models[config] = Model.load(self.path, config, self.overrides)
        return self._models[config]

    def prepare(self, x: np.ndarray) -> Prepared:
        model = self.model
        if self.tuned:
            from edgerun.runtime.tuning import tuned_settings_for

            settings = tuned_settings_for(self.path, x.shape[0], self.config.provider)
            if settings is not None:
                logger.info("%s: batch %d runs tuned: %s", self.path.name, x.shape[0], settings.label())
                model = self._load(settings.apply(self.config))
        model.warmup(x.shape)
        feed = model.feed(x)  # the model's own layout and type, once, as the peers are fed
        return Prepared(lambda: model.run(feed), model.providers)


class OrtRawBackend(Backend):
    """``onnxruntime.InferenceSession`` exactly as a user would make it: default options."""

    name = "ort-raw"

    def __init__(self, path: Path, provider: str, precision: str, nchw: bool | None = None) -> None:
        import onnxruntime as ort

        self.precision, self.nchw = precision, nchw
        providers = {
            "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
            "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        }.get(provider, ["CPUExecutionProvider"])
        self.session = ort.InferenceSession(str(path), providers=providers)
        self.input = self.session.get_inputs()[0]

    def prepare(self, x: np.ndarray) -> Prepared:
        nchw = self.nchw if self.nchw is not None else guess_layout(list(self.input.shape)) == "NCHW"
        feed = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x
        feed = feed.astype(INPUT_DTYPES.get(self.input.type, np.float32), copy=False)  # the model's own type, once
        session, name = self.session, self.input.name
        return Prepared(lambda: session.run(None, {name: feed}), self.session.get_providers())


class TfliteBackend(Backend):
    name = "tflite"

    def __init__(self, path: Path, threads: int, precision: str) -> None:
        if not path.is_file():
            flag = "--tflite --int8" if precision == "int8" else "--tflite"
            raise PeerUnavailable(f"no {precision} TFLite twin at {path} (make it with edgerun export {flag})")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise PeerUnavailable("ai-edge-litert is not installed (pip install ai-edge-litert)") from None
        self.interpreter = Interpreter(str(path), num_threads=threads)
        self.precision = tflite_precision(self.interpreter)
        if self.precision != precision:
            raise PeerUnavailable(
                f"the TFLite twin {path.name} is {self.precision} and the model is {precision}: not a fair peer; "
                f"give a {precision} twin"
                + (" (edgerun export --tflite --int8 writes NAME.int8.tflite)" if precision == "int8" else "")
            )

    def prepare(self, x: np.ndarray) -> Prepared:
        it = self.interpreter
        detail = it.get_input_details()[0]
        index = detail["index"]
        it.resize_tensor_input(index, list(x.shape))
        it.allocate_tensors()
        out = it.get_output_details()[0]["index"]
        scale, zero = detail["quantization"]
        if detail["dtype"] != np.float32 and scale:  # integer input: quantize once, as a caller would
            info = np.iinfo(detail["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])

        def run():
            it.set_tensor(index, x)
            it.invoke()
            return it.get_tensor(out)

        return Prepared(run, ["XNNPACK"])


class OpencvBackend(Backend):
    name = "opencv"

    def __init__(self, path: Path, threads: int, precision: str) -> None:
        import cv2

        self.precision = precision
        cv2.setNumThreads(threads)
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise PeerUnavailable(f"OpenCV DNN cannot read {path.name}: {str(exc).strip()[:200]}") from None

    def prepare(self, x: np.ndarray) -> Prepared:
        net = self.net

        def run():
            net.setInput(x)
            return net.forward()

        return Prepared(run, ["OpenCV DNN CPU"])


class OpenvinoBackend(Backend):
    name = "openvino"

    def __init__(self, path: Path, threads: int, precision: str, nchw: bool | None = None) -> None:
        self.nchw = nchw
        if precision not in ("fp32", "int8"):
            raise PeerUnavailable(
                f"OpenVINO is compared on fp32 and int8 models only; its CPU plugin would not run this "
                f"{precision} model in {precision} on every CPU, so it is not a fair peer"
            )
        try:
            import openvino
        except ImportError:
            raise PeerUnavailable("OpenVINO is not installed (pip install 'edgerun[openvino]')") from None
        self.ov, self.threads, self.precision = openvino, threads, precision
        self.core = openvino.Core()
        try:
            self.model = self.core.read_model(str(path))
        except RuntimeError as exc:
            raise PeerUnavailable(f"OpenVINO cannot read {path.name}: {str(exc).strip()[:200]}") from None
        self.input = self.model.inputs[0]

    def prepare(self, x: np.ndarray) -> Prepared:
        shape = [d.get_length() if d.is_static else None for d in self.input.get_partial_shape()]
        nchw = self.nchw if self.nchw is not None else guess_layout(shape) == "NCHW"  # as for ort-raw
        feed = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else np.ascontiguousarray(x)
        feed = feed.astype(self.input.get_element_type().to_dtype(), copy=False)  # the model's own type, once
        self.model.reshape({self.input: list(feed.shape)})
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": "f32",  # not bf16 where the CPU has it: the model's own precision
        }
        compiled = self.core.compile_model(self.model, "CPU", config)
        request = compiled.create_infer_request()
        request.set_input_tensor(self.ov.Tensor(feed))

        def run():
            request.infer()
            return request.get_output_tensor(0).data

        return Prepared(run, [f"OpenVINO {self.ov.get_version().split('-')[0]} CPU"])


class KerasBackend(Backend):
    name = "keras"

    def __init__(self, path: Path, threads: int) -> None:
        if not path.is_file():
            raise PeerUnavailable(f"no Keras twin at {path}")
        try:
            import keras
            import tensorflow as tf
        except ImportError:
            raise PeerUnavailable("tensorflow is not installed (pip install 'edgerun[train]')") from None
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # already initialised in this process; the setting stays as it was
        model = keras.models.load_model(path, compile=False)
        self.forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        self.tf = tf

    def prepare(self, x: np.ndarray) -> Prepared:
        tensor = self.tf.constant(x)
        forward = self.forward
        return Prepared(lambda: forward(tensor).numpy(), ["TensorFlow CPU"])


def tflite_precision(interpreter) -> str:
    """``int8`` when the graph holds quantized integer tensors, ``fp16`` for half-precision weights."""
    dtypes = {np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    if dtypes & {np.dtype(np.int8), np.dtype(np.uint8)}:
        return "int8"
    return "fp16" if np.dtype(np.float16) in dtypes else "fp32"


def twin(onnx_path: Path, suffix: str, explicit: Path | None = None) -> Path:
    """The twin of the same precision beside an ONNX file: ``NAME.int8.onnx`` -> ``NAME.int8.tflite``."""
    if explicit is not None:
        return explicit
    return onnx_path.with_name(onnx_path.name.removesuffix(".onnx") + suffix)


def make_backend(
    name: str,
    path: Path,
    config: SessionConfig,
    twins: dict[str, Path | None],
    precision: str = "fp32",
    tuned: bool = False,
    overrides: Overrides | None = None,
    nchw: bool | None = None,
) -> Backend:
    """The backend ``name`` for the ONNX model at ``path`` whose graph computes in ``precision``.

    ``overrides`` (``--layout/--size/--gray``) describe a foreign model to edgerun; ``nchw`` is
    the layout the runtime read (peers transpose to it; None: the runtime's guess from the shape).
    """
    threads = config.threads or 1
    if name in ("ort-raw", "opencv", "openvino"):
        check_model_file(path)  # the one external-data rule, before a peer opens the file
    if name == "edgerun":
        return EdgerunBackend(path, config, precision, tuned=tuned, overrides=overrides)
    if name == DEFAULT_BACKEND:
        return EdgerunBackend(path, config, precision, name=DEFAULT_BACKEND, overrides=overrides)
    if name == "ort-raw":
        return OrtRawBackend(path, config.provider, precision, nchw)
    if name == "tflite":
        return TfliteBackend(twin(path, ".tflite", twins.get("tflite")), threads, precision)
    if name == "opencv":
        return OpencvBackend(path, threads, precision)
    if name == "openvino":
        return OpenvinoBackend(path, threads, precision, nchw)
    if name == "keras":
        if precision != "fp32":
            raise PeerUnavailable(
                f"Keras runs the fp32 model only; comparing it with this {precision} model is not fair"
            )
        return KerasBackend(twin(path, ".keras", twins.get("keras")), threads)
    raise PeerUnavailable(f"unknown backend {name!r}; peers: {', '.join(PEERS)}")
