from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgerun.runtime.multiscale import (
    Candidate,
    MultiScaleConfig,
    MultiScaleError,
    crop,
    heat_candidates,
    localize_proposals,
    localize_pyramid,
    pyramid_levels,
    suppress,
)
from edgerun.runtime.pages import ink_proposals


def bar_detector(batch: np.ndarray) -> np.ndarray:
    """A real (if simple) 28-px-window, stride-2 detector with the FCN's output geometry: class 1
    is the share of the window's ink inside its central 8x22 (where an upright '1' of MNIST's
    size fits, and one 1.25x larger does not); the other classes share the rest."""
    out = []
    for image in batch[:, :, :, 0]:
        box = dict(normalize=False, borderType=cv2.BORDER_CONSTANT)
        inner = cv2.boxFilter(image, -1, (8, 22), anchor=(3, 10), **box)
        outer = cv2.boxFilter(image, -1, (28, 28), anchor=(13, 13), **box)
        share = np.where(outer > 10, inner / np.maximum(outer, 1e-6), 0.0)
        rows, cols = (image.shape[0] - 28) // 2 + 1, (image.shape[1] - 28) // 2 + 1
        share = share[13 : 13 + 2 * rows : 2, 13 : 13 + 2 * cols : 2]  # windows [2p, 2p + 28)
        heat = np.repeat(((1 - share) / 9)[:, :, None], 10, axis=2)
        heat[:, :, 1] = share
        out.append(heat)
    return np.stack(out).astype(np.float32)


def bars_page(centres, scale: float, shape=(200, 300)) -> np.ndarray:
    """Upright bars 20 x scale px high and 3 x scale wide ('1's of that scale) on 0."""
    ink = np.zeros(shape, np.float32)
    h, w = 10 * scale, 1.5 * scale
    for x, y in centres:
        ink[round(y - h) : round(y + h), round(x - w) : round(x + w)] = 1.0
    return ink


@pytest.mark.parametrize(("low", "high"), [(0.8, 1.5), (0.9, 1.3), (1.0, 1.0), (0.5, 3.0)])
def test_pyramid_levels_cover_the_range(low, high):
    levels = pyramid_levels(low, high)
    assert levels[0] * 0.8 == pytest.approx(low)
    assert levels[-1] * 1.25 >= high
    assert all(b * 0.8 <= a * 1.25 + 1e-3 for a, b in zip(levels, levels[1:], strict=False))  # no gaps


def test_heat_candidates_map_positions_to_window_centres():
    heat = np.zeros((9, 9, 10), np.float32)
    heat[3:6, 4:7, 2] = 0.99  # a 3x3 region centred on map position (y=4, x=5)
    heat[0, 0, 7] = 0.99  # one position alone: below min_area
    found = heat_candidates(heat, MultiScaleConfig(min_area=2))
    assert len(found) == 1
    c = found[0]
    assert c.class_id == 2 and c.center == pytest.approx((5 * 2 + 14, 4 * 2 + 14)) and c.mass == pytest.approx(9 * 0.99)


def test_suppress_keeps_each_digit_once_across_scales():
    same = [
        Candidate(3, 0.99, 5.0, (100, 100), 28, 1.0),
        Candidate(3, 0.995, 2.0, (106, 104), 35, 1.25),  # the same digit, another scale: the stronger stays
        Candidate(5, 0.99, 9.0, (95, 98), 28, 1.0),  # the same place read as another digit
    ]
    apart = Candidate(3, 0.99, 5.0, (140, 100), 28, 1.0)  # a neighbour 40 px away
    kept = suppress([*same, apart], radius_factor=0.5)
    assert kept == [same[1], apart]


def test_crop_resamples_around_a_centre():
    ink = np.zeros((100, 100), np.float32)
    ink[40:60, 40:60] = 1.0
    out = crop(ink, (50, 50), (20, 20), 2.0)  # 40x40 px of picture into 20x20
    assert out.shape == (20, 20)
    assert out[7:13, 7:13].min() > 0.9 and out[:4].max() < 0.1
    assert crop(ink, (0, 0), (10, 10), 1.0)[:5, :5].max() == 0  # beyond the picture: zeros


@pytest.mark.parametrize("scale", [0.8, 1.0, 1.5])
def test_proposals_find_each_digit_once_at_its_scale(scale):
    centres = [(60, 50), (160, 120), (250, 60)]
    ink = bars_page(centres, scale)
    proposals = ink_proposals(ink)
    assert [p.scale for p in proposals] == [pytest.approx(scale, abs=0.05)] * 3
    found = localize_proposals(bar_detector, ink, proposals, MultiScaleConfig(threshold=0.95))
    assert len(found) == 3
    for x, y in centres:
        nearest = min(found, key=lambda c: np.hypot(c.center[0] - x, c.center[1] - y))
        assert np.hypot(nearest.center[0] - x, nearest.center[1] - y) < 2
        assert nearest.class_id == 1 and nearest.side == pytest.approx(28 * scale, rel=0.05)


def test_pyramid_finds_digits_at_their_level():
    ink = np.maximum(bars_page([(60, 50)], 1.0), bars_page([(200, 130)], 1.6))
    found = localize_pyramid(bar_detector, ink, MultiScaleConfig(threshold=0.95, levels=(1.0, 1.6)))
    found.sort(key=lambda c: c.center[0])
    assert len(found) == 2
    for c, centre in zip(found, [(60, 50), (200, 130)], strict=True):
        assert c.center == pytest.approx(centre, abs=1.6)  # within one map step at level 1.6
    assert found[1].scale == 1.6  # the large one only at the large level


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: MultiScaleConfig(threshold=0), "threshold must be in"),
        (lambda: MultiScaleConfig(levels=()), "levels must be positive"),
        (lambda: pyramid_levels(1.5, 1.0), "need 0 < low <= high"),
        (lambda: heat_candidates(np.zeros((4, 4))), r"heat must be \(H, W, classes\)"),
        (lambda: localize_pyramid(lambda b: np.zeros((3, 3)), np.zeros((40, 40), np.float32)), "must return"),
    ],
)
def test_bad_settings_and_outputs_are_refused(call, message):
    with pytest.raises(MultiScaleError, match=message):
        call()


def centred_detector(batch: np.ndarray, stride: int = 2) -> np.ndarray:
    """A detector that knows a digit only when its window is centred on the ink's centre of mass
    (class 3, 0.97) and, like a real FCN, sees a partial view elsewhere as another digit with more
    confidence (class 1, 0.99: a 7's stem taken for a 1)."""
    out = []
    for image in batch[:, :, :, 0]:
        rows, cols = (image.shape[0] - 28) // stride + 1, (image.shape[1] - 28) // stride + 1
        heat = np.full((rows, cols, 10), 0.1, np.float32)
        for r in range(rows):
            for c in range(cols):
                m = cv2.moments(image[r * stride : r * stride + 28, c * stride : c * stride + 28])
                if m["m00"] < 1:
                    continue
                off = np.hypot(m["m10"] / m["m00"] + 0.5 - 14, m["m01"] / m["m00"] + 0.5 - 14)
                heat[r, c] = 0.001
                heat[r, c, 3 if off < 0.75 else 1] = 0.97 if off < 0.75 else 0.99
        out.append(heat)
    return np.stack(out)


def l_shape(x: int, y: int, shape=(120, 160)) -> np.ndarray:
    """A stroke 20 px high with a foot to the right: its ink's centre of mass is not its box's."""
    ink = np.zeros(shape, np.float32)
    ink[y : y + 20, x : x + 3] = 1.0
    ink[y + 17 : y + 20, x : x + 12] = 1.0
    return ink


def test_proposals_carry_the_inks_centre_of_mass():
    ink = l_shape(40, 30)
    (proposal,) = ink_proposals(ink)
    m = cv2.moments(ink)
    assert proposal.anchor == pytest.approx((m["m10"] / m["m00"] + 0.5, m["m01"] / m["m00"] + 0.5))
    assert proposal.anchor != pytest.approx(proposal.center, abs=1)


def test_anchor_labels_the_digit_where_its_window_is_centred():
    ink = l_shape(40, 30)
    proposals = ink_proposals(ink)
    peak = localize_proposals(centred_detector, ink, proposals, MultiScaleConfig(threshold=0.9, min_area=1))
    anchored = localize_proposals(
        centred_detector, ink, proposals, MultiScaleConfig(threshold=0.9, min_area=1, label="anchor")
    )
    # the peak rule takes the more confident partial view; the anchor rule the centred window
    assert [c.class_id for c in peak] == [1]
    assert [c.class_id for c in anchored] == [3]
    assert anchored[0].probs[3] == pytest.approx(0.97)
    # where it is still comes from the regions (probability-weighted), within a quarter window
    ax, ay = proposals[0].anchor
    assert np.hypot(anchored[0].center[0] - ax, anchored[0].center[1] - ay) < 7
    with pytest.raises(MultiScaleError, match="label must be one of"):
        MultiScaleConfig(label="centre")
