"""``edgerun tune MODEL [--batch 1,8,64]``: measure session settings on this machine, keep the fastest.

Peers ship one fixed configuration; the fastest one depends on the model, the batch size and
the CPU. For each batch size the tuner starts from edgerun's defaults and walks one setting at a
time (coordinate descent), every candidate of a setting measured in interleaved rounds against
the others, keeping a change only when its median beats the current best by more than
``--margin`` (noise must not pick settings). The settings, in order:

- ``threads``: intra-op threads, 1 up to the cores;
- ``spinning``: idle onnxruntime threads spin or sleep;
- ``optimization``: graph optimisation level (basic, extended, all: ``all`` adds the NCHWc
  layouts, which cost reorders on small tensors);
- ``graph``: the model file or a graph variant of it (``edgerun.export.variants``), tried at
  optimisation level ``all``; a variant is saved as onnxruntime optimised it on this machine
  (its blocked layouts and reordered weights), beside the cache, for models up to 64 MB, and
  kept only where some batch size runs it;
- ``io_binding``: the input bound by reference and a pre-allocated output (runtime/binding.py);
- ``execution_mode``: sequential or parallel (inter-op threads; only branching graphs gain).

A candidate whose outputs differ from the defaults' by more than 1e-4 is refused. The winner
is then measured once more head to head with the defaults; if it is not faster, the defaults
are stored. Where a winner runs the model itself at level ``all`` on the CPU, the model as
onnxruntime optimised it here is kept beside the cache too, so runs open it without optimising
again (``keep_optimized_model``). Winners go to the tune cache (``edgerun.runtime.tuning``),
which ``edgerun bench`` and the runtime read.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgerun.runtime.argtypes import Parser, given_path, positive_float, positive_int, print_error
from edgerun.runtime.tuning import TunedSettings

logger = logging.getLogger(__name__)

OUTPUT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class TuneConfig:
    batches: tuple[int, ...] = (1, 8, 64)
    graphs: Path | None = None  # where graph variants are written (None: none are tried)
    provider: str = "cpu"
    seconds: float = 0.25  # per candidate per round
    rounds: int = 5
    margin: float = 0.02  # a change must beat the current best by this fraction
    warmup: int = 3


@dataclass
class BatchResult:
    batch: int
    default: TunedSettings
    tuned: TunedSettings
    trail: list[str]  # one line per decision, for the log and the report

    @property
    def speedup(self) -> float | None:
        if self.tuned.p50_ms and self.default.p50_ms:
            return self.default.p50_ms / self.tuned.p50_ms
        return None


def default_settings(cores: int) -> TunedSettings:
    """edgerun's defaults as a TunedSettings (what ``SessionConfig()`` gives)."""
    return TunedSettings(
        threads=cores, spinning=True, optimization="all", execution_mode="sequential", io_binding=False
    )


def thread_candidates(cores: int) -> list[int]:
    return sorted({1, max(1, cores // 2), cores, *(t for t in (2, 4, 8) if t < cores)})


MAX_VARIANT_BYTES = 64 << 20  # a variant is a second copy of the model in the cache


def _candidates(name: str, cores: int) -> list:
    return {
        "threads": thread_candidates(cores),
        "spinning": [True, False],
        "optimization": ["all", "extended", "basic"],
        "io_binding": [False, True],
        "execution_mode": ["sequential", "parallel"],
    }[name]


class Tuner:
    """Loads one session per distinct setting (reused across batch sizes) and measures them."""

    def __init__(
        self, path: Path, config: TuneConfig, input_shape: tuple[int, int, int], variants: dict[str, Path] | None = None
    ) -> None:
        self.path = path
        self.config = config
        self.input_shape = input_shape
        self.variants = variants or {}  # graph variant name -> its file
        self._models: dict[tuple, object] = {}

    def options(self, best: TunedSettings, name: str, cores: int) -> list[TunedSettings]:
        """``best`` with each candidate value of setting ``name``."""
        if name == "graph":
            if best.optimization != "all":  # the variants are saved optimised at level all
                return [best]
            return [
                replace(best, graph="model", graph_file=None),
                *(replace(best, graph=g, graph_file=str(f)) for g, f in self.variants.items()),
            ]
        return [replace(best, **{name: value}) for value in _candidates(name, cores)]

    def model(self, settings: TunedSettings):
        from edgerun.runtime.model import Model, SessionConfig

        key = settings.session_key
        if key not in self._models:
            self._models[key] = Model.load(self.path, settings.apply(SessionConfig(provider=self.config.provider)))
        return self._models[key]

    def measure(self, candidates: list[TunedSettings], x: np.ndarray, reference: np.ndarray) -> list[float | None]:
        """Median ms of each candidate over interleaved rounds; None for one that gives other outputs."""
        models = [(settings.label(), self.model(settings)) for settings in candidates]
        return measure_models(models, x, reference, self.config)

    def tune_batch(self, batch: int, cores: int) -> BatchResult:
        x = np.random.default_rng(batch).random((batch, *self.input_shape), dtype=np.float32)
        default = default_settings(cores)
        reference = self.model(default).run(x)
        best, trail = default, []
        for name in ("threads", "spinning", "optimization", "graph", "io_binding", "execution_mode"):
            options = self.options(best, name, cores)
            if len(options) < 2:
                continue
            times = self.measure(options, x, reference)
            current = options.index(best)
            winner, winner_ms = best, times[current]
            for settings, ms in zip(options, times, strict=True):
                if ms is not None and ms < winner_ms * (1 - self.config.margin):
                    winner, winner_ms = settings, ms
            shown = ", ".join(
                f"{getattr(s, name)}: {'-' if ms is None else f'{ms:.3f}'}"
                for s, ms in zip(options, times, strict=True)
            )
            trail.append(f"batch {batch:<3} {name:<15} {shown} ms -> {getattr(winner, name)}")
            logger.info("%s", trail[-1])
            best = winner
        if best.session_key == default.session_key:
            default_ms = tuned_ms = self.measure([default], x, reference)[0]
        else:
            default_ms, tuned_ms = self.measure([default, best], x, reference)
            if tuned_ms >= default_ms:
                trail.append(
                    f"batch {batch:<3} head to head: {best.label()} {tuned_ms:.3f} ms is not faster than the "
                    f"defaults {default_ms:.3f} ms -> defaults kept"
                )
                logger.info("%s", trail[-1])
                best, tuned_ms = default, default_ms
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        tuned = replace(best, p50_ms=round(tuned_ms, 4), default_p50_ms=round(default_ms, 4), measured=when)
        default = replace(default, p50_ms=round(default_ms, 4), default_p50_ms=round(default_ms, 4), measured=when)
        return BatchResult(batch, default, tuned, trail)


def measure_models(models: list[tuple[str, object]], x, reference, config: TuneConfig) -> list[float | None]:
    """Median ms of each ``(label, Model)`` over ``config.rounds`` interleaved rounds; None for a
    model whose outputs differ from ``reference`` by more than OUTPUT_TOLERANCE."""
    from edgerun.runtime.timing import measure

    runs = []
    for label, model in models:
        model.warmup(x.shape)
        diff = float(np.abs(model.run(x) - reference).max())
        if diff > OUTPUT_TOLERANCE:
            logger.warning("%s: outputs differ from the reference by %.2e; not a candidate", label, diff)
            runs.append(None)
        else:
            runs.append(lambda m=model: m.run(x))
    samples: list[list[np.ndarray]] = [[] for _ in models]
    for turn in range(config.rounds):
        for i, run in enumerate(runs):
            if run is not None:
                t = measure(run, warmup=config.warmup if turn == 0 else 1, seconds=config.seconds)
                samples[i].append(t.samples_ns)
    return [float(np.median(np.concatenate(s))) / 1e6 if runs[i] else None for i, s in enumerate(samples)]


def compare_variants(path: Path, variants: list[Path], results: list[BatchResult], config: TuneConfig) -> list[str]:
    """Each tuned batch size once more, the model against other graphs of it (``edgerun export
    --no-simplify``, an NCHW export, ...), all with the tuned settings, interleaved. Reported, not
    stored: the runtime runs the file it is given."""
    from edgerun.runtime.model import Model, SessionConfig

    lines = []
    shape = input_shape(path)
    for r in results:
        # each file as given: a graph variant the tuner chose must not stand in for them
        session = replace(r.tuned.apply(SessionConfig(provider=config.provider)), graph=None)
        models = [(str(p), Model.load(p, session)) for p in (path, *variants)]
        x = np.random.default_rng(r.batch).random((r.batch, *shape), dtype=np.float32)
        times = measure_models(models, x, models[0][1].run(x), config)
        shown = ", ".join(
            f"{name} {'differs' if ms is None else f'{ms:.3f} ms'}" for (name, _), ms in zip(models, times, strict=True)
        )
        lines.append(f"variants  batch {r.batch}: {shown}")
    return lines


def input_shape(path: Path) -> tuple[int, int, int]:
    """(height, width, channels) per image, as the bench feeds it."""
    from .harness import model_input

    return model_input(path).image


def tune(path: Path, config: TuneConfig, done: list[BatchResult] | None = None) -> list[BatchResult]:
    """Each batch size's winner. ``done`` gets each as it is measured: after a signal stopped the
    tune (KeyboardInterrupt), it holds the batch sizes finished before it."""
    from edgerun.runtime.session import default_threads

    graph_path = graph_paths(path, config.graphs) if config.graphs else None
    variants = write_variants(path, graph_path) if graph_path else {}
    tuner = Tuner(path, config, input_shape(path), variants)
    cores = default_threads()
    results = [] if done is None else done
    for batch in config.batches:
        results.append(tuner.tune_batch(batch, cores))
    if graph_path and config.provider == "cpu" and any(_runs_model(r.tuned) for r in results):
        copy = keep_optimized_model(path, graph_path("model"), tuner.input_shape)
        if copy is not None:
            results = [
                replace(r, tuned=replace(r.tuned, graph_file=str(copy))) if _runs_model(r.tuned) else r for r in results
            ]
    return results


def _runs_model(settings: TunedSettings) -> bool:
    """Whether these settings run the model itself with every optimisation (what its saved copy holds)."""
    return settings.graph == "model" and settings.optimization == "all"


def graph_paths(path: Path, folder: Path) -> Callable[[str], Path]:
    """``name -> folder/SHA256.NAME.MACHINE.onnx``: where the tuner keeps ``path``'s graph files
    (the model's hash and the machine fingerprint taken once)."""
    from edgerun.runtime.files import sha256_file
    from edgerun.runtime.tuning import fingerprint

    digest, machine = sha256_file(path), fingerprint("cpu")
    return lambda name: Path(folder) / f"{digest}.{name}.{machine}.onnx"


def keep_optimized_model(path: Path, target: Path, shape: tuple[int, int, int]) -> Path | None:
    """The model as onnxruntime optimises it on this CPU, saved to ``target`` for the runs its
    tuned entries send to it: opened with optimisation off, a session skips that work (ResNet50
    here: 312 -> 178 ms to create, medians of 7 fresh processes; README, Tuning). Kept only if
    it gives the model's outputs (1e-4)."""
    from edgerun.runtime.model import Model, SessionConfig

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        optimized_here(str(path), target)  # by path: a large model is not read into memory twice
        x = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
        model, copy = (Model.load(path, SessionConfig(provider="cpu", graph=g)) for g in (None, str(target)))
        diff = float(np.abs(model.run(x) - copy.run(x)).max())
        if diff > OUTPUT_TOLERANCE:
            raise ValueError(f"its outputs differ from the model's by {diff:.2e}")
    except Exception as exc:  # noqa: BLE001 - a full disk, or onnxruntime's own errors: the tuning stands
        logger.warning("%s: no optimised copy kept (%s)", path.name, exc)
        target.unlink(missing_ok=True)
        return None
    logger.info("%s: optimised copy kept for the runs (%.1f MB): %s", path.name, target.stat().st_size / 1e6, target)
    return target


#: Another model's graph file that no entry names is deleted only when older than this: a tune of
#: that model running at the same time has written its variants and not yet recorded them.
STALE_GRAPH_S = 24 * 3600


def prune_graphs(cache: Path, model_sha256: str) -> list[Path]:
    """Delete the graph files beside ``cache`` that no entry runs (a variant no batch size won, one
    an entry no longer names, an earlier model's); returns them. Those of ``model_sha256`` (the
    model just tuned) at once, other models' once a day old: deleting the fresh variants of a tune
    running beside this one made it measure the model in their place, and record names of files
    that were gone."""
    import time

    from edgerun.runtime.tuning import cache_lock, graphs_dir, read_cache

    folder = graphs_dir(cache)
    with cache_lock(cache):
        named = {
            entry.get("graph_file")
            for machine in read_cache(cache)["machines"].values()
            for model in machine.get("models", {}).values()
            for entry in model.get("batches", {}).values()
        }
        stale = time.time() - STALE_GRAPH_S
        gone = [
            f
            for f in (folder.glob("*.onnx") if folder.is_dir() else ())
            if str(f) not in named and (f.name.startswith(f"{model_sha256}.") or _mtime(f) < stale)
        ]
        for file in gone:
            file.unlink(missing_ok=True)
            logger.info("graph variant %s not kept: no tuned batch size runs it", file.name)
    return gone


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # gone already
        return float("inf")


def write_variants(path: Path, graph_path: Callable[[str], Path]) -> dict[str, Path]:
    """The graph variants of ``path`` that apply (``edgerun.export.variants``), each saved as
    onnxruntime optimises it on this machine, to ``graph_path(NAME)``; none without the onnx
    package or for a large model."""
    if path.stat().st_size > MAX_VARIANT_BYTES:
        logger.info("%s: over %d MB, no graph variants tried", path.name, MAX_VARIANT_BYTES >> 20)
        return {}
    try:
        from edgerun.export.variants import make_variants
    except ImportError as exc:  # onnx is the export extra's; the runtime does without it
        logger.info("no graph variants tried (%s)", exc)
        return {}
    written: dict[str, Path] = {}

    def write(name: str, data: bytes) -> None:
        target = graph_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        written[name] = optimized_here(data, target)

    try:
        make_variants(path, write)
    except Exception as exc:  # noqa: BLE001 - a full disk, or onnx/onnxruntime's own errors: tuning goes on
        logger.warning("no graph variants tried: %s", exc)
        for file in written.values():
            file.unlink(missing_ok=True)
        return {}
    return written


def optimized_here(model: bytes | str, target: Path) -> Path:
    """``model`` (serialised, or a file's path) as onnxruntime optimises it on this CPU at level
    ``all``, saved to ``target``.

    A session then opens it without redoing that work, which at load holds the weights twice:
    ``mnist_cnn``'s dense-conv variant peaks at 79.6 MB in a fresh process opened as written and
    65.2 MB opened optimised (the model itself: 66.0 MB). The file is for this machine only (its
    layouts follow the CPU), hence the machine fingerprint in its name.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # onnxruntime warns that the saved graph is hardware-specific: we know
    partial = target.with_name(f".{target.name}.partial")
    options.optimized_model_filepath = str(partial)
    try:
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def format_results(path: Path, results: list[BatchResult]) -> str:
    lines = [f"{path.name}: {'batch':>5} {'default ms':>11} {'tuned ms':>9} {'speedup':>8}  settings"]
    for r in results:
        speed = f"{r.speedup:.2f}x" if r.speedup else "-"
        lines.append(
            f"{'':{len(path.name) + 1}} {r.batch:>5} {r.default.p50_ms:>11.3f} {r.tuned.p50_ms:>9.3f} {speed:>8}  "
            f"{r.tuned.label()}"
        )
    from edgerun.runtime.outputs import one_line

    return "\n".join(one_line(line) for line in lines)  # a file name's escape codes shown, not obeyed


def build_parser() -> argparse.ArgumentParser:
    from .cli import _batches

    p = Parser(
        prog="edgerun tune",
        description="Measure onnxruntime session settings for a model on this machine and keep the fastest per "
        "batch size in the tune cache, which edgerun bench and the runtime use (--no-tune to ignore it). "
        "Exit 0; 2 for bad arguments or a tune cache that cannot be written (checked before any measuring); "
        "130/143 when SIGINT/SIGTERM stopped it (the batch sizes finished are stored).",
    )
    p.add_argument("models", nargs="+", type=given_path, help="ONNX models to tune (files, or bundled models' names)")
    p.add_argument("--batch", type=_batches, default=(1, 8, 64), help="batch sizes, each 1-1024, e.g. 1,8,64 (default)")
    p.add_argument("--provider", choices=("cpu",), default="cpu", help="execution provider (CPU only so far)")
    p.add_argument("--seconds", type=positive_float, default=0.25, help="per candidate per round (default 0.25)")
    p.add_argument("--rounds", type=positive_int, default=5, help="interleaved rounds per comparison (default 5)")
    p.add_argument("--margin", type=float, default=2.0, help="percent a change must win by to be kept (default 2)")
    p.add_argument("--cache", type=Path, help="tune cache file (default: $EDGERUN_TUNE_CACHE or ~/.cache/edgerun)")
    p.add_argument("--dry-run", action="store_true", help="measure and print, store nothing")
    p.add_argument(
        "--variant",
        type=Path,
        action="append",
        default=[],
        help="another graph of the same model (e.g. edgerun export --no-simplify) to measure against it "
        "with the tuned settings; reported, not stored (repeatable; one model only)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from edgerun.runtime.tuning import cache_path, graphs_dir

    if args.variant and len(args.models) != 1:
        parser.error("--variant compares graphs of one model: give exactly one model")
    args.models = [_check_model(path, parser) for path in args.models]
    args.variant = [_check_model(path, parser, "--variant: ") for path in args.variant]
    if not 0 <= args.margin < 100:
        parser.error(f"--margin must be a percentage from 0 to 100, got {args.margin}")
    config = TuneConfig(
        batches=args.batch,
        provider=args.provider,
        seconds=args.seconds,
        rounds=args.rounds,
        margin=args.margin / 100,
    )
    cache = args.cache or cache_path()
    if not args.dry_run:
        _check_cache(cache, [*args.models, *args.variant], parser)
    import tempfile

    from .signals import terminate_raises

    with tempfile.TemporaryDirectory(prefix="edgerun-tune-") as scratch, terminate_raises():
        # A dry run measures the graph variants too, from a folder that goes with it.
        config = replace(config, graphs=Path(scratch) if args.dry_run else graphs_dir(cache))
        return _tune_all(args, config, cache)


def _check_model(spec: Path, parser, prefix: str = "") -> Path:
    """The model's file (a path, or a bundled model's name as ``edgerun run`` takes it), checked
    as the tuner will read it: exit 2 before any measuring when the runtime cannot run it."""
    from edgerun.runtime.metadata import MetadataError
    from edgerun.runtime.model import ModelError, check_model_file, resolve_model_path
    from edgerun.runtime.preprocess import PreprocessError

    try:
        path = resolve_model_path(str(spec))
        check_model_file(path)
        input_shape(path)
    except (ModelError, MetadataError, PreprocessError) as exc:
        parser.error(f"{prefix}{exc}")
    return path


def _check_cache(cache: Path, inputs: list[Path], parser) -> None:
    """The tune cache can be written (its folder made, a file created there), is no input and,
    where it exists, can be read: exit 2 now, not after the measuring."""
    from edgerun.runtime.outputs import OutputError, Protected, check_directory, check_target
    from edgerun.runtime.tuning import ENV_CACHE, TuningCacheError, read_cache

    hint = f"give --cache FILE (or set {ENV_CACHE}) to store it elsewhere, or --dry-run to store nothing"
    try:
        check_target(cache, Protected(inputs), "tune cache")
        read_cache(cache)
    except (OutputError, TuningCacheError) as exc:
        parser.error(str(exc))
    try:
        check_directory(cache.parent, "tune cache folder")
    except OutputError as exc:
        parser.error(f"{exc}; {hint}")


def _tune_all(args, config: TuneConfig, cache: Path) -> int:
    for i, path in enumerate(args.models):
        done: list[BatchResult] = []
        try:
            results = tune(path, config, done)
        except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM (bench.signals): the batch sizes done are kept
            return _interrupted(args, config, cache, i, done, exc)
        print(format_results(path, results))
        if args.variant:
            print("\n".join(compare_variants(path, args.variant, results, config)))
        code = _store(args, path, results, cache)
        if code:
            return code
    return 0


def _interrupted(args, config: TuneConfig, cache: Path, i: int, done: list[BatchResult], exc: KeyboardInterrupt) -> int:
    """A signal stopped the tune of ``args.models[i]``: store the batch sizes it finished, say
    what was not tuned; 130 / 143 (2 when the cache cannot be written)."""
    from .signals import exit_code, signal_name

    path, name = args.models[i], signal_name(exc)
    if done:
        print(format_results(path, done))
        code = _store(args, path, done, cache)
        if code:
            return code
    stored = "" if args.dry_run else " stored"
    finished = f"batch {', '.join(str(r.batch) for r in done)}{stored}" if done else "no batch size finished"
    rest = ", ".join(str(b) for b in config.batches[len(done) :])
    later = ", ".join(p.name for p in args.models[i + 1 :])
    print(
        f"edgerun tune: interrupted ({name}) while tuning {path.name}: {finished}; batch {rest} not tuned"
        + (f"; not started: {later}" if later else ""),
        file=sys.stderr,
    )
    return exit_code(name)


def _store(args, path: Path, results: list[BatchResult], cache: Path) -> int:
    """Unless a dry run, store ``results`` and prune the graph files; 0, or 2 when the cache
    cannot be written."""
    from edgerun.runtime.files import sha256_file
    from edgerun.runtime.tuning import TuningCacheError, record

    if args.dry_run:
        return 0
    try:
        digest = sha256_file(path)
        written = record(path, digest, args.provider, {r.batch: r.tuned for r in results}, cache)
        prune_graphs(cache, digest)
    except (OSError, TuningCacheError) as exc:
        print_error("edgerun tune", f"cannot write the tune cache {cache}: {exc}")
        return 2
    print(f"{'':{len(path.name) + 1}} stored in {written}")
    return 0
