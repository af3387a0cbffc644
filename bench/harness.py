"""The latency sweep: models x backends x batch sizes, one row each, errors recorded not fatal."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgerun.runtime.files import sha256_file
from edgerun.runtime.model import SessionConfig, default_threads
from edgerun.runtime.timing import Timings, measure

from .backends import PeerUnavailable, make_backend
from .flops import flops_per_image
from .machine import environment, sgemm_gflops
from .stats import LatencyStats

logger = logging.getLogger(__name__)

SCHEMA = 1
FCN_BENCH_SIZE = (308, 336)  # the book's scene size, for models of any input size


@dataclass(frozen=True)
class SweepConfig:
    models: tuple[Path, ...]
    batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    backends: tuple[str, ...] = ("edgerun",)
    provider: str = "cpu"
    warmup: int = 5
    iters: int | None = None
    seconds: float | None = 1.0
    rounds: int = 3  # interleaved turns per backend and batch (see _measure_batch)
    threads: int | None = None
    spinning: bool = True
    twins: dict = field(default_factory=dict)
    tuned: bool = False  # the edgerun backend uses the tune cache (edgerun tune) where it has entries


@dataclass
class Row:
    model: str
    backend: str
    provider: str
    batch: int
    iters: int = 0
    first_ms: float | None = None
    mean_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    ms_per_img: float | None = None
    imgs_per_s: float | None = None
    gflops: float | None = None
    pct_peak: float | None = None
    norm_p50: float | None = None  # p50 ms x machine SGEMM GFLOP/s: comparable across machines
    error: str | None = None


def _image_input(path: Path) -> tuple[tuple[int, int, int], tuple[int, int] | None, int | None]:
    """(height, width, channels) fed per image, the size used for a model of any size (else
    None), and the opset: read once per model, not once per batch size. The input comes from the
    runtime's own reading of the model (metadata, or the shape of a foreign one); the opset needs
    the onnx package and is None without it."""
    from edgerun.runtime.model import Model

    model = Model.load(path, SessionConfig(provider="cpu", threads=1))
    pre = model.metadata.preprocessing
    dynamic = FCN_BENCH_SIZE if None in pre.size else None
    h, w = dynamic or pre.size
    return (h, w, model.input_channels), dynamic, _opset(path)


def _opset(path: Path) -> int | None:
    try:
        import onnx
    except ImportError:
        return None
    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def run_sweep(config: SweepConfig, progress=None) -> dict:
    """Measure every (model, backend, batch); returns the report dict (schema in README)."""
    threads = config.threads or default_threads()
    session = SessionConfig(provider=config.provider, threads=threads, spinning=config.spinning)
    logger.info("measuring the machine: fp32 SGEMM")
    before = sgemm_gflops()
    machine = {"sgemm_gflops": round(before, 1), "sgemm_samples": [round(before, 1)]}
    logger.info("SGEMM %.1f GFLOP/s", before)
    rows: list[Row] = []
    models_info = []
    providers_in_use: set[str] = set()
    for path in config.models:
        name = path.name
        image, dynamic, opset = _image_input(path)
        try:
            flops = flops_per_image(path, dynamic)
        except ImportError:
            logger.info("%s: FLOPs not counted: the onnx package is missing (pip install 'edgerun[tools]')", name)
            flops = None
        except Exception as exc:  # noqa: BLE001 - a model we cannot count still gets latencies
            logger.warning("%s: FLOPs not counted (%s)", name, exc)
            flops = None
        models_info.append(
            {
                "model": name,
                "path": str(path),
                "sha256": sha256_file(path),
                "flops_per_image": flops,
                "opset": opset,
            }
        )
        backends, model_rows = [], []
        for backend_name in config.backends:
            try:
                backends.append(make_backend(backend_name, path, session, config.twins, config.tuned))
            except PeerUnavailable as exc:
                logger.warning("%s: skipping %s: %s", name, backend_name, exc)
                model_rows.append(Row(name, backend_name, config.provider, 0, error=f"skipped: {exc}"))
            except Exception as exc:  # noqa: BLE001 - record, go on with the next backend
                model_rows.append(Row(name, backend_name, config.provider, 0, error=f"{type(exc).__name__}: {exc}"))
        for batch in config.batches:
            if progress:
                progress(name, batch)
            logger.info("%s  batch %d: %s", name, batch, ", ".join(b.name for b in backends))
            model_rows.extend(_measure_batch(backends, path, image, config, batch, flops, machine, providers_in_use))
        del backends
        order = {b: i for i, b in enumerate(config.backends)}
        rows.extend(sorted(model_rows, key=lambda r: (order.get(r.backend, len(order)), r.batch)))
    after = sgemm_gflops()
    if after > before * 1.05:
        logger.warning(
            "the machine got faster during the run (SGEMM %.1f -> %.1f GFLOP/s): a shared machine "
            "is drifting; normalised figures use the higher",
            before,
            after,
        )
    peak = max(before, after)
    machine.update({"sgemm_gflops": round(peak, 1), "sgemm_samples": [round(before, 1), round(after, 1)]})
    for row in rows:  # normalise by the peak actually seen, measured before and after the sweep
        if row.p50_ms:
            row.norm_p50 = row.p50_ms * peak
            if row.gflops:
                row.pct_peak = 100 * row.gflops / peak
    env = environment(threads, sorted(providers_in_use))
    return {
        "schema": SCHEMA,
        "environment": env,
        "machine": machine,
        "models": models_info,
        "settings": {k: v for k, v in asdict(config).items() if k not in ("models", "twins")},
        "results": [asdict(r) for r in rows],
    }


def _fill(row: Row, timings: Timings, batch: int, flops: int | None, machine: dict) -> Row:
    stats = LatencyStats.from_timings(timings, batch)
    for key in ("iters", "first_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "ms_per_img", "imgs_per_s"):
        setattr(row, key, getattr(stats, key))
    if flops:
        row.gflops = flops * batch / (stats.p50_ms / 1e3) / 1e9
        row.pct_peak = 100 * row.gflops / machine["sgemm_gflops"]
    row.norm_p50 = stats.p50_ms * machine["sgemm_gflops"]
    return row


def _failure(exc: BaseException) -> str:
    return "out of memory" if isinstance(exc, MemoryError) else f"{type(exc).__name__}: {str(exc)[:300]}"


def _measure_batch(
    backends,
    path: Path,
    image: tuple[int, int, int],
    config: SweepConfig,
    batch: int,
    flops,
    machine,
    providers_in_use,
) -> list:
    """Every backend at one batch size, measured in interleaved rounds.

    On a shared machine the speed drifts over seconds; measuring backend after backend would
    turn that drift into a difference between backends. Each backend instead gets
    ``config.rounds`` turns, round-robin, and its samples from all turns are pooled, so all
    backends see the same machine. The first call and the warm-up runs are kept apart.
    """
    rows = {b.name: Row(path.name, b.name, config.provider, batch) for b in backends}
    x = np.random.default_rng(batch).random((batch, *image), dtype=np.float32)
    prepared = {}
    for backend in backends:
        try:
            prepared[backend.name] = backend.prepare(x)
            providers_in_use.update(prepared[backend.name].providers)
        except Exception as exc:  # noqa: BLE001 - one failing batch size is a row, not the end
            rows[backend.name].error = _failure(exc)
            logger.warning("%s %s batch %d failed: %s", path.name, backend.name, batch, rows[backend.name].error)
    rounds = max(1, config.rounds)
    iters = None if config.iters is None else -(-config.iters // rounds)
    seconds = None if config.seconds is None else config.seconds / rounds
    pooled: dict[str, Timings] = {}
    for turn in range(rounds):
        for name, ready in list(prepared.items()):
            try:
                t = measure(ready.run, warmup=config.warmup if turn == 0 else 1, iters=iters, seconds=seconds)
            except Exception as exc:  # noqa: BLE001
                rows[name].error = _failure(exc)
                logger.warning("%s %s batch %d failed: %s", path.name, name, batch, rows[name].error)
                del prepared[name]
                pooled.pop(name, None)
                continue
            if name not in pooled:
                pooled[name] = t
            else:
                pooled[name].samples_ns = np.concatenate([pooled[name].samples_ns, t.samples_ns])
    for name, timings in pooled.items():
        _fill(rows[name], timings, batch, flops, machine)
    return list(rows.values())
