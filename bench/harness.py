"""The latency sweep: models x backends x batch sizes, one row each, errors recorded not fatal."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgerun.runtime.metadata import read_metadata
from edgerun.runtime.model import SessionConfig, default_threads
from edgerun.runtime.timing import measure

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
    threads: int | None = None
    spinning: bool = True
    twins: dict = field(default_factory=dict)


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


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _input_shape(path: Path, batch: int) -> tuple[tuple[int, ...], tuple[int, int] | None]:
    import onnx

    meta = read_metadata(onnx.load(str(path), load_external_data=False))
    if meta is not None:
        pre = meta.preprocessing
        h, w = pre.size if None not in pre.size else FCN_BENCH_SIZE
        channels = 1 if pre.color == "gray" else 3
        dynamic = FCN_BENCH_SIZE if None in pre.size else None
        return (batch, h, w, channels), dynamic
    from edgerun.runtime.model import Model

    model = Model.load(path, SessionConfig(provider="cpu"))
    h, w = model.metadata.preprocessing.size
    return (batch, h, w, model.input_channels), None


def run_sweep(config: SweepConfig, progress=None) -> dict:
    """Measure every (model, backend, batch); returns the report dict (schema in README)."""
    threads = config.threads or default_threads()
    session = SessionConfig(provider=config.provider, threads=threads, spinning=config.spinning)
    logger.info("measuring the machine: fp32 SGEMM")
    machine = {"sgemm_gflops": round(sgemm_gflops(), 1)}
    logger.info("SGEMM %.1f GFLOP/s", machine["sgemm_gflops"])
    rows: list[Row] = []
    models_info = []
    providers_in_use: set[str] = set()
    for path in config.models:
        name = path.name
        _, dynamic = _input_shape(path, 1)
        try:
            flops = flops_per_image(path, dynamic)
        except Exception as exc:  # noqa: BLE001 - a model we cannot count still gets latencies
            logger.warning("%s: FLOPs not counted (%s)", name, exc)
            flops = None
        models_info.append(
            {
                "model": name,
                "path": str(path),
                "sha256": sha256(path),
                "flops_per_image": flops,
                "opset": _opset(path),
            }
        )
        for backend_name in config.backends:
            try:
                backend = make_backend(backend_name, path, session, config.twins)
            except PeerUnavailable as exc:
                logger.warning("%s: skipping %s: %s", name, backend_name, exc)
                rows.append(Row(name, backend_name, config.provider, 0, error=f"skipped: {exc}"))
                continue
            except Exception as exc:  # noqa: BLE001 - record, go on with the next backend
                rows.append(Row(name, backend_name, config.provider, 0, error=f"{type(exc).__name__}: {exc}"))
                continue
            for batch in config.batches:
                if progress:
                    progress(name, backend_name, batch)
                logger.info("%s  %-8s batch %d", name, backend_name, batch)
                rows.append(_measure(backend, name, config, batch, flops, machine, providers_in_use))
            del backend
    env = environment(threads, sorted(providers_in_use))
    return {
        "schema": SCHEMA,
        "environment": env,
        "machine": machine,
        "models": models_info,
        "settings": {k: v for k, v in asdict(config).items() if k not in ("models", "twins")},
        "results": [asdict(r) for r in rows],
    }


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _measure(backend, name, config: SweepConfig, batch: int, flops, machine, providers_in_use) -> Row:
    row = Row(name, backend.name, config.provider, batch)
    try:
        shape, _ = _input_shape(Path(next(p for p in config.models if p.name == name)), batch)
        x = np.random.default_rng(batch).random(shape, dtype=np.float32)
        prepared = backend.prepare(x)
        providers_in_use.update(prepared.providers)
        timings = measure(prepared.run, warmup=config.warmup, iters=config.iters, seconds=config.seconds)
    except MemoryError:
        row.error = "out of memory"
        return row
    except Exception as exc:  # noqa: BLE001 - one failing batch size is a row, not the end
        row.error = f"{type(exc).__name__}: {str(exc)[:300]}"
        logger.warning("%s %s batch %d failed: %s", name, backend.name, batch, row.error)
        return row
    stats = LatencyStats.from_timings(timings, batch)
    for key in (
        "iters",
        "first_ms",
        "mean_ms",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "ms_per_img",
        "imgs_per_s",
    ):
        setattr(row, key, getattr(stats, key))
    if flops:
        row.gflops = flops * batch / (stats.p50_ms / 1e3) / 1e9
        row.pct_peak = 100 * row.gflops / machine["sgemm_gflops"]
    row.norm_p50 = stats.p50_ms * machine["sgemm_gflops"]
    return row
