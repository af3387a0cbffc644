from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgerun.train import cli
from edgerun.train.augment import AugmentError, FieldAugment, field_samples


def digits(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        cv2.line(images[i], (14, 5), (10 + i % 8, 23), 255, 2)
    return images, np.arange(n) % 10


@pytest.mark.parametrize("camera", [False, True])
def test_localizer_samples_are_digits_then_negatives(camera):
    images, labels = digits()
    aug = FieldAugment(copies=2, negatives=1.5, camera=camera)
    x, y = field_samples(images, labels, "localizer", seed=1, aug=aug)
    n = len(images)
    assert x.shape == (n * 3 + 30, 28, 28) and x.dtype == np.uint8 and y.shape == (len(x), 10)
    if camera:  # the originals first, photographed: still the same strokes
        for original, shot in zip(images, x[:n], strict=True):
            assert np.corrcoef(original.ravel(), shot.ravel())[0, 1] > 0.6
    else:  # the originals first, untouched
        np.testing.assert_array_equal(x[:n], images)
    assert (y[: n * 3].argmax(axis=1) == np.tile(labels, 3)).all() and (y[: n * 3].max(axis=1) == 1).all()
    np.testing.assert_allclose(y[n * 3 :], 0.1)  # negatives: "none of them"
    assert not np.array_equal(x[n : 2 * n], x[2 * n : 3 * n])  # copies differ from each other


def test_samples_repeat_per_seed():
    images, labels = digits()
    a = field_samples(images, labels, "localizer", seed=3)
    b = field_samples(images, labels, "localizer", seed=3)
    c = field_samples(images, labels, "localizer", seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_classifier_samples_have_no_negatives_and_stay_centred():
    images, labels = digits()
    x, y = field_samples(images, labels, "classifier", seed=0)
    assert len(x) == len(images) * 6 and (y.max(axis=1) == 1).all()
    mass = x[len(images) :].astype(float)
    rows = (mass.sum(axis=2) * np.arange(28)).sum(axis=1) / mass.sum(axis=(1, 2))
    assert np.abs(rows - 14).max() < 5  # shifted by at most 2 px, scaled and rotated a little


@pytest.mark.parametrize(
    ("kind", "shape", "message"),
    [("detector", (4, 28, 28), "kind must be one of"), ("localizer", (4, 32, 32), "N x 28 x 28")],
)
def test_bad_arguments(kind, shape, message):
    with pytest.raises(AugmentError, match=message):
        field_samples(np.zeros(shape, np.uint8), np.zeros(4, int), kind)


def test_field_recipe_trains_the_localizer_with_a_holdout(mnist_dir, tmp_path):
    code = cli.main(
        ["mnist_fcn", "--recipe", "field", "--data-dir", str(mnist_dir), "--epochs", "1", "--limit", "150",
         "--holdout", "50", "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    card = json.loads((tmp_path / "mnist_fcn.json").read_text())
    training = card["training"]
    assert training["recipe"] == "field" and training["augment"]["kind"] == "localizer"
    assert training["train_digits"] == 100 and training["holdout"]["count"] == 50
    assert len(set(training["holdout"]["indices"])) == 50
    assert card["preprocessing"]["recipe"] == "page"


def test_field_recipe_is_refused_where_there_is_none(mnist_dir, tmp_path, capsys):
    assert cli.main(["fashion_cnn", "--recipe", "field", "--out", str(tmp_path)]) == 2
    assert "no field recipe" in capsys.readouterr().err
