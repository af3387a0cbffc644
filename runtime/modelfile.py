"""Checks on an ONNX model file before anything opens it: the one place for them.

:func:`check_model_file` is called by :meth:`Model.load` and by every benchmark backend (ours
and the peers: onnxruntime with default options, OpenCV DNN) before it reads the file. Besides
refusing what cannot be a model (missing, empty, a Git LFS pointer, not a regular file), it holds
every tensor's *external data* to one rule: a relative path inside the model's folder, naming a
regular file. onnxruntime refuses other paths itself, but OpenCV DNN would read any file an
initializer names (``/etc/passwd``, ``../../secret``) and block forever on a FIFO.

The external-data locations are found by walking the protobuf wire format directly (a few
dozen lines, no ``onnx`` package: the runtime's install does not have it). Large fields
(weights) are skipped by length, so a 100 MB model costs one read of its bytes.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from .frames import describe

LFS_SIGNATURE = b"version https://git-lfs.github.com/spec/"


class ModelError(Exception):
    """A model file that cannot be used; the message says what was expected and what came."""


class _WireError(ValueError):
    """Not valid protobuf: no ONNX reader will load it either (each says so in its own words)."""


def check_model_file(path: str | os.PathLike) -> None:
    """Refuse, with a clear message, what cannot be an ONNX model or reads outside its folder.

    Raises:
        ModelError: missing, not a regular file, empty, an LFS pointer, or external data that
            leaves the model's folder or is not a regular file.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist") from None
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{path} is not a regular file; expected an .onnx model")
    try:
        with open(path, "rb") as fh:
            head = fh.read(200)
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc.strerror or exc}") from None
    if head.startswith(LFS_SIGNATURE):
        raise ModelError(
            f"{path} is a Git LFS pointer, not the model itself. Fetch the real file with "
            "'git lfs install && git lfs pull' in the repository, then try again."
        )
    if not head:
        raise ModelError(f"{path} is empty (0 bytes); expected an ONNX model")
    check_external_data(path)


def check_external_data(path: str | os.PathLike) -> list[Path]:
    """Every external-data file ``path`` names, each checked: relative, inside the model's
    folder (after symbolic links), an existing regular file. Returns them.

    Raises:
        ModelError: a location that breaks the rule (nothing has opened it).
    """
    path = Path(path)
    folder = Path(os.path.realpath(path.parent))
    checked: dict[str, Path] = {}
    for location in external_locations(path):
        if location in checked:
            continue
        shown = location[:200]
        if not location or "\x00" in location:
            raise ModelError(f"{path}: a tensor's external data has an empty or invalid location {shown!r}")
        if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location.split("/")[0]:
            raise ModelError(
                f"{path}: a tensor's external data is at the absolute path {shown!r}; "
                "external files must sit beside the model, named by a relative path"
            )
        target = Path(os.path.realpath(folder / location))
        if target != folder and folder not in target.parents:
            raise ModelError(
                f"{path}: a tensor's external data {shown!r} leads outside the model's folder ({target}); "
                "external files must sit beside the model"
            )
        try:
            st = os.stat(target)
        except OSError as exc:
            raise ModelError(f"{path}: external data file {shown!r} cannot be read: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ModelError(f"{path}: external data {shown!r} is not a regular file (a FIFO, device or folder)")
        checked[location] = target
    return list(checked.values())


# -- the protobuf wire format, as much as external data needs ---------------------------------
# ModelProto.graph = 7, .functions = 25; GraphProto.node = 1, .initializer = 5,
# .sparse_initializer = 15; NodeProto.attribute = 5; AttributeProto.t = 5, .g = 6,
# .tensors = 10, .graphs = 11, .sparse_tensor = 22, .sparse_tensors = 23;
# SparseTensorProto.values = 1, .indices = 2; FunctionProto.node = 7;
# TensorProto.external_data = 13 (StringStringEntryProto: key = 1, value = 2).
_MODEL = {7: "graph", 25: "function"}
_GRAPH = {1: "node", 5: "tensor", 15: "sparse"}
_NODE = {5: "attribute"}
_ATTRIBUTE = {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"}
_SPARSE = {1: "tensor", 2: "tensor"}
_FUNCTION = {7: "node"}
_KINDS = {
    "graph": _GRAPH,
    "node": _NODE,
    "attribute": _ATTRIBUTE,
    "sparse": _SPARSE,
    "function": _FUNCTION,
}


def _varint(data, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _WireError("a truncated or overlong number")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end) of each field in data[start:end]."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            continue
        if wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise _WireError("a field runs past its message")
            yield number, wire, pos, pos + length
            pos += length
        elif wire == 5:
            pos += 4
        elif wire == 3:  # a group (old protobuf): skip to its end
            depth = 1
            while depth:
                if pos >= end:
                    raise _WireError("an unterminated group")
                inner, pos = _varint(data, pos)
                inner_wire = inner & 7
                if inner_wire == 0:
                    _, pos = _varint(data, pos)
                elif inner_wire == 1:
                    pos += 8
                elif inner_wire == 2:
                    length, pos = _varint(data, pos)
                    pos += length
                elif inner_wire == 5:
                    pos += 4
                elif inner_wire == 3:
                    depth += 1
                elif inner_wire == 4:
                    depth -= 1
                else:
                    raise _WireError(f"wire type {inner_wire}")
        else:
            raise _WireError(f"wire type {wire}")
        if pos > end:
            raise _WireError("a field runs past its message")


def _locations(data, start: int, end: int, kind: str, depth: int = 0) -> Iterator[str]:
    if depth > 64:
        raise ModelError("the model file nests subgraphs more than 64 deep")
    if kind == "tensor":
        for number, _, a, b in _fields(data, start, end):
            if number == 13:
                key = value = b""
                for n, _, x, y in _fields(data, a, b):
                    if n == 1:
                        key = bytes(data[x:y])
                    elif n == 2:
                        value = bytes(data[x:y])
                if key == b"location":
                    yield value.decode("utf-8", "replace")
        return
    table = _MODEL if kind == "model" else _KINDS[kind]
    for number, _, a, b in _fields(data, start, end):
        child = table.get(number)
        if child is not None:
            yield from _locations(data, a, b, child, depth + 1)


def external_locations(path: str | os.PathLike) -> list[str]:
    """The ``location`` of every tensor stored outside ``path`` (initializers, sparse
    initializers, attribute tensors, in subgraphs and functions too)."""
    with open(path, "rb") as fh:
        try:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            return []
        try:
            with memoryview(data) as view:
                return list(_locations(view, 0, len(data), "model"))
        except _WireError:
            return []  # not protobuf: every loader refuses it, each with its own message
        finally:
            data.close()


def unreadable_model(path, exc: BaseException) -> str:
    """What to tell a user whose model file the onnx package could not parse (a cut-off download,
    another format): one line, with what to do."""
    detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return (
        f"{path} is not a complete ONNX model ({type(exc).__name__}: {detail}); a truncated download or "
        "copy, or another format: fetch or export it again"
    )


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A path as given, or the bundled model of that name (``mnist_cnn``) when no such file exists.

    Raises:
        ModelError: neither a file nor a bundled model (the bundled names are listed), or not
            a path at all.
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or isinstance(name_or_path, bytes):
        raise ModelError(
            f"expected the path of an .onnx file (str or Path) or a bundled model's name such as 'mnist_cnn', "
            f"got {describe(name_or_path)}"
        )
    text = os.fsdecode(name_or_path)  # an os.PathLike may name bytes; Path() refused them with a TypeError
    if not text.strip():  # Path('') is '.', the working folder
        raise ModelError("the model is an empty name; give the path of an .onnx file or a bundled model's name")
    if "\x00" in text:
        raise ModelError(f"{text!r} contains a NUL byte; give the path of an .onnx file or a bundled model's name")
    if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", text):  # Path() folds '//': 'https:/x/m.onnx does not exist'
        from .httpprobe import shown

        raise ModelError(
            f"{shown(text)} is a URL; edgerun loads a local .onnx file: download it first "
            "(curl -LO URL) and give its path"
        )
    path = Path(text)
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long, a folder that may not be searched
        from .outputs import os_reason

        raise ModelError(f"model file {text[:200]!r} cannot be used: {os_reason(exc)}") from None
    if not exists and len(path.parts) == 1 and path.suffix == ".onnx" and _bundled(path.stem) is not None:
        raise ModelError(f"model file {text} does not exist here; for the bundled model give its name: {path.stem!r}")
    if exists or path.suffix == ".onnx" or len(path.parts) > 1:
        return path
    try:
        from edgerun.models import path as bundled  # data, not code: the runtime depends on no room
    except ModuleNotFoundError:
        return path
    try:
        return bundled(text)
    except FileNotFoundError as exc:
        raise ModelError(f"{text!r} is neither a file nor a bundled model: {exc}") from None


def _bundled(name: str) -> Path | None:
    """The bundled model named ``name``, or None (none of that name, or no models installed)."""
    try:
        from edgerun.models import path as bundled  # data, not code: the runtime depends on no room
    except ModuleNotFoundError:
        return None
    try:
        return bundled(name)
    except FileNotFoundError:
        return None
