"""Soak (make soak, not make test): 10,000 frames of a generated video through the run pipeline.

Checks, after a 1,000-frame warm-up: resident memory grows by at most 50 MB, no threads or open
files are left growing, and throughput stays steady. Prints the figures for the record.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgerun.runtime.model import Model
from edgerun.runtime.pipeline import Pipeline, PipelineConfig
from edgerun.runtime.sources import open_source

pytestmark = pytest.mark.slow

FRAMES = 10_000
WARMUP = 1_000
MODEL = Path(__file__).resolve().parents[2] / "models" / "mnist_cnn.onnx"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not MODEL.is_file(), reason="bundled mnist_cnn.onnx missing (make models)")
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_soak_10000_frames(tmp_path):
    video = tmp_path / "soak.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (96, 96))
    rng = np.random.default_rng(0)
    for i in range(FRAMES):
        frame = np.zeros((96, 96, 3), np.uint8)
        cv2.putText(
            frame, str(i % 10), (20 + int(rng.integers(0, 20)), 75), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (255, 255, 255), 6
        )
        writer.write(frame)
    writer.release()

    model = Model.load(MODEL)
    threads_before, files_before = threading.active_count(), open_files()
    samples = []  # (frames, rss MB, threads, open files, perf_counter)

    import time

    pipeline = Pipeline(model, PipelineConfig(batch=8))
    for result in pipeline.results(open_source(video)):
        n = result.index + 1
        assert result.error is None
        if n % 500 == 0:
            samples.append((n, rss_mb(), threading.active_count(), open_files(), time.perf_counter()))
    stats = pipeline.stats
    assert stats.frames == FRAMES and stats.errors == 0
    base = next(s for s in samples if s[0] == WARMUP)
    # While frames flow (the last sample comes after the reader has finished and closed the file).
    after = [s for s in samples if WARMUP <= s[0] < FRAMES]
    growth = max(s[1] for s in after) - base[1]
    rates = [(b[0] - a[0]) / (b[4] - a[4]) for a, b in zip(after, after[1:], strict=False)]
    print(
        f"\nsoak: {FRAMES} frames, {stats.end_to_end_fps:.0f} fps end-to-end; RSS {base[1]:.1f} MB at "
        f"{WARMUP} frames, max {max(s[1] for s in after):.1f} MB (growth {growth:+.1f} MB); threads "
        f"{sorted({s[2] for s in after})}; open files {sorted({s[3] for s in after})}; fps per 500 frames "
        f"min {min(rates):.0f} median {np.median(rates):.0f} max {max(rates):.0f}"
    )
    assert growth <= 50
    assert threading.active_count() == threads_before, "stage threads left running"
    assert open_files() == files_before, "files left open"
    assert len({s[2] for s in after}) == 1, "thread count changed"
    assert len({s[3] for s in after}) == 1, "open files changed"
    assert min(rates) >= 0.5 * np.median(rates), "throughput sagged"
