"""Decoded-size limits before decoding for every format OpenCV reads; --batch bounded; frames in
flight bounded in bytes; live statistics in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from edgerun.runtime.frames import SourceError
from edgerun.runtime.images import MAX_IMAGE_PIXELS, image_size, read_image
from edgerun.runtime.model import Model, SessionConfig
from edgerun.runtime.pipeline import Pipeline, PipelineConfig
from edgerun.runtime.sources import ArraySource
from edgerun.runtime.timing import Reservoir


def rle_bmp(path, width, height):
    from reliability_cases import rle_bmp as make

    return make(path, width, height)


def test_run_length_bmp_bomb_is_refused_from_its_header(tmp_path):
    path = rle_bmp(tmp_path / "bomb.bmp", 30000, 30000)
    assert path.stat().st_size < 2000
    with pytest.raises(SourceError, match="900,000,000 pixels, over the 64,000,000-pixel limit"):
        read_image(path)


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "GIF", "PPM", "JPEG2000"])
def test_large_images_of_pillow_formats_are_refused(tmp_path, fmt):
    from PIL import Image

    path = tmp_path / f"big.{fmt.lower()}"
    size = (8200, 8000)
    Image.new("L", size).save(path, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert image_size(path) == size
    with pytest.raises(SourceError, match="8200x8000 pixels, over the"):
        read_image(path)


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("big.hdr", b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 9000 +X 9000\n"),
        ("big.pam", b"P7\nWIDTH 9000\nHEIGHT 9000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n"),
        ("big.pfm", b"PF\n9000 9000\n-1.0\n"),
    ],
)
def test_formats_pillow_does_not_size_are_checked_too(tmp_path, name, header):
    path = tmp_path / name
    path.write_bytes(header + bytes(64))
    with pytest.raises(SourceError, match="9000x9000 pixels"):
        read_image(path)


def test_small_images_of_every_format_still_read(tmp_path):
    import cv2

    image = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    for suffix in (".png", ".jpg", ".bmp", ".tif", ".webp", ".ppm", ".pfm", ".hdr", ".sr", ".jp2", ".avif"):
        path = tmp_path / f"x{suffix}"
        data = image.astype(np.float32) / 255 if suffix in (".pfm", ".hdr") else image
        if not cv2.imwrite(str(path), data):
            continue  # this OpenCV has no writer for it
        assert read_image(path).shape[:2] == (40, 60), suffix
    assert MAX_IMAGE_PIXELS == 64_000_000


def test_batch_is_bounded(mnist_cnn, tmp_path, edgerun):
    proc = edgerun("run", mnist_cnn, "--source", tmp_path, "--batch", "100000")
    assert proc.returncode == 2 and "expected at most 1024" in proc.stderr.decode()
    with pytest.raises(ValueError, match="from 1 to 1024"):
        PipelineConfig(batch=5000)


@pytest.mark.parametrize("threaded", [True, False])
def test_frames_in_flight_stay_within_the_byte_budget(mnist_cnn, threaded):
    model = Model.load(mnist_cnn, SessionConfig(provider="cpu", threads=1))
    frames = [np.full((1000, 1000, 3), i, np.uint8) for i in range(30)]  # 3 MB each
    budget = 10 * 1024 * 1024
    pipeline = Pipeline(model, PipelineConfig(batch=1024, threaded=threaded, max_inflight_bytes=budget))
    results = list(pipeline.results(ArraySource(frames)))
    assert [r.index for r in results] == list(range(30)) and all(r.ok for r in results)
    assert pipeline._budget.peak <= budget + frames[0].nbytes


def test_live_latencies_take_bounded_memory():
    reservoir = Reservoir(size=1000)
    for i in range(200_000):
        reservoir.add(float(i % 100))
    assert reservoir.seen == 200_000 and len(reservoir.values) == 1000
    assert 40 <= reservoir.percentile(50) <= 60
