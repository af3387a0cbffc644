from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from edgerun.runtime.cli import run_main


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_directory_of_pngs_matches_keras_accuracy(trained_mnist, mnist_pngs, tmp_path, capsys):
    import keras

    directory, labels = mnist_pngs
    out = tmp_path / "r.jsonl"
    assert (
        run_main(
            [
                str(trained_mnist["onnx"]),
                "--source",
                str(directory),
                "--json",
                str(out),
                "--batch",
                "16",
                "--topk",
                "3",
                "--provider",
                "cpu",
            ]
        )
        == 0
    )
    records = read_jsonl(out)
    assert len(records) == 1000 == len(capsys.readouterr().out.splitlines())
    assert [r["index"] for r in records] == list(range(1000))
    ours = np.array([int(r["top"][0]["label"]) for r in records])
    images = np.stack([cv2.imread(str(directory / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE) for i in range(1000)])
    model = keras.models.load_model(trained_mnist["keras"])
    theirs = model.predict(images[..., None] / 255.0, verbose=0).argmax(axis=1)
    assert np.mean(ours == labels) == np.mean(theirs == labels)
    assert all(set(r) == {"source", "index", "top", "latency_ms"} and len(r["top"]) == 3 for r in records)


def test_every_input_gives_one_record_errors_included(trained_mnist, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((28, 28), np.uint8))
    (images / "b.png").write_bytes(b"")
    (images / "c.png").write_text("not an image")
    cv2.imwrite(str(images / "d.png"), np.zeros((300, 200, 4), np.uint8))
    out = tmp_path / "r.jsonl"
    code = run_main([str(trained_mnist["onnx"]), "--source", str(images), "--json", str(out), "--batch", "3"])
    assert code == 1  # some inputs failed; each still has its record
    records = read_jsonl(out)
    assert [r["source"].rsplit("/", 1)[-1] for r in records] == ["a.png", "b.png", "c.png", "d.png"]
    assert ["error" in r for r in records] == [False, True, True, False]


def test_video_in_annotated_video_out(trained_mnist, tmp_path, digit_video):
    video = digit_video(tmp_path / "in.avi", 15, fps=10.0)
    saved, out = tmp_path / "out.avi", tmp_path / "r.jsonl"
    assert (
        run_main(
            [
                str(trained_mnist["onnx"]),
                "--source",
                str(video),
                "--save",
                str(saved),
                "--json",
                str(out),
                "--batch",
                "4",
            ]
        )
        == 0
    )
    assert len(read_jsonl(out)) == 15
    capture = cv2.VideoCapture(str(saved))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 15


def test_localizer_writes_detections_and_heatmaps(mnist_dir, tmp_path):
    from edgerun.export import cli as export_cli
    from edgerun.train.fit import TrainConfig, train

    result = train(
        TrainConfig("mnist_fcn", data_dir=str(mnist_dir), epochs=1, limit=500, shifted_copies=1, out=tmp_path)
    )
    assert export_cli.main([str(result.model_path)]) == 0
    scene = np.zeros((84, 112), np.uint8)
    from edgerun.train.data import load_split

    scene[28:56, 28:56] = load_split("mnist", "test", mnist_dir).images[0]
    cv2.imwrite(str(tmp_path / "scene.png"), scene)
    out, saved = tmp_path / "r.jsonl", tmp_path / "annotated"
    assert (
        run_main(
            [
                str(tmp_path / "mnist_fcn.onnx"),
                "--source",
                str(tmp_path / "scene.png"),
                "--json",
                str(out),
                "--save",
                str(saved),
                "--heatmaps",
                "--threshold",
                "0.5",
            ]
        )
        == 0
    )
    record = read_jsonl(out)[0]
    assert set(record) == {"source", "index", "detections", "latency_ms"}
    for det in record["detections"]:
        assert set(det) == {"class_id", "label", "score", "box"} and len(det["box"]) == 4
    assert len(list(saved.glob("*_heat_*.png"))) == 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch", "0"], "expected a number of at least 1"),
        (["--provider", "tpu"], "invalid choice: 'tpu'"),
        (["--threshold", "2"], "expected a number in (0, 1]"),
    ],
)
def test_bad_arguments_exit_2(trained_mnist, mnist_pngs, argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        run_main([str(trained_mnist["onnx"]), "--source", str(mnist_pngs[0]), *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_cuda_on_a_cpu_machine_is_a_clear_error(trained_mnist, mnist_pngs, capsys):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    assert run_main([str(trained_mnist["onnx"]), "--source", str(mnist_pngs[0]), "--provider", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "needs CUDAExecutionProvider" in err and "Traceback" not in err


def test_show_without_a_display_says_so_and_runs(trained_mnist, mnist_pngs, monkeypatch, caplog):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert run_main([str(trained_mnist["onnx"]), "--source", str(mnist_pngs[0]), "--show", "--max-frames", "3"]) == 0
    assert "--show" in caplog.text and ("no GUI" in caplog.text or "no display" in caplog.text)


def test_a_full_run_never_imports_tensorflow(trained_mnist, mnist_pngs, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from edgerun.runtime.cli import main
        code = main(["run", {str(trained_mnist["onnx"])!r}, "--source", {str(mnist_pngs[0])!r},
                     "--max-frames", "20", "--json", {str(tmp_path / "r.jsonl")!r}])
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx"))
        print("LEAKED", leaked, "CODE", code)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "LEAKED [] CODE 0" in out.stdout, out.stdout + out.stderr
