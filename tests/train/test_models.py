from __future__ import annotations

import numpy as np
import pytest

from edgerun.train.fcn import fcn_output_size, to_fcn
from edgerun.train.labels import imagenet_class_names
from edgerun.train.models import MODELS, UnknownModelError, create_model, get_spec


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("mnist_cnn", 1_199_882),
        ("mnist_small", 188_746),
        ("fashion_cnn", 287_402),
        ("mnist_fcn", 1_199_882),
        ("mnist_small_fcn", 188_746),
        ("resnet50", 25_636_712),
    ],
)
def test_parameter_counts_match_the_book(name, params):
    model = create_model(name)
    assert model.count_params() == params == get_spec(name).params


def test_unknown_name_lists_the_registry():
    with pytest.raises(UnknownModelError) as info:
        get_spec("mnist_cnnn")
    assert all(name in str(info.value) for name in MODELS)


def test_fcn_equals_cnn_on_28x28_and_maps_large_inputs():
    import keras

    keras.utils.set_random_seed(3)
    cnn = create_model("mnist_cnn")
    # Give the dense layers non-trivial weights so the reshape is really exercised.
    for layer in cnn.layers:
        if layer.weights:
            layer.set_weights([np.random.default_rng(7).normal(0, 0.05, w.shape) for w in layer.get_weights()])
    fcn = to_fcn(cnn)
    assert fcn.count_params() == cnn.count_params()
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    dense = cnn.predict(x, verbose=0)
    conv = fcn.predict(x, verbose=0)
    assert conv.shape == (8, 1, 1, 10)
    assert np.abs(conv.reshape(8, 10) - dense).max() <= 1e-5

    scene = np.random.default_rng(1).random((1, 308, 336, 1), dtype=np.float32)
    assert fcn.predict(scene, verbose=0).shape == (1, 141, 155, 10)
    assert fcn_output_size(308, 336) == (141, 155)


def test_fcn_positions_match_dense_model_on_crops():
    """Each map position is the dense model's answer on the 28x28 crop at 2x that offset."""
    import keras

    keras.utils.set_random_seed(5)
    cnn = create_model("mnist_cnn")
    fcn = to_fcn(cnn)
    scene = np.random.default_rng(2).random((1, 40, 44, 1), dtype=np.float32)
    heat = fcn.predict(scene, verbose=0)[0]
    for i, j in [(0, 0), (3, 5), (6, 8)]:
        crop = scene[:, 2 * i : 2 * i + 28, 2 * j : 2 * j + 28]
        assert np.abs(cnn.predict(crop, verbose=0)[0] - heat[i, j]).max() <= 1e-5


def test_imagenet_names_ship_with_the_package():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[820] == "steam_locomotive" and names[705] == "passenger_car"
