"""Bench fixtures: a tiny ONNX model made with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper


def make_tiny_model(path, batch: int | None = 1):
    """NCHW [batch,1,28,28] -> Conv 4x3x3 -> Flatten -> MatMul 2704x10; ``batch`` None: any batch size."""
    rng = np.random.default_rng(0)
    conv_w = helper.make_tensor("cw", TensorProto.FLOAT, [4, 1, 3, 3], rng.normal(0, 0.1, 36).astype(np.float32))
    fc_w = helper.make_tensor("fw", TensorProto.FLOAT, [2704, 10], rng.normal(0, 0.01, 27040).astype(np.float32))
    n = batch if batch is not None else "n"
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "cw"], ["c"]),
            helper.make_node("Flatten", ["c"], ["f"]),
            helper.make_node("MatMul", ["f", "fw"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, 10])],
        [conv_w, fc_w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


@pytest.fixture
def tiny_model():
    """``tiny_model(path, batch=1)`` writes the tiny model and returns its path."""
    return make_tiny_model
