"""One run of a model over a source, start to finish: the lifecycle the CLI and the demo share.

``Run`` is a context manager around ``Model.stream``: on entry it opens the sinks and (in the
main thread) turns SIGINT/SIGTERM into a clean stop; iterating it yields each Result after the
sinks have it; on exit the sinks are closed (a video plays, the JSON lines are whole) and the
signal handlers restored. ``exit_code`` then says how it went::

    with Run(model, source, sinks, batch=8) as run:
        for result in run:
            print(result.summary())
    sys.exit(run.exit_code)
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .frames import Source
from .outputs import LineWriter
from .pipeline import Pipeline, PipelineConfig
from .progress import progress_bar
from .results import Result
from .sinks import Sink

logger = logging.getLogger(__name__)

EXIT_OK = 0  # every input gave an answer
EXIT_FAILED = 1  # some inputs failed; each has its error record
EXIT_USAGE = 2  # bad arguments, model, source or output target: nothing ran
EXIT_INCOMPLETE = 4  # the source ended early (a lost stream, a truncated video or IDX) or gave nothing
EXIT_WRITE_FAILED = 5  # an output could not be written (disk full, I/O error): see outputs.py
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_STDOUT_CLOSED = 141  # the reader of standard output left (| head): ended quietly
EXIT_SIGTERM = 143


@dataclass(frozen=True)
class RunConfig:
    """How ``Run`` batches, stops, logs and shows progress."""

    batch: int = 1
    max_frames: int | None = None
    log_every_s: float | None = 5.0  # live sources: a progress line this often
    progress: bool | None = None  # a progress bar for finite sources; None: when stderr is a terminal


class Lifecycle:
    """What every run shares, whatever engine makes its results (``Run`` here, the Ray engine's
    ``RayRun``): in the main thread SIGINT/SIGTERM become a clean stop (a second one stops at
    once); every result goes to every sink, then to the progress bar; on exit every sink is
    closed (even after one fails), the bar closed and the signal handlers restored."""

    stopping = "finishing the frames in hand"
    name = ""  # the progress bar's label

    def __init__(self, sinks: Sequence[Sink] = (), progress: bool | None = None) -> None:
        self.sinks = list(sinks)
        self.signal: int | None = None
        self._progress = progress
        self._previous: dict = {}
        self._bar = None
        self._stdout = LineWriter("-", optional=True)  # human lines: skipped if stdout was closed (>&-)
        self.blank = 0  # results of blank pictures written (Result.blank)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self._bar = self._progress_bar()
        return self

    def __exit__(self, *exc) -> None:
        error = None
        try:
            for sink in self.sinks:  # every sink is closed, even after one fails
                try:
                    sink.close()
                except Exception as exc_:  # noqa: BLE001 - re-raised below, after the others closed
                    error = error or exc_
            if error is not None and exc[0] is None:
                raise error
        finally:
            if self._bar is not None:
                self._bar.close()
            for s, handler in self._previous.items():
                signal.signal(s, handler)
            self._previous = {}

    def stop(self) -> None:
        """Stop making results; those in hand are finished. Safe from signal handlers and threads."""
        raise NotImplementedError

    def _on_signal(self, signum, _frame) -> None:
        if self.signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum
        logger.warning("%s received: %s", signal.Signals(signum).name, self.stopping)
        self.stop()

    def _progress_total(self) -> int | None | bool:
        """The bar's total (None: unknown), or False for no bar at all (a live source)."""
        return None

    def _progress_bar(self):
        total = self._progress_total()
        if total is False:
            return None
        return progress_bar(total, self.name, enabled=self._progress)

    def _write(self, result: Result) -> Result:
        self.blank += result.blank
        for sink in self.sinks:
            sink.write(result)
        if self._bar is not None:
            self._bar.update(1)
        return result

    def log_blank(self) -> None:
        """One warning at the end for the blank pictures answered (each record says so too)."""
        if self.blank:
            logger.warning(
                "%d input(s) were blank pictures (one flat value after preprocessing: a blank page, a covered "
                "lens, no ink found); their answers are the model's guess for an empty picture and their "
                'records say "blank": true',
                self.blank,
            )

    def write_line(self, text: str) -> None:
        """Print a line to stdout without breaking the progress bar; whole lines, flushed; a
        name the terminal's encoding cannot carry is escaped. Raises StdoutClosed on EPIPE."""
        if self._bar is not None and sys.stdout is not None and sys.stdout.isatty():
            self._bar.write(text)
        else:
            self._stdout.write(text)

    def _interrupted(self, stats_interrupted: bool) -> int | None:
        """The exit code of an interrupted run, or None."""
        if self.signal is not None:
            return EXIT_INTERRUPTED if self.signal == signal.SIGINT else EXIT_SIGTERM
        return EXIT_INTERRUPTED if stats_interrupted else None


class Run(Lifecycle):
    """See the module docstring."""

    def __init__(self, model, source: Source, sinks: Sequence[Sink] = (), config: RunConfig | None = None) -> None:
        self.config = config or RunConfig()
        super().__init__(sinks, self.config.progress)
        self.model = model
        self.name = model.name
        self.source = source
        self.pipeline = Pipeline(
            model,
            PipelineConfig(
                batch=self.config.batch,
                max_frames=self.config.max_frames,
                log_every_s=self.config.log_every_s if source.live else None,
                # Threads overlap decoding with inference across frames; a source of one batch
                # or less has nothing to overlap, and starting them costs more than it saves.
                threaded=source.live or source.expected is None or source.expected > self.config.batch,
            ),
        )

    def stop(self) -> None:
        """Stop reading; the frames in hand are finished. Safe from signal handlers and threads."""
        self.pipeline.stop()

    def _progress_total(self):
        if self.source.live:
            return False
        total = self.source.expected
        if self.config.max_frames is not None and total is not None:
            total = min(total, self.config.max_frames)
        return total

    # -- the results ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Result]:
        """Each Result once every sink has it. A sink that cannot write (:class:`OutputError`)
        ends the run: the pipeline is stopped and closed, and the error goes to the caller."""
        results = self.pipeline.results(self.source)
        try:
            for result in results:
                yield self._write(result)
        finally:
            results.close()

    @property
    def stats(self):
        return self.pipeline.stats

    @property
    def exit_code(self) -> int:
        interrupted = self._interrupted(self.stats.interrupted)
        if interrupted is not None:
            return interrupted
        if self.source.stop_reason or self.stats.stop_reason or self.stats.frames == 0:
            return EXIT_INCOMPLETE
        return EXIT_FAILED if self.stats.errors else EXIT_OK

    def log_summary(self) -> None:
        s = self.stats.as_dict()
        logger.info(
            "%d inputs, %d errors, %.1f fps end-to-end (decode %.1f, preprocess %.1f, inference %.1f fps)",
            s["frames"],
            s["errors"],
            s["end_to_end_fps"],
            s["decode_fps"],
            s["preprocess_fps"],
            s["inference_fps"],
        )
        self.log_blank()
        if s["source_fps"] and self.source.nominal_fps:  # videos, cameras, streams: images have no frame rate
            logger.info("source frame rate from timestamps: %.2f fps", s["source_fps"])
        # a source that ended early has said why as it ended (the source or the pipeline logs it)
        ended_early = self.source.stop_reason or self.stats.stop_reason
        if not ended_early and s["frames"] == 0 and not self.stats.interrupted and self.signal is None:
            logger.warning("%s gave no inputs at all (an empty video or file?)", self.source.name)
