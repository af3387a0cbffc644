"""A model's input and output read against its metadata and the user's options.

What the graph says (its input's type, layout and fixed dimensions, its output's shape) and what
edgerun will feed it (the preprocessing) must agree before a session is used: :func:`check_io`
refuses a model edgerun cannot feed, with what to do. A model without edgerun's metadata gets
it from its input shape (:func:`infer_foreign`), and the user's :class:`Overrides`
replace what the model says in one place (:func:`apply_overrides`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .frames import describe
from .heads import check_outputs
from .metadata import MetadataError, ModelMetadata, Preprocessing
from .modelfile import ModelError

LAYOUTS = ("nchw", "nhwc")
COLOR_ORDERS = ("rgb", "bgr")
#: what a user calls a resize -> the recipe's name for it (runtime/preprocess.py:resize)
RESIZE_MODES = {"stretch": "direct", "crop": "short_side_crop"}


#: onnxruntime input types edgerun can feed: its float32 images, cast to the model's type. A uint8
#: input takes the pixels 0-255 as they are (the model scales them itself: scale 1, no mean or std).
INPUT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
}
PIXELS_IN = "tensor(uint8)"


def whole(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def finite_number(value: object) -> bool:
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return numeric and math.isfinite(value)


def guess_layout(shape: list) -> str | None:
    """``NCHW`` or ``NHWC`` from a 4-D input shape when the channel axis is unambiguous, else None."""
    if len(shape) != 4:
        return None
    nchw_like = shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4)
    nhwc_like = shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4)
    if nchw_like == nhwc_like:
        return None
    return "NCHW" if nchw_like else "NHWC"


def infer_foreign(inputs, outputs, overrides: Overrides) -> ModelMetadata:
    """Metadata for a model without edgerun's: from its input shape and the user's flags."""
    if not inputs or not outputs:
        missing = "inputs" if not inputs else "outputs"
        raise ModelError(
            f"the model has no {missing}; edgerun runs image models: one 4-D image input (batch, height, width, "
            "channels) or (batch, channels, height, width) and an output of scores"
        )
    inp = inputs[0]
    shape = list(inp.shape)
    if len(shape) != 4:
        raise ModelError(
            f"input {inp.name!r} has shape {shape}; edgerun runs image models with a 4-D input "
            "(batch, height, width, channels) or (batch, channels, height, width)"
        )
    layout = overrides.layout.upper() if overrides.layout else guess_layout(shape)
    if layout is None:
        raise ModelError(
            f"cannot tell the layout of input {inp.name!r} with shape {shape}; "
            "pass --layout nchw or --layout nhwc (and --size H W if it is dynamic; in edgerun.load: layout='nchw', "
            "size=(H, W))"
        )
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])
    if overrides.size:
        h, w = overrides.size
    if not isinstance(h, int) or not isinstance(w, int):
        raise ModelError(
            f"input {inp.name!r} has dynamic size {shape}; pass the size the model was trained at: --size H W "
            "(in edgerun.load: size=(H, W))"
        )
    gray = overrides.gray if overrides.gray is not None else c == 1
    n_out = outputs[0].shape[-1] if outputs[0].shape and isinstance(outputs[0].shape[-1], int) else 0
    return ModelMetadata(
        name="foreign",
        classes=tuple(str(i) for i in range(n_out)),
        layout=layout,
        input_name=inp.name,
        output_name=outputs[0].name,
        input_shape=tuple(shape),
        preprocessing=Preprocessing(
            recipe="generic",
            size=(h, w),
            color="gray" if gray else "RGB",
            scale=1.0 if inp.type == PIXELS_IN else 1 / 255.0,  # uint8: the pixels themselves
            resize="area",
        ),
        output_kind="logits",  # checked per batch: rows that already sum to 1 are left alone
    )


_RESIZE_WORDS = {"short_side_crop": "shorter side to it, centre cropped"}


def foreign_summary(metadata: ModelMetadata, spec, overrides: Overrides) -> str:
    """What edgerun will feed a model without its metadata, in one line: each guess with the option
    that changes it, each value the user gave marked so. A user can check it before trusting answers."""
    pre = metadata.preprocessing

    def part(text: str, given: object, option: str) -> str:
        return f"{text} ({'given' if given is not None else option})"

    scale = "1/255" if math.isclose(pre.scale, 1 / 255.0) else f"{pre.scale:g}"
    mean, std = (", ".join(f"{v:g}" for v in values) for values in (pre.mean, pre.std))
    h, w = pre.size
    labels = "given" if overrides.labels is not None else "named by index; --labels FILE names them"
    return (
        f"no edgerun metadata, input {list(spec.shape)} read as: "
        + ", ".join(
            (
                part(metadata.layout, overrides.layout, "--layout"),
                part(f"{h}x{w}", overrides.size, "--size"),
                part(_RESIZE_WORDS.get(pre.resize, "each frame stretched to it"), overrides.resize, "--resize"),
                part(
                    pre.color if pre.color == "gray" else f"{pre.color} order",
                    overrides.color if overrides.color is not None else overrides.gray,
                    "--gray or --color",
                ),
                *(
                    ("uint8 pixels 0-255 as they are (the model scales them)",)
                    if spec.type == PIXELS_IN
                    else (
                        part(f"pixels x {scale}", overrides.scale, "--scale"),
                        part(f"- mean {mean}", overrides.mean, "--mean"),
                        part(f"/ std {std}", overrides.std, "--std"),
                    )
                ),
                f"{len(metadata.classes)} classes ({labels})",
            )
        )
        + "; softmax unless the output is already probabilities. The same options are edgerun.load keywords"
    )


def apply_overrides(metadata: ModelMetadata, overrides: Overrides) -> ModelMetadata:
    """One place where the user's options replace what the model says (timm's resolve step)."""
    pre = metadata.preprocessing
    changes = {
        key: value
        for key, value in (
            ("size", tuple(overrides.size) if overrides.size else None),
            ("scale", overrides.scale),
            ("mean", tuple(overrides.mean) if overrides.mean is not None else None),
            ("std", tuple(overrides.std) if overrides.std is not None else None),
            ("color", overrides.color.upper() if overrides.color else _color(pre.color, overrides.gray)),
            ("resize", RESIZE_MODES[overrides.resize.lower()] if overrides.resize else None),
        )
        if value is not None
    }
    if changes:
        metadata = metadata.replace(preprocessing=replace(pre, **changes))
    if overrides.labels is not None:
        metadata = metadata.replace(classes=tuple(overrides.labels))
    return metadata


def _color(current: str, gray: bool | None) -> str | None:
    """The colour a ``gray`` override asks for: gray, or colour (RGB unless the model says BGR)."""
    if gray is None:
        return None
    if gray:
        return "gray"
    return current if current != "gray" else "RGB"


def input_spec(session, metadata: ModelMetadata):
    return next(i for i in session.get_inputs() if i.name == metadata.input_name)


def nhwc(shape: list, metadata: ModelMetadata) -> list:
    """A 4-D input shape in NHWC order (as ``Model.run`` takes it)."""
    return [shape[0], shape[2], shape[3], shape[1]] if metadata.layout == "NCHW" else list(shape)


def fixed_batch(session, metadata: ModelMetadata) -> int | None:
    """The size the model's batch axis is fixed at, or None when it takes any."""
    shape = list(input_spec(session, metadata).shape)
    return shape[0] if shape and whole(shape[0]) and shape[0] >= 1 else None


def check_io(session, metadata: ModelMetadata) -> None:
    names = [i.name for i in session.get_inputs()]
    if metadata.input_name not in names:
        raise MetadataError(f"metadata names input {metadata.input_name!r}, the graph has {names}")
    outs = {o.name: o for o in session.get_outputs()}
    if metadata.output_name not in outs:
        raise MetadataError(f"metadata names output {metadata.output_name!r}, the graph has {list(outs)}")
    check_outputs(metadata, list(outs[metadata.output_name].shape))
    check_input(input_spec(session, metadata), metadata)


def check_input(spec, metadata: ModelMetadata) -> None:
    """Refuse an input edgerun cannot feed: a type that is not float or uint8 (scaled by the model itself),
    or a fixed size or channel
    count that the preprocessing (the model's metadata and the user's options) would not make."""
    if spec.type not in INPUT_DTYPES:
        raise ModelError(
            f"input {spec.name!r} takes {spec.type}, but edgerun feeds images as float32 (pixels x scale, "
            "- mean, / std) or uint8 pixels; re-export the model with a float or uint8 input (put the cast and "
            "scaling inside the graph), or run it with onnxruntime directly"
        )
    pre = metadata.preprocessing
    if spec.type == PIXELS_IN and (pre.scale != 1.0 or any(pre.mean) or any(v != 1.0 for v in pre.std)):
        raise MetadataError(
            f"input {spec.name!r} takes uint8 pixels 0-255 as they are, but the preprocessing makes pixels x "
            f"{pre.scale:g} - mean {list(pre.mean)} / std {list(pre.std)}; a uint8 input scales them itself: "
            "leave --scale, --mean and --std unset (scale=, mean=, std= in edgerun.load)"
        )
    shape = list(spec.shape)
    if len(shape) != 4:
        return
    _, h, w, c = nhwc(shape, metadata)
    made = tuple(pre.size) if pre.size else (None, None)
    for axis, fixed, ours in (("height", h, made[0]), ("width", w, made[1])):
        if whole(fixed) and whole(ours) and fixed != ours:
            raise MetadataError(
                f"input {spec.name!r} has a fixed {axis} of {fixed} (shape {shape}), but the preprocessing makes "
                f"{made[0]}x{made[1]} inputs; give size=({h}, {w}) (--size {h} {w}) or leave size unset"
            )
    channels = 1 if pre.color == "gray" else 3
    if whole(c) and c != channels:
        if c == 1:
            fix = "pass gray=True (--gray)"
        elif c == 3:
            fix = "pass gray=False, or leave gray unset"
        else:
            fix = "edgerun makes 1-channel (gray) or 3-channel (colour) inputs only"
        raise MetadataError(
            f"input {spec.name!r} takes {c} channel(s) (shape {shape}), but the preprocessing makes {channels}; {fix}"
        )


@dataclass(frozen=True)
class Overrides:
    """What a user tells edgerun about a model (``None``: read it from the model).

    For foreign models (no edgerun metadata) these are how the input is described; for
    edgerun's own they replace what the metadata says.
    """

    layout: str | None = None  # "nchw" | "nhwc"
    size: tuple[int, int] | None = None
    gray: bool | None = None
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None
    color: str | None = None  # "rgb" | "bgr": the channel order of a colour model
    resize: str | None = None  # "stretch" | "crop" (shorter side to the size, then the centre)

    def __post_init__(self) -> None:
        for name, allowed in (("color", COLOR_ORDERS), ("resize", tuple(RESIZE_MODES))):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or value.lower() not in allowed):
                raise MetadataError(f"{name} must be one of {', '.join(allowed)}, got {describe(value)}")
        if self.color is not None and self.gray:
            raise MetadataError(f"color={self.color!r} and gray=True disagree: give one of them")
        if self.layout is not None and (not isinstance(self.layout, str) or self.layout.lower() not in LAYOUTS):
            raise MetadataError(f"layout must be one of {', '.join(LAYOUTS)}, got {describe(self.layout)}")
        if self.size is not None and not (
            isinstance(self.size, tuple) and len(self.size) == 2 and all(whole(v) and v >= 1 for v in self.size)
        ):
            raise MetadataError(f"size must be (height, width), two whole numbers >= 1, got {describe(self.size)}")
        if self.gray is not None and not isinstance(self.gray, bool):
            raise MetadataError(
                f"gray must be True or False (or None: read it from the model), got {describe(self.gray)}"
            )
        if self.scale is not None and not (finite_number(self.scale) and self.scale > 0):
            raise MetadataError(
                f"scale must be a number above 0 (pixels are multiplied by it), got {describe(self.scale)}"
            )
        for name, positive in (("mean", False), ("std", True)):
            values = getattr(self, name)
            if values is not None and not (
                isinstance(values, tuple)
                and values
                and all(finite_number(v) and (v > 0 or not positive) for v in values)
            ):
                kind = "numbers above 0" if positive else "numbers"
                raise MetadataError(f"{name} must be one or more {kind}, one per channel, got {describe(values)}")
        if self.labels is not None and not (
            isinstance(self.labels, tuple) and self.labels and all(isinstance(v, str) and v for v in self.labels)
        ):
            raise MetadataError(
                f"labels must be class names (non-empty strings), one per output, got {describe(self.labels)}"
            )
        # numpy numbers pass the checks above but not the metadata's (np.float32(0.5) was refused there)
        if self.size is not None:
            object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        if self.scale is not None:
            object.__setattr__(self, "scale", float(self.scale))
        for name in ("mean", "std"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(v) for v in self.labels))
