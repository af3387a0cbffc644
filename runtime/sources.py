"""Sources: one contract for every input kind — each yields :class:`Frame` objects and has ``close()``.

``open_source(spec)`` turns a string into a source: a camera index (``0``), an image file, a
directory, a glob, a text file listing paths, a video file, an IDX image file (MNIST's format),
or a stream URL (rtsp/rtmp/http).
Files and videos never drop a frame, and a file that cannot be read still gives a frame, with
``error`` set, so every input yields exactly one record downstream. Cameras and streams live in
:mod:`edgerun.runtime.capture` (grabber thread, newest frame only, timeouts, reconnection).
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
LIST_SUFFIXES = (".txt", ".lst", ".list")
IDX_MARKERS = ("-idx3-ubyte", ".idx3")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")

#: Images larger than this are refused before decoding (a 20000x20000 RGB image is 1.2 GB).
MAX_IMAGE_PIXELS = 64_000_000


class SourceError(Exception):
    """A source that cannot be opened; the message says what was expected and what to do."""


@dataclass(frozen=True)
class Frame:
    """One input: the image (BGR/gray/BGRA as OpenCV reads it), where it came from and when.

    ``image`` is None and ``error`` says why when this input could not be read.
    ``timestamp`` is seconds: the video position for files, ``time.monotonic()`` for live input.
    """

    image: np.ndarray | None
    source: str
    index: int
    timestamp: float
    error: str | None = None


class Source(Protocol):
    name: str
    live: bool

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


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


def read_image(path: Path) -> np.ndarray:
    """Read one image as OpenCV does (any depth and channel count kept).

    Raises:
        SourceError: missing, empty, too large, or not a decodable image.
    """
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


class ImageFiles:
    """A fixed list of image paths: one frame per path, an error frame for an unreadable one."""

    live = False

    def __init__(self, paths: list[Path], name: str) -> None:
        self.paths = paths
        self.name = name

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            try:
                image = read_image(path)
            except SourceError as exc:
                yield Frame(None, str(path), index, float(index), error=str(exc))
                continue
            yield Frame(image, str(path), index, float(index))

    def close(self) -> None:
        return None


class IdxImages:
    """Every image of an IDX image file (MNIST's format, gzip or plain), as grayscale frames."""

    live = False

    def __init__(self, path: Path) -> None:
        from .idx import IdxError, read_idx

        self.path = path
        self.name = str(path)
        try:
            self.images = read_idx(path)
        except IdxError as exc:
            raise SourceError(str(exc)) from exc
        if self.images.ndim != 3:
            raise SourceError(f"{path} holds labels, not images; pass the images file (…-images-idx3-ubyte.gz)")

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[Frame]:
        for index, image in enumerate(self.images):
            yield Frame(image, self.name, index, float(index))

    def close(self) -> None:
        return None


class VideoFile:
    """Every frame of a video file, in order; timestamps from the decoder's position."""

    live = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(
                f"{path} could not be opened as a video (not a video, or a codec OpenCV lacks); "
                f"supported: {', '.join(VIDEO_SUFFIXES)}"
            )
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = self._capture.get(cv2.CAP_PROP_FPS) or 0.0
        # Only for the output video's frame rate: measured fps always come from timestamps.
        self.nominal_fps = fps if 0 < fps < 1000 else 30.0

    def __len__(self) -> int:
        return self.frame_count

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, image = self._capture.read()
            if not ok:
                break
            position = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            yield Frame(image, self.name, index, position if position > 0 else index / self.nominal_fps)
            index += 1
        if self.frame_count and index < self.frame_count:
            logger.warning("%s: decoded %d of %d frames; the file may be truncated", self.name, index, self.frame_count)
        self.close()

    def close(self) -> None:
        self._capture.release()


def _list_file(path: Path) -> list[Path]:
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line)
        entries.append(entry if entry.is_absolute() else path.parent / entry)
    if not entries:
        raise SourceError(f"{path} lists no paths; expected one image path per line")
    return entries


def _images_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def is_camera_index(spec: str) -> bool:
    """``0``, ``1``, ... in ASCII digits (``"²".isdigit()`` is true, but it is no index)."""
    text = spec.strip()
    return text.isascii() and text.isdigit()


def source_kind(spec: str) -> str:
    """Classify a source string: camera, stream, glob, directory, list, image or video."""
    if is_camera_index(spec):
        return "camera"
    if spec.lower().startswith(STREAM_SCHEMES):
        return "stream"
    if any(ch in spec for ch in "*?[") and not Path(spec).exists():
        return "glob"
    path = Path(spec)
    if path.is_dir():
        return "directory"
    if any(marker in path.name for marker in IDX_MARKERS):
        return "idx"
    suffix = path.suffix.lower()
    if suffix in LIST_SUFFIXES:
        return "list"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return "unknown"


def open_source(spec: str, live_options=None, capture_factory=None) -> Source:
    """Open the source ``spec`` names (see module docstring).

    ``live_options`` (a :class:`~edgerun.runtime.capture.LiveOptions`) and ``capture_factory``
    (default ``cv2.VideoCapture``) apply to cameras and streams.

    Raises:
        SourceError: a path that does not exist, nothing found, or an unsupported format.
    """
    spec = str(spec)
    if "\x00" in spec:
        raise SourceError(f"{spec!r} contains a NUL byte; expected a camera index, file, directory, glob or URL")
    try:
        return _open(spec, live_options, capture_factory)
    except (ValueError, OSError) as exc:  # what the OS says of an impossible path (too long, ...)
        raise SourceError(f"{spec!r} cannot be used as a source: {exc}") from exc


def _open(spec: str, live_options, capture_factory) -> Source:
    kind = source_kind(spec)
    if kind in ("camera", "stream"):
        from .capture import LiveCapture

        target = int(spec.strip()) if kind == "camera" else spec
        return LiveCapture(target, live_options, capture_factory or cv2.VideoCapture)
    if kind == "glob":
        paths = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        images = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise SourceError(
                f"no images match {spec!r}"
                + (f" ({len(paths)} other files do)" if paths else "")
                + f"; supported: {', '.join(IMAGE_SUFFIXES)}"
            )
        return ImageFiles(images, spec)
    path = Path(spec)
    if kind == "directory":
        images = _images_in(path)
        if not images:
            videos = [p.name for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES]
            hint = f"; it holds videos ({', '.join(videos[:3])}): pass one as --source" if videos else ""
            raise SourceError(f"no images found in {path}{hint}; supported: {', '.join(IMAGE_SUFFIXES)}")
        return ImageFiles(images, str(path))
    if not path.exists():
        raise SourceError(f"{spec} does not exist (expected a camera index, file, directory, glob or URL)")
    if kind == "list":
        return ImageFiles(_list_file(path), str(path))
    if kind == "video":
        return VideoFile(path)
    if kind == "idx":
        return IdxImages(path)
    if kind == "image":
        return ImageFiles([path], str(path))
    raise SourceError(
        f"{spec}: unsupported format {path.suffix or '(no suffix)'}; expected an image "
        f"({', '.join(IMAGE_SUFFIXES)}), a video ({', '.join(VIDEO_SUFFIXES)}) or a list "
        f"({', '.join(LIST_SUFFIXES)})"
    )
