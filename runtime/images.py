"""Reading image files: the one checked reader every part of edgerun uses (runs, calibration).

OpenCV decodes what it can and says little: a truncated JPEG or PNG comes back half grey, and a
small file can claim a huge image. :func:`read_image` refuses both before they cost anything.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .frames import SourceError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")

#: Images larger than this are refused before decoding (a 20000x20000 RGB image is 1.2 GB).
MAX_IMAGE_PIXELS = 64_000_000


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _image_size_from_header(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding, or None if unknown."""
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                i += 1
                continue
            marker = head[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                return int.from_bytes(head[i + 7 : i + 9], "big"), int.from_bytes(head[i + 5 : i + 7], "big")
            i += 2 + int.from_bytes(head[i + 2 : i + 4], "big")
    return None


def _check_complete(path: Path, data: np.ndarray) -> None:
    """Refuse truncated JPEG and PNG files: OpenCV decodes what is there and fills the rest
    with grey, which would be classified as if it were the picture."""
    head, tail = data[:8].tobytes(), data[-16:].tobytes().rstrip(b"\x00")
    if head[:3] == b"\xff\xd8\xff" and not tail.endswith(b"\xff\xd9"):
        raise SourceError(f"{path} is a truncated JPEG (no end-of-image marker); re-copy or re-save the file")
    if head == b"\x89PNG\r\n\x1a\n" and b"IEND" not in tail:
        raise SourceError(f"{path} is a truncated PNG (no IEND chunk); re-copy or re-save the file")


def read_image(path: str | Path) -> np.ndarray:
    """Read one image as OpenCV does (any depth and channel count kept).

    Raises:
        SourceError: missing, empty, too large, or not a decodable image.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise SourceError(f"{path} is empty (0 bytes)")
    size = _image_size_from_header(path)
    if size and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise SourceError(
            f"{path} is {size[0]}x{size[1]} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel limit; "
            "downscale it first (e.g. cv2.resize) or crop the region of interest"
        )
    data = np.fromfile(path, dtype=np.uint8)
    _check_complete(path, data)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise SourceError(
            f"{path} could not be decoded as an image (truncated, corrupt, or not an image); "
            f"supported: {', '.join(IMAGE_SUFFIXES)}"
        )
    return image
