"""The registry of the books' models: name -> spec (builder, data, training recipe, preprocessing).

``create_model(name)`` builds one; an unknown name raises :class:`UnknownModelError` listing the
names that exist. Architectures are exactly the seeds' (``shared/SEEDS.md``); the tests assert
their parameter counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .data import FASHION_CLASSES, MNIST_CLASSES

#: Keras' caffe-mode means (B, G, R), subtracted after RGB->BGR, no scaling.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class UnknownModelError(KeyError):
    """A model name that is not in the registry."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown model {self.name!r}; known models: {', '.join(MODELS)}"


@dataclass(frozen=True)
class Recipe:
    """How the book trains a model."""

    optimizer: str  # "adadelta" | "adam"
    learning_rate: float
    batch_size: int
    epochs: int
    shifted_copies: int = 0  # >0: train on shifted MNIST (each image + N shifted copies)


@dataclass(frozen=True)
class FieldRecipe:
    """How a model trains for camera pictures: the book's optimizer and batch, on field samples
    (``augment.field_samples``) of the given kind, with ``holdout`` training images kept apart
    to choose thresholds on, and the preprocessing recipe the runtime uses with it."""

    kind: str  # "classifier" | "localizer" (augment.KINDS)
    epochs: int
    holdout: int = 0
    preprocessing: dict | None = None  # None: the spec's own
    localize: dict | None = None  # a page localizer's settings (runtime/page_head.py PageLocalizeHead)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the project knows about one registry model."""

    name: str
    build: Callable[[], Any]
    dataset: str  # "mnist" | "fashion_mnist" | "imagenet"
    task: str  # "classify" | "localize"
    input_shape: tuple[int | None, int | None, int]  # H, W, C (channels last)
    classes: tuple[str, ...]
    preprocessing: dict
    params: int
    recipe: Recipe | None
    book: str
    notes: dict = field(default_factory=dict)
    field_recipe: FieldRecipe | None = None  # how it trains for camera pictures (``--recipe field``)
    converts_from: str | None = None  # a localizer: the CNN it is trained as, then made fully convolutional


def _keras():
    import keras

    return keras


def build_mnist_cnn():
    """Keras' MNIST example: the book's baseline (1,199,882 parameters)."""
    keras = _keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1), name="input"),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ],
        name="mnist_cnn",
    )


def build_mnist_small():
    """The book's best experiment: a second conv+pool block and a 5x5 first kernel (188,746)."""
    keras = _keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1), name="input"),
            layers.Conv2D(32, (5, 5), activation="relu"),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.25),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ],
        name="mnist_small",
    )


def build_fashion_cnn():
    """The Fashion-MNIST CNN of "CNN in practice": bias-free same-padded 3x3 convs (287,402)."""
    keras = _keras()
    layers = keras.layers

    def conv3x3(n: int):
        return layers.Conv2D(n, (3, 3), use_bias=False, activation="relu", padding="same")

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1), name="input"),
            conv3x3(32),
            conv3x3(32),
            layers.MaxPooling2D((2, 2)),
            conv3x3(64),
            conv3x3(64),
            layers.MaxPooling2D((2, 2)),
            conv3x3(128),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="fashion_cnn",
    )


def build_mnist_fcn():
    """An untrained FCN of ``mnist_cnn``'s shape; real use converts a trained CNN (see fcn.py)."""
    from .fcn import to_fcn

    return to_fcn(build_mnist_cnn(), name="mnist_fcn")


def build_mnist_small_fcn():
    """An untrained FCN of ``mnist_small``'s shape (two pools: a map step of 4 px)."""
    from .fcn import to_fcn

    return to_fcn(build_mnist_small(), name="mnist_small_fcn")


def build_resnet50(weights: str | None = None):
    """``keras.applications.ResNet50``; ``weights`` is ``"imagenet"``, a file, or None (random)."""
    keras = _keras()
    return keras.applications.ResNet50(weights=weights, input_shape=(224, 224, 3))


_MNIST_PRE = {
    "recipe": "mnist",
    "size": [28, 28],
    "color": "gray",
    "scale": 1 / 255.0,
    "mean": [0.0],
    "resize": "area",
    "background": "dark",
}

_BOOK_RECIPE = Recipe(optimizer="adadelta", learning_rate=1.0, batch_size=128, epochs=12)


def _imagenet_classes() -> tuple[str, ...]:
    from .labels import imagenet_class_names

    return imagenet_class_names()


def _page_localizer(stride: int, min_area: int) -> FieldRecipe:
    """The field recipe of an MNIST localizer: pages through background normalisation
    (runtime/pages.py, recipe "page"), 500 training images kept apart to choose thresholds on.

    The threshold here is where a sweep starts; the one a model ships with is chosen on pages of
    its held-out images and written into its card (python -m edgerun.scenes.evaluate --split
    train --holdout CARD --sweep ... --record). The rest are the defaults the field pictures were
    developed with, written out so that a model keeps them; ``label: anchor`` (runtime/multiscale.py)
    was chosen on the held-out pages and book scenes of mnist_small_fcn (README, Field pictures)."""
    return FieldRecipe(
        kind="localizer",
        epochs=12,
        holdout=500,
        preprocessing={
            **_MNIST_PRE,
            "recipe": "page",
            "size": [None, None],
            "stride": stride,
            "window": 28,
            "background": "any",
        },
        localize={
            "threshold": 0.8,
            "min_area": min_area,
            "margin": 4,
            "factors": [1.0],
            "levels": [1.0, 1.25],
            "radius_factor": 0.5,
            "max_crop": 160,
            "label": "anchor",
        },
    )


MODELS: dict[str, ModelSpec] = {
    "mnist_cnn": ModelSpec(
        name="mnist_cnn",
        build=build_mnist_cnn,
        dataset="mnist",
        task="classify",
        input_shape=(28, 28, 1),
        classes=MNIST_CLASSES,
        preprocessing=_MNIST_PRE,
        params=1_199_882,
        recipe=_BOOK_RECIPE,
        book="99.16% test accuracy on full MNIST (60k train, 12 epochs)",
        field_recipe=FieldRecipe(kind="classifier", epochs=12),
    ),
    "mnist_small": ModelSpec(
        name="mnist_small",
        build=build_mnist_small,
        dataset="mnist",
        task="classify",
        input_shape=(28, 28, 1),
        classes=MNIST_CLASSES,
        preprocessing=_MNIST_PRE,
        params=188_746,
        recipe=_BOOK_RECIPE,
        book="99.51% test accuracy on full MNIST (60k train)",
        field_recipe=FieldRecipe(kind="classifier", epochs=12),
    ),
    "fashion_cnn": ModelSpec(
        name="fashion_cnn",
        build=build_fashion_cnn,
        dataset="fashion_mnist",
        task="classify",
        input_shape=(28, 28, 1),
        classes=FASHION_CLASSES,
        preprocessing={**_MNIST_PRE, "recipe": "gray"},
        params=287_402,
        recipe=Recipe(optimizer="adam", learning_rate=0.001, batch_size=128, epochs=10),
        book="about 92% test accuracy on full Fashion-MNIST (10 epochs)",
    ),
    "mnist_fcn": ModelSpec(
        name="mnist_fcn",
        build=build_mnist_fcn,
        dataset="mnist",
        task="localize",
        input_shape=(None, None, 1),
        classes=MNIST_CLASSES,
        preprocessing={**_MNIST_PRE, "recipe": "fcn", "size": [None, None], "stride": 2, "window": 28},
        params=1_199_882,
        recipe=Recipe(optimizer="adadelta", learning_rate=1.0, batch_size=128, epochs=24, shifted_copies=4),
        book="99.25% on single 28x28 test digits; localizes digits on scenes (no figure)",
        converts_from="mnist_cnn",
        field_recipe=_page_localizer(stride=2, min_area=2),
    ),
    "mnist_small_fcn": ModelSpec(
        name="mnist_small_fcn",
        build=build_mnist_small_fcn,
        dataset="mnist",
        task="localize",
        input_shape=(None, None, 1),
        classes=MNIST_CLASSES,
        preprocessing={**_MNIST_PRE, "recipe": "fcn", "size": [None, None], "stride": 4, "window": 28},
        params=188_746,
        recipe=Recipe(optimizer="adadelta", learning_rate=1.0, batch_size=128, epochs=24, shifted_copies=4),
        book="the book's method (dense -> conv weight transfer, shifted MNIST) on its best CNN (188,746 params)",
        converts_from="mnist_small",
        field_recipe=_page_localizer(stride=4, min_area=1),
    ),
    "resnet50": ModelSpec(
        name="resnet50",
        build=build_resnet50,
        dataset="imagenet",
        task="classify",
        input_shape=(224, 224, 3),
        classes=(),  # filled lazily from labels.py: 1,000 names ship with the package
        preprocessing={
            "recipe": "caffe",
            "size": [224, 224],
            "color": "BGR",
            "scale": 1.0,
            "mean": list(CAFFE_MEAN_BGR),
            "resize": "short_side_crop",
        },
        params=25_636_712,
        recipe=None,
        book="top-1 74.9%, top-5 92.1% on ImageNet (Keras applications, 25.6M params)",
    ),
}


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; raises :class:`UnknownModelError` listing known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(name) from None


def class_names(spec: ModelSpec) -> tuple[str, ...]:
    return _imagenet_classes() if spec.dataset == "imagenet" else spec.classes


def create_model(name: str, **kwargs):
    """Build the registry model ``name`` (a new, untrained Keras model)."""
    return get_spec(name).build(**kwargs)
