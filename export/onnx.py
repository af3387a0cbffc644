"""Keras -> ONNX with tf2onnx, named dynamic axes and the edgerun metadata written in.

``tf2onnx.convert.from_keras`` fails on Keras 3 models (``KeyError: 'keras_tensor_N'``,
tensorflow-onnx issue 2448), so the model is wrapped in a ``tf.function`` with a named
``tf.TensorSpec`` and converted with ``from_function``.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edgerun.runtime.files import sha256_file
from edgerun.runtime.metadata import ModelMetadata, Preprocessing
from edgerun.runtime.outputs import write_bytes

from .graph import GraphSummary, rename_dims, summarize
from .opsets import DEFAULT_OPSET
from .simplify import SimplifyError, SimplifyReport, simplify

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "probs"


class ExportError(Exception):
    """The export could not be made or did not pass its checks; the message has the numbers."""


class QualityError(ExportError):
    """A variant was made but failed its quality check against Keras, so it was not written
    (``edgerun export`` exits 1 for it, as for the parity gate, not 2 as for a bad input)."""


@dataclass
class Exported:
    path: Path
    metadata: ModelMetadata
    summary: GraphSummary
    simplified: SimplifyReport | None = None  # None: exported with --no-simplify


def load_keras(path: Path):
    import keras

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} does not exist; train it first: edgerun train NAME --out {path.parent}")
    if path.suffix != ".keras":
        raise ExportError(f"expected a .keras file, got {path.name}")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
        raise ExportError(f"{path} could not be loaded as a Keras model ({type(exc).__name__}: {exc})") from exc


def read_card(keras_path: Path) -> dict:
    """The training card beside the model (``NAME.json``), or ``{}`` if there is none."""
    card_path = Path(keras_path).with_suffix(".json")
    if not card_path.is_file():
        return {}
    try:
        return json.loads(card_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{card_path} is not valid JSON ({exc}); re-run edgerun train") from exc


def check_card(card: dict, model, keras_path: Path) -> None:
    """Refuse a card that describes another model (a .keras copied or renamed beside some other
    model's NAME.json): its name, classes and preprocessing would be stamped on this export."""
    if not card:
        return
    found = {
        "parameters": int(model.count_params()),
        "input shape": [d for d in model.input_shape[1:]],
        "classes": model.output_shape[-1],
    }
    expected = {
        "parameters": card.get("params"),
        "input shape": (card.get("input") or {}).get("shape") if isinstance(card.get("input"), dict) else None,
        "classes": len(card["classes"]) if isinstance(card.get("classes"), list) else None,
    }
    differ = [f"{key} {expected[key]} vs {found[key]}" for key in found if expected[key] not in (None, found[key])]
    if differ:
        card_path = Path(keras_path).with_suffix(".json")
        raise ExportError(
            f"{card_path} describes another model than {Path(keras_path).name} (card vs model: {'; '.join(differ)}); "
            f"move the card away to export with the registry's or the model's own description, or re-train to "
            f"write a matching pair"
        )


def metadata_for(model, keras_path: Path, card: dict, opset: int, command: str | None = None) -> ModelMetadata:
    """Build the metadata from the training card, else the registry, else the model itself."""
    name = card.get("name") or Path(keras_path).stem
    localize = card.get("localize")
    if card:
        task, classes, pre = card["task"], card["classes"], dict(card["preprocessing"])
        if task == "localize" and pre.get("recipe") == "page":  # a card from before these were written
            from edgerun.train.models import MODELS

            field = getattr(MODELS.get(name), "field_recipe", None)
            if field is not None and localize is None and field.localize is not None:
                localize = field.localize
                logger.info("%s: localize settings from the registry (the card predates them)", name)
            if field is not None and "window" not in pre and field.preprocessing:
                pre["window"] = field.preprocessing.get("window")
    else:
        from edgerun.train.models import MODELS, class_names

        spec = MODELS.get(name)
        if spec is not None:
            task, classes, pre = spec.task, list(class_names(spec)), spec.preprocessing
        else:
            logger.warning("%s has no card and is not a registry model: generic preprocessing", name)
            h, w, c = model.input_shape[1:]
            units = model.output_shape[-1]
            task, classes = "classify", [str(i) for i in range(units)]
            pre = {"recipe": "generic", "size": [h, w], "color": "gray" if c == 1 else "RGB"}
    h, w, c = model.input_shape[1:]
    shape = ["batch", h or "height", w or "width", c]
    import keras
    import onnx
    import tensorflow as tf
    import tf2onnx

    return ModelMetadata(
        name=name,
        task=task,
        classes=tuple(classes),
        layout="NHWC",
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        input_shape=tuple(shape),
        preprocessing=Preprocessing.from_dict(pre),
        localize=localize,
        output_kind="probabilities",
        source_sha256=sha256_file(keras_path),
        data=card.get("data"),
        test=card.get("test"),
        opset=opset,
        versions={
            "python": sys.version.split()[0],
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__,
        },
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command,
    )


def keras_function(model):
    """The model as a ``tf.function`` with a named input spec."""
    import tensorflow as tf

    h, w, c = model.input_shape[1:]
    shape = (None, h, w, c)
    spec = (tf.TensorSpec(shape, tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def forward(x):
        return {OUTPUT_NAME: model(x, training=False)}

    return forward, spec


def convert(model, opset: int = DEFAULT_OPSET):
    """Convert a Keras model to an ``onnx.ModelProto`` with named dynamic axes."""
    import tf2onnx

    forward, spec = keras_function(model)
    try:
        proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset)
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises many kinds
        raise ExportError(f"tf2onnx could not convert {model.name} at opset {opset}: {exc}") from exc
    h, w, _ = model.input_shape[1:]
    renames = {(INPUT_NAME, 0): "batch", (OUTPUT_NAME, 0): "batch"}
    if h is None:  # any height and width: the FCN, or a classifier that pools globally
        renames.update({(INPUT_NAME, 1): "height", (INPUT_NAME, 2): "width"})
        if len(model.output_shape) == 4:  # a map out (the FCN), not one row of scores
            renames.update({(OUTPUT_NAME, 1): "out_height", (OUTPUT_NAME, 2): "out_width"})
    rename_dims(proto, renames)
    return proto


def write_metadata(proto, metadata: ModelMetadata) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def save_onnx(proto, path: Path) -> int:
    """Check the model and write it atomically; returns the size in bytes."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected the export: {exc}") from exc
    data = proto.SerializeToString()
    write_bytes(path, data, what="ONNX model")  # the one writer: atomic, never over a non-file
    return len(data)


def export_keras(
    keras_path: Path,
    out: Path,
    opset: int = DEFAULT_OPSET,
    command: str | None = None,
    labels: tuple[str, ...] | None = None,
    simplified: bool = True,
):
    """Export ``keras_path`` to ``out``; returns the Keras model and :class:`Exported`.

    ``labels`` (class names in output order) replace what the card or the registry says. With
    ``simplified`` (the default) the graph goes through :func:`~.simplify.simplify` before it is
    checked and written: the parity gate then tests the graph that ships.
    """
    model = load_keras(keras_path)
    card = read_card(keras_path)
    check_card(card, model, keras_path)
    channels = model.input_shape[-1]
    if channels not in (1, 3):  # exported all the same: other runtimes may feed it
        logger.warning(
            "%s takes %s-channel images; edgerun run feeds 1 (gray) or 3 (colour) channels, so it will refuse "
            "the exported model (other runtimes can still use it)",
            Path(keras_path).name,
            channels,
        )
    metadata = metadata_for(model, keras_path, card, opset, command)
    if labels is not None:
        units = model.output_shape[-1]
        if len(labels) != units:
            raise ExportError(f"--labels names {len(labels)} classes but {keras_path.name} has {units} outputs")
        metadata = metadata.replace(classes=tuple(labels))
    proto = convert(model, opset=opset)
    write_metadata(proto, metadata)
    report = None
    if simplified:
        try:
            proto, report = simplify(proto)
        except SimplifyError as exc:
            raise ExportError(f"graph simplification failed ({exc}); export with --no-simplify") from exc
    size = save_onnx(proto, out)
    summary = summarize(proto, out, size)
    logger.info(
        "wrote %s: %.2f MB, %d nodes, %d Transpose",
        out,
        size / 1e6,
        sum(summary.ops.values()),
        summary.transposes,
    )
    return model, Exported(out, metadata, summary, report)
