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
