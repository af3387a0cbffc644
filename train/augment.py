"""Field augmentation: 28x28 training samples that look like what a camera's digits become.

The runtime turns a camera picture into an *ink image* (``edgerun.runtime.pages``: background
removed, contrast normalised, light strokes on 0) and resamples each digit to MNIST's size, with
errors: the scale is estimated from the ink (0.8-1.25x off), the digit is not centred by mass,
strokes are blurred, thinner or thicker, a residual background and sensor noise remain, JPEG
leaves its blocks, a neighbour reaches into the window. :func:`field_samples` makes training
samples with exactly those variations, seeded, from MNIST training digits.

Two sets:

- ``classifier``: each digit plus augmented copies, roughly centred (for ``mnist_cnn``, which
  sees photos normalised like MNIST);
- ``localizer``: the book's shifted MNIST (copies shifted by up to a quarter of the size, label
  kept) with the same variations, plus **negatives** the localizer must stay silent on: empty
  background with noise and gradients, partial digits (shifted by 11-20 px), the gap between two
  digits, magnified fragments of strokes and random line texture. Negatives get the uniform
  target (0.1 for each class): the softmax learns to say "none of them", so a threshold such as
  the book's 0.98 never fires there, with no eleventh class for the runtime to know about.

Targets are float32 (N, 10) rows: one-hot for digits, uniform for negatives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SIZE = 28
NUM_CLASSES = 10
KINDS = ("classifier", "localizer")


class AugmentError(ValueError):
    """Augmentation settings that cannot be used; the message says what was expected."""


@dataclass(frozen=True)
class FieldAugment:
    """The variations and how many samples (see module docstring). Ranges are uniform draws.

    Attributes:
        copies: augmented copies per digit (the original is always kept).
        scale: digit scale range (log-uniform).
        rotation: degrees, +-.
        shear: horizontal shear, +-.
        shift: px, +- (the book's shifted MNIST uses a quarter of the size, 7).
        stroke: probabilities of a thicker and a thinner stroke.
        blur: probability and sigma range of a Gaussian blur.
        contrast: ink level range (1 = MNIST's saturated strokes).
        background: probability and level range of a residual background (offset + gradient).
        noise: sensor noise sigma range (in [0, 1] units).
        jpeg: probability and quality range of a JPEG round trip.
        neighbour: probability that another digit reaches into the window from a side.
        negatives: negatives per digit (localizer only).
        camera: photograph every sample (``camera_clean`` of them without any camera effect)
            on light paper or a dark board at a page scale in ``camera_scale``, then bring it
            back through the runtime's own page preprocessing
            (:func:`edgerun.runtime.pages.normalise_background`), so the localizer learns what
            the ``page`` recipe feeds it; the photometric steps above are then left out.
    """

    copies: int = 5
    scale: tuple[float, float] = (0.8, 1.25)
    rotation: float = 12.0
    shear: float = 0.15
    shift: float = 7.0
    stroke: tuple[float, float] = (0.2, 0.15)
    blur: tuple[float, tuple[float, float]] = (0.5, (0.3, 1.0))
    contrast: tuple[float, float] = (0.6, 1.0)
    background: tuple[float, tuple[float, float]] = (0.3, (0.0, 0.15))
    noise: tuple[float, float] = (0.0, 0.04)
    jpeg: tuple[float, tuple[int, int]] = (0.3, (50, 95))
    neighbour: float = 0.3
    negatives: float = 2.0
    camera: bool = False
    camera_scale: tuple[float, float] = (0.8, 1.5)
    camera_clean: float = 0.15

    def __post_init__(self) -> None:
        if self.copies < 0 or self.negatives < 0:
            raise AugmentError(f"copies and negatives must be >= 0, got {self.copies} and {self.negatives}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise AugmentError(f"scale must be a range 0 < low <= high, got {self.scale}")


#: The localizer's defaults; the classifier's are centred (small shifts, no neighbours' halves).
LOCALIZER = FieldAugment(camera=True)
CLASSIFIER = FieldAugment(copies=5, scale=(0.85, 1.15), rotation=12.0, shift=2.0, neighbour=0.0, negatives=0.0)


def _affine(rng: np.random.Generator, scale_range, rotation: float, shear: float, shift: tuple[float, float]):
    """A 2x3 matrix about the frame's centre: scale, rotation, shear, then a shift."""
    scale = math.exp(rng.uniform(math.log(scale_range[0]), math.log(scale_range[1])))
    angle = math.radians(rng.uniform(-rotation, rotation))
    sh = rng.uniform(-shear, shear)
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    linear = np.array([[c, -s], [s, c]]) @ np.array([[1.0, sh], [0.0, 1.0]])
    centre = np.array([SIZE / 2 - 0.5, SIZE / 2 - 0.5])
    offset = centre - linear @ centre + np.asarray(shift)
    return np.hstack([linear, offset[:, None]]).astype(np.float32)


def _warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=0)


def _stroke(image: np.ndarray, rng: np.random.Generator, aug: FieldAugment) -> np.ndarray:
    roll = rng.random()
    kernel = np.ones((2, 2), np.uint8)
    if roll < aug.stroke[0]:
        return cv2.dilate(image, kernel)
    if roll < aug.stroke[0] + aug.stroke[1]:
        return cv2.erode(image, kernel)
    return image


def _photometric(image: np.ndarray, rng: np.random.Generator, aug: FieldAugment) -> np.ndarray:
    """uint8 ink in, uint8 out: contrast, blur, residual background, noise, JPEG."""
    x = image.astype(np.float32) / 255.0 * rng.uniform(*aug.contrast)
    if rng.random() < aug.blur[0]:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(*aug.blur[1]))
    if rng.random() < aug.background[0]:
        level = rng.uniform(*aug.background[1])
        v, u = np.mgrid[-1 : 1 : complex(0, SIZE), -1 : 1 : complex(0, SIZE)].astype(np.float32)
        gradient = level * (1 + rng.uniform(-0.5, 0.5) * u + rng.uniform(-0.5, 0.5) * v)
        x = np.maximum(x, gradient) if rng.random() < 0.5 else np.clip(x + gradient, 0, 1)
    sigma = rng.uniform(*aug.noise)
    if sigma > 0:
        x = x + rng.normal(0, sigma, x.shape).astype(np.float32)
    out = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    if rng.random() < aug.jpeg[0]:
        quality = int(rng.integers(aug.jpeg[1][0], aug.jpeg[1][1] + 1))
        out = cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
    return out


def _camera(window: np.ndarray, context: np.ndarray, rng: np.random.Generator, aug: FieldAugment) -> np.ndarray:
    """The 28x28 ``window`` (ink, uint8) photographed on a page and brought back by the runtime's
    page preprocessing. ``context`` (another digit) sits diagonally next to it, outside the window,
    so the page has the ink level a real page has."""
    from edgerun.runtime.pages import normalise_background

    canvas = np.zeros((3 * SIZE, 3 * SIZE), np.uint8)
    canvas[SIZE : 2 * SIZE, SIZE : 2 * SIZE] = window
    cy, cx = (int(v) * 2 * SIZE for v in rng.integers(0, 2, size=2))
    np.maximum(canvas[cy : cy + SIZE, cx : cx + SIZE], context, out=canvas[cy : cy + SIZE, cx : cx + SIZE])
    if rng.random() < aug.camera_clean:  # the book's condition: clean light digits on black
        page = canvas
    else:
        scale = rng.uniform(*aug.camera_scale)
        side = max(SIZE, round(3 * SIZE * scale))
        alpha = cv2.resize(canvas.astype(np.float32) / 255.0, (side, side), interpolation=cv2.INTER_LINEAR)
        v, u = np.mgrid[-1 : 1 : complex(0, side), -1 : 1 : complex(0, side)].astype(np.float32)
        light = 1.0 + rng.uniform(-0.15, 0.15) * u + rng.uniform(-0.15, 0.15) * v
        if rng.random() < 0.6:  # dark ink on light paper
            image = rng.uniform(150, 245) * light * (1.0 - alpha * (1.0 - rng.uniform(0.06, 0.55)))
        else:  # light ink on a dark board
            board, ink = rng.uniform(10, 80), rng.uniform(120, 250)
            image = light * (board + alpha * (ink - board))
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.2, 1.3))
        image = image + rng.normal(0, rng.uniform(1.0, 7.0), image.shape).astype(np.float32)
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        quality = int(rng.integers(40, 96))
        page = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
    ink = normalise_background(page).ink
    if ink.shape[0] != 3 * SIZE:
        shrinking = ink.shape[0] > 3 * SIZE
        ink = cv2.resize(ink, (3 * SIZE, 3 * SIZE), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.clip(np.rint(ink[SIZE : 2 * SIZE, SIZE : 2 * SIZE] * 255), 0, 255).astype(np.uint8)


def _direction(rng: np.random.Generator, low: float, high: float) -> tuple[float, float]:
    """A shift of ``low``..``high`` px in a random direction (the farther axis at least ``low``)."""
    angle = rng.uniform(0, 2 * math.pi)
    dist = rng.uniform(low, high)
    dx, dy = math.cos(angle), math.sin(angle)
    norm = max(abs(dx), abs(dy))
    return dx / norm * dist, dy / norm * dist


def _digit(images: np.ndarray, rng: np.random.Generator, aug: FieldAugment, shift: tuple[float, float]) -> np.ndarray:
    i = int(rng.integers(len(images)))
    return _warp(_stroke(images[i], rng, aug), _affine(rng, aug.scale, aug.rotation, aug.shear, shift))


def _positive(image: np.ndarray, images: np.ndarray, rng: np.random.Generator, aug: FieldAugment) -> np.ndarray:
    shift = (rng.uniform(-aug.shift, aug.shift), rng.uniform(-aug.shift, aug.shift))
    out = _warp(_stroke(image, rng, aug), _affine(rng, aug.scale, aug.rotation, aug.shear, shift))
    if rng.random() < aug.neighbour:  # another digit's edge at the window's border
        np.maximum(out, _digit(images, rng, aug, _direction(rng, 26, 32)), out=out)
    return out if aug.camera else _photometric(out, rng, aug)


def _lines(rng: np.random.Generator) -> np.ndarray:
    """Texture: a few random strokes and curves that are no digit."""
    canvas = np.zeros((SIZE * 2, SIZE * 2), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.5:  # a long line through the window (a ruling, an edge): never a "1"
            angle = rng.uniform(0, math.pi)
            centre = rng.uniform(SIZE * 0.5, SIZE * 1.5, size=2)
            reach = SIZE * 1.5 * np.array([math.cos(angle), math.sin(angle)])
            p1, p2 = (int(v) for v in centre - reach), (int(v) for v in centre + reach)
            cv2.line(canvas, tuple(p1), tuple(p2), 255, int(rng.integers(2, 5)), cv2.LINE_AA)
        else:
            centre = tuple(int(v) for v in rng.integers(0, SIZE * 2, size=2))
            axes = tuple(int(v) for v in rng.integers(4, SIZE, size=2))
            start = int(rng.integers(0, 360))
            cv2.ellipse(
                canvas,
                centre,
                axes,
                0,
                start,
                start + int(rng.integers(40, 200)),
                255,
                int(rng.integers(2, 5)),
                cv2.LINE_AA,
            )
    return cv2.resize(canvas, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _negative(images: np.ndarray, rng: np.random.Generator, aug: FieldAugment) -> np.ndarray:
    roll = rng.random()
    if roll < 0.2:  # empty background
        out = np.zeros((SIZE, SIZE), np.uint8)
    elif roll < 0.55:  # a partial digit: shifted well past the book's quarter
        out = _digit(images, rng, aug, _direction(rng, 11, 20))
    elif roll < 0.75:  # the gap between two digits
        dx, dy = _direction(rng, 12, 17)
        out = np.maximum(_digit(images, rng, aug, (dx, dy)), _digit(images, rng, aug, (-dx, -dy)))
    elif roll < 0.88:  # a fragment of a stroke, magnified
        i = int(rng.integers(len(images)))
        zoom = rng.uniform(2.5, 4.0)
        shift = (rng.uniform(-8, 8) * zoom, rng.uniform(-8, 8) * zoom)
        out = _warp(images[i], _affine(rng, (zoom, zoom), 180.0, 0.0, shift))
    else:  # texture
        out = _lines(rng)
    return out if aug.camera else _photometric(out, rng, aug)


def field_samples(
    images: np.ndarray, labels: np.ndarray, kind: str, seed: int = 0, aug: FieldAugment | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented samples of ``images`` (uint8 N x 28 x 28) for ``kind`` (``classifier`` or
    ``localizer``): uint8 images (M, 28, 28) and float32 targets (M, 10). The originals come
    first (photographed too when ``aug.camera``); the same arguments give the same arrays.

    Raises:
        AugmentError: an unknown kind, or images that are not N x 28 x 28 with one label each.
    """
    if kind not in KINDS:
        raise AugmentError(f"kind must be one of {KINDS}, got {kind!r}")
    if images.ndim != 3 or images.shape[1:] != (SIZE, SIZE) or len(images) != len(labels) or len(images) == 0:
        raise AugmentError(f"expected N x 28 x 28 images with N labels, got {images.shape} and {np.shape(labels)}")
    aug = aug or (LOCALIZER if kind == "localizer" else CLASSIFIER)
    rng = np.random.default_rng(seed)
    n = len(images)
    negatives = round(n * aug.negatives) if kind == "localizer" else 0
    total = n * (1 + aug.copies) + negatives
    out = np.empty((total, SIZE, SIZE), np.uint8)
    targets = np.zeros((total, NUM_CLASSES), np.float32)
    out[:n] = images
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[np.asarray(labels, np.int64)]
    targets[:n] = onehot
    k = n
    for _ in range(aug.copies):
        for i in range(n):
            out[k] = _positive(images[i], images, rng, aug)
            targets[k] = onehot[i]
            k += 1
    for _ in range(negatives):
        out[k] = _negative(images, rng, aug)
        targets[k] = 1.0 / NUM_CLASSES
        k += 1
    if aug.camera:  # the originals too: the runtime normalises every picture
        for i in range(total):
            out[i] = _camera(out[i], images[int(rng.integers(n))], rng, aug)
    return out, targets
