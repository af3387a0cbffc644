from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from edgerun.train.data import (
    ENV_VAR,
    DataError,
    load_split,
    read_idx,
    shifted_copies,
)


def write_idx(path, array: np.ndarray) -> None:
    magic = 0x803 if array.ndim == 3 else 0x801
    header = struct.pack(">II", magic, array.shape[0]) + b"".join(struct.pack(">I", d) for d in array.shape[1:])
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return tmp_path


def test_real_mnist_test_split(mnist_dir):
    split = load_split("mnist", "test", mnist_dir)
    assert split.images.shape == (5000, 28, 28)
    assert split.images.dtype == np.uint8
    assert split.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    prov = split.provenance()
    assert prov["samples"] == 5000 and len(prov["sha256"][0]) == 64


def test_root_with_subdirectories_is_found(mnist_dir):
    split = load_split("mnist", "train", mnist_dir.parent)
    assert len(split) == 5000
    assert np.bincount(split.labels).tolist() == [500] * 10


def test_env_var_is_used(tiny_mnist, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tiny_mnist))
    assert len(load_split("mnist", "train")) == 12


def test_missing_split_is_a_clear_error(fashion_dir):
    with pytest.raises(DataError, match=r"train split is missing .*train-images-idx3-ubyte.gz"):
        load_split("fashion_mnist", "train", fashion_dir)


def test_no_data_anywhere_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(DataError, match="no mnist IDX files"):
        load_split("mnist", "test", tmp_path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "too short"),
        (struct.pack(">II", 0x1234, 1), "not an IDX file"),
        (struct.pack(">IIII", 0x803, 2, 28, 28) + bytes(100), "truncated"),
    ],
)
def test_bad_idx_files(tmp_path, payload, message):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(payload)
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_not_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_text("hello")
    with pytest.raises(DataError, match="could not be read"):
        read_idx(path)


def test_unknown_dataset():
    with pytest.raises(DataError, match="known: mnist, fashion_mnist"):
        load_split("cifar", "test")


def test_shifted_copies_shift_within_a_quarter():
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 10:18, 10:18] = 255  # an 8x8 block at the centre
    labels = np.array([1, 2, 3])
    out, out_labels = shifted_copies(images, labels, copies=4, seed=1)
    assert out.shape == (15, 28, 28)
    assert out_labels.tolist() == [1, 2, 3] * 5
    np.testing.assert_array_equal(out[:3], images)
    for img in out[3:]:
        ys, xs = np.nonzero(img)
        assert abs(ys.min() - 10) <= 7 and abs(xs.min() - 10) <= 7
        assert img.sum() == images[0].sum()  # a 7 px shift keeps this block inside the frame
    assert not all(np.array_equal(out[i], out[0]) for i in range(3, 15, 3))
