"""Reading IDX files (MNIST's format: big-endian header, then uint8 data), gzip or plain.

Numpy only, so the runtime can read MNIST directly; training reads through here too.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801


class IdxError(ValueError):
    """A file that is missing, truncated or not IDX."""


def read_idx(path: str | Path) -> np.ndarray:
    """Images as uint8 (N, rows, cols), labels as uint8 (N,)."""
    path = Path(path)
    if not path.is_file():
        raise IdxError(f"{path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise IdxError(f"{path} could not be read ({exc}); expected an IDX gzip file") from exc
    if len(raw) < 8:
        raise IdxError(f"{path} is too short to be an IDX file ({len(raw)} bytes)")
    magic, count = struct.unpack(">II", raw[:8])
    if magic == IMAGE_MAGIC:
        if len(raw) < 16:
            raise IdxError(f"{path} is truncated: no image size in the header")
        rows, cols = struct.unpack(">II", raw[8:16])
        shape, offset = (count, rows, cols), 16
    elif magic == LABEL_MAGIC:
        shape, offset = (count,), 8
    else:
        raise IdxError(
            f"{path} is not an IDX file: magic 0x{magic:08x}, expected 0x{IMAGE_MAGIC:08x} "
            f"(images) or 0x{LABEL_MAGIC:08x} (labels)"
        )
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    expected = int(np.prod(shape))
    if data.size != expected:
        raise IdxError(f"{path} is truncated: header says {expected} values, file has {data.size}")
    return data.reshape(shape)
