"""The metadata contract between export and runtime: what an edgerun ONNX file says about itself.

Export writes a :class:`ModelMetadata` into the ONNX ``metadata_props`` (one key per field,
values JSON-encoded, so Netron and ``edgerun inspect`` show them readably); the runtime reads it
back through :func:`read_metadata`, the one place that knows the keys and the schema number.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCHEMA = 1
SCHEMA_KEY = "edgerun.schema"
PREFIX = "edgerun."

TASKS = ("classify", "localize")

#: The input size used to measure or check a model that takes any size (the book's 308x336 scene).
ANY_SIZE_PROBE = (308, 336)
OUTPUT_KINDS = ("probabilities", "logits")


RESIZES = ("area", "direct", "short_side_crop")
BACKGROUNDS = ("dark", "any")


class MetadataError(ValueError):
    """Metadata that this runtime cannot use; the message says what was expected."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: ModelMetadata fields and the types they may hold (checked at load: a wrong type is a clear
#: error there, not a crash in the middle of a run).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "input_name": (str,),
    "output_name": (str,),
    "source_sha256": (str, type(None)),
    "data": (dict, type(None)),
    "test": (dict, type(None)),
    "opset": (int, type(None)),
    "versions": (dict,),
    "variant": (str,),
    "created": (str, type(None)),
    "command": (str, type(None)),
    "schema": (int,),
}


@dataclass(frozen=True)
class Preprocessing:
    """How to turn a frame into the model's input.

    Attributes:
        recipe: ``mnist`` (digit photos normalised like MNIST), ``gray`` (plain grayscale
            resize), ``fcn`` (any size, grayscale, inverted on light backgrounds), ``page``
            (camera pictures: background normalised, localized from ink proposals), ``caffe``
            (ImageNet: BGR, mean subtraction), or ``generic`` (scale, mean and std only).
        size: (height, width); ``None`` entries for any size.
        color: ``gray``, ``RGB`` or ``BGR``: the channel order the model expects.
        scale: multiplied into the pixel values first (1/255 maps 0..255 to 0..1).
        mean: then subtracted per channel, in the model's channel order and scaled units.
        std: then divided per channel (torchvision's ImageNet models: mean 0.485, 0.456, 0.406
            and std 0.229, 0.224, 0.225 with scale 1/255 and RGB).
        resize: ``area`` (direct, INTER_AREA), ``direct`` (INTER_LINEAR) or
            ``short_side_crop`` (shorter side to size, then centre crop).
        background: ``dark`` (digits are light on dark, as MNIST) or ``any``.
        stride: localize models: input pixels per output map position.
        window: localize models: the input window one map position sees, in pixels.
    """

    recipe: str = "generic"
    size: tuple[int | None, int | None] = (None, None)
    color: str = "BGR"
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    resize: str = "direct"
    std: tuple[float, ...] = (1.0,)
    background: str = "any"
    stride: int | None = None
    window: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, str):
            raise MetadataError(f"preprocessing recipe must be a name, got {self.recipe!r}")
        if (
            not isinstance(self.size, tuple)
            or len(self.size) != 2
            or any(v is not None and (not _is_int(v) or v < 1) for v in self.size)
        ):
            raise MetadataError(
                f"preprocessing size must be [height, width] of whole numbers or null, got {self.size!r}"
            )
        if self.color not in ("gray", "RGB", "BGR"):
            raise MetadataError(f"preprocessing color must be gray, RGB or BGR, got {self.color!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values or not all(_is_number(v) for v in values):
                raise MetadataError(f"preprocessing {name} must be a list of finite numbers, got {values!r}")
            channels = 1 if self.color == "gray" else 3
            if len(values) not in (1, channels):
                wanted = "1 (its one channel)" if channels == 1 else "1 (for every channel) or 3 (one per channel)"
                raise MetadataError(
                    f"preprocessing {name} has {len(values)} values; a {self.color} model takes {wanted}"
                )
        if any(v == 0 for v in self.std):
            raise MetadataError(f"preprocessing std must not contain 0, got {self.std!r}")
        if not _is_number(self.scale) or self.scale == 0:
            raise MetadataError(f"preprocessing scale must be a finite, non-zero number, got {self.scale!r}")
        if self.resize not in RESIZES:
            raise MetadataError(f"preprocessing resize must be one of {RESIZES}, got {self.resize!r}")
        if self.background not in BACKGROUNDS:
            raise MetadataError(f"preprocessing background must be one of {BACKGROUNDS}, got {self.background!r}")
        for name in ("stride", "window"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise MetadataError(f"preprocessing {name} must be a whole number of at least 1, got {value!r}")

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MetadataError(f"unknown preprocessing fields {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        for name in ("size", "mean", "std"):
            if name in values:
                if not isinstance(values[name], (list, tuple)):
                    raise MetadataError(f"preprocessing {name} must be a list, got {values[name]!r}")
                values[name] = tuple(values[name])
        return cls(**values)


@dataclass(frozen=True)
class ModelMetadata:
    """Everything the runtime needs to use a model without being told."""

    name: str
    task: str = "classify"
    classes: tuple[str, ...] = ()
    layout: str = "NHWC"  # of the input tensor
    input_name: str = "input"
    output_name: str = "probs"
    input_shape: tuple[int | str | None, ...] = ()
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    output_kind: str = "probabilities"
    source_sha256: str | None = None
    data: dict | None = None
    test: dict | None = None
    opset: int | None = None
    versions: dict = field(default_factory=dict)
    variant: str = "fp32"  # fp32 | int8 | fp16
    localize: dict | None = None  # page localizers: threshold, margin, levels, ... (runtime/page_head.py)
    created: str | None = None
    command: str | None = None  # the export command that made this file
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        for name, types in _FIELD_TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, types) or isinstance(value, bool):
                wanted = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise MetadataError(f"metadata field {name} must be {wanted}, got {value!r}")
        if not isinstance(self.input_shape, tuple) or not all(
            v is None or _is_int(v) or isinstance(v, str) for v in self.input_shape
        ):
            raise MetadataError(f"metadata input_shape must be a list of sizes or names, got {self.input_shape!r}")
        if self.task not in TASKS:
            raise MetadataError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.output_kind not in OUTPUT_KINDS:
            raise MetadataError(f"output kind must be one of {OUTPUT_KINDS}, got {self.output_kind!r}")
        if self.layout not in ("NHWC", "NCHW"):
            raise MetadataError(f"layout must be NHWC or NCHW, got {self.layout!r}")
        if not isinstance(self.classes, tuple) or not all(isinstance(c, str) for c in self.classes):
            raise MetadataError(f"classes must be a list of strings, got {self.classes!r}")
        if self.localize is not None and not isinstance(self.localize, dict):
            raise MetadataError(f"localize must be an object, got {self.localize!r}")
        if not isinstance(self.preprocessing, Preprocessing):
            raise MetadataError(f"preprocessing must be an object, got {self.preprocessing!r}")

    def to_props(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` entries (string -> string)."""
        props = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            props[PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
        return props

    def replace(self, **changes: Any) -> ModelMetadata:
        from dataclasses import replace

        return replace(self, **changes)


def _clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message (a hostile value can be megabytes)."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def from_props(props: dict[str, str]) -> ModelMetadata | None:
    """Parse ``metadata_props``; ``None`` when the model has no edgerun metadata (a foreign model).

    Raises:
        MetadataError: edgerun metadata of an unknown schema version, or malformed fields.
    """
    if SCHEMA_KEY not in props:
        ours = sorted(key for key in props if key.startswith(PREFIX))
        if ours:  # cut down by some tool, or hand-made: say it is read as foreign, not silently
            logger.warning(
                "the model has edgerun metadata (%s) but no %s: it is read as a foreign model, its classes, task "
                "and preprocessing unused; export it again with edgerun export",
                _clip(", ".join(ours)),
                SCHEMA_KEY,
            )
        return None
    try:
        schema = int(props[SCHEMA_KEY])
    except ValueError:
        raise MetadataError(
            f"{SCHEMA_KEY} must be a whole number (this edgerun writes {SCHEMA}), got "
            f"{_clip(repr(props[SCHEMA_KEY]))}; export the model again with edgerun export"
        ) from None
    if schema != SCHEMA:
        raise MetadataError(
            f"model metadata has schema {schema}, this edgerun reads schema {SCHEMA}; "
            "re-export the model with this version of edgerun, or upgrade edgerun"
        )
    values: dict[str, Any] = {}
    known = {f.name: f for f in fields(ModelMetadata)}
    for key, raw in props.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        if name not in known:
            continue  # a newer minor field: ignore rather than refuse
        if known[name].type in ("str", "str | None"):  # written raw, not JSON-encoded
            values[name] = raw
            continue
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise MetadataError(f"metadata field {key} is not valid JSON: {exc}") from None
        except RecursionError:  # json's C decoder recurses once per level of nesting
            raise MetadataError(
                f"metadata field {key} nests too deeply to read ({len(raw)} characters); expected the small "
                "JSON value edgerun export writes: export the model again"
            ) from None
    if "name" not in values:
        raise MetadataError(f"edgerun metadata has no {PREFIX}name")
    for name in ("classes", "input_shape"):
        value = values.get(name) or ()
        if not isinstance(value, (list, tuple)):
            raise MetadataError(f"metadata field {PREFIX}{name} must be a list, got {value!r}")
        values[name] = tuple(value)
    pre = values.get("preprocessing") or {}
    if not isinstance(pre, dict):
        raise MetadataError(f"metadata field {PREFIX}preprocessing must be an object, got {pre!r}")
    values["preprocessing"] = Preprocessing.from_dict(pre)
    values.pop("schema", None)
    return ModelMetadata(**values)


def read_metadata(model: Any) -> ModelMetadata | None:
    """Read edgerun metadata from an ``onnxruntime.InferenceSession``, an ``onnx.ModelProto``
    or a plain ``{key: value}`` dict. ``None`` for a model exported by something else."""
    if isinstance(model, dict):
        props = model
    elif hasattr(model, "get_modelmeta"):
        try:
            props = dict(model.get_modelmeta().custom_metadata_map)
        except UnicodeDecodeError as exc:  # onnxruntime hands metadata over as UTF-8 strings only
            raise MetadataError(
                f"the model's metadata holds a value that is not UTF-8 text ({exc.reason} at byte {exc.start}), "
                "so none of it can be read; remove or fix that entry (edgerun inspect lists them), or export again"
            ) from None
    elif hasattr(model, "metadata_props"):
        props = {p.key: p.value for p in model.metadata_props}
    else:
        raise TypeError(f"cannot read metadata from {type(model).__name__}")
    return from_props(props)


def read_labels(path: str | os.PathLike, what: str = "labels file") -> tuple[str, ...]:
    """Class names from a text file, one per line (blank lines and '#' comments skipped).
    ``what`` names the file in messages (``--labels`` on the command line).

    Raises:
        MetadataError: not a regular file, unreadable, not UTF-8, or holding no names.
    """
    if not os.fspath(path).strip():  # Path('') is the working folder
        raise MetadataError(f"{what} is an empty name; expected a text file, one name per line")
    path = Path(path)
    if not path.exists():
        raise MetadataError(f"{what} {path} does not exist; expected a text file, one name per line")
    if not path.is_file():  # a FIFO would block here for ever
        raise MetadataError(f"{what} {path} is not a regular file; expected a text file, one name per line")
    try:
        text = path.read_text(encoding="utf-8-sig")  # Notepad starts UTF-8 with a BOM: it was in the first name
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{what} {path} cannot be read ({exc}); expected a text file, one name per line") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    if not names:
        raise MetadataError(f"{what} {path} holds no names; expected one class name per line")
    return names
