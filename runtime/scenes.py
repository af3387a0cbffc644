"""The book's test scenes for the localizer, and how detections are scored against them.

A scene is a grid of r x c cells of 28 px (r and c uniform in 6..12); each inner cell holds a
random digit with probability 0.15, border cells stay empty, the background is black.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .results import Detection

CELL = 28


@dataclass(frozen=True)
class Truth:
    label: int
    center: tuple[float, float]  # x, y in pixels


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # uint8 HxW, light digits on black
    truth: list[Truth]


def make_scene(
    digits: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    p: float = 0.15,
    min_cells: int = 6,
    max_cells: int = 12,
) -> Scene:
    """One scene from a pool of 28x28 digit images (uint8) and their labels."""
    rows, cols = (int(v) for v in rng.integers(min_cells, max_cells + 1, size=2))
    image = np.zeros((rows * CELL, cols * CELL), np.uint8)
    truth = []
    for r in range(1, rows - 1):
        for c in range(1, cols - 1):
            if rng.random() >= p:
                continue
            i = int(rng.integers(len(digits)))
            image[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] = digits[i]
            truth.append(Truth(int(labels[i]), (c * CELL + CELL / 2, r * CELL + CELL / 2)))
    return Scene(image, truth)


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

    def add(self, other: Score) -> None:
        self.true_positives += other.true_positives
        self.false_positives += other.false_positives
        self.false_negatives += other.false_negatives


def score(detections: list[Detection], truth: list[Truth], radius: float = 14.0) -> Score:
    """A hit is the same digit with its centre within ``radius`` px; each truth matches once."""
    unmatched = list(truth)
    result = Score()
    for det in sorted(detections, key=lambda d: -d.score):
        cx, cy = det.center
        best = None
        for t in unmatched:
            dist = np.hypot(t.center[0] - cx, t.center[1] - cy)
            if t.label == det.class_id and dist <= radius and (best is None or dist < best[0]):
                best = (dist, t)
        if best is None:
            result.false_positives += 1
        else:
            unmatched.remove(best[1])
            result.true_positives += 1
    result.false_negatives = len(unmatched)
    return result


def evaluate_localizer(model, digits: np.ndarray, labels: np.ndarray, scenes: int = 50, seed: int = 0) -> Score:
    """Precision and recall of ``model`` (a localize :class:`~edgerun.runtime.model.Model`) over
    ``scenes`` generated scenes."""
    rng = np.random.default_rng(seed)
    made = [make_scene(digits, labels, rng) for _ in range(scenes)]
    total = Score()
    for scene, result in zip(made, model.predict([s.image for s in made]), strict=True):
        total.add(score(result.detections or [], scene.truth))
    return total
