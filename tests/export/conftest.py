"""Export tests that train a small model first need the train extra (TensorFlow); inspect does not."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def trained_mnist(mnist_dir, tmp_path_factory) -> dict:
    """A briefly trained mnist_cnn, exported with every variant (made once per test session)."""
    pytest.importorskip("tensorflow", reason="needs the train extra: pip install 'edgerun[cpu,train]'")
    from edgerun.export import cli as export_cli
    from edgerun.train.fit import TrainConfig, train

    out = tmp_path_factory.mktemp("models")
    result = train(TrainConfig("mnist_cnn", data_dir=str(mnist_dir), epochs=2, limit=2000, out=out))
    code = export_cli.main(
        [
            str(result.model_path),
            "--tflite",
            "--fp16",
            "--int8",
            "--calib-data",
            str(mnist_dir),
            "--calib-samples",
            "100",
        ]
    )
    assert code == 0
    return {
        "keras": result.model_path,
        "card": result.card,
        "card_path": result.card_path,
        "onnx": out / "mnist_cnn.onnx",
        "int8": out / "mnist_cnn.int8.onnx",
        "fp16": out / "mnist_cnn.fp16.onnx",
        "tflite": out / "mnist_cnn.tflite",
        "int8_tflite": out / "mnist_cnn.int8.tflite",
    }
