"""The metadata contract between export and runtime: what an edgerun ONNX file says about itself.

Export writes a :class:`ModelMetadata` into the ONNX ``metadata_props`` (one key per field,
values JSON-encoded, so Netron and ``edgerun inspect`` show them readably); the runtime reads it
back through :func:`read_metadata`, the one place that knows the keys and the schema number.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA = 1
SCHEMA_KEY = "edgerun.schema"
PREFIX = "edgerun."

TASKS = ("classify", "localize")
OUTPUT_KINDS = ("probabilities", "logits")


class MetadataError(ValueError):
    """Metadata that this runtime cannot use; the message says what was expected."""


@dataclass(frozen=True)
class Preprocessing:
    """How to turn a frame into the model's input.

    Attributes:
        recipe: ``mnist`` (digit photos normalised like MNIST), ``gray`` (plain grayscale
            resize), ``fcn`` (any size, grayscale, inverted on light backgrounds), ``caffe``
            (ImageNet: BGR, mean subtraction), or ``generic`` (scale and mean only).
        size: (height, width); ``None`` entries for any size.
        color: ``gray``, ``RGB`` or ``BGR``: the channel order the model expects.
        scale: multiplied into the pixel values (after mean subtraction for caffe).
        mean: subtracted per channel, in the model's channel order.
        resize: ``area`` (direct, INTER_AREA), ``direct`` (INTER_LINEAR) or
            ``short_side_crop`` (shorter side to size, then centre crop).
        background: ``dark`` (digits are light on dark, as MNIST) or ``any``.
    """

    recipe: str = "generic"
    size: tuple[int | None, int | None] = (None, None)
    color: str = "BGR"
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    resize: str = "direct"
    background: str = "any"
    stride: int | None = None

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MetadataError(f"unknown preprocessing fields {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        if "size" in values:
            values["size"] = tuple(values["size"])
        if "mean" in values:
            values["mean"] = tuple(float(m) for m in values["mean"])
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
    created: str | None = None
    command: str | None = None  # the export command that made this file
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise MetadataError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.output_kind not in OUTPUT_KINDS:
            raise MetadataError(f"output kind must be one of {OUTPUT_KINDS}, got {self.output_kind!r}")
        if self.layout not in ("NHWC", "NCHW"):
            raise MetadataError(f"layout must be NHWC or NCHW, got {self.layout!r}")

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


def from_props(props: dict[str, str]) -> ModelMetadata | None:
    """Parse ``metadata_props``; ``None`` when the model has no edgerun metadata (a foreign model).

    Raises:
        MetadataError: edgerun metadata of an unknown schema version, or malformed fields.
    """
    if SCHEMA_KEY not in props:
        return None
    try:
        schema = int(props[SCHEMA_KEY])
    except ValueError:
        raise MetadataError(f"{SCHEMA_KEY} must be a number, got {props[SCHEMA_KEY]!r}") from None
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
    if "name" not in values:
        raise MetadataError(f"edgerun metadata has no {PREFIX}name")
    values["classes"] = tuple(values.get("classes") or ())
    values["input_shape"] = tuple(values.get("input_shape") or ())
    values["preprocessing"] = Preprocessing.from_dict(values.get("preprocessing") or {})
    values.pop("schema", None)
    return ModelMetadata(**values)


def read_metadata(model: Any) -> ModelMetadata | None:
    """Read edgerun metadata from an ``onnxruntime.InferenceSession``, an ``onnx.ModelProto``
    or a plain ``{key: value}`` dict. ``None`` for a model exported by something else."""
    if isinstance(model, dict):
        props = model
    elif hasattr(model, "get_modelmeta"):
        props = dict(model.get_modelmeta().custom_metadata_map)
    elif hasattr(model, "metadata_props"):
        props = {p.key: p.value for p in model.metadata_props}
    else:
        raise TypeError(f"cannot read metadata from {type(model).__name__}")
    return from_props(props)
