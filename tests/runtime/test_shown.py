"""Pictures are answered as they are shown: EXIF orientation applied, transparency composited,
and a blank picture flagged rather than answered as if it held something."""

from __future__ import annotations

import json
import struct

import cv2
import numpy as np
import pytest

from edgerun.runtime.images import apply_orientation, orientation, read_image
from edgerun.runtime.preprocess import flatten_alpha, to_bgr, to_gray


def _with_exif(jpeg: bytes, value: int) -> bytes:
    """``jpeg`` with an APP1 EXIF segment holding only the orientation tag (big-endian TIFF)."""
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, value, 0) + b"\x00" * 4
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("value", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_applies_it(tmp_path, fmt, value):
    from PIL import Image, ImageOps

    stored = np.random.default_rng(value).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    picture = Image.fromarray(stored)
    exif = picture.getexif()
    exif[0x0112] = value
    path = tmp_path / f"o{value}.{fmt.lower()}"
    options = {"JPEG": {"quality": 100}, "WEBP": {"lossless": True}, "PNG": {}}[fmt]
    picture.save(path, fmt, exif=exif, **options)
    with Image.open(path) as shown:
        want = np.asarray(ImageOps.exif_transpose(shown))
    got = read_image(path)[:, :, ::-1]  # OpenCV's BGR to Pillow's RGB
    assert got.shape == want.shape
    if fmt == "JPEG":
        assert np.abs(got.astype(int) - want).max() <= 8  # two JPEG decoders
    else:
        np.testing.assert_array_equal(got, want)


def test_a_phone_photo_of_a_digit_is_read_upright(tmp_path, mnist_test, mnist_cnn):
    """A digit photographed with the phone turned: stored on its side, EXIF says turn it back."""
    from edgerun import load

    images, labels = mnist_test
    paths = []
    for i in range(20):
        page = 255 - cv2.resize(images[i], (280, 280), interpolation=cv2.INTER_LINEAR)  # ink on paper
        stored = cv2.rotate(page, cv2.ROTATE_90_COUNTERCLOCKWISE)
        ok, jpeg = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 95])
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(_with_exif(jpeg.tobytes(), 6))
        assert orientation(np.fromfile(path, np.uint8)) == 6
        np.testing.assert_array_less(np.abs(read_image(path).astype(int) - page), 40)  # upright again
        paths.append(str(path))
    with load(mnist_cnn) as model:
        results = model(paths)
    assert sum(r.class_id == int(y) for r, y in zip(results, labels[:20], strict=True)) >= 19


def test_broken_exif_leaves_the_picture_as_stored(tmp_path):
    ok, jpeg = cv2.imencode(".jpg", np.full((8, 6), 200, np.uint8))
    data = jpeg.tobytes()
    broken = data[:2] + b"\xff\xe1\x00\x10Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff" + data[2:]
    path = tmp_path / "broken_exif.jpg"
    path.write_bytes(broken)
    assert orientation(np.fromfile(path, np.uint8)) == 1
    assert read_image(path).shape == (8, 6)


def test_orientation_turns_a_marked_pixel_where_a_viewer_shows_it():
    stored = np.zeros((2, 3), np.uint8)
    stored[0, 0] = 1  # top left as stored
    # where the top-left stored pixel is shown, for each orientation (rows, cols of the shown image)
    shown_at = {1: (0, 0), 2: (0, 2), 3: (1, 2), 4: (1, 0), 5: (0, 0), 6: (0, 1), 7: (2, 1), 8: (2, 0)}
    for value, where in shown_at.items():
        shown = apply_orientation(stored, value)
        assert shown.flags.c_contiguous
        assert tuple(np.argwhere(shown == 1)[0]) == where, value


def _digit(mnist_test, i=0, size=280):
    images, labels = mnist_test
    return cv2.resize(images[i], (size, size), interpolation=cv2.INTER_LINEAR), int(labels[i])


@pytest.mark.parametrize("ink", ["black", "white"])
def test_a_digit_drawn_on_a_clear_background_is_read(tmp_path, mnist_test, mnist_cnn, ink):
    """What a drawing app or an HTML canvas exports: the strokes are the alpha channel, the
    colour under the clear pixels is black. Dropping alpha gave one black square for every digit."""
    from edgerun import load

    paths, want = [], []
    for i in range(10):
        strokes, label = _digit(mnist_test, i)
        bgra = np.zeros((280, 280, 4), np.uint8)
        bgra[:, :, :3] = 0 if ink == "black" else 255
        bgra[:, :, 3] = strokes
        path = tmp_path / f"{ink}_{i}.png"
        cv2.imwrite(str(path), bgra)
        paths.append(str(path))
        want.append(label)
    with load(mnist_cnn) as model:
        results = model(paths)
    assert not any(r.blank for r in results)
    assert sum(r.class_id == w for r, w in zip(results, want, strict=True)) >= 9


def test_flatten_alpha_composites_against_the_contrasting_background():
    dark = np.zeros((4, 4, 4), np.uint8)
    dark[:, :, 3] = 0
    dark[1, 1] = (10, 10, 10, 255)  # one dark stroke pixel: shown on white
    out = flatten_alpha(dark)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [255, 255, 255] and out[1, 1].tolist() == [10, 10, 10]
    light = dark.copy()
    light[1, 1] = (250, 250, 250, 255)  # a light stroke: shown on black
    assert flatten_alpha(light)[0, 0].tolist() == [0, 0, 0]
    half = np.zeros((1, 1, 4), np.uint8)
    half[0, 0] = (0, 0, 0, 128)  # half-transparent black on white: mid grey
    assert 120 <= int(flatten_alpha(half)[0, 0, 0]) <= 135


def test_an_opaque_bgra_frame_only_loses_its_alpha():
    frame = np.random.default_rng(1).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    frame[:, :, 3] = 255
    np.testing.assert_array_equal(to_bgr(frame), frame[:, :, :3])
    np.testing.assert_array_equal(to_gray(frame), cv2.cvtColor(frame[:, :, :3], cv2.COLOR_BGR2GRAY))


def test_caller_frame_is_not_changed_by_flattening():
    frame = np.zeros((3, 3, 4), np.uint8)
    frame[1, 1] = (0, 0, 0, 255)
    before = frame.copy()
    to_gray(frame)
    to_bgr(frame)
    np.testing.assert_array_equal(frame, before)


@pytest.mark.parametrize("value", [0, 255])
def test_a_blank_picture_is_flagged_in_its_record(tmp_path, mnist_cnn, value):
    from edgerun import load

    with load(mnist_cnn) as model:
        blank = model(np.full((120, 160), value, np.uint8))[0]
        digit = model(cv2.putText(np.zeros((28, 28), np.uint8), "7", (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2))[0]
    assert blank.ok and blank.blank and blank.top  # still answered, and said to be blank
    assert json.loads(json.dumps(blank.to_dict()))["blank"] is True
    assert "blank picture" in blank.summary()
    assert not digit.blank and "blank" not in digit.to_dict()


def test_run_counts_blank_pictures_and_says_so(tmp_path, mnist_cnn, capsys, caplog):
    from edgerun.runtime.cli import main

    cv2.imwrite(str(tmp_path / "blank.png"), np.full((50, 50), 255, np.uint8))
    cv2.imwrite(
        str(tmp_path / "seven.png"),
        cv2.putText(np.zeros((28, 28), np.uint8), "7", (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2),
    )
    out = tmp_path / "out.jsonl"
    code = main([str(mnist_cnn), "--source", str(tmp_path), "--json", str(out)])
    assert code == 0  # a blank picture is not a failed input
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("blank", False) for r in records] == [True, False]
    assert "1 input(s) were blank pictures" in caplog.text


def test_a_png_with_alpha_is_read_with_alpha(tmp_path):
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[:, :, 3] = 7
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), bgra)
    assert read_image(path).shape == (4, 4, 4)
