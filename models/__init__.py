"""The bundled models, shipped inside the package: ``edgerun.load("mnist_cnn")`` finds them here.

Made by ``make models`` from the shared MNIST data; ``MANIFEST.json`` beside them records each
file's sha256, size, training data and test accuracy.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def names() -> list[str]:
    """The bundled models' names (``mnist_cnn``, ``mnist_cnn.int8``, ...)."""
    return sorted(p.name[: -len(".onnx")] for p in resources.files(__name__).iterdir() if p.name.endswith(".onnx"))


def path(name: str) -> Path:
    """The file of the bundled model ``name``.

    Raises:
        FileNotFoundError: no bundled model has that name (the message lists those that exist).
    """
    candidate = resources.files(__name__) / f"{name}.onnx"
    if not candidate.is_file():
        raise FileNotFoundError(f"no bundled model {name!r}; bundled: {', '.join(names()) or 'none'}")
    return Path(str(candidate))


def manifest() -> Path:
    return Path(str(resources.files(__name__) / "MANIFEST.json"))
