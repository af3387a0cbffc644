"""What machine a benchmark ran on, and how fast it is at plain fp32 matrix work.

The SGEMM figure (numpy matmul, GFLOP/s) is measured in the same run as the models (before
and after the sweep; the higher counts as the peak, since a shared machine drifts), so
latencies can be normalised: ``latency x GFLOP/s`` is comparable across machines of different
speed, and ``model GFLOP/s achieved / SGEMM GFLOP/s`` says how close to the machine's peak a
backend runs.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

FLAGS_OF_INTEREST = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimd",
    "asimddp",
)


def cpu_info() -> dict:
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    return {
        "model": model,
        "cores": os.cpu_count(),
        "flags": [f for f in FLAGS_OF_INTEREST if f in flags],
        "machine": platform.machine(),
    }


def sgemm_gflops(n: int = 1024, seconds: float = 1.0, threads_note: str | None = None) -> float:
    """Median fp32 matmul throughput of numpy (GFLOP/s) over ``seconds`` of n x n products."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    for _ in range(3):
        a @ b
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        start = time.perf_counter_ns()
        a @ b
        samples.append(time.perf_counter_ns() - start)
    return 2 * n**3 / (float(np.median(samples)) / 1e9) / 1e9


def environment(threads: int | None, providers: list[str] | None = None) -> dict:
    import onnxruntime as ort

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "providers_in_use": providers or [],
        "threads": threads,
        "platform": platform.platform(),
    }
