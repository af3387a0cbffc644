"""The run pipeline: Source -> Frame -> preprocess -> Model -> Result, with the stages overlapped.

A reader thread decodes frames, a preprocessing thread turns them into model inputs, and the
calling thread batches and runs the model, then hands each :class:`Result` to the sinks. The
queues between stages are bounded, so memory stays flat however fast the source is. Order is
kept, and every frame gives exactly one result (an error result when it failed anywhere).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .model import Model
from .postprocess import LocalizeConfig, Result, localize, top_k
from .preprocess import preprocessor
from .sources import Frame, Source

logger = logging.getLogger(__name__)

_END = object()


@dataclass(frozen=True)
class PipelineConfig:
    batch: int = 1
    topk: int = 5
    queue_size: int = 16
    max_frames: int | None = None
    log_every_s: float = 5.0
    localize: LocalizeConfig = field(default_factory=LocalizeConfig)


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
    frames: int = 0
    errors: int = 0
    wall_s: float = 0.0
    decode: StageClock = field(default_factory=StageClock)
    preprocess: StageClock = field(default_factory=StageClock)
    inference: StageClock = field(default_factory=StageClock)
    latencies_ms: list[float] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None
    interrupted: bool = False

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
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else None
        return {
            "frames": self.frames,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "end_to_end_fps": round(self.end_to_end_fps, 2),
            "decode_fps": round(self.decode.fps, 2),
            "preprocess_fps": round(self.preprocess.fps, 2),
            "inference_fps": round(self.inference.fps, 2),
            "latency_p50_ms": None if lat is None else round(float(np.percentile(lat, 50)), 3),
            "source_fps": None if self.source_fps is None else round(self.source_fps, 2),
            "interrupted": self.interrupted,
        }


class Pipeline:
    """Runs one model over one source; see the module docstring."""

    def __init__(self, model: Model, config: PipelineConfig | None = None) -> None:
        self.model = model
        self.config = config or PipelineConfig()
        self._prep = preprocessor(model.metadata.preprocessing)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop reading new frames; the frames already read are finished and emitted.

        Safe to call from a signal handler or another thread."""
        self._stop.set()

    # -- stage threads -------------------------------------------------------------------------
    def _read(self, source: Source, out: queue.Queue, stats: RunStats) -> None:
        try:
            iterator = iter(source)
            count = 0
            while not self._stop.is_set():
                if self.config.max_frames is not None and count >= self.config.max_frames:
                    break
                start = time.perf_counter_ns()
                frame = next(iterator, None)
                if frame is None:
                    break
                stats.decode.busy_ns += time.perf_counter_ns() - start
                stats.decode.items += 1
                count += 1
                out.put(frame)
        except Exception as exc:  # noqa: BLE001 - a source failure ends the run with a record
            logger.error("%s: reading failed: %s", source.name, exc)
            out.put(Frame(None, source.name, -1, 0.0, error=f"source failed: {exc}"))
        finally:
            out.put(_END)

    def _preprocess(self, inp: queue.Queue, out: queue.Queue, stats: RunStats) -> None:
        while True:
            frame = inp.get()
            if frame is _END:
                out.put(_END)
                return
            tensor, error = None, frame.error
            if error is None:
                start = time.perf_counter_ns()
                try:
                    tensor = self._prep(frame.image)
                except Exception as exc:  # noqa: BLE001 - one bad frame gives one error record
                    error = f"preprocessing failed: {exc}"
                stats.preprocess.busy_ns += time.perf_counter_ns() - start
                stats.preprocess.items += 1
            out.put((frame, tensor, error))

    # -- inference -----------------------------------------------------------------------------
    def _results(self, items: list, stats: RunStats) -> list[Result]:
        """Run one batch of (frame, tensor, error) items; same-shape tensors share a run."""
        results: dict[int, Result] = {}
        runnable = [(i, it) for i, it in enumerate(items) if it[2] is None]
        for i, (frame, _, error) in enumerate(items):
            if error is not None:
                results[i] = Result(frame.source, frame.index, error=error)
        groups: dict[tuple, list] = {}
        for i, item in runnable:
            groups.setdefault(item[1].shape, []).append((i, item))
        meta = self.model.metadata
        for members in groups.values():
            batch = np.stack([item[1] for _, item in members])
            start = time.perf_counter_ns()
            try:
                out = self.model.run(batch)
            except Exception as exc:  # noqa: BLE001 - a failed run gives error records, not a crash
                for i, (frame, _, _) in members:
                    results[i] = Result(frame.source, frame.index, error=f"inference failed: {exc}")
                continue
            elapsed = time.perf_counter_ns() - start
            stats.inference.busy_ns += elapsed
            stats.inference.items += len(members)
            latency = elapsed / 1e6
            for row, (i, (frame, tensor, _)) in enumerate(members):
                if meta.task == "localize":
                    h, w = frame.image.shape[:2]
                    scale = (w / tensor.shape[1], h / tensor.shape[0])
                    dets = localize(out[row], meta.classes, self.config.localize, scale)
                    results[i] = Result(frame.source, frame.index, latency, detections=dets, extras={"heat": out[row]})
                else:
                    results[i] = Result(
                        frame.source,
                        frame.index,
                        latency,
                        top=top_k(out[row], meta.classes, self.config.topk),
                    )
                stats.latencies_ms.append(latency)
        return [results[i] for i in range(len(items))]

    def run(self, source: Source, emit: Callable[[Result, Frame], None]) -> RunStats:
        """Process every frame of ``source``; ``emit(result, frame)`` is called once per frame, in order."""
        stats = RunStats()
        frames: queue.Queue = queue.Queue(self.config.queue_size)
        tensors: queue.Queue = queue.Queue(self.config.queue_size)
        threads = [
            threading.Thread(target=self._read, args=(source, frames, stats), name="edgerun-read", daemon=True),
            threading.Thread(target=self._preprocess, args=(frames, tensors, stats), name="edgerun-prep", daemon=True),
        ]
        start = time.perf_counter()
        last_log = start
        for t in threads:
            t.start()
        finished = False
        try:
            while not finished:
                first = tensors.get()
                if first is _END:
                    break
                items = [first]
                while len(items) < self.config.batch:
                    try:  # live sources must not wait for a full batch: take what is ready
                        item = tensors.get_nowait() if source.live else tensors.get()
                    except queue.Empty:
                        break
                    if item is _END:
                        finished = True
                        break
                    items.append(item)
                for result, (frame, _, _) in zip(self._results(items, stats), items, strict=True):
                    stats.frames += 1
                    stats.errors += result.error is not None
                    if frame.error is None and frame.index >= 0:
                        stats.first_ts = frame.timestamp if stats.first_ts is None else stats.first_ts
                        stats.last_ts = frame.timestamp
                    emit(result, frame)
                now = time.perf_counter()
                if now - last_log >= self.config.log_every_s:
                    last_log = now
                    stats.wall_s = now - start
                    lat = np.percentile(stats.latencies_ms, 50) if stats.latencies_ms else float("nan")
                    logger.info(
                        "%d frames, %.1f fps end-to-end, inference p50 %.2f ms",
                        stats.frames,
                        stats.end_to_end_fps,
                        lat,
                    )
            stats.interrupted = self._stop.is_set()
        except KeyboardInterrupt:
            stats.interrupted = True
            logger.warning("interrupted: finishing the records in hand")
        finally:
            self._stop.set()
            deadline = time.monotonic() + 5
            while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
                for q in (frames, tensors):  # unblock stage threads stuck on a full queue
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass
                time.sleep(0.005)
            source.close()
            stats.wall_s = time.perf_counter() - start
        return stats
