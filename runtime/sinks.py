"""Where results go: JSON lines, annotated images or video, a window. Each sink has
``write(result)`` and ``close()``, and is a context manager. A result carries the frame it came
from (``result.image``), so sinks that draw need nothing else."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import NamedTuple

import cv2

from .annotate import Annotator
from .images import VIDEO_SUFFIXES
from .outputs import AtomicFile, LineWriter, Protected, WriteFailed, check_directory, write_image
from .postprocess import heatmap_images
from .results import Result

logger = logging.getLogger(__name__)


class SinkError(Exception):
    """An output that cannot be written; the message says why."""


class Sink:
    def write(self, result: Result) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class JsonlSink(Sink):
    """One JSON object per input, written whole and flushed as it is produced; ``-`` is standard
    output. ``protected`` (the run's inputs) may not be the target (see :mod:`.outputs`)."""

    def __init__(self, path: str | Path, protected: Protected | None = None) -> None:
        self._writer = LineWriter(path, protected, what="--json")
        self.path = self._writer.target
        if protected is not None:
            protected.add(path, output="--json")  # a second output must not write over this one

    @property
    def records(self) -> int:
        return self._writer.lines

    def write(self, result: Result) -> None:
        self._writer.write(json.dumps(result.to_dict(), allow_nan=False))

    def close(self) -> None:
        self._writer.close()


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "frame"


class ImageSaver(Sink):
    """Annotated images into a directory, one per input; with ``heatmaps``, the per-class maps too.

    Each image is written whole (a temporary file renamed into place) and never over an input."""

    def __init__(
        self,
        directory: Path,
        heatmaps: bool = False,
        annotator: Annotator | None = None,
        stride: int = 2,
        protected: Protected | None = None,
    ) -> None:
        self.directory = check_directory(directory, "--save directory")
        self.stride = stride  # the localizer's input pixels per map position, to align heatmaps
        self.heatmaps = heatmaps
        self.annotator = annotator or Annotator()
        self.protected = protected
        self.written: list[Path] = []

    def write(self, result: Result) -> None:
        if result.image is None:
            return
        stem = f"{result.index:06d}_{_safe_name(Path(result.source).stem)}"
        path = self.directory / f"{stem}.png"
        annotated = self.annotator.annotate(result.image, result)
        write_image(path, annotated, self.protected, "--save image", durable=False)
        self.written.append(path)
        if self.heatmaps and result.heat is not None:
            maps = heatmap_images(result.heat, result.image.shape[:2], self.stride)
            for class_id, gray in enumerate(maps):
                write_image(self.directory / f"{stem}_heat_{class_id}.png", gray, self.protected, "--save image", False)


class VideoSaver(Sink):
    """An annotated video, written beside the target and renamed into place when closed (also on
    interruption, so the file plays); never over an input."""

    def __init__(
        self,
        path: Path,
        fps: float = 30.0,
        annotator: Annotator | None = None,
        protected: Protected | None = None,
        what: str = "--save video",
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise SinkError(f"{self.path}: a video needs one of {', '.join(VIDEO_SUFFIXES)}")
        self._file = AtomicFile(self.path, protected, what)
        if protected is not None:
            protected.add(self.path, output="--save")
        self.fps = fps
        self.annotator = annotator or Annotator()
        self._writer = None
        self._size = None
        self.frames = 0

    def write(self, result: Result) -> None:
        if result.image is None:
            return
        image = self.annotator.annotate(result.image, result)
        if self._writer is None:
            self._size = (image.shape[1], image.shape[0])
            fourcc = cv2.VideoWriter_fourcc(
                *("mp4v" if self.path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG")
            )
            self._writer = cv2.VideoWriter(str(self._file.path), fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                raise SinkError(f"OpenCV cannot write {self.path} (no encoder for {self.path.suffix})")
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._file.done:
            return
        if self.frames == 0:
            self._file.discard()  # no frame to write: no empty, unplayable file
            return
        # OpenCV's encoder does not report failed writes: a full disk is seen by what is left.
        size = self._file.path.stat().st_size if self._file.path.exists() else 0
        space = os.statvfs(self._file.path.parent)
        if size == 0 or space.f_bavail * space.f_frsize < 64 * 1024:
            self._file.discard()
            raise WriteFailed(
                f"cannot write {self.path}: the disk filled up while the video was written "
                f"({size} bytes, {space.f_bavail * space.f_frsize} bytes free); free space or choose another --save"
            )
        self._file.commit()


class DisplayCheck(NamedTuple):
    """Whether a window can open; if not, why (``cause``) and the fix for the GUI build (``fix``:
    empty where the fix is a display, which no package gives)."""

    ok: bool
    cause: str = ""
    fix: str = ""


def has_display() -> DisplayCheck:
    """Whether a window can open: OpenCV built with a GUI, and a display to use."""
    info = cv2.getBuildInformation()
    gui = re.search(r"GUI:\s*(\S+)", info)
    if gui is None or gui.group(1).upper() in ("NONE", "NO"):
        return DisplayCheck(
            False,
            "this OpenCV has no GUI (opencv-python-headless)",
            "pip uninstall -y opencv-python-headless && pip install 'edgerun[cpu-gui]' (or [gpu-gui])",
        )
    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return DisplayCheck(False, "no display (DISPLAY is unset)")
    return DisplayCheck(True)


class Display(Sink):
    """A live window; 'q' or Esc stops the run through ``on_quit``."""

    def __init__(self, title: str = "edgerun", on_quit=None, annotator: Annotator | None = None) -> None:
        self.title = title
        self.on_quit = on_quit
        self.annotator = annotator or Annotator()

    def write(self, result: Result) -> None:
        if result.image is None:
            return
        cv2.imshow(self.title, self.annotator.annotate(result.image, result))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27) and self.on_quit:
            self.on_quit()

    def close(self) -> None:
        cv2.destroyAllWindows()
