"""The committed models are what models/MANIFEST.json says they are."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[1] / "models"
MANIFEST = MODELS / "MANIFEST.json"


def entries():
    if not MANIFEST.is_file():
        return []
    return json.loads(MANIFEST.read_text())["models"]


@pytest.mark.skipif(not MANIFEST.is_file(), reason="no models/MANIFEST.json yet (make models)")
def test_bundled_set_is_complete():
    files = {e["file"] for e in entries()}
    assert {"mnist_cnn.onnx", "mnist_small.onnx", "mnist_fcn.onnx", "mnist_cnn.keras", "mnist_cnn.tflite"} <= files


@pytest.mark.parametrize("item", entries(), ids=lambda e: e["file"])
def test_manifest_entry_matches_its_file(item):
    path = MODELS / item["file"]
    assert path.is_file(), f"{path} is listed in the manifest but missing"
    data = path.read_bytes()
    assert len(data) == item["bytes"]
    assert hashlib.sha256(data).hexdigest() == item["sha256"]
    if path.suffix == ".onnx":
        assert item["opset"] and item["commands"] and item["created"]
        assert 0.9 < item["test_accuracy"] <= 1.0
        # the shared data: 5,000 training images (4,500 where the field localizer kept 500 apart
        # to choose its threshold on), tested on the 5,000 test images
        assert item["training_data"]["train"]["samples"] in (5000, 4500)
        assert item["test_data"]["samples"] == 5000


def test_the_committed_int8_model_computes_the_same_on_every_x86_cpu(int8_is_portable):
    int8_is_portable(MODELS / "mnist_cnn.int8.onnx")
