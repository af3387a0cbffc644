"""Reading image files: the one checked reader every part of edgerun uses (runs, calibration).

OpenCV decodes what it can and says little: a truncated JPEG or PNG comes back half grey, and a
small file can claim a huge image (a 1 KB run-length BMP decodes to 30000x30000 pixels).
:func:`read_image` refuses both before they cost anything: the size is read from the header
(Pillow, which opens files lazily, for BMP, PNG, JPEG, TIFF, WebP, GIF, JPEG 2000, PNM, PFM, Sun
raster and AVIF; a few lines here for Radiance HDR, PAM and PFM, which Pillow does not size), and a
file whose size no header reader can tell is refused if OpenCV would decode it. OpenCV's own
limit (``OPENCV_IO_MAX_IMAGE_PIXELS``, read once when OpenCV loads; the ``edgerun`` command sets
it) is a second line. Every way a file can fail to be read (permission, a link loop, a name too
long, an I/O error) is one :class:`SourceError` naming the file and the reason.

A picture is returned the way it is shown: OpenCV's ``IMREAD_UNCHANGED`` (which keeps alpha and
16-bit depth) ignores the EXIF orientation tag, so a phone photo taken upright would reach the
model on its side. The tag is read with Pillow, only from files that carry EXIF, and applied
as every viewer applies it (:func:`orientation`, :func:`apply_orientation`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np

from .frames import SourceError
from .outputs import os_reason

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")

#: Images larger than this are refused before decoding (a 20000x20000 RGB image is 1.2 GB).
MAX_IMAGE_PIXELS = 64_000_000
#: Files larger than this are not read at all (64 Mpx of 16-bit RGBA, uncompressed, is 512 MB).
MAX_IMAGE_FILE_BYTES = 1 << 30
#: The EXIF tag of how the stored pixels must be turned to be shown upright (1: as stored).
EXIF_ORIENTATION = 0x0112


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _size_from_text_header(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a Radiance HDR, PAM or PFM file (formats Pillow does not size)."""
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        match = re.search(rb"\n\n([-+])([YX]) (\d+) ([-+])([YX]) (\d+)", head)
        if match:
            first, second = int(match.group(3)), int(match.group(6))
            return (second, first) if match.group(2) == b"Y" else (first, second)
        return None
    if head[:2] in (b"PF", b"Pf") and head[2:3].isspace():
        match = re.match(rb"P[Ff]\s+(\d+)\s+(\d+)", head)
        return (int(match.group(1)), int(match.group(2))) if match else None
    if head.startswith(b"P7"):
        width = re.search(rb"\bWIDTH\s+(\d+)", head)
        height = re.search(rb"\bHEIGHT\s+(\d+)", head)
        if width and height:
            return int(width.group(1)), int(height.group(1))
    return None


def _png_jpeg_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header (the common case, without Pillow), or None."""
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


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding it, or None when no header reader
    knows the format. Raises OSError when the file cannot be read, SourceError when the header
    of a known format is broken."""
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    size = _png_jpeg_size(head) or _size_from_text_header(head)
    if size is not None:
        return size
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # reads the header only
                return image.size
    except Image.DecompressionBombError as exc:  # past Pillow's own limit, so past ours
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(pixels.group(1)):,} pixels" if pixels else "more pixels than Pillow allows"
        raise SourceError(
            f"{path} is {count}, over the {MAX_IMAGE_PIXELS:,}-pixel limit; downscale it first "
            "(e.g. cv2.resize) or crop the region of interest"
        ) from None
    except UnidentifiedImageError:
        return None
    except OSError as exc:
        if exc.errno is not None:  # the OS failed to read it: not a question of format
            raise
        raise SourceError(f"{path} could not be decoded as an image (its header is broken: {exc})") from None
    except (SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise SourceError(f"{path} could not be decoded as an image (its header is broken: {exc})") from None


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
        SourceError: missing, not a file, unreadable (permission, link loop, name too long, I/O
            error), empty, too large, or not a decodable image.
    """
    path = Path(path)
    try:
        return _read(path)
    except OSError as exc:
        raise SourceError(f"{path} cannot be read: {os_reason(exc)}") from None
    except ValueError as exc:  # an impossible name (a NUL byte)
        raise SourceError(f"{path!r} cannot be read: {exc}") from None
    except cv2.error as exc:  # OpenCV's own limits (OPENCV_IO_MAX_IMAGE_PIXELS)
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"{path} was refused by the decoder: {text[:200]}") from None


def _read(path: Path) -> np.ndarray:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise SourceError(f"{path} is a symbolic link to nothing (dangling link)") from None
        raise SourceError(f"{path} does not exist") from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{path} is a directory, not an image")
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{path} is not a regular file (a device, FIFO or socket); expected an image file")
    if st.st_size == 0:
        raise SourceError(f"{path} is empty (0 bytes)")
    if st.st_size > MAX_IMAGE_FILE_BYTES:
        raise SourceError(f"{path} is {st.st_size:,} bytes, over the {MAX_IMAGE_FILE_BYTES:,}-byte limit for one image")
    size = image_size(path)
    if size is None and cv2.haveImageReader(str(path)):
        raise SourceError(
            f"{path} could not be decoded safely: its header does not tell its size before decoding (a corrupt "
            "file, or a format edgerun cannot check); re-save it as PNG, JPEG, TIFF, WebP or BMP"
        )
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise SourceError(
            f"{path} is {size[0]}x{size[1]} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel limit; "
            "downscale it first (e.g. cv2.resize) or crop the region of interest"
        )
    data = np.fromfile(path, dtype=np.uint8)
    _check_complete(path, data)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        if Path(path).suffix.lower() in VIDEO_SUFFIXES:  # named in a list file or given to predict()
            raise SourceError(f"{path} is a video, read here as one image; give the video itself as the source")
        raise SourceError(
            f"{path} could not be decoded as an image (truncated, corrupt, or not an image); "
            f"supported: {', '.join(IMAGE_SUFFIXES)}"
        )
    turn = orientation(data)
    if turn != 1:
        logger.debug("%s: EXIF orientation %d applied", path, turn)
    return apply_orientation(image, turn)


def _exif_carrier(data: np.ndarray) -> bytes | None:
    """The bytes Pillow needs to read the file's EXIF block, or None when it can hold none (a
    byte check: Pillow is asked only then). A JPEG's EXIF is an APP1 segment near its start."""
    head = data[:12].tobytes()
    if head[:2] == b"\xff\xd8":
        start = data[: 128 * 1024].tobytes()
        return start if b"Exif\x00\x00" in start else None
    marker = b"eXIf" if head[:8] == b"\x89PNG\r\n\x1a\n" else b"EXIF" if head[:4] + head[8:12] == b"RIFFWEBP" else None
    if marker is None:
        return None  # TIFF: OpenCV's decoder applies the tag itself; other formats carry no EXIF
    whole_file = data.tobytes()
    return whole_file if marker in whole_file else None


def orientation(data: np.ndarray) -> int:
    """The EXIF orientation (1-8) of an encoded image, 1 when it has none or it cannot be read
    (a broken EXIF block never refuses a picture OpenCV decoded)."""
    carrier = _exif_carrier(data)
    if carrier is None:
        return 1
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(carrier)) as image:  # the header only, no pixels
                value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - whatever Pillow makes of a broken EXIF block: shown as stored
        logger.debug("EXIF orientation unreadable", exc_info=True)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(image: np.ndarray, value: int) -> np.ndarray:
    """The stored pixels turned as EXIF orientation ``value`` says (what Pillow's
    ``ImageOps.exif_transpose`` and every viewer do): 2 mirror, 3 half turn, 4 flip, 5
    transpose, 6 quarter turn clockwise, 7 transverse, 8 quarter turn anticlockwise."""
    if value == 2:
        turned = image[:, ::-1]
    elif value == 3:
        turned = image[::-1, ::-1]
    elif value == 4:
        turned = image[::-1]
    elif value == 5:
        turned = image.swapaxes(0, 1)
    elif value == 6:
        turned = image.swapaxes(0, 1)[:, ::-1]
    elif value == 7:
        turned = image[::-1, ::-1].swapaxes(0, 1)
    elif value == 8:
        turned = image.swapaxes(0, 1)[::-1]
    else:
        return image
    return np.ascontiguousarray(turned)
