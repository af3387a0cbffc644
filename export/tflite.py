"""The TFLite twins of a Keras model: the benchmark's TFLite (XNNPACK) peers, one per precision.

``NAME.tflite`` is float32; ``NAME.int8.tflite`` is full-integer (int8 weights and activations,
every operator in int8, float32 input and output like the int8 ONNX file), calibrated on the same
images as ``NAME.int8.onnx``, so the bench compares int8 with int8. Both are converted from a
SavedModel made by ``model.export``: converting a ``tf.function`` directly loses the Keras 3
variables (a 7 KB file that outputs NaN).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgerun.runtime.outputs import AtomicFile

from .onnx import INPUT_NAME, ExportError, QualityError

TFLITE_TOLERANCE = 1e-4
#: The int8 twin must give Keras' top class on at least this share of the checked images.
INT8_AGREEMENT = 0.95


def _convert(model, configure=None) -> bytes:
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)
    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, format="tf_saved_model", input_signature=[spec], verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if configure is not None:
            configure(converter, tf)
        try:
            return converter.convert()
        except Exception as exc:  # noqa: BLE001 - the converter raises many kinds
            raise ExportError(f"TFLite conversion failed: {exc}") from exc


def export_tflite(model, out: Path, check_batch: np.ndarray) -> tuple[int, float]:
    """Write ``out`` (float32, NHWC, dynamic batch) and check it against Keras on ``check_batch``.

    Returns the size in bytes and the max |difference| in probabilities.
    """
    data = _convert(model)
    with AtomicFile(out, what="TFLite twin") as staged:  # in place only once it agrees with Keras
        staged.path.write_bytes(data)
        diff = float(
            np.abs(run_tflite(staged.path, check_batch) - np.asarray(model(check_batch, training=False))).max()
        )
        if not diff <= TFLITE_TOLERANCE:
            raise QualityError(f"the TFLite twin disagrees with Keras: max |dprob| {diff:.2e} > {TFLITE_TOLERANCE}")
    return len(data), diff


def export_tflite_int8(model, out: Path, calibration: np.ndarray, check: np.ndarray) -> tuple[int, float]:
    """Write ``out``: full-integer int8, calibrated on ``calibration`` (preprocessed NHWC inputs).

    Checked against Keras on ``check``: the share of images with the same top class must reach
    :data:`INT8_AGREEMENT`. Returns the size in bytes and that share.
    """

    def configure(converter, tf) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32

    data = _convert(model, configure)
    with AtomicFile(out, what="int8 TFLite twin") as staged:  # in place only once it agrees with Keras
        staged.path.write_bytes(data)
        ours = run_tflite(staged.path, check).reshape(len(check), -1).argmax(axis=1)
        theirs = np.asarray(model(check, training=False)).reshape(len(check), -1).argmax(axis=1)
        agreement = float(np.mean(ours == theirs))
        if agreement < INT8_AGREEMENT:
            raise QualityError(
                f"the int8 TFLite twin agrees with Keras on the top class of only {agreement:.1%} of {len(check)} "
                f"images (needs {INT8_AGREEMENT:.0%}); calibrate on more or more typical images (--calib-samples)"
            )
    return len(data), agreement


def accuracy_tflite(path: Path, inputs: np.ndarray, labels: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy of the TFLite model at ``path`` on preprocessed ``inputs``."""
    probs = np.concatenate([run_tflite(path, inputs[i : i + batch]) for i in range(0, len(inputs), batch)])
    return float(np.mean(probs.reshape(len(probs), -1).argmax(axis=1) == labels))


def run_tflite(path: Path, batch: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(batch.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, np.ascontiguousarray(batch, np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
