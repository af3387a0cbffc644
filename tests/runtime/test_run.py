from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edgerun.runtime.cli import main as run_main


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_directory_of_pngs_matches_plain_onnxruntime(mnist_cnn, mnist_pngs, tmp_path, capsys):
    directory, labels = mnist_pngs
    out = tmp_path / "r.jsonl"
    argv = [str(mnist_cnn), "--source", str(directory), "--json", str(out), "--batch", "16", "--topk", "3"]
    assert run_main([*argv, "--provider", "cpu"]) == 0
    records = read_jsonl(out)
    assert len(records) == 1000 == len(capsys.readouterr().out.splitlines())
    assert [r["index"] for r in records] == list(range(1000))
    ours = np.array([int(r["top"][0]["label"]) for r in records])
    images = np.stack([cv2.imread(str(directory / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE) for i in range(1000)])
    session = ort.InferenceSession(str(mnist_cnn), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"input": (images[..., None] / 255.0).astype(np.float32)})[0].argmax(axis=1)
    assert np.array_equal(ours, theirs)
    assert np.mean(ours == labels) > 0.95
    assert all(set(r) == {"source", "index", "top", "latency_ms"} and len(r["top"]) == 3 for r in records)


def test_bundled_model_by_name_and_json_to_stdout(mnist_pngs, capsys):
    directory, labels = mnist_pngs
    assert run_main(["mnist_cnn", "--source", str(directory / "00000.png"), "--json", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["top"][0]["label"] == str(labels[0])


def test_unknown_model_name_lists_the_bundled_ones(mnist_pngs, capsys):
    assert run_main(["mnist_cn", "--source", str(mnist_pngs[0])]) == 2
    err = capsys.readouterr().err
    assert "neither a file nor a bundled model" in err and "mnist_cnn" in err


def test_every_input_gives_one_record_errors_included(mnist_cnn, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((28, 28), np.uint8))
    (images / "b.png").write_bytes(b"")
    (images / "c.png").write_text("not an image")
    cv2.imwrite(str(images / "d.png"), np.zeros((300, 200, 4), np.uint8))
    out = tmp_path / "r.jsonl"
    code = run_main([str(mnist_cnn), "--source", str(images), "--json", str(out), "--batch", "3"])
    assert code == 1  # some inputs failed; each still has its record
    records = read_jsonl(out)
    assert [r["source"].rsplit("/", 1)[-1] for r in records] == ["a.png", "b.png", "c.png", "d.png"]
    assert ["error" in r for r in records] == [False, True, True, False]
    assert "is empty" in records[1]["error"] and "could not be decoded" in records[2]["error"]


def test_video_in_annotated_video_out(mnist_cnn, tmp_path, digit_video, mnist_pngs, caplog):
    video = digit_video(tmp_path / "in.avi", 15, fps=10.0)
    saved, out = tmp_path / "out.avi", tmp_path / "r.jsonl"
    argv = [str(mnist_cnn), "--source", str(video), "--save", str(saved), "--json", str(out), "--batch", "4"]
    with caplog.at_level("INFO", logger="edgerun.runtime.run"):
        assert run_main(argv) == 0
        assert "source frame rate from timestamps: 10.00 fps" in caplog.text
        caplog.clear()
        assert run_main([str(mnist_cnn), "--source", str(mnist_pngs[0]), "--json", str(tmp_path / "i.jsonl")]) == 0
        assert "frame rate" not in caplog.text  # images have none; it said 1.00 fps
    assert len(read_jsonl(out)) == 15
    capture = cv2.VideoCapture(str(saved))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 15
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)  # the source's frame rate is kept


def test_localizer_writes_detections_and_heatmaps(mnist_fcn, mnist_test, tmp_path):
    images, labels = mnist_test
    scene = np.zeros((84, 140), np.uint8)
    scene[28:56, 28:56], scene[28:56, 84:112] = images[0], images[1]
    cv2.imwrite(str(tmp_path / "scene.png"), scene)
    out, saved = tmp_path / "r.jsonl", tmp_path / "annotated"
    argv = [str(mnist_fcn), "--source", str(tmp_path / "scene.png"), "--json", str(out), "--save", str(saved)]
    assert run_main([*argv, "--heatmaps"]) == 0
    record = read_jsonl(out)[0]
    assert set(record) == {"source", "index", "detections", "latency_ms"}
    found = sorted((d["box"][0], d["label"]) for d in record["detections"])
    assert [label for _, label in found] == [str(labels[0]), str(labels[1])]
    for det in record["detections"]:
        assert set(det) == {"class_id", "label", "score", "box"} and len(det["box"]) == 4
        assert det["box"][2] - det["box"][0] == pytest.approx(28)
    assert len(list(saved.glob("*_heat_*.png"))) == 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch", "0"], "expected a number of at least 1"),
        (["--provider", "tpu"], "invalid choice: 'tpu'"),
        (["--threshold", "2"], "expected a number in (0, 1]"),
        (["--std", "0"], "expected a finite number above 0"),
    ],
)
def test_bad_arguments_exit_2(mnist_cnn, mnist_pngs, argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        run_main([str(mnist_cnn), "--source", str(mnist_pngs[0]), *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_cuda_on_a_cpu_machine_is_a_clear_error(mnist_cnn, mnist_pngs, capsys):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    assert run_main([str(mnist_cnn), "--source", str(mnist_pngs[0]), "--provider", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "needs CUDAExecutionProvider" in err and "Traceback" not in err


def test_show_without_a_display_says_so_and_runs(mnist_cnn, mnist_pngs, monkeypatch, caplog):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert run_main([str(mnist_cnn), "--source", str(mnist_pngs[0]), "--show", "--max-frames", "3"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(m.startswith("--show: ") and ("no GUI" in m or "no display" in m) for m in warnings), warnings


def test_a_full_run_never_imports_tensorflow_or_onnx(mnist_cnn, mnist_pngs, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from edgerun.cli import main
        code = main(["run", {str(mnist_cnn)!r}, "--source", {str(mnist_pngs[0])!r},
                     "--max-frames", "20", "--json", {str(tmp_path / "r.jsonl")!r}])
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx", "onnx"))
        print("LEAKED", leaked, "CODE", code)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "LEAKED [] CODE 0" in out.stdout, out.stdout + out.stderr
