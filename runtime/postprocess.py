"""Model outputs -> answers: top-k classes, or FCN heatmaps -> digit detections in input pixels.

Localization follows the book: a class fires where its probability passes the threshold (0.98).
A real digit lights a cluster of neighbouring map positions, a spurious response only a few, so
responses are merged into connected regions, regions smaller than ``min_area`` positions are
dropped, and regions centred close to a stronger one are suppressed (non-maximum suppression
by centre distance: the windows are all 28 px, so distance says what IoU would).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .results import Detection, TopClass


def top_k(probs: np.ndarray, classes: tuple[str, ...], k: int) -> list[TopClass]:
    """The ``k`` most probable classes of one probability vector, best first."""
    probs = probs.reshape(-1)
    k = max(1, min(k, probs.size))
    order = np.argsort(-probs, kind="stable")[:k]
    return [TopClass(int(i), classes[i] if i < len(classes) else str(int(i)), float(probs[i])) for i in order]


@dataclass(frozen=True)
class LocalizeConfig:
    """How class maps become detections (threshold, region size, merging, map geometry)."""

    threshold: float = 0.98  # the book's
    min_area: int = 3  # map positions a region needs to count as a digit
    merge_radius: float = 21.0  # px: a weaker region centred this close to a stronger one is the same digit
    window: int = 28  # the classifier's receptive field in input pixels (from the model's metadata)
    stride: int = 2  # input pixels per map position (from the model's metadata)


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


def heatmap_images(heat: np.ndarray, input_shape: tuple[int, int], stride: int) -> list[np.ndarray]:
    """The book's graymaps: per class, the map resized x stride and placed at the window offset so
    it lines up with the input. Returns a list of uint8 HxW images (255 = probability 1)."""
    h, w = input_shape
    out = []
    for c in range(heat.shape[2]):
        plane = cv2.resize(
            heat[:, :, c],
            (heat.shape[1] * stride, heat.shape[0] * stride),
            interpolation=cv2.INTER_NEAREST,
        )
        canvas = np.zeros((h, w), np.float32)
        top, left = (h - plane.shape[0]) // 2, (w - plane.shape[1]) // 2
        ph, pw = min(plane.shape[0], h - top), min(plane.shape[1], w - left)
        canvas[top : top + ph, left : left + pw] = plane[:ph, :pw]
        out.append(np.clip(canvas * 255, 0, 255).astype(np.uint8))
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """Probabilities from logits along the last axis (a new array; one buffer, worked in place)."""
    e = x - x.max(axis=-1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e
