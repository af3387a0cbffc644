"""Loading MNIST and Fashion-MNIST from IDX gzip files, the Keras cache, or a download.

Where the data comes from, in order:

1. ``--data-dir`` (or the ``data_dir`` argument),
2. the ``EDGERUN_DATA_DIR`` environment variable (a directory holding the IDX files, or
   holding ``mnist/`` and ``fashion-mnist/`` sub-directories),
3. the Keras cache (``~/.keras/datasets``), where ``keras.datasets`` keeps what it downloaded,
4. ``keras.datasets.<name>.load_data()``, which downloads where internet exists.

Every loaded split records its provenance (files, sample count) so training can write it
into the model's JSON card.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgerun.runtime.files import sha256_file
from edgerun.runtime.idx import IdxError
from edgerun.runtime.idx import read_idx as _read_idx

logger = logging.getLogger(__name__)

ENV_VAR = "EDGERUN_DATA_DIR"

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: dataset name -> (sub-directory names tried under a root, keras.datasets module name)
DATASETS = {
    "mnist": (("mnist",), "mnist"),
    "fashion_mnist": (("fashion-mnist", "fashion_mnist"), "fashion_mnist"),
}

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


class DataError(Exception):
    """Data could not be found or read; the message says what to do."""


@dataclass(frozen=True)
class Split:
    """One split of a data set: uint8 images (N, 28, 28) and int labels (N,)."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    files: tuple[str, ...] = field(default=())
    sha256: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.images.ndim != 3:
            raise DataError(f"images must have shape (N, H, W), got {self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(f"labels must have shape ({self.images.shape[0]},), got {self.labels.shape}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def sample(self, n: int | None, seed: int = 0) -> Split:
        """A seeded random sample of ``n`` samples (all of them for ``None``).

        Random, not the first ``n``: some IDX files (the shared 5,000-image MNIST subset) are
        sorted by class, so their head holds only zeros and ones.
        """
        if n is None or n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return Split(self.images[keep], self.labels[keep], self.source, self.files, self.sha256)

    def provenance(self) -> dict:
        return {
            "source": self.source,
            "files": list(self.files),
            "sha256": list(self.sha256),
            "samples": len(self),
            "per_class": np.bincount(self.labels, minlength=10).tolist(),
        }


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip or plain) into a uint8 array.

    Raises:
        DataError: the file is missing, truncated or not IDX.
    """
    try:
        return _read_idx(path)
    except IdxError as exc:
        raise DataError(str(exc)) from exc


def _split_dir(root: Path, dataset: str) -> Path | None:
    """The directory under ``root`` that holds ``dataset``'s IDX files, if any."""
    subdirs, _ = DATASETS[dataset]
    for candidate in (root, *(root / s for s in subdirs)):
        if any((candidate / f).is_file() for files in SPLIT_FILES.values() for f in files):
            return candidate
    return None


def load_idx_split(directory: Path, split: str) -> Split:
    """Load one split (``train`` or ``test``) from a directory of IDX files."""
    images_name, labels_name = SPLIT_FILES[split]
    images_path, labels_path = directory / images_name, directory / labels_name
    missing = [p.name for p in (images_path, labels_path) if not p.is_file()]
    if missing:
        present = sorted(p.name for p in directory.glob("*idx*"))
        raise DataError(
            f"the {split} split is missing in {directory}: no {', '.join(missing)} "
            f"(found: {', '.join(present) or 'no IDX files'}). "
            f"Add the files, or choose a directory that has the {split} split."
        )
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"{images_path} must hold images and {labels_path} labels")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path} has {images.shape[0]} images but {labels_path} has {labels.shape[0]} labels")
    return Split(
        images=images,
        labels=labels.astype(np.int64),
        source=str(directory),
        files=(str(images_path), str(labels_path)),
        sha256=(sha256_file(images_path), sha256_file(labels_path)),
    )


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def _load_keras_cache(dataset: str, split: str) -> Split | None:
    """Read what ``keras.datasets`` left in its cache, without importing Keras."""
    cache = keras_cache_dir()
    if dataset == "mnist":
        npz = cache / "mnist.npz"
        if npz.is_file():
            with np.load(npz) as data:
                key = "x_train" if split == "train" else "x_test"
                lkey = "y_train" if split == "train" else "y_test"
                return Split(data[key], data[lkey].astype(np.int64), f"keras cache {npz}", (str(npz),))
        return None
    directory = cache / "fashion-mnist"
    if directory.is_dir() and all((directory / f).is_file() for f in SPLIT_FILES[split]):
        return load_idx_split(directory, split)
    return None


def _download(dataset: str, split: str) -> Split:
    _, module = DATASETS[dataset]
    import keras  # only here: the download path needs Keras

    loader = getattr(keras.datasets, module)
    logger.info("downloading %s through keras.datasets.%s.load_data()", dataset, module)
    (x_train, y_train), (x_test, y_test) = loader.load_data()
    images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    return Split(images, labels.astype(np.int64), f"keras.datasets.{module}")


def load_split(dataset: str, split: str, data_dir: str | Path | None = None) -> Split:
    """Load ``split`` of ``dataset`` from the first place that has it (see module docstring).

    Raises:
        DataError: unknown names, a missing split, or no data anywhere (the message says how
            to provide it).
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    if split not in SPLIT_FILES:
        raise DataError(f"unknown split {split!r}; known: {', '.join(SPLIT_FILES)}")

    roots = []
    if data_dir is not None:
        roots.append(("--data-dir", Path(data_dir)))
    elif os.environ.get(ENV_VAR):
        roots.append((ENV_VAR, Path(os.environ[ENV_VAR])))
    for origin, root in roots:
        if not root.is_dir():
            raise DataError(f"{origin} {root} does not exist or is not a directory")
        directory = _split_dir(root, dataset)
        if directory is None:
            raise DataError(
                f"no {dataset} IDX files in {root} ({origin}); expected "
                f"{', '.join(f for files in SPLIT_FILES.values() for f in files)} there "
                f"or in a sub-directory named {' or '.join(DATASETS[dataset][0])}"
            )
        return load_idx_split(directory, split)

    cached = _load_keras_cache(dataset, split)
    if cached is not None:
        return cached
    try:
        return _download(dataset, split)
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same advice
        raise DataError(
            f"no {dataset} data found and the download failed ({type(exc).__name__}: {exc}). "
            f"Provide the IDX gzip files ({', '.join(SPLIT_FILES[split])}) with --data-dir DIR "
            f"or {ENV_VAR}=DIR, or put Keras' download in {keras_cache_dir()}."
        ) from exc


def shifted_copies(
    images: np.ndarray, labels: np.ndarray, copies: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The book's shifted MNIST: each image plus ``copies`` copies shifted at random.

    Shifts are whole pixels, uniform in ±(size // 4) along each axis, filled with zeros, so a
    classifier learns that a partial or off-centre digit is not a centred one.
    """
    rng = np.random.default_rng(seed)
    n, h, w = images.shape
    max_dy, max_dx = h // 4, w // 4
    out = np.zeros((n * (copies + 1), h, w), dtype=images.dtype)
    out[:n] = images
    for c in range(copies):
        dys = rng.integers(-max_dy, max_dy + 1, size=n)
        dxs = rng.integers(-max_dx, max_dx + 1, size=n)
        block = out[n * (c + 1) : n * (c + 2)]
        for i, (dy, dx) in enumerate(zip(dys, dxs, strict=True)):
            src = images[i, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            block[i, max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out, np.tile(labels, copies + 1)
