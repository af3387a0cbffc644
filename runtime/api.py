"""``edgerun.load``: the front door. Keyword options in, a callable :class:`Model` out."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import fields

import numpy as np

from .frames import describe
from .heads import HeadOptions
from .metadata import MetadataError, read_labels
from .model import Model, Overrides, SessionConfig, SessionConfigError
from .modelio import whole


def _labels(value) -> tuple[str, ...]:
    """Class names: a list or tuple of names, or a labels file (str or Path; one name per line,
    blank lines and ``#`` comments skipped) read as ``edgerun run --labels`` reads it."""
    if isinstance(value, (str, os.PathLike)):
        return read_labels(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(value)  # each a non-empty string: Overrides checks
    raise MetadataError(
        f"labels must be a list of class names or the path of a labels file (one name per line), got {describe(value)}"
    )


def _size(value) -> tuple[int, int]:
    """(height, width) from an int (a square), a pair, or the command line's text ("28 28", "28x28", "28")."""
    from .argtypes import positive_int

    if isinstance(value, str):
        parts = [p for p in re.split(r"[\s,x]+", value.strip()) if p]
        try:
            sizes = [positive_int(p) for p in parts]
        except argparse.ArgumentTypeError as exc:
            raise MetadataError(f"size {value!r}: {exc}; expected 'H W' (or one number for a square)") from None
        if len(sizes) not in (1, 2):
            raise MetadataError(
                f"size {value!r}: expected 'H W' (or one number for a square), got {len(sizes)} numbers"
            )
        return (sizes[0], sizes[-1])
    if whole(value):
        return (value, value)  # Overrides checks it is at least 1
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise MetadataError(f"size must be an int (a square), (height, width) or 'H W', got {describe(value)}")


def _per_channel(value) -> tuple:
    """Per-channel values: one number (every channel), or a list, tuple or 1-D array of them."""
    if isinstance(value, np.ndarray) and value.ndim <= 1:  # np.zeros(1) was one 'value', an array
        value = value.tolist()
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


#: Other libraries' names for edgerun's options (Ultralytics, timm, onnxruntime).
ALIASES = {
    "batch_size": "batch",
    "device": "provider",
    "providers": "provider",
    "conf": "threshold",
    "k": "topk",
    "top_k": "topk",
    "imgsz": "size",
    "input_size": "size",
    "names": "labels",
    "classes": "labels",
    "num_threads": "threads",
    "intra_op_num_threads": "threads",
}


def _nearest(name: str, known: set[str]) -> str | None:
    """The known option a mistyped or foreign ``name`` most likely means, if any."""
    import difflib

    if name in ALIASES:
        return ALIASES[name]
    close = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=0.75)
    return close[0] if close else None


def _split(options: dict) -> tuple[SessionConfig, Overrides, HeadOptions, int]:
    groups = {cls: {f.name for f in fields(cls)} for cls in (SessionConfig, Overrides, HeadOptions)}
    known = set().union(*groups.values(), {"batch"})
    unknown = sorted(set(options) - known)
    if unknown:
        hints = [f"{name!r}: did you mean {_nearest(name, known)!r}?" for name in unknown if _nearest(name, known)]
        raise TypeError(
            f"edgerun.load() got unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            + (f" ({'; '.join(hints)})" if hints else "")
        )
    values = {cls: {k: v for k, v in options.items() if k in names} for cls, names in groups.items()}
    convert = {"size": _size, "labels": _labels, "mean": _per_channel, "std": _per_channel}
    for key, parse in convert.items():
        if values[Overrides].get(key) is not None:
            values[Overrides][key] = parse(values[Overrides][key])
    batch = options.get("batch", 1)  # checked by Model.load, for every caller
    return (
        SessionConfig(**values[SessionConfig]),
        Overrides(**values[Overrides]),
        HeadOptions(**values[HeadOptions]),
        batch,
    )


def load(model: str | os.PathLike, **options) -> Model:
    """Load an ONNX image model ready to call: ``edgerun.load("models/mnist_cnn.onnx")(frames)``.

    Args:
        model: a path to an ``.onnx`` file, or the name of a bundled model (``mnist_cnn``,
            ``mnist_cnn.int8``, ``mnist_small``, ``mnist_fcn``, ``mnist_small_fcn``).
        **options: ``provider`` (auto|cpu|cuda|tensorrt|openvino), ``threads``, ``spinning``,
            ``optimization``; ``tune`` (default True: use what ``edgerun tune`` measured fastest
            here; settings given by hand are kept); ``batch`` (inputs per inference call);
            ``topk``, ``threshold``;
            and, to describe a foreign model or override edgerun's metadata: ``labels``
            (a list of class names, or a labels file: str or Path, one name per line, as
            ``run --labels`` reads it), ``layout`` (nchw|nhwc), ``size`` ((H, W), an int for a
            square, or ``"H W"``), ``gray``, ``color`` (rgb|bgr), ``resize`` (stretch|crop:
            shorter side to the size, then the centre), ``scale``, ``mean``, ``std`` (pixels x
            scale, - mean, / std, per channel: a number or one per channel).

    Raises:
        ModelError: ``model`` is no path or name, or the file cannot run (message says why).
        MetadataError: the model's metadata, or a describing option (``labels``, ``size``...)
            that is malformed or disagrees with the graph.
        ProviderError: an explicit GPU provider that cannot run here.
        SessionConfigError: ``batch``, ``threads``, ``optimization`` or ``execution_mode`` out of
            range, or ``tune``, ``spinning``, ``io_binding`` or ``prepack`` not True or False.
        HeadOptionsError: ``topk`` or ``threshold`` out of range.
        ImportError: onnxruntime or OpenCV missing (the message names the extra to install).
        TypeError: an unknown option.
    """
    tune = options.pop("tune", True)
    if not isinstance(tune, bool):  # bool("no") is True
        raise SessionConfigError(
            f"tune must be True (use what edgerun tune measured here) or False, got {describe(tune)}"
        )
    config, overrides, head, batch = _split(options)
    keep = tuple(
        name
        for name in ("threads", "spinning", "optimization", "execution_mode", "io_binding", "graph")
        if name in options
    )
    return Model.load(model, config, overrides, head, batch=batch, tune=tune, keep=keep)
