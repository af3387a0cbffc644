"""``edgerun.load``: the front door. Keyword options in, a callable :class:`Model` out."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from .heads import HeadOptions
from .model import Model, Overrides, SessionConfig


def _split(options: dict) -> tuple[SessionConfig, Overrides, HeadOptions, int]:
    groups = {cls: {f.name for f in fields(cls)} for cls in (SessionConfig, Overrides, HeadOptions)}
    known = set().union(*groups.values(), {"batch"})
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"edgerun.load() got unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {cls: {k: v for k, v in options.items() if k in names} for cls, names in groups.items()}
    for key in ("size", "mean", "std", "labels"):
        if values[Overrides].get(key) is not None:
            values[Overrides][key] = tuple(values[Overrides][key])
    batch = int(options.get("batch", 1))
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    return (
        SessionConfig(**values[SessionConfig]),
        Overrides(**values[Overrides]),
        HeadOptions(**values[HeadOptions]),
        batch,
    )


def load(model: str | Path, **options) -> Model:
    """Load an ONNX image model ready to call: ``edgerun.load("models/mnist_cnn.onnx")(frames)``.

    Args:
        model: a path to an ``.onnx`` file, or the name of a bundled model (``mnist_cnn``,
            ``mnist_cnn.int8``, ``mnist_small``, ``mnist_fcn``, ``mnist_small_fcn``).
        **options: ``provider`` (auto|cpu|cuda|tensorrt), ``threads``, ``spinning``,
            ``optimization``; ``tune`` (default True: use what ``edgerun tune`` measured fastest
            here; settings given by hand are kept); ``batch`` (inputs per inference call);
            ``topk``, ``threshold``;
            and, to describe a foreign model or override edgerun's metadata: ``labels``
            (class names), ``layout`` (nchw|nhwc), ``size`` (H, W), ``gray``, ``scale``,
            ``mean``, ``std`` (pixels x scale, - mean, / std, per channel).

    Raises:
        ModelError, MetadataError, ProviderError: with what was expected and what to do.
        SessionConfigError: ``threads``, ``optimization`` or ``execution_mode`` out of range.
        TypeError: an unknown option.
    """
    tune = bool(options.pop("tune", True))
    config, overrides, head, batch = _split(options)
    keep = tuple(
        name for name in ("threads", "spinning", "optimization", "execution_mode", "io_binding") if name in options
    )
    return Model.load(model, config, overrides, head, batch=batch, tune=tune, keep=keep)
