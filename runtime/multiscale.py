"""Running a fully convolutional localizer at several scales, on crops or whole pictures, and
keeping each digit once.

The FCN sees digits of one size (MNIST's 28-px frame, give or take what training covered). A
digit of scale ``s`` (its frame is ``28 s`` px in the picture) is brought to that size by
resampling by ``1/s``. Two ways to choose ``s``:

- **proposals** (:func:`localize_proposals`): each piece of ink found by
  :func:`edgerun.runtime.pages.ink_proposals` implies its own scale; a crop around it is
  resampled to MNIST's size (times each of ``factors``), all crops of a picture go through the
  model as one zero-padded batch (the ink image's background is 0, so padding is seamless);
  pieces whose scale is implausible are tried at every pyramid level;
- **pyramid** (:func:`localize_pyramid`): the whole picture at each of ``levels``.

Either way candidates from all crops and scales are merged by :func:`suppress`: a weaker
candidate whose centre lies within ``radius_factor`` x the larger window of a stronger one is
the same digit. ``run`` is any callable taking a float32 NHWC batch (ink units, [0, 1]) and
returning the model's (N, H', W', classes) probabilities. Numpy and OpenCV only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .pages import Proposal

Run = Callable[[np.ndarray], np.ndarray]


class MultiScaleError(ValueError):
    """Settings or model outputs these functions cannot use; the message says what was expected."""


@dataclass(frozen=True)
class Candidate:
    """A digit found at one scale: class, peak probability, probability mass, centre and window
    side in picture pixels."""

    class_id: int
    score: float
    mass: float
    center: tuple[float, float]  # x, y
    side: float  # the classifier window (28 px x scale) in picture pixels
    scale: float
    probs: tuple[float, ...] | None = None  # mean class probabilities over the region

    @property
    def box(self) -> tuple[float, float, float, float]:
        x, y = self.center
        half = self.side / 2
        return x - half, y - half, x + half, y + half


@dataclass(frozen=True)
class MultiScaleConfig:
    """Settings of the multi-scale localizer.

    Attributes:
        threshold: a class fires where its probability reaches this (the book's 0.98).
        min_area: map positions a region needs to count.
        window: the classifier's receptive field (model px) and ``stride`` its map step.
        margin: model px of context around a proposal's digit frame in its crop.
        factors: multipliers tried around each proposal's own scale.
        levels: pyramid scales for whole pictures, and for proposals with no scale of their own.
        radius_factor: suppression radius as a fraction of the larger window.
        max_crop: crops larger than this (model px, either side) are tiled by the pyramid path
            instead (a proposal as big as the picture is not a digit's neighbourhood).
    """

    threshold: float = 0.98
    min_area: int = 2
    window: int = 28
    stride: int = 2
    margin: int = 4
    factors: tuple[float, ...] = (1.0,)
    levels: tuple[float, ...] = (1.0, 1.25)
    radius_factor: float = 0.5
    max_crop: int = 160

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise MultiScaleError(f"threshold must be in (0, 1], got {self.threshold}")
        if not self.factors or any(f <= 0 for f in self.factors):
            raise MultiScaleError(f"factors must be positive numbers, got {self.factors}")
        if not self.levels or any(s <= 0 for s in self.levels):
            raise MultiScaleError(f"levels must be positive numbers, got {self.levels}")
        if self.window < 1 or self.stride < 1 or self.margin < 0:
            raise MultiScaleError(f"window and stride must be >= 1 and margin >= 0, got {self}")


def pyramid_levels(low: float, high: float, coverage: tuple[float, float] = (0.8, 1.25)) -> tuple[float, ...]:
    """The fewest levels whose coverage spans digit scales ``low``..``high``.

    A model trained on digits of 0.8-1.25x its nominal size (``coverage``) finds, at level ``s``,
    digits of ``0.8 s``..``1.25 s``; levels step by the coverage's ratio.
    """
    if not 0 < low <= high or not 0 < coverage[0] < 1 <= coverage[1]:
        raise MultiScaleError(f"need 0 < low <= high and coverage (a < 1 <= b), got {low}, {high}, {coverage}")
    ratio = coverage[1] / coverage[0]
    level = low / coverage[0]
    levels = [level]
    while level * coverage[1] < high:
        level *= ratio
        levels.append(level)
    return tuple(round(s, 4) for s in levels)


def heat_candidates(heat: np.ndarray, config: MultiScaleConfig = MultiScaleConfig()) -> list[Candidate]:
    """Candidates in model-input pixels from one (H', W', classes) probability map.

    Per class, positions at or above the threshold form 8-connected regions; each region of at
    least ``min_area`` positions gives its probability-weighted centre, peak and mass.
    """
    if heat.ndim != 3:
        raise MultiScaleError(f"heat must be (H, W, classes), got shape {heat.shape}")
    found: list[Candidate] = []
    half = config.window / 2
    hot = heat >= config.threshold
    for c in np.flatnonzero(hot.any(axis=(0, 1))):
        plane = heat[:, :, c]
        count, labels, stats, _ = cv2.connectedComponentsWithStats(hot[:, :, c].astype(np.uint8), connectivity=8)
        for region in range(1, count):
            if stats[region, cv2.CC_STAT_AREA] < config.min_area:
                continue
            ys, xs = np.nonzero(labels == region)
            weights = plane[ys, xs]
            total = float(weights.sum())
            cy, cx = float(ys @ weights) / total, float(xs @ weights) / total
            centre = (cx * config.stride + half, cy * config.stride + half)
            probs = tuple(float(v) for v in heat[ys, xs].mean(axis=0))
            found.append(Candidate(int(c), float(weights.max()), total, centre, float(config.window), 1.0, probs))
    return found


def suppress(candidates: Sequence[Candidate], radius_factor: float = 0.5) -> list[Candidate]:
    """Each digit once: strongest first (peak probability, then mass); a candidate whose centre
    lies within ``radius_factor`` x the larger of the two windows of a kept one is dropped."""
    order = sorted(candidates, key=lambda c: (-round(c.score, 4), -c.mass))
    kept: list[Candidate] = []
    for cand in order:
        x, y = cand.center
        if all(math.hypot(x - k.center[0], y - k.center[1]) > radius_factor * max(cand.side, k.side) for k in kept):
            kept.append(cand)
    return kept


def _to_picture(cand: Candidate, x0: float, y0: float, scale: float) -> Candidate:
    """A candidate found in a crop resampled by 1/scale whose origin is (x0, y0) in the picture."""
    cx, cy = cand.center
    centre = (x0 + cx * scale, y0 + cy * scale)
    return Candidate(cand.class_id, cand.score, cand.mass, centre, cand.side * scale, scale, cand.probs)


def crop(ink: np.ndarray, center: tuple[float, float], size: tuple[int, int], scale: float) -> np.ndarray:
    """The ``size`` (h, w) model-px crop of ``ink`` around ``center`` resampled by ``1/scale``
    (zeros beyond the picture)."""
    h, w = size
    x0, y0 = center[0] - w * scale / 2, center[1] - h * scale / 2
    src = ink
    if scale > 1.3:  # shrinking: smooth first so thin strokes survive the bilinear sampling
        src = cv2.GaussianBlur(ink, (0, 0), 0.4 * scale)
    # Pixel centres map to pixel centres: crop pixel i covers picture x0 + (i + 0.5) * scale.
    offset = 0.5 * scale - 0.5
    matrix = np.float32([[scale, 0, x0 + offset], [0, scale, y0 + offset]])
    return cv2.warpAffine(
        src, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )


@dataclass(frozen=True)
class _Job:
    center: tuple[float, float]
    size: tuple[int, int]  # model px (h, w)
    scale: float


def _jobs(proposals: Sequence[Proposal], config: MultiScaleConfig) -> tuple[list[_Job], list[Proposal]]:
    """One crop per proposal and scale; proposals too large for a crop are returned apart."""
    jobs, too_large = [], []
    frame = config.window - 20  # MNIST's frame around its 20-px digit box
    for p in proposals:
        x1, y1, x2, y2 = p.box
        scales = [p.scale * f for f in config.factors] if p.scale is not None else list(config.levels)
        for s in scales:
            cw = math.ceil((x2 - x1) / s) + frame + 2 * config.margin
            ch = math.ceil((y2 - y1) / s) + frame + 2 * config.margin
            cw, ch = max(cw, config.window + 2 * config.margin), max(ch, config.window + 2 * config.margin)
            if max(cw, ch) > config.max_crop:
                too_large.append(p)
                break
            cw += (cw - config.window) % config.stride  # whole map steps
            ch += (ch - config.window) % config.stride
            jobs.append(_Job(p.center, (ch, cw), s))
    return jobs, too_large


def localize_proposals(
    run: Run, ink: np.ndarray, proposals: Sequence[Proposal], config: MultiScaleConfig = MultiScaleConfig()
) -> list[Candidate]:
    """Digits in ``ink`` found by running the model on a crop around each proposal (see module)."""
    jobs, too_large = _jobs(proposals, config)
    found: list[Candidate] = []
    if jobs:
        height = max(j.size[0] for j in jobs)
        width = max(j.size[1] for j in jobs)
        batch = np.zeros((len(jobs), height, width, 1), np.float32)
        for i, job in enumerate(jobs):
            batch[i, : job.size[0], : job.size[1], 0] = crop(ink, job.center, job.size, job.scale)
        heat = _check_heat(run(batch), len(jobs))
        for i, job in enumerate(jobs):
            x0 = job.center[0] - job.size[1] * job.scale / 2
            y0 = job.center[1] - job.size[0] * job.scale / 2
            found += [_to_picture(c, x0, y0, job.scale) for c in heat_candidates(heat[i], config)]
    for p in too_large:
        x1, y1, x2, y2 = p.box
        pad = config.margin * max(config.levels)
        ox, oy = max(0, int(x1 - pad)), max(0, int(y1 - pad))
        region = ink[oy : int(y2 + pad), ox : int(x2 + pad)]
        found += [
            Candidate(c.class_id, c.score, c.mass, (c.center[0] + ox, c.center[1] + oy), c.side, c.scale, c.probs)
            for c in _pyramid_candidates(run, region, config)
        ]
    return suppress(found, config.radius_factor)


def _check_heat(heat: np.ndarray, n: int) -> np.ndarray:
    heat = np.asarray(heat)
    if heat.ndim != 4 or heat.shape[0] != n:
        raise MultiScaleError(f"the model must return (N, H', W', classes) for N={n} inputs, got shape {heat.shape}")
    return heat


def _pyramid_candidates(run: Run, ink: np.ndarray, config: MultiScaleConfig) -> list[Candidate]:
    found = []
    h, w = ink.shape
    for s in config.levels:
        sh, sw = max(config.window, round(h / s)), max(config.window, round(w / s))
        level = cv2.resize(ink, (sw, sh), interpolation=cv2.INTER_AREA if s > 1 else cv2.INTER_LINEAR)
        heat = _check_heat(run(level[None, :, :, None].astype(np.float32, copy=False)), 1)[0]
        sx, sy = w / sw, h / sh
        for c in heat_candidates(heat, config):
            cx, cy = c.center
            found.append(Candidate(c.class_id, c.score, c.mass, (cx * sx, cy * sy), c.side * s, s, c.probs))
    return found


def localize_pyramid(run: Run, ink: np.ndarray, config: MultiScaleConfig = MultiScaleConfig()) -> list[Candidate]:
    """Digits in a whole ink image, the model run once per pyramid level, suppressed across levels."""
    if ink.ndim != 2:
        raise MultiScaleError(f"ink must be an HxW image, got shape {ink.shape}")
    return suppress(_pyramid_candidates(run, ink, config), config.radius_factor)


def digit_crop(ink: np.ndarray, box: tuple[int, int, int, int], size: int = 28, fit: int = 20) -> np.ndarray:
    """The ink inside ``box`` made like MNIST: longer side to ``fit`` px, padded to ``size``,
    centred by centre of mass (float32, [0, 1])."""
    x1, y1, x2, y2 = box
    piece = ink[max(0, y1) : y2, max(0, x1) : x2]
    out = np.zeros((size, size), np.float32)
    if piece.size == 0 or not piece.any():
        return out
    h, w = piece.shape
    f = fit / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    piece = cv2.resize(piece, (nw, nh), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = piece
    m = cv2.moments(out)
    if m["m00"] > 0:
        shift = np.float32([[1, 0, size / 2 - m["m10"] / m["m00"]], [0, 1, size / 2 - m["m01"] / m["m00"]]])
        out = cv2.warpAffine(out, shift, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    return out


def relabel(
    classify: Run,
    ink: np.ndarray,
    candidates: Sequence[Candidate],
    proposals: Sequence[Proposal],
) -> list[Candidate]:
    """Second opinion on each candidate's class from a 28x28 classifier (``classify``: NHWC batch
    -> (N, classes) probabilities), fed the candidate's own piece of ink normalised as MNIST is;
    the class is the argmax of the two models' summed probabilities (the localizer's mean over
    its region, ``Candidate.probs``; the classifier's alone where those are missing).

    Only a candidate lying in a proposal that holds one digit (its own scale, a box no larger
    than the candidate's window) is relabelled; the others keep the localizer's class. The
    localizer's score stays the detection's score.
    """
    pairs = []
    for i, cand in enumerate(candidates):
        x, y = cand.center
        for p in proposals:
            x1, y1, x2, y2 = p.box
            if p.scale is not None and x1 <= x <= x2 and y1 <= y <= y2 and max(x2 - x1, y2 - y1) <= cand.side:
                pairs.append((i, p))
                break
    if not pairs:
        return list(candidates)
    batch = np.stack([digit_crop(ink, p.box) for _, p in pairs])[:, :, :, None]
    probs = np.asarray(classify(batch)).reshape(len(pairs), -1)
    out = list(candidates)
    for (i, _), row in zip(pairs, probs, strict=True):
        c = out[i]
        both = c.probs is not None and len(c.probs) == len(row)
        mean = (row + np.asarray(c.probs)) / 2 if both else row
        out[i] = Candidate(int(mean.argmax()), c.score, c.mass, c.center, c.side, c.scale, tuple(map(float, mean)))
    return out
