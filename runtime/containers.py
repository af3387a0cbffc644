"""Whether a video file is as long as its container says: a damaged frame or a cut file.

When the last frames of a video fail to decode, OpenCV cannot say whether their data is there
but broken (a damaged frame: one error record each, as mid-file) or gone (a file cut short:
the end of what there is, exit 4). The container can: AVI (RIFF, with OpenDML's further
``RIFF AVIX`` chunks) and MP4/MOV (ISO base media boxes) give each top-level chunk's length,
so a file that ends inside one was cut. Other containers are not read here (``None``).
"""

from __future__ import annotations

import os
from pathlib import Path

_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"styp", b"sidx", b"moof")


def is_whole(path: str | Path) -> bool | None:
    """True when every top-level chunk of an AVI, MP4 or MOV file ends inside the file, False
    when the file ends inside one (cut short), None for other containers or an unreadable file."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
                return _walk(fh, size, _riff_chunk)
            if head[4:8] in _ISO_BOXES:
                return _walk(fh, size, _iso_box)
    except OSError:
        return None
    return None


def _walk(fh, size: int, chunk) -> bool | None:
    position = 0
    while position < size:
        fh.seek(position)
        length = chunk(fh)
        if length is None:
            return None  # a box that runs to the end of the file (ISO size 0): nothing to compare
        if length <= 0:
            return False  # not a chunk header: the bytes after the last whole chunk are cut
        position += length
    return position == size


def _riff_chunk(fh) -> int:
    header = fh.read(12)
    if len(header) < 12 or header[:4] != b"RIFF":
        return 0
    length = int.from_bytes(header[4:8], "little")
    return 8 + length + (length & 1)  # chunks are padded to an even length


def _iso_box(fh) -> int | None:
    header = fh.read(8)
    if len(header) < 8:
        return 0
    length = int.from_bytes(header[:4], "big")
    if length == 0:
        return None
    if length == 1:  # a 64-bit size follows the type
        large = fh.read(8)
        return int.from_bytes(large, "big") if len(large) == 8 else 0
    return length if length >= 8 else 0
