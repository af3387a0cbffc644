"""Graph hygiene: tf2onnx's Flatten pattern, rebuilt with onnx.helper, comes out static and lean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgerun.export.graph import summarize
from edgerun.export.simplify import fold_flatten_transpose, fold_pad_into_maxpool, main, simplify

SHAPE_OPS = {"Shape", "Gather", "Cast", "Slice", "Concat"}


def tf2onnx_like(extra_output: bool = False) -> onnx.ModelProto:
    """NHWC [batch,4,4,2] -> Transpose -> Conv(3) -> Transpose(NHWC) -> Flatten as tf2onnx writes
    it (Shape, Gather, Cast, Slice, Concat, Cast, Reshape) -> MatMul -> Softmax."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((3, 2, 1, 1)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.standard_normal((48, 5)).astype(np.float32), "dense_w"),
        numpy_helper.from_array(np.array([0, 2, 3, 1], np.int64), "gather_idx"),
        numpy_helper.from_array(np.array([0], np.int64), "start"),
        numpy_helper.from_array(np.array([1], np.int64), "end"),
        numpy_helper.from_array(np.array([48], np.int32), "rest"),
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x_nchw", "conv_w"], ["conv"]),
        helper.make_node("Transpose", ["conv"], ["conv_nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Shape", ["conv"], ["shape"]),
        helper.make_node("Gather", ["shape", "gather_idx"], ["shape_nhwc"]),
        helper.make_node("Cast", ["shape_nhwc"], ["shape_i32"], to=TensorProto.INT32),
        helper.make_node("Slice", ["shape_i32", "start", "end", "start"], ["batch_dim"]),
        helper.make_node("Concat", ["batch_dim", "rest"], ["target_i32"], axis=0),
        helper.make_node("Cast", ["target_i32"], ["target"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["conv_nhwc", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "dense_w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 5])]
    if extra_output:  # the NHWC tensor is also a graph output: the Transpose must stay
        outputs.append(helper.make_tensor_value_info("conv_nhwc", TensorProto.FLOAT, ["batch", 4, 4, 3]))
    graph = helper.make_graph(
        nodes,
        "tf2onnx_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 4, 2])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    entry = model.metadata_props.add()
    entry.key, entry.value = "edgerun.name", "tiny"
    onnx.checker.check_model(model, full_check=True)
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("batch", [1, 5])
def test_flatten_becomes_a_static_reshape_and_the_transpose_folds(batch):
    original = tf2onnx_like()
    x = np.random.default_rng(batch).random((batch, 4, 4, 2), dtype=np.float32)
    expected = run(original, x)[0]
    simple, report = simplify(tf2onnx_like())
    assert not SHAPE_OPS & set(ops(simple))
    assert ops(simple).count("Transpose") == 1  # only the input's NHWC -> NCHW is left
    assert report.folded_transposes == 1 and report.nodes_before == 12 and report.nodes_after == len(simple.graph.node)
    reshape = next(n for n in simple.graph.node if n.op_type == "Reshape")
    shape = next(i for i in simple.graph.initializer if i.name == reshape.input[1])
    assert numpy_helper.to_array(shape).tolist() == [-1, 48]
    assert simple.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    np.testing.assert_allclose(run(simple, x)[0], expected, atol=1e-6)
    assert {p.key: p.value for p in simple.metadata_props} == {"edgerun.name": "tiny"}


def test_transpose_with_a_second_consumer_is_left_alone():
    original = tf2onnx_like(extra_output=True)
    x = np.random.default_rng(0).random((2, 4, 4, 2), dtype=np.float32)
    simple, report = simplify(tf2onnx_like(extra_output=True))
    assert report.folded_transposes == 0 and ops(simple).count("Transpose") == 2
    for got, want in zip(run(simple, x), run(original, x), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_fold_needs_a_constant_reshape():
    """Before slimming, the Reshape's shape is computed at run time: nothing is folded."""
    model = tf2onnx_like()
    assert fold_flatten_transpose(model) == 0
    assert ops(model) == ops(tf2onnx_like())


def test_summary_counts_weights_in_constant_nodes():
    weight = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 3], np.int64), "s")
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["w"], value=weight),
            helper.make_node("Constant", [], ["s"], value=shape),
            helper.make_node("Constant", [], ["alpha"], value_float=0.5),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
            helper.make_node("Add", ["y", "b"], ["z"]),
            helper.make_node("Mul", ["z", "alpha"], ["m"]),
            helper.make_node("Reshape", ["m", "s"], ["out"]),
        ],
        "constants",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.zeros(4, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    summary = summarize(model)
    assert summary.parameters == 12 + 1 + 4  # Constant weight, Constant scalar, initializer bias
    assert summary.constant_nodes == 2 and summary.shape_constants == 1 and summary.initializers == 1


def test_simplify_command(tmp_path, capsys):
    src = tmp_path / "in.onnx"
    onnx.save(tf2onnx_like(), str(src))
    assert main([str(src), "--out", str(src)]) == 2
    assert "must differ from the input" in capsys.readouterr().err
    out = tmp_path / "out.onnx"
    assert main([str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "12 -> 5 nodes" in printed and "parity" in printed
    assert not SHAPE_OPS & set(ops(onnx.load(str(out))))


def pad_pool_model(after_relu: bool) -> onnx.ModelProto:
    """[batch,2,6,6] -> (Relu) -> Pad 1 (zeros, spatial) -> MaxPool 3x3 stride 2: Keras' ZeroPadding2D
    before MaxPooling2D, as ResNet50's pool1."""
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    nodes = [helper.make_node("Relu", ["x"], ["r"])] if after_relu else []
    nodes += [
        helper.make_node("Pad", ["r" if after_relu else "x", "pads"], ["padded"]),
        helper.make_node("MaxPool", ["padded"], ["y"], kernel_shape=[3, 3], strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "pad_pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 3, 3])],
        [pads],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


@pytest.mark.parametrize("after_relu", [True, False])
def test_zero_pad_before_maxpool_folds_only_after_a_relu(after_relu):
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)  # negative values too
    expected = run(pad_pool_model(after_relu), x)[0]
    model = pad_pool_model(after_relu)
    assert fold_pad_into_maxpool(model) == int(after_relu)
    assert ("Pad" in ops(model)) is not after_relu
    assert [i.name for i in model.graph.initializer] == ([] if after_relu else ["pads"])  # nothing left dangling
    np.testing.assert_array_equal(run(model, x)[0], expected)  # exact: the same maxima


def test_the_simplify_command_refuses_bad_files_in_one_line(tmp_path, capsys):
    """Not an ONNX file, or --out a folder: one line and exit 2 (it was a traceback, and a 4.8 MB
    staging file left beside the folder)."""
    bad = tmp_path / "t.keras"
    bad.write_text("not a model")
    assert main([str(bad), "--out", str(tmp_path / "s.onnx")]) == 2
    assert "is not a complete ONNX model" in capsys.readouterr().err
    (tmp_path / "folder").mkdir()
    model = Path(__file__).resolve().parents[2] / "models" / "mnist_cnn.onnx"
    if model.is_file():
        assert main([str(model), "--out", str(tmp_path / "folder")]) == 2
        assert "is a directory, not a regular file" in capsys.readouterr().err
        assert not list(tmp_path.glob(".*staging"))
