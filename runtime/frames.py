"""The contract every input kind meets: a :class:`Source` yields :class:`Frame` objects.

Kept apart from the sources themselves so that files, cameras, streams and in-memory arrays
can each live in their own module without importing one another. Also here: which inputs in
memory are frames (:func:`split_frames`, :func:`check_items`), and the one message for an input
of no accepted kind (:func:`openable`), so every entry point accepts and refuses the same things.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Mapping, Set
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


#: What ``model(x)`` takes, for the messages that refuse something else.
ACCEPTED_INPUTS = (
    "an image, video, list (.txt) or IDX file path (str or Path), a directory, a glob, a stream URL, "
    "a camera index (int), a numpy frame (HxW, or HxWxC with C 1, 3 or 4), a batch of frames "
    "(NxHxWxC), or a list or other iterable of frames and image paths"
)
#: What ``model.predict(frames)`` takes.
IN_MEMORY_INPUTS = (
    "a numpy frame (HxW, or HxWxC with C 1, 3 or 4), a batch of frames (NxHxWxC), "
    "or a list or other iterable of frames and image paths"
)
CHANNELS = (1, 3, 4)


def describe(value: object) -> str:
    """A short name for what was given (never the whole value: bytes or a list can be huge)."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape} ({value.dtype})"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{type(value).__name__} ({len(value)} bytes)"
    if isinstance(value, (int, float)) or (isinstance(value, (str, tuple, list)) and len(value) <= 40):
        text = repr(value)
        if len(text) <= 60:
            return f"{type(value).__name__} {text}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def holds_numbers(array: np.ndarray) -> bool:
    """Integers or floats (not bool, complex, strings or objects): what pixels and tensors hold."""
    return array.dtype != bool and (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating))


def split_frames(array: np.ndarray) -> list[np.ndarray]:
    """A numpy input as frames: HxW or HxWxC (C 1, 3 or 4) is one frame; NxHxWxC is N frames.

    Raises:
        SourceError: any other shape, or an array that does not hold numbers.
    """
    if not holds_numbers(array):
        raise SourceError(
            f"a numpy frame must hold pixel values (integers or floats), got dtype {array.dtype}; "
            "convert it first, e.g. array.astype(np.uint8)"
        )
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in CHANNELS):
        return [array]
    if array.ndim == 4 and array.shape[3] in CHANNELS:
        return list(array)
    if array.ndim == 3:
        n, h, w = array.shape
        raise SourceError(
            f"got a numpy array of shape {array.shape}: a 3-D frame is HxWxC, its last axis the channels "
            f"(1, 3 or 4), not {w}. If it holds {n} gray images of {h}x{w}, add the channel axis: "
            "array[..., None] (NxHxWx1), or pass list(array)"
        )
    raise SourceError(
        f"got a numpy array of shape {array.shape}; expected one frame (HxW, or HxWxC with C 1, 3 or 4) "
        "or a batch of frames (NxHxWxC)"
    )


def check_items(items: Iterable) -> list:
    """The frames and image paths of a list (or any iterable, read to its end), each checked.

    A frame's shape is checked later, per frame (a bad one is that input's error record); an
    item that is neither a numpy array nor a path cannot be an input at all.

    Raises:
        SourceError: an item that is not a numpy array, str or path (says which, and what to do).
    """
    checked = []
    for index, item in enumerate(items):
        if isinstance(item, (np.ndarray, str, os.PathLike)):
            checked.append(item)
            continue
        if isinstance(item, (list, tuple)):
            hint = "an image given as nested lists must be an array first: np.asarray(item, np.uint8)"
        elif isinstance(item, (bytes, bytearray, memoryview)):
            hint = "encoded image bytes must be decoded first: cv2.imdecode(np.frombuffer(data, np.uint8), -1)"
        else:
            hint = "each item must be a numpy frame (HxW, or HxWxC with C 1, 3 or 4) or an image path (str or Path)"
        raise SourceError(f"item {index} of the inputs is {describe(item)}; {hint}")
    return checked


def in_memory(x) -> list | None:
    """The checked frames and image paths ``x`` holds in memory; None when ``x`` is no array or
    collection (a path, URL, camera index or source to open, or something of no accepted kind).

    Raises:
        SourceError: an array of no frame shape, or an item that is neither a frame nor a path.
    """
    if isinstance(x, np.ndarray):
        # np.matrix stays 2-D under every operation: its frames failed in preprocessing with numpy's words
        return split_frames(np.asarray(x) if isinstance(x, np.matrix) else x)
    # an open file iterates its lines, which are no frames: openable says what to pass instead
    unopened = (str, bytes, bytearray, memoryview, os.PathLike, Mapping, Source, io.IOBase)
    if isinstance(x, unopened) or not isinstance(x, Iterable):
        return None
    if isinstance(x, Set):
        raise SourceError(
            f"got {describe(x)}: a set has no order, so its results could not be told apart; "
            "pass a list (sorted(inputs)) to get one result per input, in that order"
        )
    return check_items(x)


def openable(x, caller: str):
    """``x`` when :func:`open_source` can open it (a path, URL, camera index or source).

    Raises:
        SourceError: anything else, saying what was given and what is accepted.
    """
    if isinstance(x, (Source, str, os.PathLike)):
        return x
    whole = isinstance(x, (int, np.integer)) and not isinstance(x, bool)
    if whole and x >= 0:
        return int(x)
    if whole:
        hint = "; a camera index is 0 or more"
    elif isinstance(x, io.IOBase):
        hint = (
            "; an open file: pass its path (model(f.name)), or decode its bytes "
            "(cv2.imdecode(np.frombuffer(f.read(), np.uint8), -1))"
        )
    elif isinstance(x, (bytes, bytearray, memoryview)):
        hint = (
            "; a path given as bytes: decode it (data.decode()); encoded image bytes: decode the image "
            "(cv2.imdecode(np.frombuffer(data, np.uint8), -1))"
        )
    elif isinstance(x, Iterable) and not isinstance(x, Mapping):
        hint = "; a generator of frames: call the model with it (model(frames)), or pass a list"
    else:
        hint = ""
    raise SourceError(f"{caller} cannot run {describe(x)}: expected {ACCEPTED_INPUTS}{hint}")
