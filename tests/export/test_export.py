from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgerun.export import cli
from edgerun.export.graph import dims
from edgerun.export.onnx import load_keras
from edgerun.export.parity import check_parity, parity_inputs
from edgerun.runtime.metadata import read_metadata


def io_dims(path):
    model = onnx.load(str(path))
    return [dims(i) for i in model.graph.input], [dims(o) for o in model.graph.output]


def test_export_writes_every_variant(trained_mnist):
    for key in ("onnx", "int8", "fp16", "tflite"):
        assert trained_mnist[key].is_file(), key
    assert io_dims(trained_mnist["onnx"]) == ([["batch", 28, 28, 1]], [["batch", 10]])


def test_export_graph_is_lean(trained_mnist):
    """The Flatten is a constant-shape Reshape with the dynamic batch; no shape arithmetic, no Transpose."""
    from onnx import numpy_helper

    model = onnx.load(str(trained_mnist["onnx"]))
    ops = [n.op_type for n in model.graph.node]
    assert not {"Shape", "Gather", "Cast", "Slice", "Concat", "Transpose"} & set(ops), ops
    assert len(ops) == 13
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    shapes = [inits[n.input[1]].tolist() for n in model.graph.node if n.op_type == "Reshape"]
    assert [-1, 9216] in shapes


def test_plain_onnxruntime_reads_the_metadata_back(trained_mnist):
    session = ort.InferenceSession(str(trained_mnist["onnx"]), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert props["edgerun.schema"] == "1"
    assert props["edgerun.name"] == "mnist_cnn"
    assert json.loads(props["edgerun.classes"]) == [str(d) for d in range(10)]
    meta = read_metadata(session)
    assert meta.task == "classify" and meta.layout == "NHWC"
    assert meta.preprocessing.recipe == "mnist" and meta.preprocessing.size == (28, 28)
    assert meta.test["accuracy"] == trained_mnist["card"]["test"]["accuracy"]
    assert meta.data["train"]["samples"] == 2000
    assert len(meta.source_sha256) == 64 and meta.opset == 17
    assert {"tensorflow", "keras", "tf2onnx", "onnx"} <= set(meta.versions)
    assert read_metadata(session := ort.InferenceSession(str(trained_mnist["int8"]))).variant == "int8"
    assert session.get_providers()


def test_int8_keeps_accuracy(trained_mnist, mnist_dir):
    from edgerun.export.quantize import evaluate, load_calibration

    meta = read_metadata(onnx.load(str(trained_mnist["onnx"])))
    _, evaluation = load_calibration(mnist_dir, meta.classes, samples=100)
    fp32 = evaluate(trained_mnist["onnx"], evaluation, batches=(1,), seconds=0.2)
    int8 = evaluate(trained_mnist["int8"], evaluation, batches=(1,), seconds=0.2)
    assert abs(fp32.accuracy - int8.accuracy) <= 0.01


def test_int8_export_has_7_bit_weights(trained_mnist, int8_is_portable):
    int8_is_portable(trained_mnist["int8"])


def test_int8_tflite_twin_is_full_integer_and_keeps_accuracy(trained_mnist, mnist_dir):
    """--tflite with --int8 writes NAME.int8.tflite from the same calibration images as the int8 ONNX."""
    from ai_edge_litert.interpreter import Interpreter

    from edgerun.bench.backends import tflite_precision
    from edgerun.export.quantize import load_calibration
    from edgerun.export.tflite import accuracy_tflite

    path = trained_mnist["int8_tflite"]
    interpreter = Interpreter(str(path))
    assert tflite_precision(interpreter) == "int8"
    assert tflite_precision(Interpreter(str(trained_mnist["tflite"]))) == "fp32"
    dtypes = {t["name"]: t["dtype"] for t in interpreter.get_tensor_details()}
    assert interpreter.get_input_details()[0]["dtype"] == np.float32  # float in and out, as the int8 ONNX
    weights = [n for n in dtypes if n.endswith("/convolution") or n.endswith("/MatMul")]
    pooled = [n for n in dtypes if "max_pooling" in n.lower()]
    assert weights and all(dtypes[n] == np.int8 for n in weights)  # integer weights...
    assert pooled and all(dtypes[n] == np.int8 for n in pooled)  # ...and integer activations
    from edgerun.export.quantize import model_inputs
    from edgerun.runtime.model import Model

    model = Model.load(trained_mnist["onnx"])
    _, evaluation = load_calibration(mnist_dir, model.classes, samples=100)
    inputs = model_inputs(model, evaluation.frames)
    fp32 = accuracy_tflite(trained_mnist["tflite"], inputs, evaluation.labels)
    assert abs(accuracy_tflite(path, inputs, evaluation.labels) - fp32) <= 0.01


def test_parity_gate_catches_a_different_model(trained_mnist, tmp_path):
    """Compare the export against a Keras model with other weights: the gate must fail."""
    from edgerun.train.models import create_model

    other = create_model("mnist_cnn")
    meta = read_metadata(onnx.load(str(trained_mnist["onnx"])))
    cases, source = parity_inputs(meta, trained_mnist["card"])
    report = check_parity(other, trained_mnist["onnx"], meta, cases, source)
    assert not report.passed and report.max_abs_diff > 1e-3
    good = check_parity(load_keras(trained_mnist["keras"]), trained_mnist["onnx"], meta, cases, source)
    assert good.passed and good.max_abs_diff <= 1e-5
    assert "real test images" in good.inputs


def _save_untrained(name, directory):
    from edgerun.train.models import create_model

    path = directory / f"{name}.keras"
    model = create_model(name) if name != "resnet50" else create_model(name, weights=None)
    model.save(path)
    return path


@pytest.mark.parametrize("name", ["mnist_small", "fashion_cnn"])
def test_registry_models_without_a_card_export(name, tmp_path, fashion_dir, capsys):
    path = _save_untrained(name, tmp_path)
    args = [str(path)] + (["--data-dir", str(fashion_dir)] if name == "fashion_cnn" else [])
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "argmax agree 100.00%" in out
    meta = read_metadata(onnx.load(str(tmp_path / f"{name}.onnx")))
    assert meta.name == name
    if name == "fashion_cnn":
        assert meta.classes[9] == "Ankle boot" and "real test images" in out


def test_fcn_export_has_dynamic_height_and_width(mnist_dir, tmp_path, capsys):
    from edgerun.train.fit import TrainConfig, train

    result = train(
        TrainConfig("mnist_fcn", data_dir=str(mnist_dir), epochs=1, limit=300, shifted_copies=1, out=tmp_path)
    )
    assert cli.main([str(result.model_path)]) == 0
    out = capsys.readouterr().out
    assert "scene 308x336" in out
    assert io_dims(tmp_path / "mnist_fcn.onnx") == (
        [["batch", "height", "width", 1]],
        [["batch", "out_height", "out_width", 10]],
    )
    session = ort.InferenceSession(str(tmp_path / "mnist_fcn.onnx"))
    heat = session.run(None, {"input": np.zeros((1, 308, 336, 1), np.float32)})[0]
    assert heat.shape == (1, 141, 155, 10)


def test_resnet50_random_weights_export(tmp_path, capsys):
    path = _save_untrained("resnet50", tmp_path)
    assert cli.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "batch 8" in out and "argmax agree 100.00%" in out
    meta = read_metadata(onnx.load(str(tmp_path / "resnet50.onnx"), load_external_data=False))
    assert meta.preprocessing.recipe == "caffe" and len(meta.classes) == 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{missing}"], "does not exist"),
        (["{model}", "--int8"], "--int8 needs --calib-data"),
        (["{model}", "--int8", "--calib-data", "{missing}"], "is not a directory"),
        (["{text}"], "is not a .keras file (a zip written by Keras' model.save)"),
        (["{tmp}"], "is a directory; give the .keras file"),
        (["{model}", "--data-dir", "{missing}"], "--data-dir"),
        (["{model}", "--calib-data", "{tmp}"], "add --int8, or leave --calib-data out"),
        (["{model}", "--int8", "--calib-data", "{tmp}"], "no calibration data in"),
    ],
)
def test_export_bad_arguments(argv, message, trained_mnist, tmp_path, capsys):
    """Each refused before any conversion (the calibration data is read first, not after)."""
    (tmp_path / "text.keras").write_text("not a model")
    fill = {
        "missing": str(tmp_path / "nope.keras"),
        "model": str(trained_mnist["keras"]),
        "text": str(tmp_path / "text.keras"),
        "tmp": str(tmp_path),
    }
    assert cli.main([a.format(**fill) for a in argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("opset", ["5", "8", "19", "x", "0", "-1"])
def test_export_opset_out_of_range_is_refused_before_tensorflow(opset, capsys):
    """--opset 5 once failed after the conversion as 'graph simplification failed ... export with
    --no-simplify', which then failed in onnx.checker; 19+ failed inside tf2onnx."""
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["m.keras", "--opset", opset])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert ("expected an opset from 9 to 18" if opset != "x" else "expected a whole number from 9 to 18") in err


def test_export_opset_range_is_tf2onnx_s():
    """The upper bound is what the installed tf2onnx converts (an upgrade that adds opsets fails here)."""
    constants = pytest.importorskip("tf2onnx.constants", reason="needs the train extra (tf2onnx)")
    from edgerun.export.opsets import MAX_OPSET

    assert max(constants.OPSET_TO_IR_VERSION) == MAX_OPSET


def test_no_export_output_replaces_its_inputs(trained_mnist, mnist_dir, tmp_path, capsys):
    """The data it reads (--data-dir, --calib-data), the labels, and one output on another are
    refused before anything is written: once, '--out DATA/t10k-images-idx3-ubyte.gz' replaced the
    test images with the model and passed."""
    import hashlib
    import shutil

    data = tmp_path / "data"
    shutil.copytree(mnist_dir, data)
    images = data / "t10k-images-idx3-ubyte.gz"
    before = hashlib.sha256(images.read_bytes()).hexdigest()
    labels = tmp_path / "foo.tflite"
    labels.write_text("\n".join(str(d) for d in range(10)))
    model = str(trained_mnist["keras"])
    cases = [
        ([model, "--data-dir", str(data), "--out", str(images)], "is an input of this run"),
        ([model, "--int8", "--calib-data", str(data), "--out", str(data / "train-images-idx3-ubyte.gz")], "input"),
        ([model, "--tflite", "--labels", str(labels), "--out", str(tmp_path / "foo.onnx")], "TFLite twin"),
        ([model, "--tflite", "--out", str(tmp_path / "x.tflite")], "is the same file as --out"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        assert message in capsys.readouterr().err
    assert hashlib.sha256(images.read_bytes()).hexdigest() == before
    assert labels.read_text().startswith("0\n1") and not (tmp_path / "foo.onnx").exists()


def test_failed_variant_check_exits_1_and_lists_what_was_written(
    trained_mnist, mnist_dir, tmp_path, monkeypatch, capsys
):
    """A variant failing its check against Keras is a failed gate (exit 1, as parity), not a bad
    input (2); the files written before it are listed and the ones after named as not written.
    The bar is raised out of reach (an agreement above 100%) rather than the model broken."""
    from edgerun.export import tflite

    monkeypatch.setattr(tflite, "INT8_AGREEMENT", 1.01)
    out = tmp_path / "m.onnx"
    argv = [str(trained_mnist["keras"]), "--out", str(out), "--tflite", "--int8", "--fp16"]
    code = cli.main(argv + ["--calib-data", str(mnist_dir), "--calib-samples", "50"])
    captured = capsys.readouterr()
    assert code == 1
    for name in ("m.onnx", "m.tflite", "m.int8.onnx"):
        assert f"wrote     {tmp_path / name}  (" in captured.out and (tmp_path / name).is_file()
    assert "int8 TFLite twin agrees with Keras on the top class of only" in captured.err
    assert f"not written: {tmp_path / 'm.int8.tflite'}, {tmp_path / 'm.fp16.onnx'}" in captured.err
    assert not (tmp_path / "m.int8.tflite").exists() and not (tmp_path / "m.fp16.onnx").exists()


def test_a_card_of_another_model_is_refused(trained_mnist, tmp_path, capsys):
    """A .keras copied beside another model's NAME.json: the export would carry that model's name,
    classes and preprocessing. Refused before converting, with what differs."""
    import shutil

    keras_path = tmp_path / "copied.keras"
    shutil.copy(trained_mnist["keras"], keras_path)
    card = json.loads(trained_mnist["card_path"].read_text()) | {"name": "fashion_cnn", "params": 1234}
    card["classes"] = card["classes"][:5]
    keras_path.with_suffix(".json").write_text(json.dumps(card))
    assert cli.main([str(keras_path)]) == 2
    err = capsys.readouterr().err
    assert "describes another model than copied.keras" in err
    assert "parameters 1234 vs " in err and "classes 5 vs 10" in err
    assert not keras_path.with_suffix(".onnx").exists()


@pytest.mark.parametrize(
    ("shape", "fed"), [((32, 32, 3), "32x32x3"), ((None, None, 3), "64x64x3"), ((16, 16, 4), "16x16x4")]
)
def test_any_keras_classifier_exports_with_its_own_input_size(tmp_path, capsys, caplog, shape, fed):
    """README: 'edgerun export my.keras works on any Keras classifier with a 4-D image input'. A
    32x32 RGB one stopped with 'unexpected error: ValueError' (the gate fed it 28x28 digits), one
    of any size (global pooling) with 'IndexError' (its scores were named like an FCN's map)."""
    pytest.importorskip("tensorflow", reason="needs the train extra")
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.save(tmp_path / "my.keras")
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")
    assert cli.main([str(tmp_path / "my.keras"), "--labels", str(tmp_path / "labels.txt")]) == 0
    out = capsys.readouterr().out
    assert f"seeded random {fed} images (seed 0)" in out and "argmax agree 100.00%" in out
    assert read_metadata(onnx.load(str(tmp_path / "my.onnx"))).classes == ("cat", "dog", "bird")
    warned = "takes 4-channel images; edgerun run feeds 1 (gray) or 3 (colour) channels" in caplog.text
    assert warned == (shape[-1] == 4)
