"""A model is checked at load (metadata types, classes against outputs, task against output
shape, external data) and again at run time where only running can tell: never a wrong label."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
from reliability_cases import edgerun_props, onnx_model, with_metadata

from edgerun.runtime.metadata import MetadataError
from edgerun.runtime.model import Model, ModelError, Overrides, SessionConfig
from edgerun.runtime.modelfile import check_model_file

CPU = SessionConfig(provider="cpu", threads=1)
PRE = {"recipe": "gray", "size": [28, 28], "color": "gray", "scale": 1 / 255, "resize": "area"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"edgerun.task": "localize"}, "a localize model needs"),
        ({"edgerun.classes": '"0123456789"'}, "must be a list"),
        ({"edgerun.classes": json.dumps(list(range(10)))}, "list of strings"),
        ({"edgerun.preprocessing": json.dumps({**PRE, "mean": ["a"]})}, "mean must be a list of finite numbers"),
        ({"edgerun.preprocessing": json.dumps({**PRE, "mean": [True]})}, "mean must be a list of finite numbers"),
        ({"edgerun.preprocessing": json.dumps({**PRE, "size": [True, 28]})}, "size must be"),
        ({"edgerun.preprocessing": json.dumps({**PRE, "mean": [0.1, 0.2]})}, r"gray model takes 1 \(its one"),
        ({"edgerun.preprocessing": json.dumps({**PRE, "resize": "fancy"})}, "resize must be one of"),
        ({"edgerun.opset": '"17"'}, "opset must be int"),
        ({"edgerun.versions": "[1]"}, "versions must be dict"),
        ({"edgerun.input_shape": json.dumps([1.5, 28])}, "input_shape must be"),
    ],
)
def test_inconsistent_metadata_is_refused_at_load(mnist_cnn, tmp_path, changes, message):
    path = with_metadata(mnist_cnn, tmp_path / "m.onnx", changes)
    with pytest.raises(MetadataError, match=message):
        Model.load(path, CPU)


def test_class_names_must_match_the_output_width(tmp_path):
    with pytest.raises(MetadataError, match="has 1000 classes but the model names 3"):
        Model.load(onnx_model(tmp_path / "w.onnx", "wide", edgerun_props(["a", "b", "c"])), CPU)
    with pytest.raises(MetadataError, match="has 10 classes but the model names 3"):
        Model.load(onnx_model(tmp_path / "t.onnx", "ten", edgerun_props(["a", "b", "c"])), CPU)
    foreign = onnx_model(tmp_path / "f.onnx", "ten")
    with pytest.raises(MetadataError, match="has 10 classes but the model names 3"):
        Model.load(foreign, CPU, Overrides(size=(28, 28), gray=True, labels=("a", "b", "c")))


def test_nan_outputs_are_error_records_and_json_stays_json(tmp_path):
    model = Model.load(onnx_model(tmp_path / "n.onnx", "nan", edgerun_props([str(i) for i in range(10)])), CPU)
    (result,) = model(np.zeros((28, 28), np.uint8))
    assert "non-finite" in result.error
    json.loads(json.dumps(result.to_dict(), allow_nan=False))


def test_an_output_of_shape_batch_is_refused(tmp_path):
    path = onnx_model(tmp_path / "b.onnx", "batch")
    with pytest.raises(MetadataError, match="needs \\(batch, classes\\)"):
        Model.load(path, CPU, Overrides(size=(28, 28), gray=True))


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("../secret.bin", "leads outside the model's folder"),
        ("/etc/passwd", "absolute path"),
        ("fifo.bin", "not a regular file"),
        ("escape.bin", "leads outside the model's folder"),  # a link out of the folder
        ("missing.bin", "cannot be read"),
    ],
)
def test_external_data_is_held_to_one_rule_before_anything_opens_it(tmp_path, location, message):
    folder = tmp_path / "m"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(bytes(784 * 10 * 4))
    os.mkfifo(folder / "fifo.bin")
    (folder / "escape.bin").symlink_to(tmp_path / "secret.bin")
    path = onnx_model(folder / "ext.onnx", "external", {"location": location})
    with pytest.raises(ModelError, match=message):
        check_model_file(path)
    with pytest.raises(ModelError, match=message):
        Model.load(path, CPU, Overrides(size=(28, 28), gray=True))
    from edgerun.bench.backends import make_backend

    done = threading.Event()
    errors = []

    def peer():  # OpenCV DNN would block forever on the FIFO: the rule comes first
        try:
            make_backend("opencv", path, CPU, {})
        except ModelError as exc:
            errors.append(str(exc))
        done.set()

    threading.Thread(target=peer, daemon=True).start()
    assert done.wait(20) and message.split()[0] in errors[0]


def test_external_data_inside_the_folder_still_loads(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").write_bytes(np.zeros((784, 10), np.float32).tobytes())
    path = onnx_model(folder / "ok.onnx", "external", {"location": "w.bin"})
    check_model_file(path)
    model = Model.load(path, CPU, Overrides(size=(28, 28), gray=True))
    (result,) = model(np.zeros((28, 28), np.uint8))
    assert result.ok and abs(result.score - 0.1) < 1e-6


def _no_inputs(path):
    """A graph answering a constant: no input at all."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    const = numpy_helper.from_array(np.full((1, 10), 0.1, np.float32), "c")
    out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph([helper.make_node("Identity", ["c"], ["probs"])], "noin", [], [out], [const])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _metadata_not_utf8(src, dst):
    """A metadata value whose bytes are not UTF-8 (protobuf's Python API will not write one)."""
    import onnx

    model = onnx.load(str(src))
    model.metadata_props.add(key="k", value="ok")
    dst.write_bytes(model.SerializeToString().replace(b"\x02ok", b"\x02\xff\xfe"))
    return dst


def test_hostile_models_are_refused_in_one_line(mnist_cnn, tmp_path, edgerun):
    """Found by a sweep, each was 'unexpected error: ...' from run and a bare exception from the
    API: no inputs (IndexError), metadata that is not UTF-8 (UnicodeDecodeError), metadata nested
    100,000 deep (RecursionError), a schema written as 1.0, a 5,000-digit schema echoed whole."""
    cases = {
        "noin": (_no_inputs(tmp_path / "noin.onnx"), ModelError, "the model has no inputs"),
        "utf8": (_metadata_not_utf8(mnist_cnn, tmp_path / "u.onnx"), MetadataError, "is not UTF-8 text"),
        "deep": (
            with_metadata(mnist_cnn, tmp_path / "d.onnx", {"edgerun.preprocessing": "[" * 100_000 + "]" * 100_000}),
            MetadataError,
            "edgerun.preprocessing nests too deeply",
        ),
        "float": (with_metadata(mnist_cnn, tmp_path / "f.onnx", {"edgerun.schema": "1.0"}), MetadataError, "got '1.0'"),
        "big": (with_metadata(mnist_cnn, tmp_path / "b.onnx", {"edgerun.schema": "9" * 5000}), MetadataError, "999..."),
    }
    image = tmp_path / "d.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((28, 28), np.uint8))
    for name, (path, error, message) in cases.items():
        with pytest.raises(error, match=message.replace("(", r"\(").replace(".", r"\.")):
            Model.load(path, CPU)
        proc = edgerun("run", path, "--source", image)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and message in err and "unexpected" not in err, (name, err)
        assert len(err.strip().splitlines()[-1]) < 400, name  # one line, the value clipped


def test_edgerun_keys_without_a_schema_say_the_model_is_read_as_foreign(mnist_cnn, tmp_path, caplog):
    """Metadata cut down by some tool (the schema key gone) was read as foreign without a word."""
    import onnx

    model = onnx.load(str(mnist_cnn))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "edgerun.schema"]
    del model.metadata_props[:]
    for key, value in kept:
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(tmp_path / "m.onnx"))
    with caplog.at_level("WARNING"):
        loaded = Model.load(tmp_path / "m.onnx", CPU)
    assert loaded.foreign
    assert "but no edgerun.schema: it is read as a foreign model" in caplog.text


def test_an_output_shape_onnxruntime_cannot_use_is_named_as_such(tmp_path):
    """A declared output shape that contradicts the graph (an image passed through, declared as
    (N, 10)): onnxruntime reports [] and the message said 'has shape [], but a classify model
    needs (batch, classes)'."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 28, 28, 1])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["probs"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "h.onnx"))
    path = with_metadata(tmp_path / "h.onnx", tmp_path / "e.onnx", edgerun_props([str(i) for i in range(10)]))
    with pytest.raises(MetadataError, match="onnxruntime knows no shape for output 'probs'"):
        Model.load(path, CPU)
