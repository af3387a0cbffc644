"""The runtime's ResNet50 preprocessing equals Keras' own preprocess_input (needs TensorFlow)."""

from __future__ import annotations

import numpy as np

from edgerun.runtime.metadata import Preprocessing
from edgerun.runtime.preprocess import recipe_caffe

CAFFE = Preprocessing(recipe="caffe", size=(224, 224), color="BGR", mean=(103.939, 116.779, 123.68), resize="direct")


def test_caffe_matches_keras_preprocess_input():
    from keras.applications.resnet50 import preprocess_input

    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    rgb = bgr[:, :, ::-1].astype(np.float32)
    expected = preprocess_input(rgb[None].copy())[0]
    got = recipe_caffe(bgr, CAFFE)
    assert np.abs(got - expected).max() <= 1e-4
