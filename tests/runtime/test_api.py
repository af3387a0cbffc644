"""The public API: ``edgerun.load(...)`` gives a callable model; the CLI runs the same path."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import edgerun
from edgerun.runtime.cli import main as run_main
from edgerun.runtime.metadata import MetadataError
from edgerun.runtime.model import ModelError


def test_version_and_lazy_front_door():
    assert edgerun.__version__ and edgerun.__version__ != "0+unknown"
    assert callable(edgerun.load) and {"load", "Model", "Result"} <= set(dir(edgerun))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        edgerun.nothing  # noqa: B018


def test_three_lines_on_arrays_a_directory_and_the_cli_agree(mnist_test, mnist_pngs, tmp_path):
    images, labels = mnist_test
    directory, _ = mnist_pngs
    model = edgerun.load("mnist_cnn")
    from_arrays = model(list(images[:200]))
    from_stack = model(images[:200, ..., None], batch=32)  # NxHxWxC: a batch of gray frames
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for i in range(200):
        (pngs / f"{i:05d}.png").symlink_to(directory / f"{i:05d}.png")
    from_dir = model(str(pngs))
    out = tmp_path / "r.jsonl"
    assert run_main(["mnist_cnn", "--source", str(pngs), "--json", str(out), "--batch", "8"]) == 0
    from_cli = [json.loads(line)["top"][0]["label"] for line in out.read_text().splitlines()]
    assert len(from_arrays) == len(from_stack) == len(from_dir) == len(from_cli) == 200
    arrays = [r.label for r in from_arrays]
    assert arrays == [r.label for r in from_stack] == [r.label for r in from_dir] == from_cli
    accuracy = np.mean([int(label) == truth for label, truth in zip(arrays, labels[:200], strict=True)])
    assert accuracy > 0.95
    first = from_arrays[0]
    assert first.source == "array[0]" and 0.0 <= first.score <= 1.0 and len(first.top) == 5
    assert first.to_dict()["top"][0]["label"] == first.label


def test_a_single_input_is_a_list_of_one(mnist_test):
    model = edgerun.load("mnist_cnn", topk=2)
    results = model(mnist_test[0][0])
    assert len(results) == 1 and len(results[0].top) == 2


def test_the_localizer_finds_each_digit_once_on_an_array(mnist_test):
    images, labels = mnist_test
    scene = np.zeros((112, 196), np.uint8)
    truth = []
    for k, (r, c) in enumerate([(1, 1), (1, 4), (2, 2)]):
        scene[r * 28 : r * 28 + 28, c * 28 : c * 28 + 28] = images[k]
        truth.append((str(labels[k]), c * 28 + 14, r * 28 + 14))
    result = edgerun.load("mnist_fcn")(scene)[0]
    assert len(result.detections) == 3
    for label, x, y in truth:
        hits = [d for d in result.detections if d.label == label and np.hypot(d.center[0] - x, d.center[1] - y) < 14]
        assert len(hits) == 1, (label, result.detections)
    assert result.plot().shape == (112, 196, 3) and result.heat is None  # maps only when asked for
    with_maps = edgerun.load("mnist_fcn", heatmaps=True)(scene)[0]
    assert with_maps.heat.shape[-1] == 10 and len(with_maps.detections) == 3


def test_model_run_on_a_frame_says_what_to_call_instead(mnist_test):
    model = edgerun.load("mnist_cnn")
    with pytest.raises(ModelError, match=r"call the model: model\(x\)"):
        model.run(mnist_test[0][0])


def test_unknown_options_are_named():
    with pytest.raises(TypeError, match="unknown option.*thread\\b.*known: .*threads"):
        edgerun.load("mnist_cnn", thread=2)


def test_unreadable_inputs_are_error_results_not_exceptions(tmp_path):
    model = edgerun.load("mnist_cnn")
    results = model([np.zeros((28, 28), np.uint8), str(tmp_path / "missing.png"), np.zeros((2, 2, 7), np.uint8)])
    assert [r.ok for r in results] == [True, False, False]
    assert "does not exist" in results[1].error and "HxW, HxWx1, HxWx3 or HxWx4" in results[2].error


def torchvision_style(path, classes=3):
    """An NCHW RGB classifier the way torchvision exports one: logits, no metadata, 32x32 input.
    Conv 3->4 (3x3) -> ReLU -> global average pool -> Gemm to ``classes`` logits."""
    rng = np.random.default_rng(0)
    init = [
        helper.make_tensor("cw", TensorProto.FLOAT, [4, 3, 3, 3], rng.normal(0, 0.5, 108).astype(np.float32)),
        helper.make_tensor("fw", TensorProto.FLOAT, [classes, 4], rng.normal(0, 0.5, 4 * classes).astype(np.float32)),
        helper.make_tensor("fb", TensorProto.FLOAT, [classes], np.zeros(classes, np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        init,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_torchvision_style_model_with_mean_std_labels_matches_plain_onnxruntime(tmp_path):
    path = torchvision_style(tmp_path / "tv.onnx")
    labels = tmp_path / "labels.txt"
    labels.write_text("# three kinds\ncat\ndog\nbird\n")
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), bgr)
    out = tmp_path / "r.jsonl"
    argv = [str(path), "--source", str(tmp_path / "x.png"), "--json", str(out), "--topk", "3"]
    assert run_main([*argv, "--mean", *map(str, MEAN), "--std", *map(str, STD), "--labels", str(labels)]) == 0
    ours = json.loads(out.read_text())["top"]
    # the same input, preprocessed the torchvision way by hand: RGB, /255, (x - mean) / std, NCHW
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    x = ((rgb - np.float32(MEAN)) / np.float32(STD)).transpose(2, 0, 1)[None]
    logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0][0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    by_label = {t["label"]: t["prob"] for t in ours}
    assert set(by_label) == {"cat", "dog", "bird"}
    for i, name in enumerate(("cat", "dog", "bird")):
        assert abs(by_label[name] - probs[i]) <= 1e-5
    # the API takes the same options as keywords and gives the same answer
    api = edgerun.load(path, mean=MEAN, std=STD, labels=("cat", "dog", "bird"), topk=3)(bgr)[0]
    assert {t.label: round(t.prob, 6) for t in api.top} == by_label


def test_labels_must_match_the_output_width(tmp_path, capsys):
    path = torchvision_style(tmp_path / "tv.onnx", classes=3)
    with pytest.raises(MetadataError, match="has 3 classes but the model names 2"):
        edgerun.load(path, labels=("a", "b"))
    labels = tmp_path / "l.txt"
    labels.write_text("a\nb\n")
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((32, 32, 3), np.uint8))
    assert run_main([str(path), "--source", str(tmp_path / "x.png"), "--labels", str(labels)]) == 2
    assert "--labels FILE" in capsys.readouterr().err


def test_a_batch_shaped_output_is_refused_not_softmaxed_across_the_batch(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], keepdims=0, axes=[1, 2, 3])],
        "scalar",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])],
    )
    path = tmp_path / "s.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    with pytest.raises(MetadataError, match=r"has shape \['batch'\], but a classify model needs \(batch, classes\)"):
        edgerun.load(path)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"optimization": "fast"}, "optimization must be one of basic, extended, all, got 'fast'"),
        ({"threads": 0}, "threads must be a whole number >= 1"),
        ({"threads": 2.5}, "threads must be a whole number >= 1"),
        ({"execution_mode": "async"}, "execution_mode must be one of sequential, parallel, got 'async'"),
    ],
)
def test_a_session_setting_out_of_range_says_what_is_allowed(option, message):
    """Not a bare KeyError, and not silently ignored (execution_mode 'async' used to run sequential)."""
    from edgerun.runtime.model import SessionConfigError

    with pytest.raises(SessionConfigError, match=message.replace("(", r"\(")):
        edgerun.load("mnist_cnn", **option)


def test_a_model_closes_and_says_so_afterwards(mnist_cnn):
    """close() (or a with block) releases the session; any later call is a ModelError, not an
    error record per input; a Model cannot be pickled, and the message says what to send instead."""
    import copy
    import pickle

    import numpy as np

    import edgerun

    digit = np.zeros((28, 28), np.uint8)
    with edgerun.load(mnist_cnn, provider="cpu") as model:
        assert model.predict(digit)[0].error is None
    assert model.closed
    model.close()  # twice is fine
    for call in (
        lambda: model.predict(digit),
        lambda: model(digit),
        lambda: list(model.stream([digit])),
        lambda: model.run(np.zeros((1, 28, 28, 1), np.float32)),
        lambda: model.__enter__(),  # a with block on a closed model
    ):
        with pytest.raises(edgerun.ModelError, match="was closed"):
            call()
    other = edgerun.load(mnist_cnn, provider="cpu")
    for copier in (pickle.dumps, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot be pickled or copied; send the model's path"):
            copier(other)


def test_an_empty_model_name_and_a_missing_labels_file_say_what_they_are(mnist_cnn, capsys):
    """'' was read as the working folder ('. is not a regular file'); a labels file that is not
    there said 'not a regular file'."""
    import edgerun
    from edgerun.export.cli import inspect_main

    with pytest.raises(edgerun.ModelError, match="the model is an empty name"):
        edgerun.load("")
    assert inspect_main([""]) == 2 and "the model is an empty name" in capsys.readouterr().err
    with pytest.raises(edgerun.MetadataError, match="labels file nowhere.txt does not exist"):
        edgerun.load(mnist_cnn, labels="nowhere.txt")
    with pytest.raises(edgerun.MetadataError, match="labels file is an empty name"):
        edgerun.load(mnist_cnn, labels="")
