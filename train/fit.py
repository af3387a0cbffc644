"""Training a registry model the way the book does, and writing it with its card.

``train(TrainConfig(...))`` writes ``<out>/<name>.keras`` and ``<out>/<name>.json``; the JSON card
records how the model was made (data files and counts, recipe, seed, seconds, test accuracy),
and the export step copies it into the ONNX metadata.
"""

from __future__ import annotations

import logging
import sys
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgerun.runtime.files import write_json_atomic
from edgerun.runtime.outputs import AtomicFile

from .data import Split, load_split, shifted_copies
from .models import MODELS, ModelSpec, class_names, get_spec

logger = logging.getLogger(__name__)

CARD_SCHEMA = 1
RECIPES = ("book", "field")


class TrainError(Exception):
    """Training could not run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class TrainConfig:
    name: str
    data_dir: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    limit: int | None = None
    seed: int = 0
    out: Path = Path("models")
    shifted_copies: int | None = None
    weights: str | None = "imagenet"  # resnet50 only: "imagenet", a file, or None
    command: str | None = None  # the command line that asked for this run, for the card
    recipe: str = "book"  # "book" (the book's exact recipe) | "field" (camera pictures: augment.py)
    holdout: int | None = None  # training images kept apart for thresholds (None: the field recipe's, else 0)
    init: str | None = None  # a trained .keras model of the same architecture to start from


@dataclass
class TrainResult:
    model_path: Path
    card_path: Path
    card: dict = field(default_factory=dict)


def _validate(config: TrainConfig) -> ModelSpec:
    spec = get_spec(config.name)
    for label, value in (("epochs", config.epochs), ("batch size", config.batch_size)):
        if value is not None and value < 1:
            raise TrainError(f"{label} must be a positive whole number, got {value}")
    if config.limit is not None and config.limit < 1:
        raise TrainError(f"--limit must be a positive whole number, got {config.limit}")
    if config.shifted_copies is not None and config.shifted_copies < 0:
        raise TrainError(f"shifted copies must be 0 or more, got {config.shifted_copies}")
    if config.recipe not in RECIPES:
        raise TrainError(f"unknown recipe {config.recipe!r}; known: {', '.join(RECIPES)}")
    if config.recipe == "field":
        if spec.field_recipe is None:
            with_field = ", ".join(name for name, s in MODELS.items() if s.field_recipe is not None)
            raise TrainError(
                f"{spec.name} has no field recipe (camera pictures of digits); models with one: {with_field}"
            )
        if config.shifted_copies:
            raise TrainError(
                "--shifted-copies belongs to the book recipe; the field recipe shifts within its augmentation"
            )
    if config.holdout is not None and config.holdout < 0:
        raise TrainError(f"--holdout must be 0 or more, got {config.holdout}")
    if config.init is not None:
        if spec.recipe is None:
            raise TrainError(f"--init starts training from trained weights; {spec.name} is not trained here")
        if not Path(config.init).is_file():
            raise TrainError(f"--init {config.init} does not exist; give a .keras file written by edgerun train")
        # A cheap look now, before the data is read; the weights load where the model is built,
        # so that a seeded run draws its random numbers in the same order as the bundled model's.
        if not zipfile.is_zipfile(config.init):
            raise TrainError(f"--init {config.init} is not a .keras file (a zip written by Keras' model.save)")
    return spec


def _as_input(images: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, H, W, 1), scaled as the model's preprocessing says (the
    book's 1/255 for the MNIST models)."""
    return (images.astype(np.float32) * np.float32(spec.preprocessing.get("scale", 1.0)))[..., None]


class _EpochLog:
    """A Keras callback that logs one line per epoch (built lazily: keras is imported late)."""

    @staticmethod
    def create(total_epochs: int):
        import keras

        class EpochLog(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                parts = " ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items()))
                seconds = time.perf_counter() - self._start
                logger.info("epoch %d/%d %s (%.1fs)", epoch + 1, total_epochs, parts, seconds)

        return EpochLog()


def _optimizer(recipe):
    import keras

    if recipe.optimizer == "adadelta":
        # The book's Keras defaulted to learning_rate=1.0; today's 0.001 barely trains.
        return keras.optimizers.Adadelta(learning_rate=recipe.learning_rate, rho=0.95)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=recipe.learning_rate)
    raise TrainError(f"unknown optimizer {recipe.optimizer!r}")


def _save_atomic(model, path: Path) -> None:
    """Save the weights and architecture only: the optimizer's slots would triple the file
    (Adadelta keeps two per weight) and nothing here resumes training."""
    copy = model.__class__.from_config(model.get_config())  # a fresh, uncompiled twin
    copy.set_weights(model.get_weights())
    with AtomicFile(path, what="trained model") as staged:  # the one writer: atomic, never over a non-file
        copy.save(staged.path)


def _versions() -> dict:
    import keras
    import tensorflow as tf

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__}


def _preprocessing(spec: ModelSpec, config: TrainConfig) -> dict:
    if config.recipe == "field" and spec.field_recipe and spec.field_recipe.preprocessing:
        return spec.field_recipe.preprocessing
    return spec.preprocessing


def split_holdout(train: Split, count: int, seed: int) -> tuple[Split, np.ndarray]:
    """``train`` without ``count`` seeded random images, and the indices of those kept apart."""
    if count <= 0:
        return train, np.zeros(0, np.int64)
    if count >= len(train):
        raise TrainError(
            f"--holdout {count} leaves nothing to train on ({len(train)} training images); give a smaller "
            "--holdout (0 keeps none apart) or more images (--limit)"
        )
    order = np.random.default_rng([seed, 1]).permutation(len(train))
    held, keep = np.sort(order[:count]), np.sort(order[count:])
    return Split(train.images[keep], train.labels[keep], train.source, train.files, train.sha256), held


def _localize(spec: ModelSpec, config: TrainConfig) -> dict:
    field = spec.field_recipe
    if config.recipe == "field" and field is not None and field.localize is not None:
        return {"localize": field.localize}
    return {}


def _card(spec: ModelSpec, config: TrainConfig, model, **extra) -> dict:
    return {
        "schema": CARD_SCHEMA,
        "name": spec.name,
        "task": spec.task,
        "classes": list(class_names(spec)),
        "input": {"shape": list(spec.input_shape), "layout": "NHWC", "dtype": "float32"},
        "preprocessing": _preprocessing(spec, config),
        **_localize(spec, config),
        "output": "probabilities",
        "params": int(model.count_params()),
        "seed": config.seed,
        "book": spec.book,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": config.command,
        "versions": _versions(),
        **extra,
    }


def _start_from(model, path: str) -> None:
    """Load the weights of a trained model of ``model``'s architecture (e.g. the CNN a localizer
    is made from, trained on clean digits first); anything else is a TrainError."""
    import keras

    try:
        trained = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for an unreadable file
        raise TrainError(f"--init {path} is not a Keras model ({type(exc).__name__}: {exc})") from None
    ours = [w.shape for w in model.get_weights()]
    theirs = [w.shape for w in trained.get_weights()]
    if ours != theirs:
        raise TrainError(
            f"--init {path} ({trained.name}) has weights of shapes {theirs}, "
            f"but {model.name} needs {ours}; give a model of the same architecture"
        )
    model.set_weights(trained.get_weights())
    logger.info("starting from the weights of %s (%s)", path, trained.name)


def _fit_classifier(spec: ModelSpec, config: TrainConfig, train: Split, test: Split, copies: int):
    import keras

    recipe = spec.recipe
    epochs = config.epochs or recipe.epochs
    batch_size = config.batch_size or recipe.batch_size
    images, labels = train.images, train.labels
    augment = None
    if config.recipe == "field":
        from dataclasses import asdict

        from .augment import CLASSIFIER, LOCALIZER, field_samples

        kind = spec.field_recipe.kind
        augment = LOCALIZER if kind == "localizer" else CLASSIFIER
        images, y_train = field_samples(images, labels, kind, seed=config.seed, aug=augment)
        epochs = config.epochs or spec.field_recipe.epochs
        logger.info("field samples (%s): %d images -> %d samples", kind, len(train), len(images))
        augment = {"kind": kind, **asdict(augment)}
    else:
        if copies:
            images, labels = shifted_copies(images, labels, copies=copies, seed=config.seed)
            logger.info("shifted MNIST: %d images + %d shifted copies each = %d", len(train), copies, len(images))
        y_train = keras.utils.to_categorical(labels, len(spec.classes))
    x_train = _as_input(images, spec)
    x_test, y_test = _as_input(test.images, spec), keras.utils.to_categorical(test.labels, len(spec.classes))

    # a localizer trains as the CNN it is made from, then becomes fully convolutional
    model = get_spec(spec.converts_from or spec.name).build()
    if config.init is not None:
        _start_from(model, config.init)
    model.compile(loss="categorical_crossentropy", optimizer=_optimizer(recipe), metrics=["accuracy"])
    logger.info(
        "training %s: %d images, %d epochs, batch %d, %s lr=%g",
        spec.name,
        len(x_train),
        epochs,
        batch_size,
        recipe.optimizer,
        recipe.learning_rate,
    )
    start = time.perf_counter()
    # The book also validates on the test split each epoch; that doubles the time here and
    # touches the test file, so we evaluate on it once, at the end.
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        verbose=0,
        callbacks=[_EpochLog.create(epochs)],
    )
    seconds = time.perf_counter() - start
    if spec.converts_from is not None:
        from .fcn import to_fcn

        model = to_fcn(model, name=spec.name)
        probs = model.predict(x_test, batch_size=256, verbose=0).reshape(len(x_test), len(spec.classes))
        loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(probs)), test.labels], 1e-7, 1))))
        accuracy = float(np.mean(probs.argmax(axis=1) == test.labels))
    else:
        loss, accuracy = (float(v) for v in model.evaluate(x_test, y_test, verbose=0))
    training = {
        "recipe": config.recipe,
        "optimizer": recipe.optimizer,
        "learning_rate": recipe.learning_rate,
        "batch_size": batch_size,
        "epochs": epochs,
        "shifted_copies": copies,
        "train_images": int(len(x_train)),
        "train_digits": len(train),
        "seconds": round(seconds, 2),
        "history": {k: [round(float(v), 5) for v in vs] for k, vs in history.history.items()},
    }
    if augment is not None:
        training["augment"] = augment
    return model, training, {"accuracy": accuracy, "loss": loss, "samples": len(test)}


def _check_outputs(config: TrainConfig, out: Path, model_path: Path, card_path: Path) -> None:
    """Before any training: the output folder can take files, and neither output is the model
    training starts from (--init) or its card (``--init M/mnist_cnn.keras --out M`` replaced them).

    Raises:
        TrainError: with the output refused and why.
    """
    from edgerun.runtime.outputs import OutputError, Protected, check_directory, check_target

    inputs = [Path(config.init), Path(config.init).with_suffix(".json")] if config.init else []
    try:
        check_directory(out, "--out")
        for target, what in ((model_path, "trained model"), (card_path, "training card")):
            check_target(target, Protected(inputs), what)
    except OutputError as exc:
        raise TrainError(f"{exc}; give --out another folder") from None


def train(config: TrainConfig) -> TrainResult:
    """Train (or, for ResNet50, build) ``config.name`` and write the model and its card.

    Raises:
        UnknownModelError: the name is not in the registry.
        TrainError, DataError: bad arguments or missing data, with what to do.
    """
    spec = _validate(config)
    import keras

    keras.utils.set_random_seed(config.seed)
    out = Path(config.out)
    model_path, card_path = out / f"{spec.name}.keras", out / f"{spec.name}.json"
    _check_outputs(config, out, model_path, card_path)

    if spec.recipe is None:  # resnet50: built, not trained here
        weights = None if config.weights in (None, "", "none") else config.weights
        if weights not in (None, "imagenet") and not Path(weights).is_file():
            raise TrainError(f"--weights {weights} does not exist; give 'imagenet', a file, or 'none'")
        try:
            model = spec.build(weights=weights)
        except Exception as exc:  # noqa: BLE001 - download/load failures all get the same advice
            raise TrainError(
                f"could not load ResNet50 weights {weights!r} ({type(exc).__name__}: {exc}). "
                "Offline, pass --weights PATH to a local .h5 file, or --weights none for random "
                "weights (fine for export, parity and latency, not for real predictions)."
            ) from exc
        card = _card(spec, config, model, weights=weights or "random", data=None, test=None)
    else:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        train_split = load_split(spec.dataset, "train", config.data_dir).sample(config.limit, config.seed)
        test_split = load_split(spec.dataset, "test", config.data_dir)
        on_field = config.recipe == "field"
        count = config.holdout if config.holdout is not None else (spec.field_recipe.holdout if on_field else 0)
        train_split, held = split_holdout(train_split, count, config.seed)
        if on_field:
            copies = 0
        else:
            copies = spec.recipe.shifted_copies if config.shifted_copies is None else config.shifted_copies
        model, training, test = _fit_classifier(spec, config, train_split, test_split, copies)
        if config.init is not None:
            from edgerun.runtime.files import sha256_file

            training["init"] = {"path": str(config.init), "sha256": sha256_file(config.init)}
        if on_field or count:
            # Indices into the (sampled) training split: the pictures thresholds are chosen on.
            training["holdout"] = {"count": int(len(held)), "limit": config.limit, "indices": held.tolist()}
        logger.info("%s test accuracy %.4f on %d images", spec.name, test["accuracy"], test["samples"])
        card = _card(
            spec,
            config,
            model,
            data={"train": train_split.provenance(), "test": test_split.provenance()},
            training=training,
            test=test,
        )
    _save_atomic(model, model_path)
    write_json_atomic(card_path, card)
    return TrainResult(model_path=model_path, card_path=card_path, card=card)
