"""What machine a benchmark ran on: CPU model and flags, cores, library versions, settings.

A baseline stores this; a comparison names every difference (:func:`differences`). How fast the
machine is lives elsewhere: its GEMM peak in :mod:`.peak`, its speed of the moment in the
reference workload (:mod:`.reference`).
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

FLAGS_OF_INTEREST = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_fp16",
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


def environment(threads: int | None, provider: str = "cpu", providers: list[str] | None = None) -> dict:
    import onnxruntime as ort

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "provider": provider,
        "providers_in_use": providers or [],
        "threads": threads,
        "platform": platform.platform(),
    }


#: What a comparison names when a baseline's differs: (label, path into the environment).
COMPARED = (
    ("CPU", ("cpu", "model")),
    ("CPU flags", ("cpu", "flags")),
    ("cores", ("cpu", "cores")),
    ("onnxruntime", ("onnxruntime",)),
    ("threads", ("threads",)),
    ("provider", ("provider",)),
)


def _get(env: dict, path: tuple[str, ...]):
    for key in path:
        env = env.get(key) if isinstance(env, dict) else None
    return env


def differences(baseline: dict, current: dict) -> list[str]:
    """One line per setting in which the baseline's environment differs from this one."""
    lines = []
    for label, path in COMPARED:
        before, now = _get(baseline, path), _get(current, path)
        if before != now:
            if isinstance(before, list) and isinstance(now, list):
                gone, new = sorted(set(before) - set(now)), sorted(set(now) - set(before))
                change = ", ".join([*(f"-{f}" for f in gone), *(f"+{f}" for f in new)]) or "order"
                lines.append(f"environment differs: {label}: {change} (baseline {' '.join(before)})")
            else:
                lines.append(f"environment differs: {label}: baseline {before}, now {now}")
    return lines
