"""An interrupted run finishes the record in hand, closes the video so it plays, and says so."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import cv2
import pytest


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_loses_nothing(mnist_cnn, tmp_path, digit_video, signum, code):
    video = digit_video(tmp_path / "long.avi", 2000)
    records, saved = tmp_path / "r.jsonl", tmp_path / "out.avi"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgerun",
            "run",
            str(mnist_cnn),
            "--source",
            str(video),
            "--json",
            str(records),
            "--save",
            str(saved),
            "--threads",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if records.exists() and records.read_text().count("\n") >= 30:
            break
        time.sleep(0.05)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "finishing the frames in hand" in stderr
    lines = records.read_text().splitlines()
    parsed = [json.loads(line) for line in lines]  # every line is a whole record
    assert 30 <= len(parsed) < 2000
    assert [r["index"] for r in parsed] == list(range(len(parsed)))
    assert len(stdout.splitlines()) == len(parsed)
    capture = cv2.VideoCapture(str(saved))
    played = 0
    while capture.read()[0]:
        played += 1
    assert played == len(parsed)
