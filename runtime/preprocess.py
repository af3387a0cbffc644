"""OpenCV preprocessing: one function per recipe, chosen by the model's metadata.

Every recipe takes a frame as OpenCV gives it (HxW gray, HxWx1, HxWx3 BGR or HxWx4 BGRA; uint8,
uint16 or float) and returns one float32 HxWxC image for the model (channels last; the model
wrapper stacks a batch and transposes for NCHW models). :func:`preprocessor` picks the recipe.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from .metadata import Preprocessing

MNIST_BOX = 20  # MNIST digits fit a 20x20 box centred by mass in a 28x28 frame
NORMALIZE_MAX_SIDE = 160  # photos are shrunk to this before the digit is searched for (5.7x the output)
PHOTO_KERNEL_FRACTION = 5  # background kernel of a photo: its longest side / 5
MIN_CONTRAST = 32  # grey levels between paper and ink below which a page counts as blank


class PreprocessError(ValueError):
    """A frame that no conversion can make into the model's input."""


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Any depth to uint8: 16-bit is scaled by 1/257 (unless every value is 255 or less: 8-bit
    pixels held in a uint16 array, which scaling would make black), floats in [0, 1] by 255,
    else clipped; other integers must hold 0-255.

    Raises:
        PreprocessError: a float frame holding NaN or infinity, or a frame that holds no numbers.
    """
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        if frame.size and int(frame.max()) <= 255:
            return frame.astype(np.uint8)
        return (frame.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if frame.dtype == np.bool_:
        return frame.astype(np.uint8) * 255
    if np.issubdtype(frame.dtype, np.floating):
        finite = np.isfinite(frame)
        if not finite.all():  # NaN is "no data": a picture of zeros would be answered as if it were real
            bad = int(finite.size - np.count_nonzero(finite))
            raise PreprocessError(
                f"the frame holds {bad} NaN or infinite value(s) of {finite.size}; a float image must hold "
                "finite pixel values (0-1 or 0-255): fill or drop the missing ones first"
            )
        data = frame
        if data.size and float(data.max()) <= 1.0 and float(data.min()) >= 0.0:
            data = data * 255.0
        return np.clip(np.rint(data), 0, 255).astype(np.uint8)
    if np.issubdtype(frame.dtype, np.integer):
        low, high = (int(frame.min()), int(frame.max())) if frame.size else (0, 0)
        if low < 0 or high > 255:  # clipped, a 12-bit camera's picture would be white: say so instead
            raise PreprocessError(
                f"the {frame.dtype} frame holds values from {low} to {high}; integer pixels must be 0-255 "
                "(uint8) or a uint16 picture: convert it first (e.g. (frame >> 4).astype(np.uint8) for 12 bits)"
            )
        return frame.astype(np.uint8)
    raise PreprocessError(f"frames must hold numbers, got dtype {frame.dtype}")


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise PreprocessError(f"a frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        raise PreprocessError(f"a frame must be HxW, HxWx1, HxWx3 or HxWx4, got shape {frame.shape}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise PreprocessError(f"a frame must have at least one pixel, got shape {frame.shape}")
    return frame


def flatten_alpha(frame: np.ndarray) -> np.ndarray:
    """A uint8 BGRA frame as it is seen: composited on white, or on black when what it shows is
    light (white ink on a clear background), so the drawing stays visible.

    Dropping the alpha channel (what ``cv2.COLOR_BGRA2BGR`` does) shows the colour stored under
    transparent pixels, which drawing apps and HTML canvases leave black: a black digit on a
    clear background became a black square. An opaque frame only loses its alpha channel.
    """
    alpha = frame[:, :, 3]
    bgr = np.ascontiguousarray(frame[:, :, :3])
    if int(alpha.min()) == 255:
        return bgr
    weight = alpha.astype(np.float32) * np.float32(1 / 255)
    total = float(weight.sum())
    shown = float((cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) * weight).sum()) / total if total > 0 else 0.0
    background = np.float32(0.0 if shown > 127 else 255.0)
    weight = weight[:, :, None]
    mixed = bgr * weight + background * (np.float32(1.0) - weight)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Any frame to uint8 HxW grayscale (a transparent one as :func:`flatten_alpha` shows it)."""
    frame = to_uint8(_check_frame(frame))
    if frame.ndim == 2:
        return frame
    if frame.shape[2] == 4:
        frame = flatten_alpha(frame)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Any frame to uint8 HxWx3 BGR (a transparent one as :func:`flatten_alpha` shows it)."""
    frame = to_uint8(_check_frame(frame))
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return flatten_alpha(frame)
    return frame


def light_background(gray: np.ndarray) -> bool:
    """Whether the image is dark-on-light (paper), judged by its border pixels."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(np.median(border)) > 127


def resize(image: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize to (height, width): ``area``, ``direct`` or ``short_side_crop``."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    if mode == "short_side_crop":
        h, w = image.shape[:2]
        scale = max(height / h, width / w)
        new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interp)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        return image[top : top + height, left : left + width]
    shrinking = image.shape[0] > height or image.shape[1] > width
    interp = cv2.INTER_AREA if mode == "area" and shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def _digit_mask(mask: np.ndarray) -> np.ndarray:
    """The pixels of the digit in a stroke mask: the largest piece of ink and the pieces close
    to it (a 5's cap, a broken 4), never the specks and smudges elsewhere on the page."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    main = 1 + int(np.argmax(areas))
    x, y, w, h = stats[main, :4]
    reach = 0.25 * max(w, h)
    keep = np.zeros(count, bool)
    keep[main] = True
    for i in range(1, count):
        bx, by, bw, bh = stats[i, :4]
        gap_x = max(0, max(bx, x) - min(bx + bw, x + w))
        gap_y = max(0, max(by, y) - min(by + bh, y + h))
        if max(gap_x, gap_y) <= reach and stats[i, cv2.CC_STAT_AREA] >= 0.02 * areas.max():
            keep[i] = True
    return keep[labels].astype(np.uint8)


def normalize_digit(gray: np.ndarray, size: int = 28, box: int = MNIST_BOX) -> np.ndarray:
    """Make a photo of one digit look like MNIST: light strokes on black, in a 20x20 box
    keeping aspect, padded to 28x28 and centred by centre of mass.

    The paper (or a dark background) and its uneven lighting are removed first by
    :func:`edgerun.runtime.pages.normalise_background` (ink as light strokes on 0, contrast
    normalised); the digit is the largest piece of ink with the pieces next to it, so specks,
    shadows and the page's edges do not stretch its box.
    """
    from .pages import BackgroundConfig, normalise_background

    longest = max(gray.shape)
    if longest > NORMALIZE_MAX_SIDE:  # a webcam frame: the digit survives at this size, the work shrinks
        f = NORMALIZE_MAX_SIDE / longest
        gray = cv2.resize(
            gray, (max(1, round(gray.shape[1] * f)), max(1, round(gray.shape[0] * f))), interpolation=cv2.INTER_AREA
        )
        longest = max(gray.shape)
    out = np.zeros((size, size), np.uint8)
    if int(gray.max()) - int(gray.min()) < MIN_CONTRAST:  # a blank page: no digit to find
        return out
    # One digit fills up to the whole picture: the background kernel must exceed its strokes and
    # the gaps between them (a fifth of the picture: chosen on photos of training digits, see
    # README), and the contrast is normalised over the whole picture.
    config = BackgroundConfig(
        step=2, kernel=max(9, longest // PHOTO_KERNEL_FRACTION), contrast_window=longest, edge=0, floor=0.5
    )
    found = normalise_background(gray, config)
    if found.strength < MIN_CONTRAST:
        return out
    mask = _digit_mask((found.ink >= 0.35).astype(np.uint8))
    ys, xs = np.nonzero(mask)
    if ys.size == 0:  # nothing strong enough to be a stroke
        return out
    keep = cv2.dilate(mask, np.ones((3, 3), np.uint8))  # the strokes' soft edges belong to them
    ink = np.where(keep > 0, found.ink * 255.0, 0).astype(np.uint8)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    digit = cv2.resize(crop, (new_w, new_h), interpolation=interp)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = digit
    moments = cv2.moments(out)
    if moments["m00"] > 0:
        cy, cx = moments["m01"] / moments["m00"], moments["m10"] / moments["m00"]
        shift = np.float32([[1, 0, size / 2 - cx], [0, 1, size / 2 - cy]])
        out = cv2.warpAffine(out, shift, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    return out


def _scaled(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """Pixels x scale, then - mean, then / std (per channel, in the model's channel order)."""
    data = image.astype(np.float32)
    if data.ndim == 2:
        data = data[:, :, None]
    if pre.scale != 1.0:
        data *= np.float32(pre.scale)
    mean = np.asarray(pre.mean, np.float32)
    if np.any(mean):
        data -= mean
    std = np.asarray(pre.std, np.float32)
    if np.any(std != 1.0):
        data /= std
    return data


def _fixed_size(pre: Preprocessing) -> tuple[int, int]:
    if None in pre.size or len(pre.size) != 2:
        raise PreprocessError(f"recipe {pre.recipe!r} needs a fixed input size, metadata says {pre.size}")
    return int(pre.size[0]), int(pre.size[1])


def recipe_gray(frame: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """Grayscale, resized (INTER_AREA when shrinking), scaled: Fashion-MNIST-style models."""
    return _scaled(resize(to_gray(frame), _fixed_size(pre), pre.resize), pre)


def recipe_mnist(frame: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """MNIST digits: a frame already at the model's size with a dark background passes through
    as ``gray`` does; anything else (a webcam photo of a digit on paper) is normalised like
    MNIST by :func:`normalize_digit`."""
    gray = to_gray(frame)
    size = _fixed_size(pre)
    if gray.shape == size and not light_background(gray):
        return _scaled(gray, pre)
    return _scaled(normalize_digit(gray, size=size[0], box=round(size[0] * MNIST_BOX / 28)), pre)


def recipe_fcn(frame: np.ndarray, pre: Preprocessing, min_size: int = 28) -> np.ndarray:
    """Any size, grayscale, inverted when the background is light; padded up to ``min_size``."""
    gray = to_gray(frame)
    if light_background(gray):
        gray = 255 - gray
    h, w = gray.shape
    if h < min_size or w < min_size:
        gray = cv2.copyMakeBorder(gray, 0, max(0, min_size - h), 0, max(0, min_size - w), cv2.BORDER_CONSTANT, value=0)
    return _scaled(gray, pre)


def recipe_page(frame: np.ndarray, pre: Preprocessing, min_size: int = 28) -> np.ndarray:
    """Camera pictures of digits for a localizer: any size, the background (paper or a dark
    board, with its lighting) removed and the contrast normalised by
    :func:`edgerun.runtime.pages.normalise_background`: light strokes on 0, as MNIST."""
    from .pages import normalise_background

    ink = normalise_background(to_gray(frame)).ink
    h, w = ink.shape
    if h < min_size or w < min_size:
        ink = cv2.copyMakeBorder(ink, 0, max(0, min_size - h), 0, max(0, min_size - w), cv2.BORDER_CONSTANT, value=0)
    return (ink * np.float32(255.0 * pre.scale))[:, :, None]


def recipe_caffe(frame: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """ImageNet caffe mode, as ``keras.applications.resnet50.preprocess_input`` on RGB input:
    BGR channel order, ImageNet means (B, G, R) subtracted, no scaling. OpenCV frames are BGR
    already, so no channel swap is needed."""
    bgr = resize(to_bgr(frame), _fixed_size(pre), pre.resize)
    return _scaled(bgr, pre)


def recipe_generic(frame: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """For foreign models: the colour order asked for, a direct resize, scale and mean."""
    if pre.color == "gray":
        image = to_gray(frame)
    else:
        image = to_bgr(frame)
        if pre.color == "RGB":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if None not in pre.size:
        image = resize(image, _fixed_size(pre), pre.resize)
    return _scaled(image, pre)


RECIPES: dict[str, Callable[[np.ndarray, Preprocessing], np.ndarray]] = {
    "mnist": recipe_mnist,
    "gray": recipe_gray,
    "fcn": recipe_fcn,
    "page": recipe_page,
    "caffe": recipe_caffe,
    "generic": recipe_generic,
}


def preprocessor(pre: Preprocessing) -> Callable[[np.ndarray], np.ndarray]:
    """The function that turns one frame into one model input, as ``pre`` describes."""
    try:
        recipe = RECIPES[pre.recipe]
    except KeyError:
        raise PreprocessError(f"unknown preprocessing recipe {pre.recipe!r}; known: {', '.join(RECIPES)}") from None

    def run(frame: np.ndarray) -> np.ndarray:
        return recipe(frame, pre)

    return run
