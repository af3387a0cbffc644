"""Scoring detections against the truth of a picture.

A hit is a detection of the same digit whose centre lies within half the digit's side of the
true centre; each true digit is matched at most once, strongest detection first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Truth:
    """One digit in a picture: its class, the centre of its 28-px MNIST frame and that frame's side."""

    label: int
    center: tuple[float, float]  # x, y in pixels
    side: float = 28.0  # the digit's MNIST frame (28 px at scale 1) in picture pixels


class Found(Protocol):
    """What scoring needs of a detection (the runtime's ``Detection`` has these)."""

    @property
    def class_id(self) -> int: ...

    @property
    def score(self) -> float: ...

    @property
    def center(self) -> tuple[float, float]: ...


@dataclass
class Score:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 1.0

    def add(self, other: Score) -> Score:
        self.true_positives += other.true_positives
        self.false_positives += other.false_positives
        self.false_negatives += other.false_negatives
        return self

    def to_dict(self) -> dict:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "hits": self.true_positives,
            "false": self.false_positives,
            "missed": self.false_negatives,
        }


def match(detections: Iterable[Found], truth: Sequence[Truth], radius_factor: float = 0.5) -> Score:
    """Score one picture: strongest detection first, each takes the nearest unmatched truth of
    its class whose centre is within ``radius_factor`` x that truth's side; the rest are false."""
    unmatched = list(truth)
    result = Score()
    for det in sorted(detections, key=lambda d: -d.score):
        cx, cy = det.center
        best: tuple[float, Truth] | None = None
        for t in unmatched:
            if t.label != det.class_id:
                continue
            dist = ((t.center[0] - cx) ** 2 + (t.center[1] - cy) ** 2) ** 0.5
            if dist <= radius_factor * t.side and (best is None or dist < best[0]):
                best = (dist, t)
        if best is None:
            result.false_positives += 1
        else:
            unmatched.remove(best[1])
            result.true_positives += 1
    result.false_negatives = len(unmatched)
    return result
