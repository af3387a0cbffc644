"""``edgerun run --engine ray``: the run command's job on a Ray cluster, start to finish.

The same model checks, sources, sinks, records and exit codes as the local engine (see
:mod:`edgerun.runtime.run`); what differs is where the inference runs (a pool of Ray actors,
:mod:`edgerun.runtime.distributed`) and that records arrive as blocks complete, each carrying
its input's index. Every input gets exactly one record: a duplicate is dropped, and an input
the engine never answered (a lost worker, a cluster lost mid-run) gets an error record at the end;
a cluster that cannot be reached is refused before any record, as a bad argument is.
A local Ray instance is started for the run and shut down on every way out, Ctrl-C included.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from .argtypes import print_error
from .distributed import Inputs, ModelFile, apply, block_rows, check_capacity, dataset, enumerate_inputs, results
from .frames import SourceError
from .outputs import OutputError
from .raycluster import EngineError, RayMissing, check_address, cluster, default_workers, require_ray, resources
from .results import Result
from .run import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, Lifecycle
from .sinks import SinkError

logger = logging.getLogger(__name__)


@dataclass
class RayRunStats:
    """What happened, with the times the bench reads (seconds from the start of the run)."""

    inputs: int = 0
    records: int = 0
    errors: int = 0
    duplicates: int = 0
    lost: int = 0
    workers: int = 0
    init_s: float | None = None  # Ray connected (a local instance started)
    first_record_s: float | None = None  # the first record written
    wall_s: float = 0.0
    interrupted: bool = False

    @property
    def startup_s(self) -> float | None:
        """The fixed cost before records flow: start to first record."""
        return self.first_record_s

    @property
    def steady_fps(self) -> float | None:
        """Records per second after the first one."""
        if self.first_record_s is None or self.records < 2 or self.wall_s <= self.first_record_s:
            return None
        return (self.records - 1) / (self.wall_s - self.first_record_s)

    def as_dict(self) -> dict:
        return {
            "inputs": self.inputs,
            "records": self.records,
            "errors": self.errors,
            "duplicates": self.duplicates,
            "lost": self.lost,
            "workers": self.workers,
            "init_s": None if self.init_s is None else round(self.init_s, 3),
            "first_record_s": None if self.first_record_s is None else round(self.first_record_s, 3),
            "wall_s": round(self.wall_s, 3),
            "steady_fps": None if self.steady_fps is None else round(self.steady_fps, 2),
            "interrupted": self.interrupted,
        }


@dataclass(frozen=True)
class RayJob:
    """One job for the engine: the model, its load options and where it runs."""

    model: str
    options: dict
    batch: int = 1
    workers: int | None = None
    address: str | None = None
    keep_images: bool = False


class RayRun(Lifecycle):
    """Runs a :class:`RayJob` over :class:`Inputs` into sinks, with the lifecycle every run
    shares (:class:`~edgerun.runtime.run.Lifecycle`: signals, sinks, progress bar). Iterating
    it yields each Result after the sinks have it."""

    stopping = "writing the records in hand, then shutting Ray down"

    def __init__(self, job: RayJob, inputs: Inputs, sinks=(), progress: bool | None = None, name: str = "") -> None:
        super().__init__(sinks, progress)
        self.job = job
        self.inputs = inputs
        self.name = name
        self.stats = RayRunStats(inputs=len(inputs))
        self.failure: str | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def _progress_total(self) -> int:
        return len(self.inputs)

    def _write(self, result: Result) -> Result:
        self.stats.records += 1
        self.stats.errors += result.error is not None
        return super()._write(result)

    def __iter__(self):
        stats, job, start = self.stats, self.job, time.perf_counter()
        seen = np.zeros(len(self.inputs), bool)
        try:
            with cluster(job.address) as ray:
                stats.init_s = time.perf_counter() - start
                if self._stop.is_set():  # interrupted while Ray was starting: nothing to run
                    return
                num_cpus, num_gpus = resources(job.options.get("provider", "auto"), job.options.get("threads"), ray)
                stats.workers = job.workers or default_workers(ray, num_cpus, num_gpus)
                check_capacity(ray, stats.workers, num_cpus, num_gpus, local=job.address is None)
                rows = block_rows(len(self.inputs), job.batch, stats.workers)
                stats.workers = min(stats.workers, -(-len(self.inputs) // rows))  # no actor without a block
                logger.info(
                    "Ray %s: %d worker(s), %g CPU and %g GPU each; %d inputs",
                    "local instance" if job.address is None else f"cluster at {job.address}",
                    stats.workers,
                    num_cpus,
                    num_gpus,
                    len(self.inputs),
                )
                ds = apply(
                    dataset(self.inputs, rows),
                    ModelFile.of(job.model),
                    job.options,
                    stats.workers,
                    job.batch,
                    num_cpus,
                    num_gpus,
                    job.keep_images,
                )
                stream = results(ds)
                try:
                    for result in stream:
                        if self._stop.is_set():
                            break
                        if not 0 <= result.index < len(seen) or seen[result.index]:
                            stats.duplicates += 1
                            logger.warning("dropped a second record for input %d", result.index)
                            continue
                        seen[result.index] = True
                        if stats.first_record_s is None:
                            stats.first_record_s = time.perf_counter() - start
                        yield self._write(result)
                finally:
                    stream.close()  # stops Ray Data's executor before the instance goes
        except KeyboardInterrupt:
            logger.warning("interrupted: shutting Ray down")
        except (EngineError, OutputError, SinkError):  # nothing ran, or an output refused or failed: the caller says
            raise
        except Exception as exc:  # noqa: BLE001 - Ray raises many types; the inputs left get error records
            if self._stop.is_set():
                logger.debug("Ray failed while stopping", exc_info=True)
            else:
                self.failure = _reason(exc)
                logger.error("the Ray engine failed: %s", self.failure)
        finally:
            stats.interrupted = self._stop.is_set() or self.signal is not None
            stats.wall_s = time.perf_counter() - start
        if not stats.interrupted:
            yield from self._lost(seen)

    def _lost(self, seen: np.ndarray):
        """An error record for every input the engine never answered (one record per input, always)."""
        missing = np.flatnonzero(~seen)
        if not len(missing):
            return
        why = self.failure or "the Ray engine returned no record for it (a lost worker?)"
        logger.error("%d input(s) got no record from Ray; each gets an error record", len(missing))
        for i in missing:
            self.stats.lost += 1
            yield self._write(Result(self.inputs.source[i], int(self.inputs.index[i]), error=f"not run: {why}"))

    @property
    def exit_code(self) -> int:
        interrupted = self._interrupted(self.stats.interrupted)
        if interrupted is not None:
            return interrupted
        if self.stats.records == 0:
            return EXIT_INCOMPLETE
        return EXIT_FAILED if self.stats.errors else EXIT_OK

    def log_summary(self) -> None:
        s = self.stats
        steady = s.steady_fps
        logger.info(
            "%d inputs, %d records, %d errors, %.1f img/s end-to-end on %d Ray worker(s); start-up %s s "
            "(Ray ready %s s), %s img/s after the first record",
            s.inputs,
            s.records,
            s.errors,
            s.records / s.wall_s if s.wall_s else 0.0,
            s.workers,
            "-" if s.first_record_s is None else f"{s.first_record_s:.2f}",
            "-" if s.init_s is None else f"{s.init_s:.2f}",
            "-" if steady is None else f"{steady:.1f}",
        )
        self.log_blank()


def _reason(exc: BaseException) -> str:
    """One line from a Ray exception (whose text is a remote traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    tail = next((line for line in reversed(lines) if not line.startswith(("File ", "^", "~"))), type(exc).__name__)
    return f"{type(exc).__name__}: {tail}"[:400]


class _SecureDefaultNotice(logging.Filter):
    """Drops Ray's warning that token authentication is on (its secure default, nothing to do) on
    every run; the warning that it is off, which is a risk, still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _quiet_ray() -> None:
    """Ray Data's progress bars and per-run INFO lines off (edgerun shows its own); -v keeps them."""
    import ray.data

    if logging.getLogger().level > logging.DEBUG:
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray").setLevel(logging.WARNING)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled"
        setup = logging.getLogger("ray._private.authentication.authentication_token_setup")
        if not any(isinstance(f, _SecureDefaultNotice) for f in setup.filters):
            setup.addFilter(_SecureDefaultNotice())


def main(args) -> int:
    """``edgerun run`` with ``--engine ray``; ``args`` are the run command's parsed arguments.

    Everything the local engine checks is checked here the same way, by the same code (the
    model, the source, every output against every input: ``cli.open_sinks``), and the cluster's
    address answers, all before any cluster starts; a refusal is one line and exit 2."""
    from .cli import drive, open_sinks, overrides_from
    from .heads import HeadOptions
    from .images import VIDEO_SUFFIXES
    from .metadata import MetadataError
    from .model import Model, ModelError, SessionConfig
    from .outputs import OutputError
    from .preprocess import PreprocessError
    from .providers import ProviderError
    from .sinks import SinkError

    try:
        require_ray()
        if args.show:
            raise EngineError("--show stays local (a window on this machine, frames in order); drop --engine ray")
        if args.save and args.save.suffix.lower() in VIDEO_SUFFIXES:
            raise EngineError(
                f"--save {args.save}: a video needs frames in order, and Ray returns them as they finish; "
                "give a directory for annotated images, or drop --engine ray"
            )
        overrides = overrides_from(args)
        # Checked here, before any cluster starts: a bad model or option is the same one-line error
        # as with the local engine. The workers load it again with the provider asked for.
        model = Model.load(
            args.model,
            SessionConfig(provider="cpu", threads=1),
            overrides,
            HeadOptions(topk=args.topk, threshold=args.threshold),
            batch=args.batch,
        )
        inputs = enumerate_inputs(args.source)
        if args.max_frames is not None:
            inputs = inputs.head(args.max_frames)
        check_address(args.ray_address)  # before the outputs are created: a refused run leaves no empty file
        job = RayJob(
            str(model.path), _options(args, overrides), args.batch, args.workers, args.ray_address, bool(args.save)
        )
        run = RayRun(job, inputs, progress=args.progress, name=model.name)
        run.sinks = open_sinks(args, model, inputs, run.stop)
    except RayMissing as exc:
        print(f"edgerun run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (
        EngineError,
        ModelError,
        ProviderError,
        MetadataError,
        PreprocessError,
        SourceError,
        SinkError,
        OutputError,
    ) as exc:
        print_error("edgerun run", exc)
        return EXIT_USAGE
    _quiet_ray()
    try:
        return drive(run, args)
    except EngineError as exc:  # the cluster could not be reached, or cannot hold the pool: nothing ran
        print_error("edgerun run", exc)
        return EXIT_USAGE


def _options(args, overrides) -> dict:
    """What each worker passes to ``edgerun.load``."""
    return {
        "provider": args.provider,
        "threads": args.threads or 1,
        "spinning": args.spin,
        "topk": args.topk,
        "threshold": args.threshold,
        **{k: v for k, v in vars(overrides).items() if v is not None},
    }
