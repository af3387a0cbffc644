"""Sources: one contract for every input kind — each yields :class:`Frame` objects and has ``close()``.

``open_source(spec)`` turns what it is given into a source: a camera index (``0``), an image
file, a directory, a glob, a text file listing paths, a video file, an IDX image file (MNIST's
format), a stream URL (rtsp/rtmp/http), or frames already in memory (a numpy array, or a list
of arrays and paths). Files and videos never drop a frame, and a file that cannot be read still
gives a frame, with ``error`` set, so every input yields exactly one record downstream. Cameras
and streams live in :mod:`edgerun.runtime.capture` (grabber thread, newest frame only,
timeouts, reconnection).
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from .containers import is_whole
from .frames import Frame, Source, SourceError, check_items, split_frames
from .images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image
from .listing import glob_files, images_in, list_file
from .outputs import os_reason

logger = logging.getLogger(__name__)

LIST_SUFFIXES = (".txt", ".lst", ".list")
IDX_MARKERS = ("-idx3-ubyte", ".idx3")
#: A printf-style number in a file name (img_%04d.png), as OpenCV and FFmpeg name image sequences.
PRINTF_NUMBER = re.compile(r"%0?\d*d")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")

__all__ = ["Frame", "Source", "SourceError", "open_source", "input_files", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]


class _Finite:
    """What every finite source shares: not live, no claimed frame rate unless a video says so."""

    live = False
    nominal_fps: float | None = None
    stop_reason: str | None = None
    expected: int | None = None

    def close(self) -> None:
        return None


class ArraySource(_Finite):
    """Frames already in memory: numpy images, or a mix of images and image paths.

    A path in the list is read like any image file (an unreadable one gives an error frame).
    """

    def __init__(self, items: Sequence, name: str = "array") -> None:
        self.items = list(items)
        self.name = name
        self.expected = len(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Frame]:
        for index, item in enumerate(self.items):
            if isinstance(item, np.ndarray):
                yield Frame(item, f"{self.name}[{index}]", index, float(index))
                continue
            try:
                yield Frame(read_image(Path(item)), str(item), index, float(index))
            except (SourceError, TypeError, ValueError) as exc:
                yield Frame(None, str(item), index, float(index), error=str(exc))

    @property
    def files(self) -> list[Path]:
        return [Path(item) for item in self.items if isinstance(item, (str, Path))]


class ImageFiles(_Finite):
    """A fixed list of image paths: one frame per path, an error frame for an unreadable one
    (whatever the OS says of it: permission, a link loop, a name too long, an I/O error).

    ``listing`` is the list file the paths came from, if any (an input too)."""

    def __init__(
        self, paths: list[Path], name: str, listing: Path | None = None, errors: dict[Path, str] | None = None
    ) -> None:
        self.paths = paths
        self.name = name
        self.expected = len(paths)
        self.files = [*paths, *([listing] if listing else [])]
        self.errors = errors or {}  # entries known to be unreadable while the source was listed

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            if path in self.errors:
                yield Frame(None, str(path), index, float(index), error=self.errors[path])
                continue
            try:
                image = read_image(path)
            except SourceError as exc:
                yield Frame(None, str(path), index, float(index), error=str(exc))
                continue
            yield Frame(image, str(path), index, float(index))


class IdxImages(_Finite):
    """Every image of an IDX image file (MNIST's format, gzip or plain), as grayscale frames,
    read one at a time. A file that ends before its header's count sets ``stop_reason``."""

    def __init__(self, path: Path) -> None:
        from .idx import IdxError, IdxFile

        self.path = path
        self.name = str(path)
        self.files = [path]
        try:
            self.idx = IdxFile(path)
        except IdxError as exc:
            raise SourceError(str(exc)) from exc
        if not self.idx.images:
            raise SourceError(f"{path} holds labels, not images; pass the images file (…-images-idx3-ubyte.gz)")
        self.expected = self.idx.available
        self._records = None

    def __len__(self) -> int:
        return self.idx.available

    def __iter__(self) -> Iterator[Frame]:
        reasons: list[str] = []
        self._records = self.idx.records(reasons)
        for index, image in enumerate(self._records):
            yield Frame(image, self.name, index, float(index))
        if reasons:
            self.stop_reason = reasons[0]
            logger.warning("%s ended early: %s", self.name, self.stop_reason)

    def close(self) -> None:
        if self._records is not None:
            try:
                self._records.close()  # closes the file
            except ValueError:  # still running in the reader thread: it closes the file when it ends
                logger.debug("%s: closed while reading", self.name)


#: A video ends after this many failed reads in a row. A damaged frame fails one read and the
#: next frame decodes (each failed read consumes its frame); a file cut short fails every read
#: from the cut on, so a run this long is taken as the end of the file, not as damaged frames.
MAX_BAD_RUN = 30


class VideoFile(_Finite):
    """Every frame of a video file, in order; timestamps from the decoder's position.

    A frame that cannot be decoded is an error frame at its own index once a later frame decodes,
    or, at the end, when the container is whole (:func:`~edgerun.runtime.containers.is_whole`):
    failed reads at the end of a cut file are the end of the video, not error frames.
    Indices are counted here, one per read: OpenCV's ``CAP_PROP_POS_FRAMES`` skips failed reads.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.files = [path]
        if not path.is_file():
            raise SourceError(f"{path} is not a regular file; expected a video file")
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(
                f"{path} could not be opened as a video (not a video; cut short, which an .mp4 or .mov does "
                f"not survive, its index being at the end; or a codec OpenCV lacks); supported: "
                f"{', '.join(VIDEO_SUFFIXES)}"
            )
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.expected = self.frame_count or None
        fps = self._capture.get(cv2.CAP_PROP_FPS) or 0.0
        # Only for the output video's frame rate: measured fps always come from timestamps.
        self.nominal_fps = fps if 0 < fps < 1000 else 30.0
        self.damaged = 0  # frames that could not be decoded, each given as an error frame

    def __len__(self) -> int:
        return self.frame_count

    def __iter__(self) -> Iterator[Frame]:
        index = 0  # reads so far, failed ones included: the index of the next frame
        failed: list[int] = []  # failed reads not yet followed by a decoded frame
        while len(failed) < MAX_BAD_RUN:
            ok, image = self._capture.read()
            if not ok:
                if self.frame_count and index >= self.frame_count:
                    if failed and is_whole(self.path):  # the last frames' data is there, only broken
                        yield from self._damaged_frames(failed)
                    break  # the header's count is reached: the end
                failed.append(index)
                index += 1
                continue
            yield from self._damaged_frames(failed)
            position = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            yield Frame(image, self.name, index, position if position > 0 else index / self.nominal_fps)
            index += 1
        given = index - len(failed)  # failed reads at the end are the end of the file
        if self.frame_count and given < self.frame_count:
            decoded = given - self.damaged
            damaged = f" ({self.damaged} more could not be decoded)" if self.damaged else ""
            where = f"nothing decodes from frame {failed[0]} on: " if len(failed) >= MAX_BAD_RUN else ""
            self.stop_reason = (
                f"decoded {decoded} of {self.frame_count} frames{damaged}; {where}the file may be truncated"
            )
            logger.warning("%s ended early: %s", self.name, self.stop_reason)
        if self.damaged:
            logger.warning(
                "%s: %d frame%s could not be decoded (each has its error record)",
                self.name,
                self.damaged,
                "" if self.damaged == 1 else "s",
            )
        self.close()

    def _damaged_frames(self, failed: list[int]) -> Iterator[Frame]:
        """One error frame for each failed read in ``failed`` (emptied): damaged, not missing."""
        for bad in failed:
            self.damaged += 1
            after = "the frames after it were read" if bad < self.frame_count - 1 else "it is the video's last frame"
            error = f"frame {bad} of {self.name} could not be decoded (damaged data in the video); {after}"
            yield Frame(None, self.name, bad, bad / self.nominal_fps, error=error)
        failed.clear()

    def close(self) -> None:
        self._capture.release()


def input_files(source) -> list[Path]:
    """The files a source reads (its images, list file, video or IDX file): what no output of
    the run may replace. Empty for cameras, streams and arrays in memory."""
    return list(getattr(source, "files", ()) or ())


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
    if any(ch in spec for ch in "*?[") and not _probe(Path(spec).exists):
        return "glob"
    path = Path(spec)
    if _probe(path.is_dir):
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


def _missing(path: Path, spec: str) -> str:
    """Why ``path`` cannot be opened: it does not exist, or it is a link to nothing or a loop."""
    try:
        target = os.readlink(path)
    except OSError:
        glob = PRINTF_NUMBER.sub("*", spec)
        if glob != spec:  # img_%04d.png: a sequence, named the way OpenCV and FFmpeg take it
            return f"{spec} does not exist; for a numbered sequence of images give a glob: '{glob}'"
        return f"{spec} does not exist (expected a camera index, file, directory, glob or URL)"
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{spec} is a link loop (it leads back to itself through {target}); point it at a file"
    return f"{spec} is a link to {target}, which does not exist; point it at an existing file"


def _probe(check) -> bool:
    """``path.exists``/``path.is_dir`` that answers False where the OS refuses to say (a parent
    folder that may not be searched, a name too long): the source is then opened as what its
    name says, and the refusal reaches the user as that source's own error."""
    try:
        return check()
    except (OSError, ValueError):
        return False


def open_source(spec, live_options=None, capture_factory=None) -> Source:
    """Open the source ``spec`` names (see module docstring).

    ``spec`` is a string or path, a numpy image, a list/tuple of images and paths, or a
    :class:`Source` already (returned as it is).

    ``live_options`` (a :class:`~edgerun.runtime.capture.LiveOptions`) and ``capture_factory``
    (default ``cv2.VideoCapture``) apply to cameras and streams.

    Raises:
        SourceError: a path that does not exist, nothing found, or an unsupported format.
    """
    if isinstance(spec, np.ndarray):
        return ArraySource(split_frames(spec))  # the one rule for arrays, as model(x) reads them
    if isinstance(spec, (list, tuple)):
        return ArraySource(check_items(spec))
    if isinstance(spec, Source) and not isinstance(spec, (str, Path)):
        return spec
    # the path an os.PathLike names (str() of one that is not a Path is its repr); bytes decoded as os does
    spec = os.fsdecode(spec) if isinstance(spec, os.PathLike) else str(spec)
    if not spec.strip():  # '' would read the working folder, as Path('') is '.'
        raise SourceError(
            f"the source is empty ({spec!r}); expected a camera index, file, directory, glob or URL "
            "(for the current folder, give '.')"
        )
    if "\x00" in spec:
        raise SourceError(f"{spec!r} contains a NUL byte; expected a camera index, file, directory, glob or URL")
    try:
        return _open(spec, live_options, capture_factory)
    except (ValueError, OSError) as exc:  # what the OS says of an impossible path (too long, ...)
        reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
        raise SourceError(f"{spec!r} cannot be used as a source: {reason}") from exc


def _open(spec: str, live_options, capture_factory) -> Source:
    kind = source_kind(spec)
    if kind in ("camera", "stream"):
        from .capture import LiveCapture

        if kind == "camera":
            target: int | str = int(spec.strip())
        else:  # a scheme is case-insensitive (RFC 3986), FFmpeg's protocol names are not: HTTP:// failed
            scheme, sep, rest = spec.partition("://")
            target = scheme.lower() + sep + rest
        return LiveCapture(target, live_options, capture_factory or cv2.VideoCapture)
    if kind == "glob":
        paths, errors = glob_files(spec)
        images = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES or p in errors]
        if not images:
            raise SourceError(
                f"no images match {spec!r}"
                + (f" ({len(paths)} other files do)" if paths else "")
                + f"; supported: {', '.join(IMAGE_SUFFIXES)}"
            )
        return ImageFiles(images, spec, errors=errors)
    path = Path(spec)
    if kind == "directory":
        images = images_in(path)
        if not images:
            videos = [p.name for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES]
            hint = f"; it holds videos ({', '.join(videos[:3])}): pass one as --source" if videos else ""
            raise SourceError(f"no images found in {path}{hint}; supported: {', '.join(IMAGE_SUFFIXES)}")
        return ImageFiles(images, str(path))
    if not path.exists():
        raise SourceError(_missing(path, spec))
    if kind == "list":
        return ImageFiles(list_file(path), str(path), listing=path)
    if kind == "video":
        return VideoFile(path)
    if kind == "idx":
        return IdxImages(path)
    if kind == "image":
        return ImageFiles([path], str(path))
    if "idx1" in path.name:
        raise SourceError(
            f"{spec} is an IDX labels file (idx1): it holds labels, not images; give the images file "
            f"beside it (idx3, e.g. {path.name.replace('labels-idx1', 'images-idx3')})"
        )
    raise SourceError(
        f"{spec}: unsupported format {path.suffix or '(no suffix)'}; expected an image "
        f"({', '.join(IMAGE_SUFFIXES)}), a video ({', '.join(VIDEO_SUFFIXES)}) or a list "
        f"({', '.join(LIST_SUFFIXES)})"
    )
