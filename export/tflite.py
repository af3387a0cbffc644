"""The TFLite twin of a Keras model: the benchmark's TFLite (XNNPACK) peer.

Converted from a SavedModel made by ``model.export``: converting a ``tf.function`` directly
loses the Keras 3 variables (a 7 KB file that outputs NaN).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .onnx import INPUT_NAME, ExportError

TFLITE_TOLERANCE = 1e-4


def export_tflite(model, out: Path, check_batch: np.ndarray) -> tuple[int, float]:
    """Write ``out`` (float32, NHWC, dynamic batch) and check it against Keras on ``check_batch``.

    Returns the size in bytes and the max |difference| in probabilities.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)
    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, format="tf_saved_model", input_signature=[spec], verbose=False)
        try:
            data = tf.lite.TFLiteConverter.from_saved_model(saved).convert()
        except Exception as exc:  # noqa: BLE001 - the converter raises many kinds
            raise ExportError(f"TFLite conversion failed: {exc}") from exc
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_bytes(data)
    diff = float(np.abs(run_tflite(tmp, check_batch) - np.asarray(model(check_batch, training=False))).max())
    if not diff <= TFLITE_TOLERANCE:
        tmp.unlink()
        raise ExportError(f"the TFLite twin disagrees with Keras: max |dprob| {diff:.2e} > {TFLITE_TOLERANCE}")
    os.replace(tmp, out)
    return len(data), diff


def run_tflite(path: Path, batch: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(batch.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, np.ascontiguousarray(batch, np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
