from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgerun.runtime.metadata import Preprocessing
from edgerun.runtime.preprocess import (
    PreprocessError,
    normalize_digit,
    preprocessor,
    recipe_caffe,
    recipe_fcn,
    recipe_gray,
    recipe_mnist,
    to_gray,
    to_uint8,
)

MNIST = Preprocessing(recipe="mnist", size=(28, 28), color="gray", scale=1 / 255.0, resize="area")
CAFFE = Preprocessing(recipe="caffe", size=(224, 224), color="BGR", mean=(103.939, 116.779, 123.68), resize="direct")


def test_mnist_digit_passes_through_unchanged(mnist_dir):
    from edgerun.train.data import load_split

    digit = load_split("mnist", "test", mnist_dir).images[0]
    out = recipe_mnist(digit, MNIST)
    assert out.shape == (28, 28, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :, 0], digit / 255.0, atol=1e-7)


def test_photo_of_a_digit_on_paper_is_normalised_like_mnist():
    photo = np.full((240, 320, 3), 225, np.uint8)  # light paper
    cv2.putText(photo, "7", (120, 190), cv2.FONT_HERSHEY_SIMPLEX, 6, (30, 30, 30), 18)
    photo = cv2.GaussianBlur(photo, (5, 5), 0)
    out = recipe_mnist(photo, MNIST)[:, :, 0]
    assert out.shape == (28, 28)
    ys, xs = np.nonzero(out > 0.1)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) <= 22  # fits the 20x20 box (+ blur)
    moments = cv2.moments(out)
    cy, cx = moments["m01"] / moments["m00"], moments["m10"] / moments["m00"]
    assert abs(cy - 14) < 1.5 and abs(cx - 14) < 1.5  # centred by centre of mass
    assert out[0].max() == 0 and out[:, 0].max() == 0  # paper became black background


def test_blank_page_gives_a_black_input():
    assert normalize_digit(np.full((50, 50), 200, np.uint8)).max() == 0


def test_caffe_is_bgr_minus_the_imagenet_means():
    """The caffe recipe by its definition (Keras' own preprocess_input is compared in tests/export,
    where TensorFlow is installed): BGR kept, the per-channel means subtracted, no scaling."""
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    expected = bgr.astype(np.float32) - np.array([103.939, 116.779, 123.68], np.float32)
    assert np.abs(recipe_caffe(bgr, CAFFE) - expected).max() <= 1e-4


def test_caffe_short_side_crop_keeps_aspect():
    pre = Preprocessing(**{**CAFFE.__dict__, "resize": "short_side_crop"})
    frame = np.zeros((300, 600, 3), np.uint8)
    frame[:, 200:400] = 255  # a white band in the centre third
    out = recipe_caffe(frame, pre)
    assert out.shape == (224, 224, 3)
    white, black = 255 - 103.939, -103.939
    # Shorter side 300 -> 224 keeps aspect (600 -> 448); the central 224 columns are original
    # columns 150..450, so the band (200..400) spans crop columns ~37..187. A direct resize
    # would squeeze it into columns ~75..149 instead.
    assert out[:, 40, 0] == pytest.approx(white) and out[:, 180, 0] == pytest.approx(white)
    assert out[:, 0, 0] == pytest.approx(black) and out[:, 223, 0] == pytest.approx(black)


def test_fcn_inverts_light_background_and_keeps_size():
    scene = np.full((100, 150), 230, np.uint8)
    scene[40:60, 40:50] = 10
    out = recipe_fcn(scene, Preprocessing(recipe="fcn", size=(None, None), color="gray", scale=1 / 255))
    assert out.shape == (100, 150, 1)
    assert out[0, 0, 0] == pytest.approx(25 / 255) and out[50, 45, 0] == pytest.approx(245 / 255)


def test_fcn_pads_tiny_inputs_to_the_window():
    out = recipe_fcn(np.zeros((5, 40), np.uint8), Preprocessing(recipe="fcn", size=(None, None)))
    assert out.shape == (28, 40, 1)


@pytest.mark.parametrize(
    "frame",
    [
        np.full((40, 30), 65535, np.uint16),
        np.zeros((40, 30, 4), np.uint8),
        np.zeros((40, 30, 1), np.uint8),
        np.ones((40, 30, 3), np.float32),
        np.zeros((1, 1, 3), np.uint8),
    ],
    ids=["gray16", "bgra", "hw1", "float", "1x1"],
)
def test_any_channel_count_or_depth_is_converted(frame):
    assert recipe_gray(frame, MNIST).shape == (28, 28, 1)
    assert recipe_caffe(frame, CAFFE).shape == (224, 224, 3)


def test_sixteen_bit_scales_to_eight():
    assert to_uint8(np.array([0, 257, 65535], np.uint16)).tolist() == [0, 1, 255]
    # 8-bit pixels held in a uint16 array (np.asarray(..., np.uint16) of a uint8 picture): as they are,
    # not scaled to black (a 7 read as '9' in the API sweep)
    assert to_uint8(np.array([0, 128, 255], np.uint16)).tolist() == [0, 128, 255]
    # other integer types: 0-255 as they are (np.asarray(picture, np.int64)); outside, a clear error,
    # not a clipped picture (a 12-bit camera's frame came out white, a negative one black)
    assert to_uint8(np.array([0, 7, 255], np.int64)).tolist() == [0, 7, 255]
    for bad in (np.array([0, 4095], np.int32), np.array([-1, 10], np.int16)):
        with pytest.raises(PreprocessError, match=r"integer pixels must be 0-255"):
            to_uint8(bad)
    assert to_gray(np.full((2, 2, 4), 255, np.uint8)).max() == 255


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((4, 4, 2), np.uint8), "HxWx3"),
        (np.zeros((0, 4), np.uint8), "at least one pixel"),
        (np.zeros((2, 2, 2, 2), np.uint8), "HxW"),
        (np.array([["a"]]), "numbers"),
    ],
)
def test_unusable_frames_raise_preprocess_error(frame, message):
    with pytest.raises(PreprocessError, match=message):
        recipe_gray(frame, MNIST)


def test_unknown_recipe_is_named():
    with pytest.raises(PreprocessError, match="unknown preprocessing recipe 'yolo'"):
        preprocessor(Preprocessing(recipe="yolo"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_float_frame_with_missing_values_is_an_error_record(bad):
    """An all-NaN (or infinite) float image was answered as a black picture; now its record says
    what is wrong, and a finite float frame still runs."""
    import edgerun

    model = edgerun.load("mnist_cnn", tune=False)
    frame = np.zeros((28, 28), np.float32)
    frame[3, 4] = bad
    (result,) = model.predict(frame)
    assert result.error and "holds 1 NaN or infinite value(s) of 784" in result.error
    assert model.predict(np.full((28, 28), 0.5, np.float32))[0].error is None
