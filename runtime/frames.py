"""The contract every input kind meets: a :class:`Source` yields :class:`Frame` objects.

Kept apart from the sources themselves so that files, cameras, streams and in-memory arrays
can each live in their own module without importing one another.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class SourceError(Exception):
    """A source that cannot be opened; the message says what was expected and what to do."""


@dataclass(frozen=True, eq=False)  # holds an array: == would raise; identity is the only sound equality
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


@runtime_checkable
class Source(Protocol):
    """Where frames come from.

    Attributes:
        name: what the user gave (a path, ``camera:0``, a URL, ``array``).
        live: frames arrive in real time (cameras, streams): the newest is taken, none queued.
        nominal_fps: the frame rate the source claims, for writing video (never for measuring).
        expected: how many frames a finite source will give, where known (for progress).
        stop_reason: why the source ended early (a lost stream, a truncated file), or None.

    Finite sources also list the files they read in ``files`` (optional): no output of a run
    may replace one of them (see :mod:`edgerun.runtime.outputs`).
    """

    name: str
    live: bool
    nominal_fps: float | None
    expected: int | None
    stop_reason: str | None

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...
