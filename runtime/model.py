"""One loaded model: an onnxruntime session, its metadata, its task head, and every way to run it.

``Model.load(path)`` (or ``edgerun.load``) opens a session with the providers asked for and
reads the model's own metadata; models exported by something else run too, their layout and
size read from the input shape where that is unambiguous, otherwise from :class:`Overrides`.

The one path from frame to result: ``prepare`` (the task head makes the model's inputs from a
frame), ``infer`` (inputs of equal shape from many frames run as one batch; the head turns the
outputs into one :class:`~edgerun.runtime.results.Result` per frame). ``predict`` runs it over
frames in memory, ``stream`` over any source (threaded, so decode, preprocessing and inference
overlap), and calling the model does either, returning a list. ``run`` is the raw call: a
preprocessed NHWC batch in, probabilities (or class maps) out.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .batchinput import BatchInput
from .frames import IN_MEMORY_INPUTS, Frame, Source, SourceError, describe, in_memory, openable
from .heads import HeadOptions, OutputError, make_head
from .metadata import ModelMetadata, read_metadata
from .modelfile import ModelError, check_model_file, resolve_model_path
from .modelio import (
    Overrides,
    apply_overrides,
    check_io,
    fixed_batch,
    foreign_summary,
    infer_foreign,
    input_spec,
    whole,
)
from .pipeline import Item, Pipeline, PipelineConfig, check_batch
from .postprocess import softmax
from .preprocess import PreprocessError
from .providers import check_ort_install, plan_providers, verify_providers
from .results import Result
from .session import (
    EXECUTION_MODES,
    OPTIMIZATION_LEVELS,
    SessionConfig,
    SessionConfigError,
    default_threads,
    import_onnxruntime,
    load_failure,
    session_options,
    tuned_graph,
)
from .sources import ArraySource, open_source

# What this module has always offered (the session settings and model-file helpers now live in
# session.py, modelio.py, modelfile.py and postprocess.py): importers of edgerun.runtime.model keep working.
__all__ = [
    "EXECUTION_MODES",
    "OPTIMIZATION_LEVELS",
    "Model",
    "ModelError",
    "Overrides",
    "SessionConfig",
    "SessionConfigError",
    "check_model_file",
    "closed_error",
    "default_threads",
    "import_onnxruntime",
    "resolve_model_path",
    "session_options",
    "softmax",
]

logger = logging.getLogger(__name__)


class _ClosedSession:
    """Stands in for the session of a closed :class:`Model`: any use says so (the hot path stays
    free of a check; the call itself finds the session gone)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __getattr__(self, name: str):
        raise closed_error(self._path)


def closed_error(path: Path) -> ModelError:
    return ModelError(f"the model {path.name} was closed (Model.close); load it again with edgerun.load")


class Model:
    """An ONNX model ready to run. Use :meth:`load` (or ``edgerun.load``); ``with edgerun.load(...)
    as model:`` closes it at the end of the block (:meth:`close`)."""

    def __init__(
        self,
        session,
        metadata: ModelMetadata,
        path: Path,
        foreign: bool,
        options: HeadOptions | None = None,
        batch: int = 1,
    ):
        self.session = session
        self.metadata = metadata
        self.path = path
        self.foreign = foreign
        self.batch = batch
        self.providers = session.get_providers()
        self.head = make_head(metadata, options)
        # On CUDA, IO binding keeps the output on the device between runs and copies once.
        self._iobinding = self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        # The hot path reads these instead of walking the metadata on every call.
        self._input, self._outputs = metadata.input_name, [metadata.output_name]
        self._logits = metadata.output_kind == "logits"
        self._in = BatchInput.of(session, metadata)  # what run() takes, and the feed onnxruntime gets
        self._warm: set[tuple[int, ...]] = set()
        self._lock = threading.Lock()
        self._binder = None  # CPU IO binding with pre-allocated outputs: see bind_outputs()

    # -- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the onnxruntime session (its memory and threads) now rather than when the
        model is garbage-collected; any later call raises :class:`ModelError`. Idempotent."""
        if isinstance(self.session, _ClosedSession):
            return
        self.session = _ClosedSession(self.path)
        self._binder = None

    @property
    def closed(self) -> bool:
        return isinstance(self.session, _ClosedSession)

    def __enter__(self) -> Model:
        if self.closed:
            raise closed_error(self.path)
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __reduce__(self):
        raise TypeError(
            f"an edgerun Model holds an onnxruntime session, which cannot be pickled or copied; send the "
            f"model's path ({self.path}) to the other process and call edgerun.load there (what --engine ray does)"
        )

    def bind_outputs(self) -> None:
        """Run with the input bound and the output pre-allocated per batch shape (CPU IO binding)."""
        from .binding import OutputBinder

        if not self._iobinding:
            self._binder = OutputBinder(self.session, self._input, self._outputs[0])

    @classmethod
    def load(
        cls,
        path: str | Path,
        config: SessionConfig | None = None,
        overrides: Overrides | None = None,
        options: HeadOptions | None = None,
        batch: int = 1,
        tune: bool = False,
        keep: tuple[str, ...] = (),
    ) -> Model:
        """Open ``path`` (a file, or a bundled model's name) with the providers ``config`` asks for.

        With ``tune``, the session settings ``edgerun tune`` measured fastest for this model, batch
        size and machine replace ``config``'s, except the fields named in ``keep`` (what the user
        set by hand); ``edgerun.load`` and ``edgerun run`` tune, lower-level callers do not.

        Raises:
            ModelError: missing, empty, LFS pointer, not ONNX, or an input no recipe fits.
            ProviderError: an explicit GPU provider that cannot run here.
            MetadataError: edgerun metadata of an unknown schema, malformed, or disagreeing
                with the graph (class names vs output width, task vs output shape).
        """
        ort = import_onnxruntime()
        batch = check_batch(batch)
        config = config or SessionConfig()
        overrides = overrides or Overrides()
        path = resolve_model_path(path)
        check_model_file(path)
        check_ort_install()
        threads = config.threads or default_threads()
        plan = plan_providers(config.provider, ort.get_available_providers(), threads=threads)
        tuned_for = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda"}.get(_provider_name(plan))
        if tune and tuned_for is not None:  # edgerun tune measures onnxruntime's own CPU (and CUDA) settings
            from .tuning import tuned_config

            config, _ = tuned_config(path, batch, config, provider=tuned_for, keep=keep)
        session = None
        variant = tuned_graph(path, config.graph)
        if variant is not None:
            optimized = session_options(config, optimized=True)
            try:
                session = ort.InferenceSession(str(variant), sess_options=optimized, providers=plan.providers)
            except Exception as exc:  # noqa: BLE001 - a damaged variant must not stop a model that works
                logger.warning("%s: the tuned graph %s cannot be opened (%s); running the model itself",
                               path.name, variant.name, load_failure(variant, str(exc)))  # fmt: skip
        if session is None:
            try:
                plain = session_options(config)
                session = ort.InferenceSession(str(path), sess_options=plain, providers=plan.providers)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
                raise ModelError(load_failure(path, str(exc))) from exc
        verify_providers(plan, session.get_providers())
        metadata = read_metadata(session)
        foreign = metadata is None
        if foreign:
            metadata = infer_foreign(session.get_inputs(), session.get_outputs(), overrides)
        metadata = apply_overrides(metadata, overrides)
        check_io(session, metadata)
        if foreign:
            logger.info("%s: %s", path.name, foreign_summary(metadata, input_spec(session, metadata), overrides))
        fixed = fixed_batch(session, metadata)
        if fixed is not None and fixed != batch:
            logger.warning(
                "%s: the model's batch axis is fixed at %d, so it runs %d input(s) per call, not the %d asked for%s",
                path.name, fixed, fixed, batch, " (a partial batch is padded)" if fixed > 1 else "",
            )  # fmt: skip
            batch = fixed
        model = cls(session, metadata, path, foreign, options, batch)
        if config.io_binding:
            model.bind_outputs()
        logger.info("loaded %s (%s, %s) on %s", path.name, metadata.name, metadata.task, ", ".join(model.providers))
        return model

    # -- what the model is ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def task(self) -> str:
        return self.metadata.task

    @property
    def classes(self) -> tuple[str, ...]:
        return self.metadata.classes

    @property
    def input_channels(self) -> int:
        return 1 if self.metadata.preprocessing.color == "gray" else 3

    def __repr__(self) -> str:
        return f"Model({self.path.name!r}, task={self.task!r}, classes={len(self.classes)}, providers={self.providers})"

    # -- the raw call --------------------------------------------------------------------------
    def feed(self, batch: np.ndarray) -> np.ndarray:
        """``batch`` (NHWC float32, as :meth:`run` takes it) in the model's own layout and input type:
        what onnxruntime is given. :meth:`run` takes such a batch as it is, so a caller that runs one
        batch many times (``edgerun bench``, as its peers are fed) converts it once.

        Raises:
            ModelError: as :meth:`run`.
        """
        return self._in.feed(batch)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a preprocessed NHWC float32 batch; returns probabilities (softmax applied to logits).

        One onnxruntime call: the batch's shape must be the model's (see :meth:`expected_batch`).
        A batch already in the model's own layout and type (:meth:`feed`) goes in as it is.

        Raises:
            ModelError: not a numeric 4-D array of the model's input shape (the message gives it),
                or onnxruntime could not run it (an input smaller than the model can take, ...).
        """
        feed = self._in.feed(batch)
        try:  # free unless it raises (Python 3.11)
            if self._iobinding:
                binding = self.session.io_binding()
                binding.bind_cpu_input(self._input, feed)
                binding.bind_output(self._outputs[0], "cuda")
                self.session.run_with_iobinding(binding)
                out = binding.copy_outputs_to_cpu()[0]
            elif self._binder is not None:
                out = self._binder.run(feed)
            else:
                out = self.session.run(self._outputs, {self._input: feed})[0]
        except ModelError:  # closed
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise self._run_failure(feed, exc) from exc
        if out.ndim < 2 or out.shape[0] != len(feed):
            raise ModelError(
                f"the model returned shape {out.shape} for a batch of {len(feed)}; expected one row per input "
                "(batch, ...): it cannot be read as per-input answers"
            )
        if out.dtype != np.float32:  # a float16 or float64 model: results are float32 like any other
            out = out.astype(np.float32)
        if self._logits:
            rows = out.reshape(-1, out.shape[-1])
            # rows that already sum to 1 are left alone; np.allclose costs 29 us a call, this 3
            is_prob = bool(rows.min() >= 0) and float(np.abs(rows.sum(axis=1) - 1.0).max()) <= 1e-3
            if not is_prob:
                out = softmax(out)
        return out

    def _run_failure(self, feed: np.ndarray, exc: Exception) -> ModelError:
        """onnxruntime's refusal of a batch that passed edgerun's checks, in one line, with the
        smallest input a model of any input size takes where its metadata says (its window)."""
        reason = re.sub(r"/onnxruntime_src/\S+ [^(]*\([^)]*\) ", "", _short(exc))
        shape = tuple(feed.transpose(0, 2, 3, 1).shape) if self._in.nchw else tuple(feed.shape)
        window = self.metadata.preprocessing.window
        hint = ""
        if self._in.tail is None and window and min(shape[1:3]) < window:
            hint = f"; this model needs inputs of at least {window}x{window} pixels (its window)"
        return ModelError(f"onnxruntime could not run a batch of shape {shape} (NHWC): {reason}{hint}")

    def warmup(self, batch_shape: tuple[int, ...]) -> None:
        """Run once per new input shape so the first real call is not the slow one."""
        key = tuple(batch_shape)
        with self._lock:
            if key in self._warm:
                return
            self._warm.add(key)
        self.run(np.zeros(key, np.float32))

    # -- frame -> result -----------------------------------------------------------------------
    def prepare(self, frame: Frame) -> Item:
        """The model's inputs for one frame, or the reason there are none (never raises)."""
        if frame.error is not None:
            return Item(frame, error=frame.error)
        if frame.image is None:
            return Item(frame, error="no image")
        try:
            return Item(frame, self.head.prepare(frame.image))
        except PreprocessError as exc:
            return Item(frame, error=f"preprocessing failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - one bad frame gives one error record, never a crash
            logger.debug("preprocessing %s failed", frame.source, exc_info=True)
            return Item(frame, error=f"preprocessing failed: {type(exc).__name__}: {exc}")

    def infer(self, items: list[Item]) -> list[Result]:
        """One Result per item, in order. Inputs of equal shape run together as one batch."""
        if self.closed:
            raise closed_error(self.path)
        outputs: list[list[np.ndarray | None]] = [[None] * len(i.prepared.tensors) if i.prepared else [] for i in items]
        latency = [0.0] * len(items)
        failed: dict[int, str] = {i: item.error for i, item in enumerate(items) if item.error is not None}
        groups: dict[tuple, list[tuple[int, int]]] = {}
        for i, item in enumerate(items):
            if item.prepared is not None:
                for j, tensor in enumerate(item.prepared.tensors):
                    groups.setdefault(tensor.shape, []).append((i, j))
        # A model whose batch axis is fixed runs exactly that many per call (a partial call padded).
        for same_shape in groups.values():
            size = self._in.fixed_batch or len(same_shape)
            for first in range(0, len(same_shape), size):
                members = same_shape[first : first + size]
                batch = np.stack([items[i].prepared.tensors[j] for i, j in members])
                if len(members) < size:
                    batch = np.concatenate([batch, np.zeros((size - len(members), *batch.shape[1:]), batch.dtype)])
                start = time.perf_counter_ns()
                try:
                    out = self.run(batch)
                except Exception as exc:  # noqa: BLE001 - a failed run gives error records, not a crash
                    logger.debug("inference failed", exc_info=True)
                    for i, _ in members:
                        failed.setdefault(i, f"inference failed: {_short(exc)}")
                    continue
                elapsed_ms = (time.perf_counter_ns() - start) / 1e6
                for row, (i, j) in enumerate(members):
                    outputs[i][j] = out[row]
                for i in {i for i, _ in members}:
                    latency[i] += elapsed_ms
        results = []
        for i, item in enumerate(items):
            if i in failed:
                results.append(Result(item.frame.source, item.frame.index, error=failed[i]))
                continue
            try:
                results.append(self.head.finish(outputs[i], item.prepared, item.frame, latency[i]))
            except OutputError as exc:
                results.append(Result(item.frame.source, item.frame.index, latency[i], error=str(exc)))
        return results

    def predict(self, frames, batch: int | None = None) -> list[Result]:
        """Results for frames in memory, one per frame, in order.

        ``frames``: one numpy frame (HxW, or HxWxC with C 1, 3 or 4) is one input; a 4-D array
        (NxHxWxC) is N inputs; a list, tuple or other iterable (a generator: read to its end
        first) holds frames and image paths, one input each. Runs in the calling thread; for
        a file, directory, video or camera call the model, for long or live sources use
        :meth:`stream`.

        Raises:
            SourceError: anything else (a path string, None, an item that is no frame or path).
            SessionConfigError: ``batch`` not a whole number from 1 to 1024 (None: the model's own).
        """
        if batch is not None:
            check_batch(batch)
        items = in_memory(frames)
        if items is None:
            hint = ""
            if isinstance(frames, (str, os.PathLike)) or (whole(frames) and frames >= 0):
                hint = f"; to run a file, directory, glob, video, URL or camera, call the model: model({frames!r})"
            raise SourceError(f"model.predict takes frames in memory: {IN_MEMORY_INPUTS}; got {describe(frames)}{hint}")
        return list(self.stream(ArraySource(items), batch=batch, threaded=False))

    def stream(
        self, source, batch: int | None = None, threaded: bool = True, max_frames: int | None = None
    ) -> Iterator[Result]:
        """Results for every frame of ``source``, in order: what the model takes when called, except
        a generator (call the model with it, or pass a list).

        Threaded (the default), decoding, preprocessing and inference overlap; see
        :class:`~edgerun.runtime.pipeline.Pipeline` for the stages and their statistics.

        Raises:
            SourceError: an input of no accepted kind (the message lists them), or a source
                that cannot be opened.
            ModelError: the model was closed (:meth:`close`).
            SessionConfigError: ``batch`` not a whole number from 1 to 1024 (None: the model's
                own), or ``max_frames`` not a whole number >= 1 (None: every input).
        """
        if self.closed:  # not an input's fault: raise, rather than an error record per input
            raise closed_error(self.path)
        # None is the model's own; 0 or False once fell back to it silently, and -1 was a bare ValueError
        config = PipelineConfig(batch=self.batch if batch is None else batch, max_frames=max_frames, threaded=threaded)
        if isinstance(source, (np.ndarray, list, tuple)):
            source = ArraySource(in_memory(source))
        elif not isinstance(source, Source):
            source = open_source(openable(source, "model.stream"))
        return Pipeline(self, config).results(source)

    def __call__(self, x, batch: int | None = None) -> list[Result]:
        """Results for ``x``, always a list, one Result per input (a single input: a list of one).

        ``x`` is a path (str or Path) to an image, video, list file (.txt) or IDX file; a
        directory; a glob; a stream URL; a camera index (int); a numpy frame (HxW, or HxWxC
        with C 1, 3 or 4); a 4-D array NxHxWxC (N frames); or a list, tuple or other iterable
        (a generator: read to its end first) of frames and image paths. An input that cannot
        be read is an error result; ``x`` of none of these kinds raises :class:`SourceError`,
        and ``batch`` other than None or a whole number from 1 to 1024 :class:`SessionConfigError`.
        """
        if batch is not None:  # before a source is opened (a camera, a stream)
            check_batch(batch)
        items = in_memory(x)
        if items is not None:
            return list(self.stream(ArraySource(items), batch=batch, threaded=False))
        return list(self.stream(open_source(openable(x, "model()")), batch=batch))


def _provider_name(plan) -> str:
    first = plan.providers[0]
    return first[0] if isinstance(first, tuple) else first


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
