"""Pictures like a webcam gives: pages of digits and photos of one digit, with their truth.

Every picture is rendered from real 28x28 MNIST digits (light strokes on black, used as ink
coverage) and is reproducible: picture ``i`` of seed ``s`` comes from its own generator
``np.random.default_rng([s, i])``, so it is the same whatever the count asked for.

**Pages of digits** (:func:`make_page`): 3-8 digits at arbitrary places (not on a grid, frames
never overlapping), each at 0.9-1.3x MNIST's size, on

- *light* paper: a paper tint under uneven lighting (a linear gradient, vignetting, soft
  low-frequency blobs and, on a third of the pages, a soft shadow edge), dark ink (black, blue
  or pencil-grey), or
- a *dark* background (a board or screen under the same kind of lighting) with light ink;

then a mild Gaussian blur, sensor noise and JPEG compression. 640x480 BGR by default.

**Photos of one digit** (:func:`make_photo`): 640x480, dark ink on uneven light paper, the
digit at a random place and size (its 28-px frame 20-75% of the short side), rotated by up to
10 degrees, then blur, noise and JPEG.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from .score import Truth

BACKGROUNDS = ("light", "dark")


class SceneError(ValueError):
    """A generator setting that cannot make a picture; the message says what was expected."""


@dataclass(frozen=True)
class Picture:
    image: np.ndarray  # uint8 HxWx3 BGR, as a camera gives
    truth: list[Truth]
    background: str  # "light" or "dark"


@dataclass(frozen=True)
class PageSpec:
    """How pages of digits are made (ranges are uniform draws per page or per digit)."""

    size: tuple[int, int] = (480, 640)  # height, width
    digits: tuple[int, int] = (3, 8)  # per page, inclusive
    scale: tuple[float, float] = (0.9, 1.3)  # x MNIST's 28 px, per digit
    rotation: float = 0.0  # degrees, +-; pages as described are not rotated
    blur: tuple[float, float] = (0.3, 1.0)  # Gaussian sigma, px
    noise: tuple[float, float] = (1.5, 5.0)  # sensor noise sigma, grey levels
    jpeg: tuple[int, int] = (55, 92)  # quality
    shadow_probability: float = 1 / 3
    margin: int = 4  # px kept free at the picture's edges

    def __post_init__(self) -> None:
        h, w = self.size
        if h < 40 or w < 40:
            raise SceneError(f"page size must be at least 40x40, got {h}x{w}")
        lo, hi = self.digits
        if not 0 <= lo <= hi:
            raise SceneError(f"digits must be a range 0 <= low <= high, got {self.digits}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise SceneError(f"scale must be a range 0 < low <= high, got {self.scale}")


@dataclass(frozen=True)
class PhotoSpec:
    """How photos of one digit are made."""

    size: tuple[int, int] = (480, 640)  # height, width
    side: tuple[float, float] = (0.2, 0.75)  # the digit's 28-px frame, as a fraction of the short side
    rotation: float = 10.0  # degrees, +-
    blur: tuple[float, float] = (0.5, 2.0)
    noise: tuple[float, float] = (2.0, 6.0)
    jpeg: tuple[int, int] = (55, 92)
    shadow_probability: float = 1 / 3


def illumination(shape: tuple[int, int], rng: np.random.Generator, shadow_probability: float = 1 / 3) -> np.ndarray:
    """A float32 HxW lighting field around 1: gradient, vignetting, soft blobs, maybe a shadow."""
    h, w = shape
    v, u = np.mgrid[-1 : 1 : complex(0, h), -1 : 1 : complex(0, w)].astype(np.float32)
    field = 1.0 + rng.uniform(-0.25, 0.25) * u + rng.uniform(-0.25, 0.25) * v
    cx, cy = rng.uniform(-0.5, 0.5, size=2)
    field -= rng.uniform(0.0, 0.35) * ((u - cx) ** 2 + (v - cy) ** 2) / 2
    for _ in range(int(rng.integers(0, 4))):
        bx, by = rng.uniform(-1, 1, size=2)
        sigma = rng.uniform(0.2, 0.6)
        field += rng.uniform(-0.12, 0.12) * np.exp(-((u - bx) ** 2 + (v - by) ** 2) / (2 * sigma**2))
    if rng.random() < shadow_probability:
        angle = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(-0.6, 0.6)
        softness = rng.uniform(0.04, 0.15)
        distance = np.cos(angle) * u + np.sin(angle) * v - offset
        field *= 1.0 - rng.uniform(0.15, 0.35) / (1.0 + np.exp(-distance / softness))
    return np.clip(field, 0.35, 1.3).astype(np.float32)


def _coverage(digit: np.ndarray, side: int, angle: float) -> np.ndarray:
    """The digit as ink coverage in [0, 1], resized to ``side`` px and rotated about its centre."""
    alpha = digit.astype(np.float32) / 255.0
    interp = cv2.INTER_AREA if side < digit.shape[0] else cv2.INTER_LINEAR
    alpha = cv2.resize(alpha, (side, side), interpolation=interp)
    if angle:
        rot = cv2.getRotationMatrix2D((side / 2 - 0.5, side / 2 - 0.5), angle, 1.0)
        alpha = cv2.warpAffine(alpha, rot, (side, side), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.clip(alpha, 0.0, 1.0)


def _paper(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A light paper colour (BGR, 0-255) and a dark ink reflectance relative to it (BGR, 0-1)."""
    level = rng.uniform(170, 245)
    tint = np.array([rng.uniform(0.88, 1.0), rng.uniform(0.93, 1.0), 1.0], np.float32)  # slightly warm
    kind = rng.choice(["black", "blue", "pencil"], p=[0.5, 0.3, 0.2])
    if kind == "black":
        ink = np.full(3, rng.uniform(0.06, 0.25), np.float32)
    elif kind == "blue":
        ink = np.array([rng.uniform(0.4, 0.6), rng.uniform(0.15, 0.3), rng.uniform(0.08, 0.2)], np.float32)
    else:
        ink = np.full(3, rng.uniform(0.3, 0.5), np.float32)
    return (level * tint).astype(np.float32), ink


def _board(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A dark background colour and a light ink colour (BGR, 0-255)."""
    base = rng.uniform(10, 70)
    tint = np.array([rng.uniform(0.85, 1.1), rng.uniform(0.9, 1.15), rng.uniform(0.85, 1.1)], np.float32)
    ink = rng.uniform(150, 250) * np.array([rng.uniform(0.92, 1.0), rng.uniform(0.95, 1.0), 1.0], np.float32)
    return (base * tint).astype(np.float32), ink.astype(np.float32)


def _finish(image: np.ndarray, rng: np.random.Generator, blur, noise, jpeg) -> np.ndarray:
    """Camera effects on a float BGR image: blur, sensor noise, 8 bits, JPEG."""
    sigma = rng.uniform(*blur)
    if sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    image = image + rng.normal(0.0, rng.uniform(*noise), size=image.shape).astype(np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    quality = int(rng.integers(jpeg[0], jpeg[1] + 1))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 BGR image
        raise SceneError("OpenCV could not JPEG-encode the picture")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _compose(coverage: np.ndarray, background: str, rng: np.random.Generator, shadow_probability: float) -> np.ndarray:
    """Ink coverage (HxW, 0-1) onto light paper or a dark board under uneven lighting: float BGR."""
    h, w = coverage.shape
    light = illumination((h, w), rng, shadow_probability)[:, :, None]
    alpha = coverage[:, :, None]
    if background == "light":
        paper, ink = _paper(rng)
        texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0)[:, :, None]
        surface = paper * (1.0 + rng.uniform(0.005, 0.02) * texture)
        return light * surface * (1.0 - alpha * (1.0 - ink))
    board, ink = _board(rng)
    return light * (board + alpha * (ink - board))


def _place(
    rng: np.random.Generator, sides: list[int], size: tuple[int, int], margin: int
) -> tuple[list[tuple[int, int]], list[int]]:
    """Top-left corners for frames of ``sides`` px that do not overlap, and the sides that fit."""
    h, w = size
    placed: list[tuple[int, int, int]] = []
    for side in sides:
        if side + 2 * margin > min(h, w):
            continue
        for _ in range(200):
            x = int(rng.integers(margin, w - side - margin + 1))
            y = int(rng.integers(margin, h - side - margin + 1))
            if all(x >= px + ps or px >= x + side or y >= py + ps or py >= y + side for px, py, ps in placed):
                placed.append((x, y, side))
                break
    return [(x, y) for x, y, _ in placed], [s for _, _, s in placed]


def make_page(
    digits: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    background: str,
    spec: PageSpec = PageSpec(),
) -> Picture:
    """One page of digits drawn from ``digits`` (uint8 N x 28 x 28, light on black) and ``labels``."""
    if background not in BACKGROUNDS:
        raise SceneError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    if len(digits) == 0 or len(digits) != len(labels):
        raise SceneError(f"need a non-empty pool of digits with one label each, got {len(digits)} and {len(labels)}")
    h, w = spec.size
    count = int(rng.integers(spec.digits[0], spec.digits[1] + 1))
    sides = [max(8, round(28 * rng.uniform(*spec.scale))) for _ in range(count)]
    corners, sides = _place(rng, sides, spec.size, spec.margin)
    coverage = np.zeros((h, w), np.float32)
    truth = []
    for (x, y), side in zip(corners, sides, strict=True):
        i = int(rng.integers(len(digits)))
        angle = rng.uniform(-spec.rotation, spec.rotation) if spec.rotation else 0.0
        patch = _coverage(digits[i], side, angle)
        region = coverage[y : y + side, x : x + side]
        np.maximum(region, patch, out=region)
        truth.append(Truth(int(labels[i]), (x + side / 2, y + side / 2), float(side)))
    image = _compose(coverage, background, rng, spec.shadow_probability)
    return Picture(_finish(image, rng, spec.blur, spec.noise, spec.jpeg), truth, background)


def make_photo(digit: np.ndarray, label: int, rng: np.random.Generator, spec: PhotoSpec = PhotoSpec()) -> Picture:
    """A photo of one digit (uint8 28x28, light on black) in dark ink on uneven light paper."""
    h, w = spec.size
    side = max(12, round(min(h, w) * rng.uniform(*spec.side)))
    side = min(side, min(h, w) - 2)
    x = int(rng.integers(0, w - side + 1))
    y = int(rng.integers(0, h - side + 1))
    coverage = np.zeros((h, w), np.float32)
    coverage[y : y + side, x : x + side] = _coverage(digit, side, rng.uniform(-spec.rotation, spec.rotation))
    image = _compose(coverage, "light", rng, spec.shadow_probability)
    image = _finish(image, rng, spec.blur, spec.noise, spec.jpeg)
    return Picture(image, [Truth(int(label), (x + side / 2, y + side / 2), float(side))], "light")


def pages(
    digits: np.ndarray,
    labels: np.ndarray,
    count: int,
    seed: int,
    background: str,
    spec: PageSpec = PageSpec(),
) -> Iterator[Picture]:
    """``count`` pages; page ``i`` is made by ``default_rng([seed, i, background])``."""
    tag = BACKGROUNDS.index(background) if background in BACKGROUNDS else -1
    for i in range(count):
        yield make_page(digits, labels, np.random.default_rng([seed, i, tag + 1]), background, spec)


def photos(digits: np.ndarray, labels: np.ndarray, seed: int, spec: PhotoSpec = PhotoSpec()) -> Iterator[Picture]:
    """One photo per digit, in order; photo ``i`` is made by ``default_rng([seed, i])``."""
    for i in range(len(digits)):
        yield make_photo(digits[i], int(labels[i]), np.random.default_rng([seed, i]), spec)
