"""Model outputs -> results: top-k classes, or FCN heatmaps -> digit detections in input pixels.

Localization follows the book: a class fires where its probability passes the threshold (0.98).
A real digit lights a cluster of neighbouring map positions, a spurious response only a few, so
responses are merged into connected regions, regions smaller than ``min_area`` positions are
dropped, and regions centred close to a stronger one are suppressed (non-maximum suppression
by centre distance: the windows are all 28 px, so distance says what IoU would).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class TopClass:
    class_id: int
    label: str
    prob: float


@dataclass(frozen=True)
class Detection:
    class_id: int
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in input pixels
    area: int = 0  # map positions in the merged region

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2


@dataclass
class Result:
    """What one input gave: top-k classes, detections, or an error. One per input, always."""

    source: str
    index: int
    latency_ms: float | None = None
    top: list[TopClass] | None = None
    detections: list[Detection] | None = None
    error: str | None = None
    extras: dict = field(default_factory=dict)

    def to_record(self) -> dict:
        """The JSON-lines record documented in the README (``run --json``)."""
        record: dict = {"source": self.source, "index": self.index}
        if self.error is not None:
            record["error"] = self.error
            return record
        if self.top is not None:
            record["top"] = [{"class_id": t.class_id, "label": t.label, "prob": round(t.prob, 6)} for t in self.top]
        if self.detections is not None:
            record["detections"] = [
                {
                    "class_id": d.class_id,
                    "label": d.label,
                    "score": round(d.score, 6),
                    "box": [round(v, 1) for v in d.box],
                }
                for d in self.detections
            ]
        record["latency_ms"] = None if self.latency_ms is None else round(self.latency_ms, 3)
        return record

    def summary(self) -> str:
        """One line for the terminal."""
        head = f"{self.index:>6} {self.source}"
        if self.error is not None:
            return f"{head}: ERROR {self.error}"
        if self.top is not None:
            best = ", ".join(f"{t.label} {t.prob:.3f}" for t in self.top)
            return f"{head}: {best}"
        found = ", ".join(
            f"{d.label}@({d.center[0]:.0f},{d.center[1]:.0f}) {d.score:.3f}" for d in self.detections or []
        )
        return f"{head}: {len(self.detections or [])} found" + (f": {found}" if found else "")


def top_k(probs: np.ndarray, classes: tuple[str, ...], k: int) -> list[TopClass]:
    """The ``k`` most probable classes of one probability vector, best first."""
    probs = probs.reshape(-1)
    k = max(1, min(k, probs.size))
    order = np.argsort(-probs, kind="stable")[:k]
    return [TopClass(int(i), classes[i] if i < len(classes) else str(int(i)), float(probs[i])) for i in order]


@dataclass(frozen=True)
class LocalizeConfig:
    threshold: float = 0.98  # the book's
    min_area: int = 3  # map positions a region needs to count as a digit
    merge_radius: float = 21.0  # px: a weaker region centred this close to a stronger one is the same digit
    window: int = 28  # the classifier's receptive field in input pixels
    stride: int = 2  # input pixels per map position


def localize(
    heat: np.ndarray,
    classes: tuple[str, ...],
    config: LocalizeConfig = LocalizeConfig(),
    scale: tuple[float, float] = (1.0, 1.0),
) -> list[Detection]:
    """Detections from an FCN output map (H', W', classes), boxes in input pixels.

    Each region's box is the classifier window at the region's probability-weighted centre.
    Regions are ranked by their probability mass (a real digit lights many positions of its own
    class); a region whose centre lies within ``merge_radius`` of a stronger one is dropped:
    it is the same digit seen as another class, or a fragment. Digits in neighbouring 28-px
    cells are 28 px apart and both survive. ``scale`` (sx, sy) maps model-input pixels back to
    the original frame.
    """
    if heat.ndim != 3:
        raise ValueError(f"heat must be (H, W, classes), got shape {heat.shape}")
    candidates: list[tuple[float, Detection]] = []
    half = config.window / 2
    for c in range(heat.shape[2]):
        plane = heat[:, :, c]
        mask = (plane >= config.threshold).astype(np.uint8)
        if not mask.any():
            continue
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for region in range(1, count):
            area = int(stats[region, cv2.CC_STAT_AREA])
            if area < config.min_area:
                continue
            ys, xs = np.nonzero(labels == region)
            weights = plane[ys, xs]
            cy, cx = float(np.average(ys, weights=weights)), float(np.average(xs, weights=weights))
            centre_x, centre_y = cx * config.stride + half, cy * config.stride + half
            box = (
                (centre_x - half) * scale[0],
                (centre_y - half) * scale[1],
                (centre_x + half) * scale[0],
                (centre_y + half) * scale[1],
            )
            label = classes[c] if c < len(classes) else str(c)
            candidates.append((float(weights.sum()), Detection(c, label, float(weights.max()), box, area)))
    candidates.sort(key=lambda item: item[0], reverse=True)
    kept: list[Detection] = []
    for _, det in candidates:
        cx, cy = det.center
        radius_x, radius_y = config.merge_radius * scale[0], config.merge_radius * scale[1]
        if all(((cx - k.center[0]) / radius_x) ** 2 + ((cy - k.center[1]) / radius_y) ** 2 > 1 for k in kept):
            kept.append(det)
    return sorted(kept, key=lambda d: (d.box[1], d.box[0]))


def heatmap_images(heat: np.ndarray, input_shape: tuple[int, int], config: LocalizeConfig = LocalizeConfig()):
    """The book's graymaps: per class, the map resized x stride and placed at the window offset so
    it lines up with the input. Returns a list of uint8 HxW images (255 = probability 1)."""
    h, w = input_shape
    out = []
    for c in range(heat.shape[2]):
        plane = cv2.resize(
            heat[:, :, c],
            (heat.shape[1] * config.stride, heat.shape[0] * config.stride),
            interpolation=cv2.INTER_NEAREST,
        )
        canvas = np.zeros((h, w), np.float32)
        top, left = (h - plane.shape[0]) // 2, (w - plane.shape[1]) // 2
        ph, pw = min(plane.shape[0], h - top), min(plane.shape[1], w - left)
        canvas[top : top + ph, left : left + pw] = plane[:ph, :pw]
        out.append(np.clip(canvas * 255, 0, 255).astype(np.uint8))
    return out
