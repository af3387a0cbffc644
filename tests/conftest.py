"""Shared fixtures: the real data in ../shared/data (tests skip with a message when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("EDGERUN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = shared_data_dir() / "mnist"
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST IDX files not found in {path} (set EDGERUN_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    path = shared_data_dir() / "fashion-mnist"
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real Fashion-MNIST IDX files not found in {path} (set EDGERUN_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def trained_mnist(mnist_dir, tmp_path_factory) -> dict:
    """A briefly trained mnist_cnn, exported with every variant (made once per test session)."""
    from edgerun.export import cli as export_cli
    from edgerun.train.fit import TrainConfig, train

    out = tmp_path_factory.mktemp("models")
    result = train(TrainConfig("mnist_cnn", data_dir=str(mnist_dir), epochs=2, limit=2000, out=out))
    code = export_cli.main(
        [
            str(result.model_path),
            "--tflite",
            "--fp16",
            "--int8",
            "--calib-data",
            str(mnist_dir),
            "--calib-samples",
            "100",
        ]
    )
    assert code == 0
    return {
        "keras": result.model_path,
        "card": result.card,
        "onnx": out / "mnist_cnn.onnx",
        "int8": out / "mnist_cnn.int8.onnx",
        "fp16": out / "mnist_cnn.fp16.onnx",
        "tflite": out / "mnist_cnn.tflite",
        "int8_tflite": out / "mnist_cnn.int8.tflite",
    }


@pytest.fixture(scope="session")
def mnist_pngs(mnist_dir, tmp_path_factory) -> tuple[Path, list[int]]:
    """The first 1,000 shared MNIST test images written out as PNG files, with their labels."""
    import cv2

    from edgerun.train.data import load_split

    split = load_split("mnist", "test", mnist_dir)
    directory = tmp_path_factory.mktemp("mnist_png")
    for i in range(1000):
        cv2.imwrite(str(directory / f"{i:05d}.png"), split.images[i])
    return directory, split.labels[:1000].tolist()


def write_digit_video(path: Path, frames: int, size: tuple[int, int] = (64, 64), fps: float = 30.0) -> Path:
    """An MJPG video of white digits 0-9 (frame i shows i % 10) on black, made with cv2.VideoWriter."""
    import cv2
    import numpy as np

    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    scale = height / 40
    for i in range(frames):
        frame = np.zeros((height, width, 3), np.uint8)
        org = (int(width * 0.28), int(height * 0.78))
        cv2.putText(frame, str(i % 10), org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(2, int(scale * 2.5)))
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def digit_video():
    """``digit_video(path, frames, size=(w, h), fps=30)`` writes a test video and returns its path."""
    return write_digit_video
