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

#: how a proposal's digit gets its class (MultiScaleConfig.label)
LABEL_RULES = ("peak", "anchor")


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
        label: how a proposal's digit gets its class. ``peak``: the class whose region peaks
            highest (the book's reading of the class maps). ``anchor``: the crop is placed so
            that the ink's centre of mass falls on a map position, and the class is the one
            the model gives there, where MNIST centres its digits; off-centre windows that see
            part of a digit (a 7's stem as a 1) no longer outvote it. Other candidates in the
            crop keep their own class.
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
    label: str = "peak"

    def __post_init__(self) -> None:
        if self.label not in LABEL_RULES:
            raise MultiScaleError(f"label must be one of {LABEL_RULES}, got {self.label!r}")
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


@dataclass(frozen=True)
class Placement:
    """Where a model input sits in the picture: input pixel (x, y) is picture pixel
    (x0 + x * sx, y0 + y * sy); a window of the model's size is ``scale`` times larger there."""

    x0: float
    y0: float
    sx: float
    sy: float
    scale: float
    anchor: tuple[float, float] | None = None  # a proposal's ink centre of mass (picture px)
    anchor_cell: tuple[int, int] | None = None  # the map position (row, column) that sees it centred

    def place(self, cand: Candidate) -> Candidate:
        cx, cy = cand.center
        centre = (self.x0 + cx * self.sx, self.y0 + cy * self.sy)
        return Candidate(cand.class_id, cand.score, cand.mass, centre, cand.side * self.scale, self.scale, cand.probs)


@dataclass
class CropPlan:
    """One picture's model inputs (HxWx1 float32, ink units) and where each sits in the picture.

    Crops of one picture are zero-padded to one size, so they run as one batch (and with other
    pictures' crops of the same size); whole-region pyramid levels have sizes of their own.
    """

    tensors: list[np.ndarray]
    placements: list[Placement]


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
    anchor: tuple[float, float] | None = None


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
            anchor = p.anchor if config.label == "anchor" else None
            if anchor is not None:  # one map step more, to move the crop onto the anchor
                cw, ch = cw + config.stride, ch + config.stride
            jobs.append(_Job(p.center, (ch, cw), s, anchor))
    return jobs, too_large


def plan_pyramid(ink: np.ndarray, config: MultiScaleConfig, origin: tuple[int, int] = (0, 0)) -> CropPlan:
    """The whole of ``ink`` at each pyramid level (``origin``: where ``ink`` sits in the picture)."""
    if ink.ndim != 2:
        raise MultiScaleError(f"ink must be an HxW image, got shape {ink.shape}")
    plan = CropPlan([], [])
    h, w = ink.shape
    for s in config.levels:
        sh, sw = max(config.window, round(h / s)), max(config.window, round(w / s))
        level = cv2.resize(ink, (sw, sh), interpolation=cv2.INTER_AREA if s > 1 else cv2.INTER_LINEAR)
        plan.tensors.append(level[:, :, None].astype(np.float32, copy=False))
        plan.placements.append(Placement(origin[0], origin[1], w / sw, h / sh, s))
    return plan


def _placement(job: _Job, config: MultiScaleConfig) -> Placement:
    """Where a job's crop sits: centred on its proposal, or, with an anchor, moved by less than
    a map step so that the window of the nearest map position is centred on the anchor."""
    s, (h, w) = job.scale, job.size
    x0, y0 = job.center[0] - w * s / 2, job.center[1] - h * s / 2
    if job.anchor is None:
        return Placement(x0, y0, s, s, s)
    half = config.window / 2
    ax, ay = job.anchor
    col = round(((ax - x0) / s - half) / config.stride)
    row = round(((ay - y0) / s - half) / config.stride)
    x0, y0 = ax - (half + col * config.stride) * s, ay - (half + row * config.stride) * s
    return Placement(x0, y0, s, s, s, job.anchor, (row, col))


def _label_at_anchor(heat: np.ndarray, placement: Placement, found: list[Candidate], radius: float) -> list[Candidate]:
    """``found`` with the candidates near the placement's anchor given the class the map has
    at the anchor's cell (see ``MultiScaleConfig.label``)."""
    row, col = placement.anchor_cell
    if not (0 <= row < heat.shape[0] and 0 <= col < heat.shape[1]):
        return found
    probs = heat[row, col]
    best = int(np.argmax(probs))
    ax, ay = placement.anchor
    kept = tuple(float(v) for v in probs)
    return [
        Candidate(best, c.score, c.mass, c.center, c.side, c.scale, kept)
        if math.hypot(c.center[0] - ax, c.center[1] - ay) <= radius * c.side
        else c
        for c in found
    ]


def plan_crops(ink: np.ndarray, proposals: Sequence[Proposal], config: MultiScaleConfig) -> CropPlan:
    """A crop around each proposal at its own scale (see the module docstring); proposals too
    large for a crop are covered by pyramid levels of their region."""
    jobs, too_large = _jobs(proposals, config)
    plan = CropPlan([], [])
    if jobs:
        height, width = max(j.size[0] for j in jobs), max(j.size[1] for j in jobs)
        for job in jobs:
            placement = _placement(job, config)
            h, w = job.size
            centre = (placement.x0 + w * job.scale / 2, placement.y0 + h * job.scale / 2)
            tensor = np.zeros((height, width, 1), np.float32)
            tensor[:h, :w, 0] = crop(ink, centre, job.size, job.scale)
            plan.tensors.append(tensor)
            plan.placements.append(placement)
    for p in too_large:
        x1, y1, x2, y2 = p.box
        pad = config.margin * max(config.levels)
        ox, oy = max(0, int(x1 - pad)), max(0, int(y1 - pad))
        region = plan_pyramid(ink[oy : int(y2 + pad), ox : int(x2 + pad)], config, (ox, oy))
        plan.tensors += region.tensors
        plan.placements += region.placements
    return plan


def collect(plan: CropPlan, heats: Sequence[np.ndarray], config: MultiScaleConfig) -> list[Candidate]:
    """Each digit once, in picture pixels, from the model's maps for ``plan``'s inputs."""
    if len(heats) != len(plan.placements):
        raise MultiScaleError(f"{len(plan.placements)} inputs but {len(heats)} outputs")
    found = []
    for heat, placement in zip(heats, plan.placements, strict=True):
        heat = np.asarray(heat)
        placed = [placement.place(c) for c in heat_candidates(heat, config)]
        if placement.anchor_cell is not None and placed:
            placed = _label_at_anchor(heat, placement, placed, config.radius_factor)
        found += placed
    return suppress(found, config.radius_factor)


def _run_plan(run: Run, plan: CropPlan) -> list[np.ndarray]:
    """``run`` over the plan's inputs, those of one size as one batch."""
    heats: list[np.ndarray | None] = [None] * len(plan.tensors)
    groups: dict[tuple, list[int]] = {}
    for i, tensor in enumerate(plan.tensors):
        groups.setdefault(tensor.shape, []).append(i)
    for members in groups.values():
        out = _check_heat(run(np.stack([plan.tensors[i] for i in members])), len(members))
        for row, i in enumerate(members):
            heats[i] = out[row]
    return heats


def localize_proposals(
    run: Run, ink: np.ndarray, proposals: Sequence[Proposal], config: MultiScaleConfig = MultiScaleConfig()
) -> list[Candidate]:
    """Digits in ``ink`` found by running the model on a crop around each proposal (see module)."""
    plan = plan_crops(ink, proposals, config)
    return collect(plan, _run_plan(run, plan), config)


def _check_heat(heat: np.ndarray, n: int) -> np.ndarray:
    heat = np.asarray(heat)
    if heat.ndim != 4 or heat.shape[0] != n:
        raise MultiScaleError(f"the model must return (N, H', W', classes) for N={n} inputs, got shape {heat.shape}")
    return heat


def localize_pyramid(run: Run, ink: np.ndarray, config: MultiScaleConfig = MultiScaleConfig()) -> list[Candidate]:
    """Digits in a whole ink image, the model run once per pyramid level, suppressed across levels."""
    plan = plan_pyramid(ink, config)
    return collect(plan, _run_plan(run, plan), config)
