"""Pages of digits as a camera sees them -> MNIST-like ink images, and where the ink is.

:func:`normalise_background` turns a grey page (dark ink on unevenly lit paper, or light ink on
a dark background) into an *ink image*: float32 in [0, 1], 0 where there is only background,
about 1 in the core of a stroke, as MNIST's digits are. It estimates the background at a
quarter of the resolution with a grey-level closing (paper) or opening (dark background): a
structuring element wider than a stroke removes the digits and keeps the lighting, gradients and
shadows. The residual is divided by a local maximum (local contrast: faint pencil in a shadow and
black ink in full light both reach 1) and a noise floor is cut off.

:func:`ink_proposals` finds the connected pieces of ink and returns one box per piece with the
scale a digit of that box would have, so a localizer only looks where there is ink.

Numpy and OpenCV only; pure functions of their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

POLARITIES = ("auto", "dark_on_light", "light_on_dark")
MNIST_DIGIT_HEIGHT = 20.0  # MNIST fits each digit's longer side to 20 px of its 28-px frame


class PageError(ValueError):
    """An input these functions cannot use; the message says what was expected."""


@dataclass(frozen=True)
class BackgroundConfig:
    """Settings of :func:`normalise_background` (pixel sizes are in input pixels).

    Attributes:
        step: the background is estimated at 1/step of the resolution.
        kernel: width of the closing/opening, input px; must exceed the widest stroke and the
            holes of a digit, and stay below the scale of the lighting (36 px: 1.3x MNIST).
        contrast_window: the local maximum that normalises contrast is taken over this many px.
        edge: px; the background is never taken brighter (paper) or darker (board) than a
            closing (opening) of the full-resolution picture with this window, so a sharp shadow
            edge is not left as ink; it must exceed the widest stroke (0: off).
        min_contrast: grey levels a residual needs to be ink at all (a blank page stays blank).
        floor: residuals below ``floor`` x the picture's strongest ink never count as ink (the
            local contrast would blow sensor noise up to 1 on an empty stretch of paper).
        cut: normalised ink below this is background (noise, paper texture, JPEG ringing).
        full: normalised ink at or above this is a stroke's core and becomes 1.
        polarity: ``auto`` decides per picture; or force ``dark_on_light`` / ``light_on_dark``.
    """

    step: int = 4
    kernel: int = 36
    contrast_window: int = 48
    edge: int = 13
    min_contrast: float = 12.0
    floor: float = 0.25
    cut: float = 0.2
    full: float = 0.75
    polarity: str = "auto"

    def __post_init__(self) -> None:
        if self.polarity not in POLARITIES:
            raise PageError(f"polarity must be one of {POLARITIES}, got {self.polarity!r}")
        if self.step < 1 or self.kernel < self.step or self.contrast_window < self.step:
            raise PageError(
                f"step must be >= 1 and kernel/contrast_window >= step, got step {self.step}, "
                f"kernel {self.kernel}, contrast_window {self.contrast_window}"
            )
        if not 0 <= self.cut < self.full <= 1:
            raise PageError(f"need 0 <= cut < full <= 1, got cut {self.cut}, full {self.full}")


@dataclass(frozen=True)
class InkImage:
    """What :func:`normalise_background` gives: the ink image and what it decided."""

    ink: np.ndarray  # float32 HxW in [0, 1], light strokes on 0
    polarity: str  # "dark_on_light" or "light_on_dark"
    strength: float  # the picture's strongest ink residual, grey levels (0: a blank picture)


def _check_gray(gray: np.ndarray) -> np.ndarray:
    if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.size == 0:
        shape = getattr(gray, "shape", type(gray).__name__)
        raise PageError(f"expected a non-empty HxW grey image (numpy array), got {shape}")
    if gray.dtype != np.uint8:
        raise PageError(f"expected a uint8 grey image, got dtype {gray.dtype}; convert with to_gray first")
    return gray


def _odd(n: float) -> int:
    n = max(1, int(round(n)))
    return n if n % 2 else n + 1


def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def ink_polarity(small: np.ndarray, kernel: int) -> str:
    """Which way the ink goes in a (reduced) grey picture: ``dark_on_light`` or ``light_on_dark``.

    The local mean over ``kernel`` px stays near the background whichever way the ink goes (ink
    is the minority of any neighbourhood); the ink is the side of it with the stronger extreme
    residuals (the 99.9th percentiles). Unlike a closing or an opening, this is not fooled by
    the hole of a large 0 (an opening calls it light ink), and ink (50-95% darker than its
    paper) outdoes the edge of a shadow (15-35%).
    """
    side = _odd(kernel)
    background = cv2.blur(small, (side, side), borderType=cv2.BORDER_REFLECT)  # separable: any size is cheap
    bright = cv2.subtract(small, background).ravel()
    dark = cv2.subtract(background, small).ravel()
    k = max(0, bright.size - 1 - bright.size // 1000)  # the 99.9th percentile, by selection
    return "light_on_dark" if np.partition(bright, k)[k] > np.partition(dark, k)[k] else "dark_on_light"


def normalise_background(gray: np.ndarray, config: BackgroundConfig = BackgroundConfig()) -> InkImage:
    """The ink of a grey page as light strokes on 0 (see the module docstring).

    Full-resolution work stays in uint8 OpenCV calls (saturating subtraction, separable
    morphology) but for the last multiply; the rest runs at 1/step of the resolution.

    Raises:
        PageError: ``gray`` is not a non-empty uint8 HxW array.
    """
    gray = _check_gray(gray)
    h, w = gray.shape
    step = max(1, min(config.step, min(h, w) // 8))
    small = cv2.resize(gray, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA)
    polarity = config.polarity
    if polarity == "auto":
        polarity = ink_polarity(small, 2 * config.kernel / step)  # a wide window: ink is a small minority
    dark_ink = polarity == "dark_on_light"
    op = cv2.MORPH_CLOSE if dark_ink else cv2.MORPH_OPEN
    background = cv2.morphologyEx(small, op, _ellipse(_odd(config.kernel / step)))
    background = cv2.GaussianBlur(background, (0, 0), max(0.5, 4.0 / step))
    background = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)
    if config.edge > 1:
        # A small closing (opening) removes the strokes but keeps a step edge exactly where it is.
        side = _odd(config.edge)  # a square: separable, so it costs little at full resolution
        near = cv2.morphologyEx(gray, op, cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
        background = cv2.min(background, near) if dark_ink else cv2.max(background, near)
    residual = cv2.subtract(background, gray) if dark_ink else cv2.subtract(gray, background)  # saturates at 0
    strength = float(cv2.minMaxLoc(residual)[1])
    if strength < config.min_contrast:
        return InkImage(np.zeros((h, w), np.float32), polarity, strength)
    # Local contrast: divide by the strongest residual nearby (computed small, then smoothed up).
    res_small = cv2.resize(residual, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    local = cv2.dilate(res_small, _ellipse(_odd(config.contrast_window / step))).astype(np.float32)
    local = cv2.GaussianBlur(local, (0, 0), max(0.5, config.contrast_window / step / 4))
    # The residual's peaks are sharper than its area-averaged small copy: rescale by their ratio.
    peak_ratio = strength / max(float(res_small.max()), 1.0)
    denominator = np.maximum(local * peak_ratio, max(config.floor * strength, config.min_contrast))
    gain = cv2.resize(1.0 / ((config.full - config.cut) * denominator), (w, h), interpolation=cv2.INTER_LINEAR)
    ink = residual.astype(np.float32)
    cv2.multiply(ink, gain, dst=ink)
    ink -= config.cut / (config.full - config.cut)
    np.clip(ink, 0.0, 1.0, out=ink)
    return InkImage(ink, polarity, strength)


@dataclass(frozen=True)
class ProposalConfig:
    """Settings of :func:`ink_proposals`.

    Attributes:
        threshold: ink level that counts as a stroke.
        join: px of dilation that joins the pieces of one digit (broken strokes) before the
            pieces are counted; small enough that neighbouring digits stay apart.
        min_area: pieces covering fewer pixels (strokes and joins) are specks, not digits.
        min_height: pieces smaller than this on both sides (px) are specks.
        scale_range: (low, high) digit scales (x MNIST's size) a piece may imply; outside it
            the piece's own scale is not trusted (``Proposal.scale`` is None).
        max_proposals: at most this many pieces, largest first (a cluttered picture costs no more).
    """

    threshold: float = 0.35
    join: int = 2
    min_area: int = 30
    min_height: int = 8
    scale_range: tuple[float, float] = (0.6, 1.8)
    max_proposals: int = 32


@dataclass(frozen=True)
class Proposal:
    """A piece of ink: its box (x1, y1, x2, y2, input px, exclusive ends) and the pixels it covers."""

    box: tuple[int, int, int, int]
    area: int
    scale: float | None  # the digit scale its box implies (x MNIST's size), None if implausible
    anchor: tuple[float, float] | None = None  # the ink's centre of mass (x, y), where MNIST centres a digit

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2


def box_scale(width: float, height: float, scale_range: tuple[float, float] = (0.6, 1.8)) -> float | None:
    """The scale (x MNIST's size) of a digit whose ink box is ``width`` x ``height`` px.

    MNIST fits a digit's longer side to 20 px; most digits are taller than wide, so the height
    says the size unless the box is much wider than tall (then it may hold several digits side by
    side, and the height still says it). None when the implied scale is outside ``scale_range``
    (several digits stacked, a speck, a line).
    """
    side = max(width, height) if width <= 1.3 * height else height
    scale = side / MNIST_DIGIT_HEIGHT
    low, high = scale_range
    return scale if low <= scale <= high else None


def _mass_centre(ink: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> tuple[float, float] | None:
    """The centre of mass of the ink in a box, in picture coordinates (pixel i spans i..i+1)."""
    m = cv2.moments(ink[y1:y2, x1:x2])
    if m["m00"] <= 0:
        return None
    return x1 + m["m10"] / m["m00"] + 0.5, y1 + m["m01"] / m["m00"] + 0.5


#: A joined piece is looked at again only if it could be this many digits or fewer side by side
#: (at the largest plausible scale), and only while it falls into at most ``SPLIT_OUTLINES``
#: outlines (digits with a broken stroke or two); more is texture or noise and is left whole.
SPLIT_DIGITS = 3
SPLIT_OUTLINES = 12


def _pieces(
    ink: np.ndarray, mask: np.ndarray, join: int, config: ProposalConfig, origin=(0, 0), limit: int | None = None
) -> list[Proposal] | None:
    """The pieces of ``mask`` (a region of ``ink`` at ``origin``) once strokes ``join`` px apart
    are joined; None when there are more than ``limit`` outlines."""
    ox, oy = origin
    joined = mask
    if join > 0:  # a border of ``join`` so that pieces at the edge grow like the others
        joined = cv2.dilate(
            cv2.copyMakeBorder(mask, join, join, join, join, cv2.BORDER_CONSTANT, value=0), _ellipse(2 * join + 1)
        )
        ox, oy = ox - join, oy - join
    # Outer contours are the pieces (8-connected), found far faster than by labelling every pixel.
    contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if limit is not None and len(contours) > limit:
        return None
    found = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        # Undo the dilation on the box so it measures the strokes.
        x1, y1, x2, y2 = x + join, y + join, x + w - join, y + h - join
        if x2 <= x1 or y2 <= y1:
            x1, y1, x2, y2 = x, y, x + w, y + h
        bw, bh = x2 - x1, y2 - y1
        if max(bw, bh) < config.min_height:
            continue
        area = int(cv2.countNonZero(joined[y : y + h, x : x + w]))
        if area < config.min_area:
            continue
        scale = box_scale(bw, bh, config.scale_range)
        box = (x1 + ox, y1 + oy, x2 + ox, y2 + oy)
        found.append(Proposal(box, area, scale, _mass_centre(ink, *box)))
    return found


def _split(ink: np.ndarray, mask: np.ndarray, piece: Proposal, config: ProposalConfig) -> list[Proposal]:
    """A piece whose box no digit has (two digits stacked, or side by side, joined by the
    dilation), as the pieces it falls into with less joining, if each of them could be a digit;
    else the piece as it is."""
    x1, y1, x2, y2 = piece.box
    low, high = (s * MNIST_DIGIT_HEIGHT for s in config.scale_range)
    if not 2 * low <= max(x2 - x1, y2 - y1) <= SPLIT_DIGITS * high:
        return [piece]  # too small for two digits, or larger than a few (a line, texture, noise)
    region = mask[y1:y2, x1:x2]
    for join in range(config.join - 1, -1, -1):
        parts = _pieces(ink, region, join, config, (x1, y1), limit=SPLIT_OUTLINES)
        if parts is None:  # texture or noise: less joining only makes more pieces
            break
        if len(parts) > 1 and all(p.scale is not None for p in parts):
            return parts
    return [piece]


def ink_proposals(ink: np.ndarray, config: ProposalConfig = ProposalConfig()) -> list[Proposal]:
    """Boxes around the connected pieces of ink of an ink image, largest first.

    Pieces are found with broken strokes joined (``config.join``); a piece of implausible size
    (digits that touch once joined) is looked at again with less joining, and split where each
    part is digit-sized.

    Raises:
        PageError: ``ink`` is not a non-empty HxW float array.
    """
    if not isinstance(ink, np.ndarray) or ink.ndim != 2 or ink.size == 0:
        raise PageError(f"expected a non-empty HxW ink image, got {getattr(ink, 'shape', type(ink).__name__)}")
    mask = (ink >= config.threshold).astype(np.uint8)
    found = []
    for piece in _pieces(ink, mask, config.join, config) or []:
        found += [piece] if piece.scale is not None else _split(ink, mask, piece, config)
    found.sort(key=lambda p: -p.area)
    return found[: config.max_proposals]
