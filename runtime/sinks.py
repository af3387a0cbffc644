"""Where results go: JSON lines, annotated images or video, a window. Each sink has
``write(result)`` and ``close()``, and is a context manager. A result carries the frame it came
from (``result.image``), so sinks that draw need nothing else."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path

import cv2

from .annotate import Annotator
from .images import VIDEO_SUFFIXES
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
    """One JSON object per input, written and flushed as it is produced; ``-`` is standard output."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._own = str(path) != "-"
        if not self._own:
            self._fh = sys.stdout
        else:
            self.path = Path(path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise SinkError(f"cannot write {self.path}: {exc}") from exc
        self.records = 0

    def write(self, result: Result) -> None:
        self._fh.write(json.dumps(result.to_dict(), allow_nan=False) + "\n")
        self._fh.flush()
        self.records += 1

    def close(self) -> None:
        if self._own and not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "frame"


class ImageSaver(Sink):
    """Annotated images into a directory, one per input; with ``heatmaps``, the per-class maps too."""

    def __init__(
        self, directory: Path, heatmaps: bool = False, annotator: Annotator | None = None, stride: int = 2
    ) -> None:
        self.directory = Path(directory)
        self.stride = stride  # the localizer's input pixels per map position, to align heatmaps
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot write annotated images to {self.directory}: {exc}") from exc
        self.heatmaps = heatmaps
        self.annotator = annotator or Annotator()
        self.written: list[Path] = []

    def write(self, result: Result) -> None:
        if result.image is None:
            return
        stem = f"{result.index:06d}_{_safe_name(Path(result.source).stem)}"
        path = self.directory / f"{stem}.png"
        cv2.imwrite(str(path), self.annotator.annotate(result.image, result))
        self.written.append(path)
        if self.heatmaps and result.heat is not None:
            maps = heatmap_images(result.heat, result.image.shape[:2], self.stride)
            for class_id, gray in enumerate(maps):
                cv2.imwrite(str(self.directory / f"{stem}_heat_{class_id}.png"), gray)


class VideoSaver(Sink):
    """An annotated video; closed properly on interruption, so the file plays."""

    def __init__(self, path: Path, fps: float = 30.0, annotator: Annotator | None = None) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise SinkError(f"{self.path}: a video needs one of {', '.join(VIDEO_SUFFIXES)}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc}") from exc
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
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self._size)
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


def has_display() -> tuple[bool, str]:
    """Whether ``--show`` can open a window: OpenCV built with a GUI, and a display to use."""
    info = cv2.getBuildInformation()
    gui = re.search(r"GUI:\s*(\S+)", info)
    if gui is None or gui.group(1).upper() in ("NONE", "NO"):
        return False, (
            "this OpenCV has no GUI (opencv-python-headless); for --show swap it for the GUI build: "
            "pip uninstall -y opencv-python-headless && pip install 'edgerun[cpu-gui]' (or [gpu-gui])"
        )
    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY is unset); use --save to write annotated output instead"
    return True, ""


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
