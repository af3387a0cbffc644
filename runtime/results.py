"""What a model gives for one input: a :class:`Result` (top classes, detections, or an error).

Exactly one Result per input, always: an input that could not be read, preprocessed or run
still has one, with ``error`` set. ``to_dict()`` is the JSON-lines record ``edgerun run --json``
writes; ``plot()`` draws the result on the input it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .annotate import Annotator, PlotError
from .outputs import printable

#: What :meth:`Result.plot` takes as ``style``: :class:`~edgerun.runtime.annotate.Annotator`'s settings.
STYLES = ("zoom", "thickness", "font_scale")


@dataclass(frozen=True)
class TopClass:
    """One of a classifier's top classes for one input."""

    class_id: int
    label: str
    prob: float

    @property
    def score(self) -> float:
        return self.prob


@dataclass(frozen=True)
class Detection:
    """One object a localizer found: its class, score and box."""

    class_id: int
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in input pixels
    area: int = 0  # map positions in the merged region

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2

    def to_dict(self) -> dict:
        return {
            "class_id": self.class_id,
            "label": self.label,
            "score": round(self.score, 6),
            "box": [round(v, 1) for v in self.box],
        }


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: such a value is written as null."""
    return value if math.isfinite(value) else None


@dataclass(eq=False)  # holds arrays (image, heat): == would raise
class Result:
    """One input's result.

    Attributes:
        source: where the input came from (a path, ``camera:0``, ``array[3]``).
        index: the input's position in its source.
        latency_ms: inference time of the batch the input ran in.
        top: classify models: the top-k classes, best first.
        detections: localize models: what was found, in input pixels.
        error: why this input has no answer (unreadable, bad shape, failed inference).
        image: the input frame as read (kept for :meth:`plot`; None for failed reads).
        heat: localize models: the raw class maps (H', W', classes), for heatmap pictures.
        blank: classify models: the input was one flat value after preprocessing (a blank page,
            a covered lens, no ink found), so ``top`` is the model's guess for an empty picture.
    """

    source: str
    index: int
    latency_ms: float | None = None
    top: list[TopClass] | None = None
    detections: list[Detection] | None = None
    error: str | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    heat: np.ndarray | None = field(default=None, repr=False, compare=False)
    blank: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str | None:
        """The best class's name (classify), or None."""
        return self.top[0].label if self.top else None

    @property
    def class_id(self) -> int | None:
        return self.top[0].class_id if self.top else None

    @property
    def score(self) -> float | None:
        """The best class's probability (classify), or None."""
        return self.top[0].prob if self.top else None

    def to_dict(self) -> dict:
        """The JSON-lines record documented in the README (``run --json``). Always valid JSON:
        non-finite numbers are null, bytes of a file name that are not UTF-8 are shown as ``\\xff``."""
        record: dict = {"source": printable(self.source), "index": self.index}
        if self.error is not None:
            record["error"] = printable(self.error)
            return record
        if self.top is not None:
            record["top"] = [
                {"class_id": t.class_id, "label": t.label, "prob": _finite(round(t.prob, 6))} for t in self.top
            ]
        if self.blank:
            record["blank"] = True
        if self.detections is not None:
            record["detections"] = [d.to_dict() for d in self.detections]
        record["latency_ms"] = None if self.latency_ms is None else round(self.latency_ms, 3)
        return record

    def summary(self) -> str:
        """One line for the terminal."""
        head = f"{self.index:>6} {printable(self.source)}"
        if self.error is not None:
            return f"{head}: ERROR {printable(self.error)}"
        if self.top is not None:
            best = ", ".join(f"{t.label} {t.prob:.3f}" for t in self.top)
            return f"{head}: {best}" + (" (blank picture: nothing to classify)" if self.blank else "")
        found = ", ".join(
            f"{d.label}@({d.center[0]:.0f},{d.center[1]:.0f}) {d.score:.3f}" for d in self.detections or []
        )
        return f"{head}: {len(self.detections or [])} found" + (f": {found}" if found else "")

    def plot(self, image: np.ndarray | None = None, **style) -> np.ndarray:
        """The input with this result drawn on it (a new BGR image).

        ``image`` defaults to the frame the result came from; ``style`` goes to
        :class:`~edgerun.runtime.annotate.Annotator` (``zoom``, ``thickness``, ``font_scale``).

        Raises:
            PlotError: no image to draw on, ``image`` of no frame shape, or a style out of range.
            TypeError: a style of another name.
        """
        base = self.image if image is None else image
        if base is None:
            raise PlotError(f"{self.source}: no image to draw on (the input could not be read); pass image=")
        unknown = sorted(set(style) - set(STYLES))
        if unknown:  # Annotator.__init__'s own TypeError named a class the caller never used
            raise TypeError(f"Result.plot() got unknown style(s) {', '.join(unknown)}; known: {', '.join(STYLES)}")
        return Annotator(**style).annotate(base, self)
