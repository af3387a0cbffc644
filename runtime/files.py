"""Writing files so that a reader never sees half of one (bench JSON, manifests, cards)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from .outputs import Protected, write_text


def write_json_atomic(path: str | Path, payload: dict, indent: int = 2, protected: Protected | None = None) -> Path:
    """Write ``payload`` as JSON to a temporary file beside ``path``, then rename it over.

    Goes through :mod:`edgerun.runtime.outputs`: a target that is not a regular file, or one of
    ``protected``, is refused; a failed write leaves the old file as it was.
    """
    return write_text(path, json.dumps(_finite(payload), indent=indent, allow_nan=False) + "\n", protected)


def _finite(value):
    """JSON has no NaN or infinity: such numbers are written as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks (models and data sets can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
