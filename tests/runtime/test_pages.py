from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgerun.runtime.metadata import Preprocessing
from edgerun.runtime.pages import (
    BackgroundConfig,
    PageError,
    ProposalConfig,
    box_scale,
    ink_polarity,
    ink_proposals,
    normalise_background,
)
from edgerun.runtime.preprocess import preprocessor


def lit_page(dark_ink: bool = True, shadow: bool = True) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A 240x320 page lit from one side (and half in shadow) with three ring 'digits' drawn on it."""
    v, u = np.mgrid[0:240, 0:320].astype(np.float32)
    light = 0.65 + 0.45 * u / 320
    if shadow:
        light *= np.where(v > 150, 0.7, 1.0)
    centres = [(60, 60), (160, 200), (260, 120)]
    ink = np.zeros((240, 320), np.float32)
    for x, y in centres:
        cv2.ellipse(ink, (x, y), (8, 12), 0, 0, 360, 1.0, 3, cv2.LINE_AA)
    if dark_ink:
        page = 220 * light * (1 - 0.8 * ink)
    else:
        page = 40 * light + ink * 150 * light
    return np.clip(page, 0, 255).astype(np.uint8), centres


@pytest.mark.parametrize("dark_ink", [True, False])
def test_background_and_lighting_are_removed(dark_ink):
    page, centres = lit_page(dark_ink)
    found = normalise_background(page)
    assert found.polarity == ("dark_on_light" if dark_ink else "light_on_dark")
    assert found.ink.shape == page.shape and found.ink.dtype == np.float32
    for x, y in centres:  # each ring reaches full ink, the one in the shadow too
        assert found.ink[y - 14 : y + 15, x - 10 : x + 11].max() == pytest.approx(1.0)
    strokes = np.zeros(page.shape, np.uint8)
    for x, y in centres:
        cv2.ellipse(strokes, (x, y), (8, 12), 0, 0, 360, 1, 9)
    paper = found.ink[strokes == 0]
    assert np.mean(paper == 0) > 0.99  # gradient, shadow edge and paper are background


def test_a_large_zero_is_dark_ink_on_paper():
    """The hole of a big 0 is a light feature narrower than the background kernel: the polarity
    test must still call the ring the ink."""
    page = np.full((120, 160), 200, np.uint8)
    cv2.ellipse(page, (80, 60), (30, 45), 0, 0, 360, 40, 14)
    assert ink_polarity(page, 50) == "dark_on_light"  # normalise_background passes twice its kernel


def test_blank_and_tiny_pictures():
    blank = normalise_background(np.full((60, 80), 180, np.uint8))
    assert blank.strength < 1 and blank.ink.max() == 0
    tiny = normalise_background(np.array([[3]], np.uint8))
    assert tiny.ink.shape == (1, 1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: normalise_background(np.zeros((4, 4, 3), np.uint8)), "HxW grey image"),
        (lambda: normalise_background(np.zeros((4, 4), np.float32)), "uint8"),
        (lambda: BackgroundConfig(polarity="up"), "polarity must be one of"),
        (lambda: BackgroundConfig(cut=0.8, full=0.5), "cut < full"),
        (lambda: ink_proposals(np.zeros((0, 5), np.float32)), "non-empty HxW ink image"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(call, message):
    with pytest.raises(PageError, match=message):
        call()


def test_proposals_box_each_piece_of_ink_and_drop_specks():
    ink = np.zeros((100, 200), np.float32)
    ink[30:56, 20:32] = 1.0  # a 12x26 digit-like piece (a hollow box): scale 26/20
    ink[32:54, 22:30] = 0.0
    cv2.line(ink, (120, 40), (120, 60), 1.0, 2)  # a '1'
    ink[90, 190] = 1.0  # a speck
    found = ink_proposals(ink, ProposalConfig())
    assert len(found) == 2
    boxes = sorted(p.box for p in found)
    assert boxes[0] == (20, 30, 32, 56)
    assert found[0].scale == pytest.approx(26 / 20)
    assert ink_proposals(np.zeros((50, 50), np.float32)) == []


def test_digits_joined_by_the_dilation_are_split_back():
    """Two digits stacked 3 px apart (rows of a page, the book's grid) touch once broken strokes
    are joined: the 20x43 piece has no digit's size, so it is looked at with less joining."""
    ink = np.zeros((80, 60), np.float32)
    ink[10:30, 20:34] = 1.0  # a 14x20 digit (scale 1.0)
    ink[12:28, 22:32] = 0.0
    ink[33:53, 22:32] = 1.0  # another, 3 px below
    found = ink_proposals(ink, ProposalConfig())
    assert sorted(p.box for p in found) == [(20, 10, 34, 30), (22, 33, 32, 53)]
    assert all(p.scale == pytest.approx(1.0) for p in found)
    assert all(p.anchor is not None for p in found)
    # A digit whose strokes are broken by less than the join stays one piece.
    broken = np.zeros((60, 60), np.float32)
    broken[10:20, 20:30] = 1.0
    broken[21:30, 20:30] = 1.0  # a 1-px crack across a 10x20 piece
    assert [p.box for p in ink_proposals(broken, ProposalConfig())] == [(20, 10, 30, 30)]
    # A piece that splits into parts no digit has (a long bar and a speck) is kept whole.
    bar = np.zeros((100, 60), np.float32)
    bar[5:90, 28:31] = 1.0
    bar[91:95, 28:31] = 1.0
    assert [(p.box, p.scale) for p in ink_proposals(bar, ProposalConfig())] == [((28, 5, 31, 95), None)]
    # Noise joins into one piece far larger than a few digits: it is not taken apart into the
    # thousands of specks it is made of (each would be measured), it stays one implausible piece.
    noise = (np.random.default_rng(0).random((200, 200)) > 0.93).astype(np.float32)
    found = ink_proposals(noise, ProposalConfig())
    assert found[0].box == (0, 0, 200, 200) and all(p.scale is None for p in found) and len(found) < 5


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(14, 20, 1.0), (22, 20, 1.1), (40, 20, 1.0), (10, 60, None), (3, 4, None)],
)
def test_box_scale(width, height, expected):
    assert box_scale(width, height) == (pytest.approx(expected) if expected else None)


def test_page_recipe_gives_light_strokes_on_zero():
    page, centres = lit_page()
    prep = preprocessor(Preprocessing(recipe="page", size=(None, None), color="gray", scale=1 / 255))
    out = prep(cv2.cvtColor(page, cv2.COLOR_GRAY2BGR))
    assert out.shape == (240, 320, 1) and out.dtype == np.float32
    assert out.max() == pytest.approx(1.0) and np.median(out) == 0
    assert prep(np.full((10, 12), 200, np.uint8)).shape == (28, 28, 1)  # padded to the window
