"""pytest-benchmark suite: ``make bench`` runs it and writes ``out/bench/pytest-benchmark.json``.

Models come from ``EDGERUN_BENCH_MODELS`` (os.pathsep-separated .onnx paths) or ``models/*.onnx``;
groups are model/batch. This suite is the latency *record* (JSON, ``--benchmark-save``,
``--benchmark-compare`` to look at history). It does not pass or fail CI on speed: its
``--benchmark-compare-fail`` compares raw timings of two runs, which on a shared runner is a coin
toss. The verdict is edgerun's gate (``make bench BASELINE=FILE``; README, "CI gate"), which
compares against a reference workload measured in the same rounds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from edgerun.runtime.metadata import ANY_SIZE_PROBE
from edgerun.runtime.model import Model, SessionConfig

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 8, 64)


def _models() -> list[Path]:
    env = os.environ.get("EDGERUN_BENCH_MODELS")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return sorted(p for p in (ROOT / "models").glob("*.onnx") if p.name.count(".") == 1)


MODELS = _models()


@pytest.mark.skipif(not MODELS, reason="no models: run `make models` or set EDGERUN_BENCH_MODELS")
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_latency(benchmark, path, batch):
    model = Model.load(path, SessionConfig(provider="cpu"))
    pre = model.metadata.preprocessing
    if None in pre.size and batch > 8:
        pytest.skip("a model of any size is measured at the 308x336 probe up to batch 8 (64 would take minutes)")
    h, w = ANY_SIZE_PROBE if None in pre.size else pre.size
    x = np.random.default_rng(0).random((batch, h, w, model.input_channels), dtype=np.float32)
    model.warmup(x.shape)
    benchmark.group = f"{path.stem}/batch{batch}"
    benchmark.extra_info.update({"model": path.name, "batch": batch, "providers": model.providers})
    benchmark.pedantic(model.run, args=(x,), rounds=30 if batch < 64 else 10, warmup_rounds=3, iterations=1)
