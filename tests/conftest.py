"""Shared fixtures: the real data in ../shared/data (or $EDGERUN_DATA_DIR), the committed models,
and test videos. Tests skip with a message when the data or the models are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"


def shared_data_dir() -> Path:
    """Where the data sets are: $EDGERUN_DATA_DIR (the one variable the project reads), else ../shared/data."""
    return Path(os.environ.get("EDGERUN_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = shared_data_dir() / "mnist"
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST IDX files not found in {path} (set EDGERUN_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    path = shared_data_dir() / "fashion-mnist"
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real Fashion-MNIST IDX files not found in {path} (set EDGERUN_DATA_DIR)")
    return path


def _committed(name: str) -> Path:
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"committed model {path} is missing (make models)")
    return path


@pytest.fixture(scope="session")
def mnist_cnn() -> Path:
    """The committed mnist_cnn.onnx (its .keras and .tflite twins sit beside it)."""
    return _committed("mnist_cnn.onnx")


@pytest.fixture(scope="session")
def mnist_fcn() -> Path:
    """The committed localizer."""
    return _committed("mnist_fcn.onnx")


@pytest.fixture(scope="session")
def mnist_small_fcn() -> Path:
    """The committed field localizer (the demo's)."""
    return _committed("mnist_small_fcn.onnx")


@pytest.fixture(scope="session")
def mnist_test(mnist_dir):
    """The shared MNIST test images (uint8 N x 28 x 28) and labels, read by the runtime's reader."""
    from edgerun.runtime.idx import read_idx

    return read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz"), read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="session")
def mnist_pngs(mnist_test, tmp_path_factory) -> tuple[Path, list[int]]:
    """The first 1,000 shared MNIST test images written out as PNG files, with their labels."""
    import cv2

    images, labels = mnist_test
    directory = tmp_path_factory.mktemp("mnist_png")
    for i in range(1000):
        cv2.imwrite(str(directory / f"{i:05d}.png"), images[i])
    return directory, labels[:1000].tolist()


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


def damage_avi_frames(path: Path, *indices: int) -> Path:
    """Zero the JPEG data of the given frames of an MJPG AVI (all but its first two bytes), as
    damage on disk leaves it: OpenCV fails to decode those frames and decodes the next ones."""
    data = bytearray(path.read_bytes())
    chunks, at = [], data.find(b"00dc")
    while at >= 0:
        if data[at + 8 : at + 10] == b"\xff\xd8":  # a frame chunk: tag, size, then a JPEG
            chunks.append((at + 8, int.from_bytes(data[at + 4 : at + 8], "little")))
        at = data.find(b"00dc", at + 4)
    for index in indices:
        start, size = chunks[index]
        data[start + 2 : start + size] = bytes(size - 2)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def damaged_video(tmp_path):
    """``damaged_video(frames, *bad)``: a digit video in tmp_path whose frames ``bad`` cannot be decoded."""
    return lambda frames, *bad: damage_avi_frames(write_digit_video(tmp_path / "damaged.avi", frames), *bad)


@pytest.fixture(scope="session", autouse=True)
def no_user_tune_cache(tmp_path_factory):
    """Before any other fixture: processes a module- or session-scoped fixture starts (the Ray
    workers) must not read the user's tune cache either; per-test caches override this one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGERUN_TUNE_CACHE", str(tmp_path_factory.mktemp("tune-session") / "tune.json"))
        yield


@pytest.fixture(autouse=True)
def isolated_tune_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's tune cache (~/.cache/edgerun/tune.json)."""
    monkeypatch.setenv("EDGERUN_TUNE_CACHE", str(tmp_path_factory.mktemp("tune") / "tune.json"))


@pytest.fixture(autouse=True)
def restore_root_logging():
    """``edgerun.cli.main`` installs a stderr handler on the root logger, bound to the stream of
    the test that ran it; later tests must not write to that (closed, captured) stream."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def int8_is_portable(mnist_test):
    """``int8_is_portable(path)`` checks an int8 QDQ model computes the same on every x86 CPU.

    onnxruntime's u8 x s8 kernels add pairs of products in 16 bits on x86 without VNNI; 8-bit
    weights saturate there (the committed mnist_cnn.int8 read 0.9766 fused against 0.9808 unfused
    on the AVX2 Zen 3). With weights in [-64, 64] no pair can: fused (level all, the runtime's
    default) and unfused (level basic: the QDQ arithmetic itself) give the same classes.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    x = mnist_test[0][:1000, :, :, None].astype(np.float32) / 255

    def check(path: Path) -> None:
        inits = onnx.load(str(path)).graph.initializer
        weights = [numpy_helper.to_array(i) for i in inits if i.data_type == onnx.TensorProto.INT8]
        assert weights and all(-64 <= w.min() and w.max() <= 64 for w in weights)
        tops = []
        for level in (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
            options = ort.SessionOptions()
            options.graph_optimization_level = level
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            tops.append(session.run(None, {session.get_inputs()[0].name: x})[0].argmax(1))
        assert (tops[0] == tops[1]).mean() >= 0.999

    return check
