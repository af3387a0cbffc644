from __future__ import annotations

import json

import cv2
import pytest

from edgerun.demo import app as demo

needs_models = pytest.mark.usefixtures("mnist_cnn", "mnist_small_fcn")  # skips without the committed models


@needs_models
def test_demo_writes_every_output(mnist_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    code = demo.main(
        ["--out", str(out), "--data-dir", str(mnist_dir), "--digits", "300", "--scenes", "3", "--seconds", "0.05"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["synthetic"] and "real MNIST" in summary["digits"]
    assert summary["classify"]["accuracy"] > 0.9
    local = summary["localize"]
    assert f"{local['found']} detections for {local['digits_on_scene']} digits on the book's scene" in printed
    assert f"(precision {local['scene_precision']:.3f}, recall {local['scene_recall']:.3f})" in printed
    assert summary["video"]["frames"] == 48
    for name in (
        "scene.png",
        "page.png",
        "page_annotated.png",
        "scene_annotated.png",
        "heatmaps.png",
        "pan.avi",
        "pan_annotated.avi",
        "latency.md",
        "latency.json",
        "latency_mnist_cnn.png",
    ):
        assert (out / name).is_file(), name
        assert name in printed
    assert len(list((out / "heatmaps").glob("digit_*.png"))) == 10
    scene, annotated = cv2.imread(str(out / "scene.png")), cv2.imread(str(out / "scene_annotated.png"))
    assert annotated.shape[:2] == (2 * scene.shape[0], 2 * scene.shape[1])  # drawn at 2x to be readable
    green = (annotated[:, :, 1] > 150) & (annotated[:, :, 0] < 100) & (annotated[:, :, 2] < 100)
    assert green.sum() > 500  # boxes and labels were drawn


@needs_models
def test_demo_falls_back_to_synthetic_digits(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--synthetic", "--digits", "100", "--scenes", "2", "--seconds", "0.05"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["synthetic"] is True


def test_demo_refuses_a_data_dir_without_mnist(tmp_path, capsys):
    """--data-dir given but empty: an error, not a quiet fall-back to synthetic digits; the --out
    folders it made for the run are gone again."""
    assert demo.main(["--out", str(tmp_path / "o" / "deeper"), "--data-dir", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert f"--data-dir {tmp_path / 'nothing'} holds no MNIST test files" in err and "--synthetic" in err
    assert not (tmp_path / "o").exists()


def test_demo_without_models_says_how_to_make_them(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    assert demo.main(["--out", str(tmp_path / "o"), "--models", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "run `make models`" in err
    assert (tmp_path / "o").is_dir()  # it was there before: kept


@needs_models
def test_demo_with_stdout_closed_says_where_the_summary_is(tmp_path):
    """Started with >&-: the summary lines have nowhere to go; one warning points at summary.json."""
    import os
    import subprocess
    import sys

    out = tmp_path / "demo"
    argv = ["demo", "--out", out, "--synthetic", "--digits", "50", "--scenes", "1", "--seconds", "0.02"]
    proc = subprocess.run(
        [sys.executable, "-m", "edgerun", "-q", *map(str, argv)],
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),  # noqa: PLW1509 - the child's own descriptor, before exec
        timeout=300,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert f"standard output is closed: the summary is in {out / 'summary.json'}" in err
    assert json.loads((out / "summary.json").read_text())["synthetic"] is True


@needs_models
def test_live_demo_never_writes_over_its_source(tmp_path, digit_video, capsys):
    """--out F --source F/live_annotated.avi once replaced the source video with its own output."""
    video = digit_video(tmp_path / "live_annotated.avi", 5)
    before = video.read_bytes()
    assert demo.main(["--out", str(tmp_path), "--source", str(video), "--max-frames", "3"]) == 2
    assert "is an input of this run" in capsys.readouterr().err and video.read_bytes() == before


def test_demo_out_that_is_a_file_is_refused_first(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert demo.main(["--out", str(target), "--synthetic"]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err and target.read_text() == "x"


@needs_models
def test_live_demo_without_a_window_says_where_the_frames_go(tmp_path, digit_video, capsys, caplog, monkeypatch):
    """The live demo offers no --show: without a window it says why and names its video, not the
    run command's options."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = digit_video(tmp_path / "in.avi", 5)
    with caplog.at_level("WARNING"):
        assert demo.main(["--out", str(tmp_path / "o"), "--source", str(video), "--max-frames", "3"]) == 0
    warning = " ".join(r.getMessage() for r in caplog.records if "no window" in r.getMessage())
    assert f"the annotated frames go to {tmp_path / 'o' / 'live_annotated.avi'}" in warning
    assert "--show" not in warning and "--save" not in warning
    assert (tmp_path / "o" / "live_annotated.avi").is_file()
