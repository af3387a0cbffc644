from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from edgerun.export.cli import inspect_main


def foreign_model(path):
    """A tiny PyTorch-style classifier: NCHW [batch,1,28,28] -> logits [batch,10], no metadata."""
    import numpy as np

    weight = helper.make_tensor("W", TensorProto.FLOAT, [784, 10], np.zeros(7840, np.float32))
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["logits"])],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, str(path))
    return path


def test_inspect_our_model(mnist_cnn, capsys):
    assert inspect_main([str(mnist_cnn)]) == 0
    out = capsys.readouterr().out
    assert "input" in out and "[batch, 28, 28, 1]" in out
    assert "opset       17" in out and "Conv" in out and "Transpose" in out
    assert "edgerun.name" in out and "mnist_cnn" in out


def test_inspect_foreign_model(tmp_path, capsys):
    assert inspect_main([str(foreign_model(tmp_path / "f.onnx"))]) == 0
    out = capsys.readouterr().out
    assert "[batch, 1, 28, 28]" in out and "MatMul" in out and "metadata: (none)" in out


def test_inspect_not_onnx(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    assert inspect_main([str(bad)]) == 2
    assert "is not a complete ONNX model" in capsys.readouterr().err


def test_inspect_lfs_pointer(tmp_path, capsys):
    pointer = tmp_path / "m.onnx"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    assert inspect_main([str(pointer)]) == 2
    assert "Git LFS pointer" in capsys.readouterr().err


def test_inspect_json_for_scripts(mnist_cnn, capsys):
    import json

    assert inspect_main(["mnist_cnn", "--json"]) == 0  # a bundled model's name works too
    info = json.loads(capsys.readouterr().out)
    assert info["inputs"][0][0] == "input" and info["inputs"][0][2] == ["batch", 28, 28, 1]
    assert info["metadata"]["edgerun.name"] == "mnist_cnn" and info["parameters"] > 1_000_000


def test_inspect_escapes_what_the_file_chooses(mnist_cnn, tmp_path, capsys):
    """A file name, metadata key or value holding a newline or an escape code printed raw split
    lines and reached the terminal (a key '\\x1b[2J...' cleared the screen); a value that is not
    UTF-8 broke --json ('bytes is not JSON serializable'); no opset printed 'opset None'."""
    import json

    model = onnx.load(str(mnist_cnn))
    model.metadata_props.add(key="\x1b[2Jkey", value="red\x1b[31m\nX")
    model.metadata_props.add(key="k", value="ok")
    del model.opset_import[:]
    model.opset_import.add(domain="com.example", version=1)
    path = tmp_path / "esc\x1b[31m\nname.onnx"
    path.write_bytes(model.SerializeToString().replace(b"\x02ok", b"\x02\xff\xfe"))
    assert inspect_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert "file        " + str(tmp_path) + "/esc\\x1b[31m\\nname.onnx\n" in out
    assert "\\x1b[2Jkey" in out and "red\\x1b[31m\\nX" in out and "\\xff\\xfe" in out
    assert "opset       (none: the model imports no ai.onnx opset)" in out
    assert inspect_main([str(path), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["metadata"]["k"] == "\\xff\\xfe" and described["opset"] is None
