from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgerun.runtime.frames import Frame
from edgerun.runtime.metadata import SCHEMA_KEY, MetadataError, ModelMetadata, read_metadata
from edgerun.runtime.model import Model, ModelError, Overrides, SessionConfig
from edgerun.runtime.providers import ProviderError, plan_providers


def make_model(path, input_shape, out_classes=10, props=None, softmax=False):
    """A tiny linear classifier built with onnx.helper: Flatten -> MatMul (-> Softmax)."""
    features = int(np.prod([d for d in input_shape[1:] if isinstance(d, int)]))
    rng = np.random.default_rng(0)
    weight = helper.make_tensor(
        "W",
        TensorProto.FLOAT,
        [features, out_classes],
        rng.normal(0, 0.1, features * out_classes).astype(np.float32),
    )
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["logits"])]
    output = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=-1))
        output = "probs"
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", out_classes])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    for key, value in (props or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def make_any_size_model(path):
    """A foreign NCHW model of any input size, 3 channels: GlobalAveragePool -> Flatten (3 'classes')."""
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]), helper.make_node("Flatten", ["g"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "any_size",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def test_foreign_nchw_logits_model_runs_with_softmax(tmp_path):
    model = Model.load(make_model(tmp_path / "f.onnx", ["batch", 1, 28, 28]), SessionConfig(provider="cpu"))
    assert model.foreign and model.metadata.layout == "NCHW"
    assert model.metadata.preprocessing.color == "gray" and model.metadata.preprocessing.size == (28, 28)
    probs = model.run(np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32))
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_foreign_nhwc_rgb_model(tmp_path):
    model = Model.load(make_model(tmp_path / "f.onnx", ["batch", 32, 32, 3]), SessionConfig(provider="cpu"))
    assert model.metadata.layout == "NHWC" and model.metadata.preprocessing.color == "RGB"


def test_ambiguous_layout_needs_a_flag(tmp_path):
    path = make_model(tmp_path / "f.onnx", ["batch", 3, 5, 3])
    with pytest.raises(ModelError, match="--layout nchw or --layout nhwc"):
        Model.load(path)
    model = Model.load(path, overrides=Overrides(layout="nchw"))
    assert model.metadata.layout == "NCHW"


def test_dynamic_size_needs_a_flag(tmp_path):
    path = make_model(tmp_path / "f.onnx", ["batch", 1, "h", "w"])
    with pytest.raises(ModelError, match="--size H W"):
        Model.load(path)


def test_rank_no_recipe_fits(tmp_path):
    path = make_model(tmp_path / "f.onnx", ["batch", 784])
    with pytest.raises(ModelError, match=r"has shape \['batch', 784\].*4-D input"):
        Model.load(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
        (b"this is not a model", "not a loadable ONNX model: the file is not a complete ONNX protobuf"),
        ("truncated", "not a complete ONNX protobuf .*fetch or export it again"),
    ],
    ids=["missing", "empty", "lfs", "garbage", "truncated"],
)
def test_bad_model_files(tmp_path, content, message):
    path = tmp_path / "m.onnx"
    if content == "truncated":  # half of a real model, as an interrupted download leaves it
        real = (Path(__file__).resolve().parents[2] / "models" / "mnist_cnn.onnx").read_bytes()
        content = real[: len(real) // 2]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        Model.load(path)


def test_unknown_metadata_schema_is_refused(tmp_path):
    path = make_model(tmp_path / "m.onnx", ["batch", 28, 28, 1], props={SCHEMA_KEY: "99", "edgerun.name": "x"})
    with pytest.raises(MetadataError, match="schema 99, this edgerun reads schema 1"):
        Model.load(path)


def test_metadata_round_trip():
    meta = ModelMetadata(
        name="m",
        classes=("a", "b"),
        input_shape=("batch", 28, 28, 1),
        opset=17,
        data={"train": {"samples": 5}},
    )
    back = read_metadata(meta.to_props())
    assert back == meta


def test_external_data_outside_the_folder_is_refused(tmp_path):
    path = make_model(tmp_path / "m.onnx", ["batch", 1, 28, 28])
    proto = onnx.load(str(path))
    weight = proto.graph.initializer[0]
    weight.ClearField("raw_data")
    del weight.float_data[:]
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match="external data|outside|not a loadable"):
        Model.load(path)


def test_cuda_asked_where_it_cannot_run():
    with pytest.raises(ProviderError, match="needs CUDAExecutionProvider.*edgerun\\[gpu\\]"):
        plan_providers("cuda", ["CPUExecutionProvider"])
    plan = plan_providers("auto", ["CPUExecutionProvider"])
    assert plan.providers == ["CPUExecutionProvider"] and not plan.strict
    with pytest.raises(ProviderError, match="unknown provider 'tpu'"):
        plan_providers("tpu", ["CPUExecutionProvider"])


def test_openvino_needs_its_build_and_gets_the_cpu_threads(tmp_path):
    """--provider openvino: a clear error naming the build that has it where onnxruntime lacks it
    (the plain wheel), else OpenVINO's provider on the CPU, f32, with the run's threads."""
    with pytest.raises(ProviderError, match="needs OpenVINOExecutionProvider.*pip install onnxruntime-openvino"):
        plan_providers("openvino", ["CPUExecutionProvider"])
    plan = plan_providers("openvino", ["OpenVINOExecutionProvider", "CPUExecutionProvider"], threads=2)
    assert plan.strict and plan.providers == [
        ("OpenVINOExecutionProvider", {"device_type": "CPU", "precision": "FP32", "num_of_threads": "2"}),
        "CPUExecutionProvider",
    ]
    import onnxruntime as ort

    if "OpenVINOExecutionProvider" not in ort.get_available_providers():  # the plain wheel: what users see
        with pytest.raises(ProviderError, match="onnxruntime-openvino"):
            Model.load(make_model(tmp_path / "m.onnx", ["batch", 1, 28, 28]), SessionConfig(provider="openvino"))


def test_session_threads_and_providers_reported(tmp_path):
    model = Model.load(make_model(tmp_path / "m.onnx", ["batch", 1, 28, 28]), SessionConfig(provider="cpu", threads=1))
    assert model.providers == ["CPUExecutionProvider"]
    assert model.session.get_session_options().intra_op_num_threads == 1


def test_two_onnxruntime_packages_side_by_side_are_reported(monkeypatch, caplog):
    from edgerun.runtime import providers

    folders = ["onnxruntime_gpu-1.31.1.dist-info", "onnxruntime-1.31.1.dist-info", "onnxruntime_gpu-1.31.1.dist-info"]
    monkeypatch.setattr(providers, "_ort_dist_folders", lambda: folders)
    providers.check_ort_install.cache_clear()
    try:
        found = providers.check_ort_install()
    finally:
        providers.check_ort_install.cache_clear()
    assert found == ["onnxruntime 1.31.1", "onnxruntime-gpu 1.31.1"]
    assert "several onnxruntime packages are installed side by side" in caplog.text


def test_the_installed_onnxruntime_is_found():
    from importlib.metadata import version

    from edgerun.runtime import providers

    assert f"onnxruntime {version('onnxruntime')}" in providers.installed_ort_packages()


def test_a_foreign_model_says_what_was_guessed_and_how_to_change_it(tmp_path, caplog):
    """A model without edgerun's metadata loaded with one line, '(foreign, classify)': nothing said
    that frames would be stretched to 224x224 as RGB x 1/255 with no mean, nor which option changes
    what. Now the load logs the reading, each guess beside its option, each given value marked."""
    path = make_model(tmp_path / "f.onnx", [1, 3, 8, 8])
    with caplog.at_level("INFO", logger="edgerun.runtime.model"):
        Model.load(path, SessionConfig(provider="cpu"))
    (line,) = [r.getMessage() for r in caplog.records if "no edgerun metadata" in r.getMessage()]
    guesses = ("[1, 3, 8, 8]", "NCHW (--layout)", "8x8 (--size)", "each frame stretched to it (--resize)")
    guesses += ("RGB order (--gray or --color)",)
    guesses += ("pixels x 1/255 (--scale)", "- mean 0 (--mean)", "/ std 1 (--std)", "10 classes (named by index")
    for part in guesses:
        assert part in line, (part, line)
    caplog.clear()
    given = Overrides(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), labels=tuple("abcdefghij"))
    with caplog.at_level("INFO", logger="edgerun.runtime.model"):
        Model.load(path, SessionConfig(provider="cpu"), overrides=given)
    (line,) = [r.getMessage() for r in caplog.records if "no edgerun metadata" in r.getMessage()]
    assert "- mean 0.5, 0.5, 0.5 (given)" in line and "/ std 0.25, 0.25, 0.25 (given)" in line
    assert "10 classes (given)" in line and "RGB order (--gray or --color)" in line


def test_a_dynamic_size_refusal_names_the_api_keyword_too(tmp_path):
    """edgerun.load users were told '--size H W', a command-line flag they cannot pass."""
    path = make_model(tmp_path / "f.onnx", ["batch", 1, "h", "w"])
    with pytest.raises(ModelError, match=r"--size H W \(in edgerun.load: size=\(H, W\)\)"):
        Model.load(path)


def test_a_batch_in_the_models_own_layout_and_type_goes_in_as_it_is(tmp_path):
    """feed() converts NHWC float32 to what onnxruntime is given (NCHW here); run() takes that
    as it is, so a benchmark converts once, as its peers are fed (it transposed every call)."""
    model = Model.load(make_model(tmp_path / "f.onnx", ["batch", 3, 8, 6]), SessionConfig(provider="cpu"))
    x = np.random.default_rng(2).random((4, 8, 6, 3), dtype=np.float32)
    native = model.feed(x)
    assert native.shape == (4, 3, 8, 6) and native.flags.c_contiguous
    np.testing.assert_array_equal(native, x.transpose(0, 3, 1, 2))
    assert model.feed(native) is native  # no copy, no transpose
    np.testing.assert_allclose(model.run(native), model.run(x), rtol=1e-6)
    with pytest.raises(ModelError, match=r"NHWC"):
        model.run(native[:, :2])  # neither layout: refused as before


def test_a_model_of_any_size_takes_its_own_layout_too(tmp_path):
    """The bench feeds edgerun Model.feed's output: for an NCHW model with a dynamic size that was
    refused as 'not (N, H, W, 3)' (every edgerun row of `bench --size` failed)."""
    dyn = make_any_size_model(tmp_path / "dyn.onnx")
    model = Model.load(dyn, SessionConfig(provider="cpu"), Overrides(size=(10, 12)))
    x = np.random.default_rng(3).random((2, 10, 12, 3), dtype=np.float32)
    own = model.feed(x)
    assert own.shape == (2, 3, 10, 12) and model.feed(own) is own
    np.testing.assert_allclose(model.run(own), model.run(x), rtol=1e-6)
    with pytest.raises(ModelError, match=r"or the model's own \(N, 3, H, W\)"):
        model.run(np.zeros((2, 10, 4, 12), np.float32))


def test_a_torchvision_style_model_takes_bgr_or_rgb_and_a_centre_crop(tmp_path, caplog):
    """Models trained the torchvision way see the shorter side resized, then the centre cropped;
    caffe-style models take BGR. Neither could be asked for: every frame was stretched, in RGB."""
    path = make_model(tmp_path / "f.onnx", ["batch", 3, 4, 4])
    frame = np.zeros((4, 8, 3), np.uint8)  # wide: a centre crop keeps columns 2-5 only
    frame[:, 2:6] = (10, 20, 30)  # BGR
    given = Overrides(layout="nchw", color="bgr", resize="crop", scale=1.0)
    with caplog.at_level("INFO", logger="edgerun.runtime.model"):
        model = Model.load(path, SessionConfig(provider="cpu"), overrides=given)
    assert "shorter side to it, centre cropped (given)" in caplog.text and "BGR order (given)" in caplog.text
    tensor = model.prepare(Frame(frame, "f", 0, 0.0)).prepared.tensors[0]
    assert tensor.shape == (4, 4, 3) and tensor[..., 0].min() == 10 and tensor[..., 2].max() == 30  # B first, cropped
    rgb = Model.load(
        path, SessionConfig(provider="cpu"), overrides=Overrides(layout="nchw", resize="stretch", scale=1.0)
    )
    stretched = rgb.prepare(Frame(frame, "f", 0, 0.0)).prepared.tensors[0]
    assert stretched[..., 0].max() == 30 and stretched[..., 0].min() == 0  # R first, the black edges kept
    with pytest.raises(MetadataError, match="color must be one of rgb, bgr"):
        Overrides(color="yuv")
    with pytest.raises(MetadataError, match="resize must be one of stretch, crop"):
        Overrides(resize="pad")
    with pytest.raises(MetadataError, match="disagree"):
        Overrides(color="rgb", gray=True)
