"""Drawing results on frames: boxes with digit and score, or the top classes as a caption."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from .frames import describe
from .preprocess import PreprocessError, to_bgr

if TYPE_CHECKING:
    from .results import Result

GREEN = (40, 200, 40)
RED = (40, 40, 230)
WHITE = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


#: The largest side a drawing may have after ``zoom`` (a 28-px digit at zoom 1000 was 2.3 GB).
MAX_SIDE = 16384


class PlotError(ValueError):
    """A drawing that cannot be made: no image, an image of no frame shape, a style out of range."""


def _number(value: object) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and bool(np.isfinite(value))
    )


class Annotator:
    """Configure in ``__init__``, draw in :meth:`annotate` (returns a new BGR image)."""

    def __init__(self, thickness: int = 1, font_scale: float = 0.45, zoom: int = 1) -> None:
        # a negative thickness filled every box (OpenCV's FILLED), hiding the digit; zoom 0, -1 and
        # NaN were ignored in silence
        if not (isinstance(thickness, (int, np.integer)) and not isinstance(thickness, bool) and thickness >= 1):
            raise PlotError(f"thickness must be a whole number of pixels >= 1, got {thickness!r}")
        if not (_number(font_scale) and font_scale > 0):
            raise PlotError(f"font_scale must be a number above 0, got {font_scale!r}")
        if not (_number(zoom) and zoom >= 1):
            raise PlotError(f"zoom must be a number >= 1 (1: the input's own size), got {zoom!r}")
        self.thickness = int(thickness)
        self.font_scale = float(font_scale)
        self.zoom = zoom  # enlarge small inputs (28-px digits) so labels stay readable

    def _label(self, image: np.ndarray, text: str, x: int, y: int, color: tuple) -> None:
        (tw, th), base = cv2.getTextSize(text, FONT, self.font_scale, 1)
        y = max(th + base, y)
        cv2.rectangle(image, (x, y - th - base), (x + tw + 2, y), color, cv2.FILLED)
        cv2.putText(image, text, (x + 1, y - base), FONT, self.font_scale, WHITE, 1, cv2.LINE_AA)

    def annotate(self, frame: np.ndarray, result: Result) -> np.ndarray:
        try:
            image = to_bgr(frame).copy()
        except PreprocessError as exc:
            raise PlotError(f"cannot draw on {describe(frame)}: {exc}") from None
        if max(image.shape[:2]) * self.zoom > MAX_SIDE:
            raise PlotError(
                f"zoom {self.zoom} makes a {image.shape[1]}x{image.shape[0]} image larger than {MAX_SIDE} pixels "
                "a side; use a smaller zoom"
            )
        if self.zoom > 1:
            image = cv2.resize(image, None, fx=self.zoom, fy=self.zoom, interpolation=cv2.INTER_NEAREST)
        if result.error is not None:
            self._label(image, f"error: {result.error[:60]}", 2, 14, RED)
            return image
        if result.top is not None:
            best = result.top[0]
            self._label(image, f"{best.label} {best.prob:.2f}", 2, 14, GREEN)
            return image
        for det in result.detections or []:
            x1, y1, x2, y2 = (int(round(v * self.zoom)) for v in det.box)
            cv2.rectangle(image, (x1, y1), (x2, y2), GREEN, self.thickness)
            self._label(image, f"{det.label} {det.score:.2f}", x1, y1, GREEN)
        return image
