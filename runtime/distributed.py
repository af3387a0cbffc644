"""Batch inference on a Ray cluster: the local engine's frame -> prepare -> infer -> Result path,
with the model loaded once per Ray actor and the inputs spread over every actor in the cluster.

Ray (``pip install 'edgerun[ray]'``) is imported inside these functions only, never when this
module is imported. The inputs are enumerated on the driver with the runtime's own sources, so
their set and their indices are the local engine's; each row goes to an actor, which reads the
image itself (an unreadable file becomes an error record there, as locally) and returns one
record per row. In Python::

    import ray
    from edgerun.runtime import distributed

    for result in distributed.predict("mnist_cnn", "digits/", workers=2, batch=32):
        print(result.index, result.label)          # as the results complete, not in order

or, step by step, on a Ray Dataset (rows: ``index``, ``source``, ``path``, ``image``, ``error``)::

    ds = distributed.dataset(distributed.enumerate_inputs("digits/"))
    out = ds.map_batches(
        distributed.Predictor,
        fn_constructor_kwargs={"model": distributed.ModelFile.of("mnist_cnn"), "options": {"batch": 32}},
        batch_size=32,
        compute=ray.data.ActorPoolStrategy(size=2),
    )
    out.drop_columns(["result"]).write_json("records/")   # the "record" column is run --json's line
    results = list(distributed.results(out))               # or Result objects back on the driver

A path must be readable at the same place on every node (shared storage); the model file is
shipped to the workers through Ray's object store, so it need not be.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .frames import Frame, Source, SourceError
from .images import read_image
from .raycluster import (
    ClusterError,
    EngineConfigError,
    EngineError,
    RayMissing,
    check_address,
    check_workers,
    cluster,
    default_workers,
    require_ray,
    resources,
    stop_reader,
)

logger = logging.getLogger(__name__)

#: Source kinds that stay with the local engine, and why.
LOCAL_ONLY = {
    "camera": "a live source: frames exist only as they arrive, on the machine that has the camera",
    "stream": "a live source: frames exist only as they arrive, newest first",
    "video": "a video decodes in order from one file",
}


# -- the inputs ----------------------------------------------------------------------------------
@dataclass
class Inputs:
    """Every input of a finite source, as the local engine enumerates it.

    Column ``i`` of each list is one input: ``index`` (its position, the record's index),
    ``source`` (the record's source string), ``path`` (absolute, for the worker to read; '' for
    an image in memory), ``image`` (an image in memory as ``.npy`` bytes; b'' for a path) and
    ``error`` (why the input is already known to be unusable; '' if it is not). ``files``
    are the files the source reads (its images, list file or IDX file): what no output of the
    run may replace, as :func:`~edgerun.runtime.sources.input_files` gives them for a source.
    """

    name: str
    index: list[int] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    image: list[bytes] = field(default_factory=list)
    error: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)

    def add(self, index: int, source: str, path: str = "", image: bytes = b"", error: str = "") -> None:
        self.index.append(index)
        self.source.append(source)
        self.path.append(path)
        self.image.append(image)
        self.error.append(error)

    def head(self, n: int) -> Inputs:
        """The first ``n`` inputs (``--max-frames``); every file of the source stays protected."""
        return Inputs(
            self.name, self.index[:n], self.source[:n], self.path[:n], self.image[:n], self.error[:n], self.files
        )


def _npy(image: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, image, allow_pickle=False)
    return buffer.getvalue()


def _from_npy(data: bytes) -> np.ndarray:
    import io

    return np.load(io.BytesIO(data), allow_pickle=False)


def enumerate_inputs(spec) -> Inputs:
    """The inputs of ``spec`` (anything :func:`~edgerun.runtime.sources.open_source` takes), finite
    sources only: image files, directories, globs, list files, IDX files, arrays in memory.

    Raises:
        SourceError: what ``open_source`` refuses, and live sources and videos, which stay local.
    """
    import os

    from .frames import in_memory, openable
    from .httpprobe import shown
    from .sources import ArraySource, IdxImages, ImageFiles, input_files, open_source, source_kind

    items = in_memory(spec)  # arrays, lists and generators as model(x) takes them
    spec = ArraySource(items) if items is not None else openable(spec, "the Ray engine")
    if isinstance(spec, int):  # a camera index: refused before the camera is opened
        raise SourceError(
            f"camera {spec} is a camera and stays local ({LOCAL_ONLY['camera']}); run it without the Ray engine"
        )
    if isinstance(spec, (str, os.PathLike)):
        spec = os.fsdecode(spec)
        kind = source_kind(spec)
        if kind in LOCAL_ONLY:
            raise SourceError(
                f"{shown(str(spec))} is a {kind} and stays local ({LOCAL_ONLY[kind]}); run it without --engine ray"
                + (", or extract its frames to images first (ffmpeg -i IN frames/%06d.png)" if kind == "video" else "")
            )
    source: Source = open_source(spec)
    try:
        if isinstance(source, ImageFiles):
            inputs = Inputs(source.name)
            for index, path in enumerate(source.paths):
                if path in source.errors:  # unreadable while listed: its record is the same error as locally
                    inputs.add(index, str(path), error=source.errors[path])
                else:
                    inputs.add(index, str(path), str(Path(path).absolute()))
        elif isinstance(source, IdxImages):
            inputs = Inputs(source.name)
            for frame in source:  # read lazily, as the local engine reads it
                inputs.add(frame.index, source.name, image=_npy(frame.image))
        elif isinstance(source, ArraySource):
            inputs = _array_inputs(source)
        else:
            reason = "a live source" if source.live else f"a {type(source).__name__}"
            raise SourceError(
                f"{source.name} is {reason} and stays local; the Ray engine takes image files, "
                "directories, globs, list files, IDX files and arrays"
            )
        inputs.files = input_files(source)
    finally:
        source.close()
    return inputs


def _array_inputs(source) -> Inputs:
    """Images and paths in memory, named and read as :class:`ArraySource` names and reads them."""
    inputs = Inputs(source.name)
    for index, item in enumerate(source.items):
        if isinstance(item, np.ndarray):
            inputs.add(index, f"{source.name}[{index}]", image=_npy(item))
            continue
        try:
            inputs.add(index, str(item), str(Path(item).absolute()))
        except (TypeError, ValueError) as exc:  # what ArraySource's read would say of it
            inputs.add(index, str(item), error=str(exc))
    return inputs


def block_rows(count: int, batch: int, workers: int) -> int:
    """Rows per Ray block: a multiple of ``batch``, small enough that every worker gets several
    blocks and records stream back as blocks finish, at most 256 rows (or one batch)."""
    target = min(256, max(1, math.ceil(count / max(1, workers * 4))))
    return batch * max(1, round(target / batch))


def dataset(inputs: Inputs, rows_per_block: int = 256):
    """A Ray Dataset of ``inputs``, one row per input, ``rows_per_block`` rows per block."""
    ray = require_ray()
    import pyarrow as pa

    tables = []
    for start in range(0, len(inputs), rows_per_block):
        stop = start + rows_per_block
        tables.append(
            pa.table(
                {
                    "index": pa.array(inputs.index[start:stop], pa.int64()),
                    "source": pa.array(inputs.source[start:stop], pa.string()),
                    "path": pa.array(inputs.path[start:stop], pa.string()),
                    "image": pa.array(inputs.image[start:stop], pa.binary()),
                    "error": pa.array(inputs.error[start:stop], pa.string()),
                }
            )
        )
    if not tables:
        raise SourceError(f"{inputs.name} gave no inputs")
    return ray.data.from_arrow(tables)


# -- the model on the workers --------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFile:
    """A model for the workers: its path on the driver and its bytes in Ray's object store.

    A worker that has the same file at the same path (same sha256) loads it from there; any
    other writes the shipped bytes to a temporary file first, so the cluster's nodes need no
    copy of the model. (Models with external weight files must be on every node.)
    """

    path: str
    sha256: str
    data: object  # a ray.ObjectRef to the bytes (or the bytes themselves)

    @classmethod
    def of(cls, model: str | Path) -> ModelFile:
        """Resolve ``model`` (a path or a bundled model's name) and put its bytes in the object store."""
        import hashlib

        from .model import check_model_file, resolve_model_path

        ray = require_ray()
        path = resolve_model_path(model)
        check_model_file(path)
        data = path.read_bytes()
        return cls(str(path.absolute()), hashlib.sha256(data).hexdigest(), ray.put(data))

    def local_path(self, scratch: Path) -> Path:
        """A file holding this model on this node: the original, or the shipped bytes in ``scratch``."""
        from .files import sha256_file

        path = Path(self.path)
        if path.is_file() and sha256_file(path) == self.sha256:
            return path
        data = self.data
        if not isinstance(data, bytes):
            data = require_ray().get(data)
        copy = scratch / path.name
        copy.write_bytes(data)
        return copy


def _frame(batch: dict, i: int) -> Frame:
    """Row ``i`` of a batch as the frame the local engine would have made of the same input."""
    index = int(batch["index"][i])
    source = str(batch["source"][i]) if "source" in batch else str(batch["path"][i])
    error = str(batch["error"][i]) if "error" in batch else ""
    if error:
        return Frame(None, source, index, float(index), error=error)
    image = batch["image"][i] if "image" in batch else b""
    if isinstance(image, np.ndarray) and image.dtype != object and image.size:
        return Frame(image, source, index, float(index))
    if image is not None and len(image):
        return Frame(_from_npy(bytes(image)), source, index, float(index))
    path = str(batch["path"][i]) if "path" in batch else ""
    if not path:
        return Frame(None, source, index, float(index), error=f"{source}: the row has neither an image nor a path")
    try:
        return Frame(read_image(path), source, index, float(index))
    except (SourceError, OSError) as exc:
        # The worker reads the absolute path; the record names the input as the user gave it.
        return Frame(None, source, index, float(index), error=str(exc).replace(path, source))


class Predictor:
    """A Ray Data callable class: ``edgerun.load`` once per actor, then per batch of rows the
    local engine's path (frame -> ``Model.prepare`` -> ``Model.infer`` -> ``Result``).

    Output columns: ``index`` (int64), ``record`` (the JSON line ``run --json`` writes) and
    ``result`` (the pickled :class:`~edgerun.runtime.results.Result`; its image and class maps
    only with ``keep_images``, for drawing on the driver). See :func:`results`.
    """

    def __init__(self, model: ModelFile | str, options: dict | None = None, keep_images: bool = False) -> None:
        from .api import load

        self.keep_images = keep_images
        if isinstance(model, ModelFile):
            with tempfile.TemporaryDirectory(prefix="edgerun-model-") as scratch:
                self.model = load(model.local_path(Path(scratch)), **(options or {}))  # the session holds it
        else:
            self.model = load(model, **(options or {}))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .results import Result

        frames = [_frame(batch, i) for i in range(len(batch["index"]))]
        try:
            results = self.model.infer([self.model.prepare(frame) for frame in frames])
        except Exception as exc:  # noqa: BLE001 - infer gives error records itself; this is the last guard
            logger.exception("inference failed on a batch")
            why = f"inference failed: {type(exc).__name__}: {exc}"
            results = [Result(f.source, f.index, error=why) for f in frames]
        if not self.keep_images:
            for result in results:
                result.image = result.heat = None
        return {
            "index": np.array([r.index for r in results], np.int64),
            "record": np.array([json.dumps(r.to_dict(), allow_nan=False) for r in results], dtype=object),
            "result": np.array([pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in results], dtype=object),
        }


def apply(
    ds,
    model: ModelFile | str,
    options: dict | None = None,
    workers: int = 1,
    batch: int = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    keep_images: bool = False,
):
    """``ds`` with every row run through :class:`Predictor` on a pool of ``workers`` actors."""
    ray = require_ray()
    options = {**(options or {}), "batch": batch}
    return ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": model, "options": options, "keep_images": keep_images},
        batch_size=batch,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        batch_format="numpy",
    )


def results(ds) -> Iterator:
    """The :class:`~edgerun.runtime.results.Result` of every row of a :func:`apply`'d dataset,
    as blocks complete (not in input order: ``result.index`` says where each belongs)."""
    before = set(threading.enumerate())
    blocks = ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0)
    try:
        for block in blocks:
            for data in block["result"]:
                yield pickle.loads(data)  # noqa: S301 - written by our own workers in this job
    finally:
        stop_reader(blocks, before)


def predict(
    model: str | Path,
    source,
    *,
    workers: int | None = None,
    batch: int = 1,
    address: str | None = None,
    keep_images: bool = False,
    **options,
) -> Iterator:
    """Results for every input of ``source`` from a pool of Ray actors, as they complete.

    Everything is checked at the call, before any cluster starts, by the rules ``edgerun run
    --engine ray`` uses: the model and ``options`` as :func:`edgerun.load` checks them (here,
    with the CPU provider), ``workers`` as ``--workers``, the source, and that ``address``
    answers. The results then come as the returned iterator is read.

    Args:
        model: an .onnx path or a bundled model's name.
        source: a directory, glob, list file, image, IDX file, or a list of arrays and paths.
        workers: actors (default: one per CPU of the cluster, or one per GPU with cuda).
        batch: inputs per inference call on each actor (1 to 1024).
        address: a Ray cluster to join; None starts a local instance for the call.
        keep_images: return each input's image (and class maps) for ``Result.plot``.
        **options: what :func:`edgerun.load` takes (``provider``, ``threads``, ``topk``, ...).

    Raises:
        EngineConfigError: ``workers`` is not a whole number of at least 1.
        SessionConfigError, ModelError, MetadataError, HeadOptionsError, TypeError: what
            :func:`edgerun.load` raises for the model, ``batch`` and ``options``.
        SourceError: the source cannot be read, or stays local (a camera, stream or video).
        ClusterError: nothing (or nothing that speaks Ray's protocol) answers at ``address``,
            or Ray could not connect (raised as the results are read).
        RayMissing: Ray is not installed.
    """
    from .api import _split, load

    require_ray()
    check_workers(workers)
    # the options as given: threads=0 passed here (overridden below) and failed on every worker
    _split({**{k: v for k, v in options.items() if k != "tune"}, "batch": batch})
    load(model, **{**options, "provider": "cpu", "threads": 1, "tune": False}, batch=batch)  # the workers' load, here
    inputs = enumerate_inputs(source)
    check_address(address)
    return _predict(model, inputs, workers, batch, address, keep_images, options)


def check_capacity(ray, workers: int, num_cpus: float, num_gpus: float, local: bool) -> None:
    """Refuse a pool the local instance cannot hold (its actors would wait forever: Ray says 'the
    job may hang forever'); on a cluster, which may add nodes, only warn."""
    total = ray.cluster_resources()
    needs = {"CPU": workers * num_cpus, "GPU": workers * num_gpus}
    short = {k: (v, total.get(k, 0)) for k, v in needs.items() if v > total.get(k, 0)}
    if not short:
        return
    text = ", ".join(f"{need:g} {k} (it has {have:g})" for k, (need, have) in short.items())
    if local:
        fix = "run on the CPU (provider cpu)" if "GPU" in short else "ask for fewer workers or threads"
        raise EngineError(f"{workers} worker(s) need {text} on the local Ray instance; {fix}")
    logger.warning("%d worker(s) need %s; they wait until the cluster has them", workers, text)


def _predict(model, inputs: Inputs, workers, batch, address, keep_images, options) -> Iterator:
    with cluster(address) as ray:
        num_cpus, num_gpus = resources(options.get("provider", "auto"), options.get("threads"), ray)
        workers = workers or default_workers(ray, num_cpus, num_gpus)
        check_capacity(ray, workers, num_cpus, num_gpus, local=address is None)
        options.setdefault("threads", 1 if not num_gpus else None)
        rows = block_rows(len(inputs), batch, workers)
        workers = min(workers, -(-len(inputs) // rows))  # no actor without a block to work on
        ds = apply(
            dataset(inputs, rows),
            ModelFile.of(model),
            options,
            workers,
            batch,
            num_cpus,
            num_gpus,
            keep_images,
        )
        yield from results(ds)


__all__ = [
    "ClusterError",
    "EngineConfigError",
    "EngineError",
    "Inputs",
    "ModelFile",
    "Predictor",
    "RayMissing",
    "apply",
    "block_rows",
    "check_address",
    "check_workers",
    "cluster",
    "dataset",
    "default_workers",
    "enumerate_inputs",
    "predict",
    "require_ray",
    "resources",
    "results",
]
