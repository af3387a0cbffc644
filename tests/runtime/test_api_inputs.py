"""What the public API takes, and the message for everything it does not take.

Each row is a field finding: an input that used to be misread (a frame's rows taken as frames,
a string walked character by character) or refused with a bare Python or onnxruntime error.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgerun
from edgerun.runtime.frames import SourceError
from edgerun.runtime.heads import HeadOptions, HeadOptionsError
from edgerun.runtime.metadata import MetadataError
from edgerun.runtime.model import Model, ModelError, Overrides, SessionConfig, SessionConfigError

from .test_model import make_model


@pytest.fixture(scope="module")
def model():
    return edgerun.load("mnist_cnn", tune=False)


@pytest.fixture(scope="module")
def digit(mnist_test):
    return mnist_test[0][0]  # 28x28 uint8, a 7


GRAY = np.zeros((28, 28), np.uint8)
BGR = np.zeros((28, 28, 3), np.uint8)


# -- predict: one frame is one input ------------------------------------------------------------
@pytest.mark.parametrize(
    ("frames", "count"),
    [
        (GRAY, 1),
        (BGR, 1),
        (np.zeros((28, 28, 1), np.uint8), 1),
        (np.zeros((28, 28, 4), np.uint8), 1),
        (np.zeros((5, 28, 28, 1), np.uint8), 5),
        (np.zeros((3, 40, 30, 3), np.float32), 3),
        ([GRAY, BGR], 2),
        ((GRAY,), 1),
        ((f for f in [GRAY, BGR, GRAY]), 3),
    ],
)
def test_predict_takes_one_frame_as_one_input_and_a_4d_array_as_a_batch(model, frames, count):
    results = model.predict(frames)
    assert len(results) == count and all(r.ok for r in results), [r.error for r in results]


def test_predict_on_one_frame_answers_as_calling_the_model_does(model, digit):
    color = np.repeat(digit[:, :, None], 3, axis=2)
    for frame in (digit, color):
        (one,) = model.predict(frame)
        (called,) = model(frame)
        assert one.label == called.label == "7" and one.score == pytest.approx(called.score)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (None, "predict takes frames in memory: .*got None"),
        ("one.png", r"got str 'one.png'; .*call the model: model\('one.png'\)"),
        (Path("one.png"), r"call the model: model\(PosixPath\('one.png'\)\)"),
        (0, r"call the model: model\(0\)"),
        (np.zeros((28, 28, 5), np.uint8), r"last axis the channels \(1, 3 or 4\), not 5.*array\[\.\.\., None\]"),
        (np.zeros((2, 28, 28, 2), np.uint8), r"expected one frame .* or a batch of frames \(NxHxWxC\)"),
        (np.zeros(28, np.uint8), r"shape \(28,\); expected one frame"),
        (np.array([["a"]]), "must hold pixel values .* got dtype <U1"),
        ([None], "item 0 of the inputs is None; each item must be a numpy frame"),
    ],
)
def test_predict_refuses_what_is_no_frame_with_what_to_do(model, frames, message):
    with pytest.raises(SourceError, match=message):
        model.predict(frames)


# -- calling the model ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("x", "message"),
    [
        (None, r"model\(\) cannot run None: expected .*path.*camera index \(int\).*numpy frame"),
        (b"\x89PNG" + b"\0" * 5000, r"cannot run bytes \(5004 bytes\).*cv2.imdecode"),
        (-1, "a camera index is 0 or more"),
        (True, "cannot run bool True"),
        (1.5, "cannot run float 1.5"),
        ({"a": GRAY}, "cannot run a dict"),
        ([None], "item 0 of the inputs is None"),
        ([GRAY, 42], "item 1 of the inputs is int 42"),
        ([[0] * 28] * 28, r"item 0 of the inputs is a list of 28 items; .*np.asarray\(item, np.uint8\)"),
        ([b"x.png"], r"item 0 .*bytes.*cv2.imdecode"),
        (np.zeros((28, 28, 5), np.uint8), "not 5. If it holds 28 gray images of 28x5"),
        (np.zeros((28, 28, 2), np.uint8), "not 2"),
        (np.zeros((200, 28, 28), np.uint8), r"200 gray images of 28x28, add the channel axis: array\[\.\.\., None\]"),
    ],
)
def test_calling_the_model_with_no_accepted_input_says_what_is_accepted(model, x, message):
    with pytest.raises(SourceError, match=message) as info:
        model(x)
    assert len(str(info.value)) < 700  # never the whole value (bytes, a list) pasted in


def test_a_generator_of_frames_is_read_like_a_list(model, digit):
    results = model(f for f in [digit, digit[:, :, None]])
    assert [r.label for r in results] == ["7", "7"] and [r.source for r in results] == ["array[0]", "array[1]"]


def test_stream_refuses_a_generator_and_points_to_the_call(model):
    with pytest.raises(SourceError, match=r"a generator of frames: call the model with it \(model\(frames\)\)"):
        model.stream(f for f in [GRAY])


def test_a_bad_frame_in_a_list_is_still_that_inputs_error_record(model):
    results = model([GRAY, np.zeros((28, 28, 5), np.uint8)])
    assert results[0].ok and "HxW, HxWx1, HxWx3 or HxWx4" in results[1].error


# -- the raw call -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (None, r"a numpy array \(N, 28, 28, 1\), NHWC, float32; got None"),
        ([[0.0]], r"got list \[\[0.0\]\]; convert it first: np.asarray\(x, np.float32\)"),
        (np.zeros((1, 1, 28, 28), np.float32), r"\(N, 28, 28, 1\), NHWC, float32; got shape \(1, 1, 28, 28\)"),
        (np.zeros((2, 28, 28, 3), np.float32), r"got shape \(2, 28, 28, 3\)"),
        (np.zeros((28, 28, 1), np.float32), r"got shape \(28, 28, 1\); to run frames or files, call the model"),
        (np.zeros((0, 28, 28, 1), np.float32), r"an empty batch"),
        (np.zeros((1, 28, 28, 1), complex), "dtype complex128; it must hold numbers"),
    ],
)
def test_run_checks_the_batch_against_the_model_input_before_onnxruntime(model, batch, message):
    with pytest.raises(ModelError, match=message):
        model.run(batch)


def test_run_on_an_nchw_model_takes_nhwc_or_its_own_layout_and_says_so(tmp_path):
    nchw = Model.load(make_model(tmp_path / "f.onnx", ["batch", 1, 28, 28]), SessionConfig(provider="cpu"))
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    assert nchw.run(x).shape == (2, 10)
    # the model's own layout (what Model.feed gives) goes in as it is: the same answers
    np.testing.assert_allclose(nchw.run(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), nchw.run(x), rtol=1e-6)
    with pytest.raises(ModelError, match=r"\(N, 28, 28, 1\), NHWC \(edgerun transposes it to the model's NCHW\)"):
        nchw.run(np.zeros((1, 28, 1, 28), np.float32))  # neither layout


# -- load's options --------------------------------------------------------------------------------
@pytest.fixture
def ten_labels(tmp_path):
    path = tmp_path / "l10.txt"
    path.write_text("# digits\n" + "\n".join(f"digit-{i}" for i in range(10)) + "\n")
    return path


def test_labels_take_a_file_as_a_str_or_a_path_as_run_labels_does(ten_labels, digit):
    for labels in (ten_labels, str(ten_labels)):
        loaded = edgerun.load("mnist_cnn", labels=labels, tune=False)
        assert loaded.classes == tuple(f"digit-{i}" for i in range(10))
        assert loaded(digit)[0].label == "digit-7"
    assert edgerun.load("mnist_cnn", labels=[str(i) for i in range(10)], tune=False).classes[9] == "9"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"labels": 123}, MetadataError, "labels must be a list of class names or the path of a labels file.*int 123"),
        ({"labels": "no-such-labels.txt"}, MetadataError, "^labels file no-such-labels.txt does not exist"),
        ({"labels": [1, 2]}, MetadataError, "labels must be class names"),
        ({"size": "a b"}, MetadataError, "size 'a b': expected a whole number, got 'a'"),
        ({"size": "1 2 3"}, MetadataError, "size '1 2 3': expected 'H W'.*got 3 numbers"),
        ({"size": 0}, MetadataError, "size must be \\(height, width\\), two whole numbers >= 1"),
        ({"size": 2.5}, MetadataError, "size must be an int .* got float 2.5"),
        ({"size": (32, 32)}, MetadataError, "fixed height of 28 .* the preprocessing makes 32x32"),
        ({"layout": "xyz"}, MetadataError, "layout must be one of nchw, nhwc, got str 'xyz'"),
        ({"gray": "yes"}, MetadataError, "gray must be True or False"),
        ({"gray": False}, MetadataError, r"takes 1 channel\(s\) .* preprocessing makes 3; pass gray=True"),
        ({"scale": -1}, MetadataError, "scale must be a number above 0"),
        ({"mean": "a"}, MetadataError, "mean must be one or more numbers"),
        ({"std": (0.5, 0)}, MetadataError, "std must be one or more numbers above 0"),
        ({"topk": 0}, HeadOptionsError, "topk must be a whole number >= 1"),
        ({"topk": -3}, HeadOptionsError, "topk must be a whole number >= 1"),
        ({"topk": 2.5}, HeadOptionsError, "topk must be a whole number >= 1"),
        ({"threshold": 2}, HeadOptionsError, r"threshold must be a number in \(0, 1\]"),
        ({"threshold": float("nan")}, HeadOptionsError, r"threshold must be a number in \(0, 1\].*got nan"),
        ({"threshold": 0}, HeadOptionsError, r"threshold must be a number in \(0, 1\]"),
        ({"batch": 0}, SessionConfigError, "batch must be a whole number from 1 to 1024, got int 0"),
        ({"batch": "4"}, SessionConfigError, "batch must be a whole number from 1 to 1024, got str '4'"),
        ({"batch": 5000}, SessionConfigError, "batch must be a whole number from 1 to 1024"),
    ],
)
def test_an_option_out_of_range_is_a_clear_error(options, error, message):
    with pytest.raises(error, match=message):
        edgerun.load("mnist_cnn", tune=False, **options)


@pytest.mark.parametrize(
    ("size", "expected"), [("28", (28, 28)), ("28 28", (28, 28)), ("28x28", (28, 28)), (28, (28, 28))]
)
def test_size_takes_an_int_a_pair_or_the_command_lines_text(size, expected):
    assert edgerun.load("mnist_cnn", size=size, tune=False).metadata.preprocessing.size == expected


def test_head_and_override_options_are_checked_for_every_caller():
    with pytest.raises(HeadOptionsError, match="topk"):
        HeadOptions(topk=0)
    with pytest.raises(MetadataError, match="size"):
        Overrides(size=(28,))
    assert HeadOptions(topk=1, threshold=1.0).threshold == 1.0


@pytest.mark.parametrize(
    ("model_arg", "message"),
    [
        (None, r"expected the path of an .onnx file \(str or Path\) or a bundled model's name .* got None"),
        (42, "got int 42"),
        (b"mnist_cnn", r"got bytes \(9 bytes\)"),
    ],
)
def test_load_without_a_path_or_name_says_what_it_takes(model_arg, message):
    with pytest.raises(ModelError, match=message):
        edgerun.load(model_arg)


# -- models edgerun cannot feed as they are ----------------------------------------------------------
def _save(graph, path):
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def typed_input_model(path, elem_type, batch="batch"):
    """[batch, 28, 28, 1] of ``elem_type`` -> Cast to float -> Flatten -> MatMul to 10 logits."""
    weight = helper.make_tensor("W", TensorProto.FLOAT, [784, 10], np.linspace(-1, 1, 7840, dtype=np.float32))
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Flatten", ["xf"], ["f"]),
        helper.make_node("MatMul", ["f", "W"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "typed",
        [helper.make_tensor_value_info("x", elem_type, [batch, 28, 28, 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        [weight],
    )
    return _save(graph, path)


@pytest.mark.parametrize(("elem_type", "name"), [(TensorProto.INT64, "int64"), (TensorProto.INT8, "int8")])
def test_a_model_with_another_integer_input_is_refused_at_load(tmp_path, elem_type, name):
    path = typed_input_model(tmp_path / "i.onnx", elem_type)
    with pytest.raises(ModelError, match=rf"input 'x' takes tensor\({name}\), but edgerun feeds .* or uint8 pixels"):
        edgerun.load(path, tune=False)


def test_a_model_with_a_uint8_input_is_fed_the_pixels_as_onnxruntime_would_be(tmp_path):
    """Models that scale their own input take uint8 pixels (TFLite conversions, vendor models); they
    were refused at load. Now they get the pixels 0-255 as they are and answer as onnxruntime does."""
    import onnxruntime as ort

    path = typed_input_model(tmp_path / "u8.onnx", TensorProto.UINT8)
    frame = (np.arange(28 * 28).reshape(28, 28) * 7 % 256).astype(np.uint8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": frame[None, :, :, None]})[0][0].astype(np.float64)
    want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    model = edgerun.load(path, tune=False)
    (got,) = model(frame)
    assert got.ok and got.class_id == int(np.argmax(want)) and got.score == pytest.approx(want.max(), rel=1e-5)
    # Model.run's float batch is rounded and held to 0-255, never wrapped around
    batch = np.full((1, 28, 28, 1), 300.0, np.float32)
    clipped = session.run(None, {"x": np.full((1, 28, 28, 1), 255, np.uint8)})[0]
    np.testing.assert_allclose(model.run(batch), model.run(np.full((1, 28, 28, 1), 255, np.uint8)), rtol=1e-6)
    assert np.argmax(model.run(batch)) == np.argmax(clipped)
    with pytest.raises(MetadataError, match="takes uint8 pixels 0-255 as they are.*leave --scale, --mean and --std"):
        edgerun.load(path, mean=0.5, tune=False)


@pytest.mark.parametrize("elem_type", [TensorProto.FLOAT16, TensorProto.DOUBLE])
def test_a_model_with_a_float16_or_float64_input_is_fed_its_own_type(tmp_path, elem_type, digit):
    path = typed_input_model(tmp_path / "half.onnx", elem_type)
    reference = edgerun.load(typed_input_model(tmp_path / "f32.onnx", TensorProto.FLOAT), tune=False)
    other = edgerun.load(path, tune=False)
    (ours,), (theirs,) = other(digit), reference(digit)
    assert ours.ok and ours.label == theirs.label and ours.score == pytest.approx(theirs.score, abs=1e-2)
    assert other.run(np.zeros((2, 28, 28, 1), np.float32)).dtype == np.float32


@pytest.mark.parametrize("fixed", [1, 3])
def test_a_fixed_batch_model_runs_any_batch_at_its_own_size(tmp_path, caplog, fixed):
    path = typed_input_model(tmp_path / "fixed.onnx", TensorProto.FLOAT, batch=fixed)
    any_batch = edgerun.load(typed_input_model(tmp_path / "any.onnx", TensorProto.FLOAT), tune=False)
    with caplog.at_level(logging.WARNING, logger="edgerun.runtime.model"):
        loaded = edgerun.load(path, batch=4, tune=False)
    assert loaded.batch == fixed
    assert f"batch axis is fixed at {fixed}, so it runs {fixed} input(s) per call, not the 4 asked for" in caplog.text
    frames = [np.full((28, 28), 20 * i, np.uint8) for i in range(7)]
    got, want = loaded(frames, batch=4), any_batch(frames, batch=4)
    assert all(r.ok for r in got), [r.error for r in got]
    assert [r.label for r in got] == [r.label for r in want]
    np.testing.assert_allclose([r.score for r in got], [r.score for r in want], rtol=1e-5)
    with pytest.raises(ModelError, match=rf"batch axis is fixed at {fixed}: run {fixed} input\(s\) per call"):
        loaded.run(np.zeros((fixed + 1, 28, 28, 1), np.float32))


def test_edgerun_run_on_a_fixed_batch_model_with_batch_4_gives_answers_not_error_records(tmp_path, capsys):
    from edgerun.runtime.cli import main as run_main

    path = typed_input_model(tmp_path / "fixed.onnx", TensorProto.FLOAT, batch=1)
    images = tmp_path / "in"
    images.mkdir()
    import cv2

    for i in range(6):
        cv2.imwrite(str(images / f"{i}.png"), np.full((28, 28), 40 * i, np.uint8))
    assert run_main([str(path), "--source", str(images), "--batch", "4", "--no-tune"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 6 and "ERROR" not in out


# -- a bare install ----------------------------------------------------------------------------------
@pytest.mark.parametrize("missing", ["cv2", "onnxruntime"])
def test_a_missing_engine_is_an_import_error_naming_the_extra(missing):
    code = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None  # as if it were not installed\n"
        "import edgerun\n"
        "try:\n"
        "    edgerun.load('mnist_cnn')\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc.name, '|', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"ModuleNotFoundError {missing} | edgerun: {missing} is not installed" in out.stdout
    assert "pip install 'edgerun[cpu]'" in out.stdout and "\n" == out.stdout[-1:] and out.stdout.count("\n") == 1
