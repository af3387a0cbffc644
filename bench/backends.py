"""The backends a benchmark compares, each behind one small contract.

``edgerun`` is the runtime's own :class:`~edgerun.runtime.model.Model`; the peers run the same
model and inputs through raw onnxruntime with default options (``ort-raw``), TFLite through
``ai-edge-litert`` with XNNPACK (the ``NAME.tflite`` twin), OpenCV DNN, and Keras/TensorFlow
(a ``tf.function`` over the ``NAME.keras`` twin). A missing optional peer raises
:class:`PeerUnavailable` with the reason, and the harness skips it with that message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerun.runtime.model import Model, SessionConfig
from edgerun.runtime.modelfile import check_model_file

PEERS = ("ort-raw", "tflite", "opencv", "keras")


class PeerUnavailable(Exception):
    """A peer that cannot run here (package missing, twin file missing)."""


@dataclass
class Prepared:
    """A backend ready to run one batch: ``run()`` does one inference on the prepared input."""

    run: Callable[[], object]
    providers: list[str]


class Backend:
    name = "backend"

    def prepare(self, x: np.ndarray) -> Prepared:
        """Bind the NHWC float32 batch ``x``; the returned ``run`` is what gets timed."""
        raise NotImplementedError


class EdgerunBackend(Backend):
    name = "edgerun"

    def __init__(self, path: Path, config: SessionConfig) -> None:
        self.model = Model.load(path, config)

    def prepare(self, x: np.ndarray) -> Prepared:
        model = self.model
        model.warmup(x.shape)
        return Prepared(lambda: model.run(x), model.providers)


class OrtRawBackend(Backend):
    """``onnxruntime.InferenceSession`` exactly as a user would make it: default options."""

    name = "ort-raw"

    def __init__(self, path: Path, provider: str) -> None:
        import onnxruntime as ort

        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
        )
        self.session = ort.InferenceSession(str(path), providers=providers)
        self.input = self.session.get_inputs()[0]

    def prepare(self, x: np.ndarray) -> Prepared:
        shape = self.input.shape
        feed = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if shape[1] in (1, 3) and shape[3] not in (1, 3) else x
        session, name = self.session, self.input.name
        return Prepared(lambda: session.run(None, {name: feed}), self.session.get_providers())


class TfliteBackend(Backend):
    name = "tflite"

    def __init__(self, path: Path, threads: int) -> None:
        if not path.is_file():
            raise PeerUnavailable(f"no TFLite twin at {path} (make it with edgerun export --tflite)")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise PeerUnavailable("ai-edge-litert is not installed (pip install ai-edge-litert)") from None
        self.interpreter = Interpreter(str(path), num_threads=threads)

    def prepare(self, x: np.ndarray) -> Prepared:
        it = self.interpreter
        index = it.get_input_details()[0]["index"]
        it.resize_tensor_input(index, list(x.shape))
        it.allocate_tensors()
        out = it.get_output_details()[0]["index"]

        def run():
            it.set_tensor(index, x)
            it.invoke()
            return it.get_tensor(out)

        return Prepared(run, ["XNNPACK"])


class OpencvBackend(Backend):
    name = "opencv"

    def __init__(self, path: Path, threads: int) -> None:
        import cv2

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


def twin(onnx_path: Path, suffix: str, explicit: Path | None = None) -> Path:
    """The ``.tflite``/``.keras`` twin beside an ONNX file (``NAME.int8.onnx`` -> ``NAME``)."""
    if explicit is not None:
        return explicit
    stem = onnx_path.name.split(".")[0]
    return onnx_path.with_name(stem + suffix)


def make_backend(name: str, path: Path, config: SessionConfig, twins: dict[str, Path | None]) -> Backend:
    threads = config.threads or 1
    if name in ("ort-raw", "opencv"):
        check_model_file(path)  # the one external-data rule, before a peer opens the file
    if name == "edgerun":
        return EdgerunBackend(path, config)
    if name == "ort-raw":
        return OrtRawBackend(path, config.provider)
    if name == "tflite":
        return TfliteBackend(twin(path, ".tflite", twins.get("tflite")), threads)
    if name == "opencv":
        return OpencvBackend(path, threads)
    if name == "keras":
        return KerasBackend(twin(path, ".keras", twins.get("keras")), threads)
    raise PeerUnavailable(f"unknown backend {name!r}; peers: {', '.join(PEERS)}")
