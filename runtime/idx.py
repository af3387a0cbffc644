"""Reading IDX files (MNIST's format: big-endian header, then uint8 data), gzip or plain.

Numpy only, so the runtime can read MNIST directly; training reads through here too.
:class:`IdxFile` checks the header against the file before reading any data (a header may
claim billions of images, or images of 0x0 pixels) and reads images one at a time, so a run
over an IDX file takes the memory of one image and stops reading where ``--max-frames`` says.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801
#: The largest single image an IDX file may hold (as for image files).
MAX_IDX_PIXELS = 64_000_000
#: Deflate cannot expand data more than about 1032 to 1: a gzip header claiming more is wrong.
MAX_DEFLATE_RATIO = 1032


class IdxError(ValueError):
    """A file that is missing, truncated or not IDX."""


class IdxFile:
    """An IDX file's header, checked, and its records read lazily.

    Attributes:
        count: how many records the header claims.
        shape: one record's shape: ``(rows, cols)`` for images, ``()`` for labels.
        available: how many whole records a plain file really holds (``count`` for gzip,
            whose real length is known only by reading it).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            what = "is not a regular file" if self.path.exists() else "does not exist"
            raise IdxError(f"{self.path} {what}; expected an IDX file, gzip or plain")
        self.gzip = self.path.suffix == ".gz"
        size = self.path.stat().st_size
        header = self._header()
        magic, count = struct.unpack(">II", header[:8])
        if magic == IMAGE_MAGIC:
            if len(header) < 16:
                raise IdxError(f"{self.path} is truncated: no image size in the header")
            rows, cols = struct.unpack(">II", header[8:16])
            if rows == 0 or cols == 0:
                raise IdxError(f"{self.path} claims images of {rows}x{cols} pixels; an IDX image needs at least 1x1")
            if rows * cols > MAX_IDX_PIXELS:
                raise IdxError(
                    f"{self.path} claims images of {rows}x{cols} pixels, over the {MAX_IDX_PIXELS:,}-pixel limit"
                )
            self.shape, self.offset = (rows, cols), 16
        elif magic == LABEL_MAGIC:
            self.shape, self.offset = (), 8
        else:
            raise IdxError(
                f"{self.path} is not an IDX file: magic 0x{magic:08x}, expected 0x{IMAGE_MAGIC:08x} "
                f"(images) or 0x{LABEL_MAGIC:08x} (labels)"
            )
        self.count = count
        self.record = int(np.prod(self.shape)) if self.shape else 1
        claimed = self.offset + count * self.record
        if self.gzip:
            if claimed > size * MAX_DEFLATE_RATIO + 1024:
                raise IdxError(
                    f"{self.path} claims {count:,} records ({claimed:,} bytes), more than a {size:,}-byte gzip file "
                    "can hold; the header is corrupt"
                )
            self.available = count
        else:
            self.available = min(count, max(0, size - self.offset) // self.record)

    @property
    def images(self) -> bool:
        return bool(self.shape)

    def _open(self):
        return gzip.open(self.path, "rb") if self.gzip else open(self.path, "rb")  # noqa: SIM115 - caller closes

    def _header(self) -> bytes:
        try:
            with self._open() as fh:
                header = fh.read(16)
        except (OSError, EOFError, zlib.error) as exc:
            raise IdxError(f"{self.path} could not be read ({exc}); expected an IDX file, gzip or plain") from None
        if len(header) < 8:
            raise IdxError(f"{self.path} is too short to be an IDX file ({len(header)} bytes)")
        return header

    def records(self, stop_reason: list[str] | None = None) -> Iterator[np.ndarray]:
        """Each record in turn (uint8 ``shape``). Where the data ends before the header's count,
        iteration stops and the reason is appended to ``stop_reason``."""
        got = 0
        try:
            with self._open() as fh:
                fh.read(self.offset)  # past the header (gzip files cannot seek cheaply)
                while got < self.count:
                    raw = fh.read(self.record)
                    if len(raw) < self.record:
                        break
                    yield np.frombuffer(raw, np.uint8).reshape(self.shape)
                    got += 1
        except (OSError, EOFError, zlib.error) as exc:
            if stop_reason is not None:
                stop_reason.append(f"read {got} of {self.count} records, then: {exc}")
            return
        if got < self.count and stop_reason is not None:
            stop_reason.append(f"the header says {self.count} records, the file holds {got} (truncated)")


def read_idx(path: str | Path) -> np.ndarray:
    """Images as uint8 (N, rows, cols), labels as uint8 (N,): the whole file, which must hold
    exactly what its header says."""
    idx = IdxFile(path)
    if idx.available < idx.count:
        raise IdxError(f"{idx.path} is truncated: header says {idx.count} records, file has {idx.available}")
    expected = idx.count * idx.record
    try:
        with idx._open() as fh:
            fh.read(idx.offset)
            raw = fh.read(expected)
    except (OSError, EOFError, zlib.error) as exc:
        raise IdxError(f"{idx.path} could not be read ({exc}); expected an IDX file, gzip or plain") from None
    if len(raw) != expected:
        raise IdxError(f"{idx.path} is truncated: header says {expected} values, file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8).reshape((idx.count, *idx.shape))


__all__ = ["IdxError", "IdxFile", "read_idx", "IMAGE_MAGIC", "LABEL_MAGIC"]
