"""The book's test scenes for the localizer.

A scene is a grid of r x c cells of 28 px (r and c uniform in 6..12); each inner cell holds a
random digit with probability 0.15, border cells stay empty, the background is black.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .score import Truth

CELL = 28


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
            truth.append(Truth(int(labels[i]), (c * CELL + CELL / 2, r * CELL + CELL / 2), float(CELL)))
    return Scene(image, truth)
