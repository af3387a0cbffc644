"""The threaded form of ``Model.stream``: Source -> Frame -> prepare -> infer -> Result, overlapped.

A reader thread decodes frames, a preparing thread turns them into model inputs (the task
head's ``prepare``), and the consuming thread batches them and runs the model (``infer``),
yielding each :class:`Result` in order. Memory stays flat for any source and any batch size:
the queues between stages are bounded in items, and the frames and model inputs in flight are
bounded in bytes (``max_inflight_bytes``; a batch is run early rather than let it grow past
that). Every frame gives exactly one result (an error result when it failed anywhere). With
``threaded=False`` the same steps run in the calling thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .frames import Frame, Source, describe
from .heads import Prepared
from .modelio import whole
from .session import SessionConfigError
from .timing import Reservoir

if TYPE_CHECKING:
    import queue

    from .model import Model
    from .results import Result

logger = logging.getLogger(__name__)

_END = object()

#: Bytes of decoded frames and model inputs in flight (read, not yet answered); a single frame
#: larger than this still runs, alone.
MAX_INFLIGHT_BYTES = 256 * 1024 * 1024
#: The largest --batch: a batch is one onnxruntime call, and beyond this nothing gets faster.
MAX_BATCH = 1024


class ByteBudget:
    """Bytes in flight between the reader and the results: the reader waits while they pass the
    limit (never for the first frame: one frame of any size always fits)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0  # the most bytes in flight at once
        self.waiting = False
        self._cond = threading.Condition()

    def acquire(self, n: int, stop: threading.Event) -> bool:
        """Wait until ``n`` bytes fit; False when ``stop`` was set first."""
        with self._cond:
            while self.used and self.used + n > self.limit:
                if stop.is_set():
                    return False
                self.waiting = True
                self._cond.wait(0.1)
            self.waiting = False
            self.used += n
            self.peak = max(self.peak, self.used)
            return True

    def charge(self, n: int) -> None:
        """Count ``n`` more bytes without waiting (model inputs made from a frame in flight)."""
        with self._cond:
            self.used += n
            self.peak = max(self.peak, self.used)

    def release(self, n: int) -> None:
        with self._cond:
            self.used = max(0, self.used - n)
            self._cond.notify_all()


def _nbytes(item) -> int:
    """Bytes a frame or an item holds (its image, and its model inputs once prepared)."""
    frame = getattr(item, "frame", item)
    size = frame.image.nbytes if getattr(frame, "image", None) is not None else 0
    prepared = getattr(item, "prepared", None)
    if prepared is not None:
        size += sum(t.nbytes for t in prepared.tensors)
    return size


@dataclass(eq=False)  # holds a Frame
class Item:
    """One frame on its way through: its prepared inputs, or why it has none."""

    frame: Frame
    prepared: Prepared | None = None
    error: str | None = None


@dataclass(frozen=True)
class PipelineConfig:
    """How a pipeline batches, buffers and stops (validated on creation)."""

    batch: int = 1
    queue_size: int = 16
    max_frames: int | None = None
    log_every_s: float | None = None  # None: no periodic progress lines
    threaded: bool = True
    max_inflight_bytes: int = MAX_INFLIGHT_BYTES

    def __post_init__(self) -> None:  # the one check of batch and max_frames, for every caller
        object.__setattr__(self, "batch", check_batch(self.batch))
        object.__setattr__(self, "max_frames", check_max_frames(self.max_frames))


def check_batch(batch: object) -> int:
    """``batch`` as an int: inputs per inference call, 1 to :data:`MAX_BATCH` (a numpy integer too).

    Raises:
        SessionConfigError: anything else (0, -1, True, 1.5, "4", 2000), saying what is allowed.
    """
    if not whole(batch) or not 1 <= batch <= MAX_BATCH:
        raise SessionConfigError(f"batch must be a whole number from 1 to {MAX_BATCH}, got {describe(batch)}")
    return int(batch)


def check_max_frames(max_frames: object) -> int | None:
    """``max_frames`` as an int (a numpy integer too), or None: every input.

    Raises:
        SessionConfigError: anything else (0, -1, 1.5, "2"), saying what is allowed.
    """
    if max_frames is not None and not (whole(max_frames) and max_frames >= 1):
        raise SessionConfigError(
            f"max_frames must be a whole number >= 1 (or None: every input), got {describe(max_frames)}"
        )
    return None if max_frames is None else int(max_frames)


@dataclass
class StageClock:
    """Busy time and item count of one stage (fps = items / busy seconds)."""

    items: int = 0
    busy_ns: int = 0

    @property
    def fps(self) -> float:
        return self.items / (self.busy_ns / 1e9) if self.busy_ns else 0.0


@dataclass
class RunStats:
    """What a run did: counts, wall time, per-stage clocks and latencies."""

    frames: int = 0
    errors: int = 0
    wall_s: float = 0.0
    decode: StageClock = field(default_factory=StageClock)
    preprocess: StageClock = field(default_factory=StageClock)
    inference: StageClock = field(default_factory=StageClock)
    latencies_ms: Reservoir = field(default_factory=Reservoir)
    first_ts: float | None = None
    last_ts: float | None = None
    interrupted: bool = False
    stop_reason: str | None = None  # the source failed part-way (set by the pipeline)

    @property
    def end_to_end_fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0

    @property
    def source_fps(self) -> float | None:
        """The source's own frame rate, from frame timestamps (never from CAP_PROP_FPS)."""
        if self.first_ts is None or self.last_ts is None or self.frames < 2 or self.last_ts <= self.first_ts:
            return None
        return (self.frames - 1) / (self.last_ts - self.first_ts)

    def as_dict(self) -> dict:
        p50 = self.latencies_ms.percentile(50)
        return {
            "frames": self.frames,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "end_to_end_fps": round(self.end_to_end_fps, 2),
            "decode_fps": round(self.decode.fps, 2),
            "preprocess_fps": round(self.preprocess.fps, 2),
            "inference_fps": round(self.inference.fps, 2),
            "latency_p50_ms": None if p50 is None else round(p50, 3),
            "source_fps": None if self.source_fps is None else round(self.source_fps, 2),
            "interrupted": self.interrupted,
        }


class Pipeline:
    """Runs one model over one source; see the module docstring."""

    def __init__(self, model: Model, config: PipelineConfig | None = None) -> None:
        self.model = model
        self.config = config or PipelineConfig()
        self.stats = RunStats()
        self._stop = threading.Event()  # asked for by the user (a signal, a window's 'q')
        self._halt = threading.Event()  # the run is over: stage threads leave
        self._last_log = 0.0
        self._budget = ByteBudget(self.config.max_inflight_bytes)

    def stop(self) -> None:
        """Stop reading new frames; the frames already read are finished and yielded.

        Safe to call from a signal handler or another thread."""
        self._stop.set()

    # -- the stages ----------------------------------------------------------------------------
    def _frames(self, source: Source) -> Iterator[Frame]:
        """The source's frames, up to ``max_frames``, timed; a failing source ends with one
        error frame, never an exception."""
        stats, limit = self.stats, self.config.max_frames
        iterator = iter(source)
        count = 0
        while not (self._stop.is_set() or self._halt.is_set()) and (limit is None or count < limit):
            start = time.perf_counter_ns()
            try:
                frame = next(iterator, None)
            except Exception as exc:  # noqa: BLE001 - a source failure ends the run with a record
                logger.error("%s: reading failed: %s", source.name, exc)
                stats.stop_reason = f"reading failed after {count} inputs: {exc}"
                yield Frame(None, source.name, count, 0.0, error=f"reading {source.name} failed: {exc}")
                return
            if frame is None:
                return
            stats.decode.busy_ns += time.perf_counter_ns() - start
            stats.decode.items += 1
            count += 1
            yield frame

    def _prepare(self, frame: Frame) -> Item:
        start = time.perf_counter_ns()
        item = self.model.prepare(frame)
        if frame.error is None:
            self.stats.preprocess.busy_ns += time.perf_counter_ns() - start
            self.stats.preprocess.items += 1
        if item.prepared is not None:
            self._budget.charge(sum(t.nbytes for t in item.prepared.tensors))
        return item

    def _infer(self, items: list[Item]) -> list[Result]:
        start = time.perf_counter_ns()
        results = self.model.infer(items)
        stats = self.stats
        ran = [r for r in results if r.latency_ms is not None]
        if ran:
            stats.inference.busy_ns += time.perf_counter_ns() - start
            stats.inference.items += len(ran)
        for result, item in zip(results, items, strict=True):
            stats.frames += 1
            stats.errors += result.error is not None
            if result.latency_ms is not None:
                stats.latencies_ms.add(result.latency_ms)
            if item.frame.error is None:
                stats.first_ts = item.frame.timestamp if stats.first_ts is None else stats.first_ts
                stats.last_ts = item.frame.timestamp
        return results

    # -- the run -------------------------------------------------------------------------------
    def results(self, source: Source) -> Iterator[Result]:
        """Every frame's Result, in order. Closing the generator (or :meth:`stop`) ends the run
        cleanly: threads joined, the source closed, ``stats`` complete."""
        start = self._last_log = time.perf_counter()
        try:
            if self.config.threaded:
                yield from self._threaded(source, start)
            else:
                yield from self._inline(source, start)
            self.stats.interrupted = self._stop.is_set()
        except KeyboardInterrupt:
            self.stats.interrupted = True
            logger.warning("interrupted: finishing the records in hand")
        finally:
            source.close()
            self.stats.wall_s = time.perf_counter() - start

    def _answer(self, items: list[Item]) -> Iterator[Result]:
        """Run one batch and yield its results, giving back their bytes as each is yielded."""
        for result, item in zip(self._infer(items), items, strict=True):
            self._budget.release(_nbytes(item))
            yield result

    def _inline(self, source: Source, start: float) -> Iterator[Result]:
        items: list[Item] = []
        budget = self._budget
        for frame in self._frames(source):
            budget.charge(_nbytes(frame))
            items.append(self._prepare(frame))
            if len(items) >= self.config.batch or budget.used >= budget.limit:
                yield from self._answer(items)
                items = []
                self._log(start)
        if items:
            yield from self._answer(items)

    def _read(self, source: Source, out: queue.Queue) -> None:
        try:
            for frame in self._frames(source):
                if not self._budget.acquire(_nbytes(frame), self._halt):
                    return
                out.put(frame)
        finally:
            out.put(_END)

    def _prep_loop(self, inp: queue.Queue, out: queue.Queue) -> None:
        while True:
            frame = inp.get()
            if frame is _END:
                out.put(_END)
                return
            out.put(self._prepare(frame))

    def _threaded(self, source: Source, start: float) -> Iterator[Result]:
        import queue  # only threaded runs pay for it (a one-image run starts no threads)

        frames: queue.Queue = queue.Queue(self.config.queue_size)
        items: queue.Queue = queue.Queue(self.config.queue_size)
        threads = [
            threading.Thread(target=self._read, args=(source, frames), name="edgerun-read", daemon=True),
            threading.Thread(target=self._prep_loop, args=(frames, items), name="edgerun-prep", daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            finished = False
            while not finished:
                first = items.get()
                if first is _END:
                    break
                batch = [first]
                while len(batch) < self.config.batch:
                    try:  # live sources must not wait for a full batch: take what is ready
                        item = items.get_nowait() if source.live else items.get(timeout=0.05)
                    except queue.Empty:
                        if source.live or self._budget.waiting:
                            break  # the reader waits for bytes this batch holds: run it now
                        continue
                    if item is _END:
                        finished = True
                        break
                    batch.append(item)
                yield from self._answer(batch)
                self._log(start)
        finally:
            self._halt.set()
            deadline = time.monotonic() + 5
            while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
                for q in (frames, items):  # unblock stage threads stuck on a full queue
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass
                time.sleep(0.005)

    def _log(self, start: float) -> None:
        every = self.config.log_every_s
        now = time.perf_counter()
        if every is None or now - self._last_log < every:
            return
        self._last_log = now
        self.stats.wall_s = now - start
        p50 = self.stats.latencies_ms.percentile(50)
        logger.info(
            "%d frames, %.1f fps end-to-end, inference p50 %s",
            self.stats.frames,
            self.stats.end_to_end_fps,
            "-" if p50 is None else f"{p50:.2f} ms",
        )
