from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgerun.scenes.field import PageSpec, SceneError, make_page, make_photo, pages, photos


def ring_digits(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in 28x28 digits (light rings on black) for generator tests that need no MNIST."""
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        cv2.ellipse(images[i], (14, 14), (5 + i % 3, 9), 0, 0, 360, 255, 2 + i % 2)
    return images, np.arange(n) % 10


def overlap(a, b) -> bool:
    (ax, ay), (bx, by) = a.center, b.center
    return abs(ax - bx) < (a.side + b.side) / 2 - 1 and abs(ay - by) < (a.side + b.side) / 2 - 1


@pytest.mark.parametrize("background", ["light", "dark"])
def test_pages_follow_the_spec(background):
    digits, labels = ring_digits()
    spec = PageSpec()
    for page in pages(digits, labels, 6, seed=3, background=background):
        h, w = spec.size
        assert page.image.shape == (h, w, 3) and page.image.dtype == np.uint8
        assert 3 <= len(page.truth) <= 8 and page.background == background
        for t in page.truth:
            assert 0.9 * 28 - 1 <= t.side <= 1.3 * 28 + 1
            assert t.side / 2 <= t.center[0] <= w - t.side / 2 and t.side / 2 <= t.center[1] <= h - t.side / 2
        assert not any(overlap(a, b) for i, a in enumerate(page.truth) for b in page.truth[i + 1 :])
        gray = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY)
        median = float(np.median(gray))
        assert median > 100 if background == "light" else median < 100


def test_pages_repeat_per_seed_and_index():
    digits, labels = ring_digits()
    first = list(pages(digits, labels, 3, seed=5, background="light"))
    again = list(pages(digits, labels, 2, seed=5, background="light"))  # page i does not depend on the count
    other = next(pages(digits, labels, 1, seed=6, background="light"))
    for a, b in zip(first, again, strict=False):
        np.testing.assert_array_equal(a.image, b.image)
        assert a.truth == b.truth
    assert not np.array_equal(first[0].image, other.image)


def test_ink_is_darker_than_paper_where_the_digit_is():
    digits, labels = ring_digits()
    page = make_page(digits, labels, np.random.default_rng(0), "light", PageSpec(digits=(1, 1)))
    gray = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY).astype(float)
    t = page.truth[0]
    x, y, half = int(t.center[0]), int(t.center[1]), int(t.side / 2)
    patch = gray[y - half : y + half, x - half : x + half]
    assert patch.min() < 0.7 * np.median(gray)  # the ring's ink


def test_photo_has_one_digit_inside_the_frame():
    digits, labels = ring_digits(4)
    shots = list(photos(digits, labels, seed=1))
    assert len(shots) == 4
    for shot, label in zip(shots, labels, strict=True):
        assert shot.image.shape == (480, 640, 3) and len(shot.truth) == 1
        t = shot.truth[0]
        assert t.label == label and 0.2 * 480 - 1 <= t.side <= 0.75 * 480 + 1
    again = make_photo(digits[0], 0, np.random.default_rng([1, 0]))
    np.testing.assert_array_equal(again.image, shots[0].image)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d, y: make_page(d, y, np.random.default_rng(0), "grey"), "background must be one of"),
        (lambda d, y: make_page(d[:0], y[:0], np.random.default_rng(0), "light"), "non-empty pool"),
        (lambda d, y: PageSpec(size=(20, 20)), "at least 40x40"),
        (lambda d, y: PageSpec(scale=(1.2, 0.9)), "scale must be a range"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(call, message):
    digits, labels = ring_digits()
    with pytest.raises(SceneError, match=message):
        call(digits, labels)
