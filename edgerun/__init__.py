"""edgerun: an ONNX edge-inference runtime with a benchmarking harness.

Three lines classify anything::

    import edgerun
    model = edgerun.load("mnist_cnn")          # a bundled model's name, or any .onnx file
    results = model("digits/")                 # a path, directory, glob, video, numpy frame, or a list
    print(results[0].label, results[0].score)  # .top, .detections, .to_dict(), .plot()

``edgerun.load`` takes the options of ``edgerun run`` as keywords (``provider``, ``threads``,
``batch``, ``topk``, ``threshold``, ``labels``, ``layout``, ``size``, ``gray``, ``scale``,
``mean``, ``std``). Importing ``edgerun`` is cheap: numpy, OpenCV and onnxruntime load on first use.
"""

from __future__ import annotations

#: public name -> module that defines it (loaded on first use, PEP 562)
_EXPORTS = {
    "load": "edgerun.runtime.api",
    "Model": "edgerun.runtime.model",
    "Result": "edgerun.runtime.results",
    "TopClass": "edgerun.runtime.results",
    "Detection": "edgerun.runtime.results",
    "open_source": "edgerun.runtime.sources",
    "Frame": "edgerun.runtime.frames",
    "ModelError": "edgerun.runtime.model",
    "MetadataError": "edgerun.runtime.metadata",
    "SourceError": "edgerun.runtime.frames",
    "ProviderError": "edgerun.runtime.providers",
    "SessionConfigError": "edgerun.runtime.model",
    "HeadOptionsError": "edgerun.runtime.heads",
    "PlotError": "edgerun.runtime.annotate",
    # the Ray engine's (edgerun.runtime.distributed): a cluster not reached, a setting out of range
    "EngineError": "edgerun.runtime.raycluster",
    "ClusterError": "edgerun.runtime.raycluster",
}

__all__ = ["__version__", *_EXPORTS]


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("edgerun")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":  # read from the installed metadata on first use, not at import
        globals()[name] = value = _version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgerun' has no attribute {name!r}")
    from importlib import import_module

    try:
        loaded = import_module(module)
    except ModuleNotFoundError as exc:  # a bare install: say which extra brings the engine
        raise missing_extra(exc) from None
    value = getattr(loaded, name)
    globals()[name] = value
    return value


def missing_extra(exc: ModuleNotFoundError) -> ModuleNotFoundError:
    """``exc`` with the one-line install hint the ``edgerun`` command prints (the extra that
    provides the missing module, from ``edgerun.cli.EXTRAS``); ``exc`` itself if none does.

    The hint's error keeps ``exc.name``, so whoever catches it can still tell what is missing.
    """
    from edgerun.cli import missing_dependency

    hint = missing_dependency("", exc)
    if hint is None:
        return exc
    return ModuleNotFoundError(hint, name=exc.name)


def __dir__() -> list[str]:
    return sorted(__all__)
