"""Timing a callable: warm-up apart, every latency kept, ``perf_counter_ns`` only."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The one percentile method used for latencies everywhere (numpy's linear interpolation).
PERCENTILE_METHOD = "linear"


def percentile_ms(samples_ns: np.ndarray, q: float) -> float:
    """Percentile ``q`` (0-100) of nanosecond samples, in ms."""
    return float(np.percentile(samples_ns, q, method=PERCENTILE_METHOD)) / 1e6


@dataclass
class Timings:
    """Latencies of one measured call, in nanoseconds; the first call is kept apart."""

    first_ns: int
    warmup_ns: list[int]
    samples_ns: np.ndarray

    @property
    def median_ms(self) -> float:
        return percentile_ms(self.samples_ns, 50)


def measure(
    fn: Callable[[], object],
    warmup: int = 3,
    iters: int | None = 50,
    seconds: float | None = None,
    max_iters: int = 100_000,
) -> Timings:
    """Call ``fn`` once (the first call), ``warmup`` more times, then measure.

    Measures ``iters`` calls, or as many as fit in ``seconds`` (at least 5) when given.
    """
    start = time.perf_counter_ns()
    fn()
    first = time.perf_counter_ns() - start
    warm = []
    for _ in range(warmup):
        start = time.perf_counter_ns()
        fn()
        warm.append(time.perf_counter_ns() - start)
    samples: list[int] = []
    deadline = None if seconds is None else time.perf_counter_ns() + int(seconds * 1e9)
    while True:
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
        if deadline is None:
            if len(samples) >= (iters or 1):
                break
        elif (time.perf_counter_ns() >= deadline and len(samples) >= 5) or len(samples) >= max_iters:
            break
    return Timings(first, warm, np.asarray(samples, dtype=np.int64))


def measure_interleaved(
    fns: dict[str, Callable[[], object]], iters: int, max_seconds: float | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Exception]]:
    """Time several callables in turn, one call each per cycle, for ``iters`` cycles.

    Calls of different callables sit microseconds apart, so a machine that slows down for a
    moment slows all of them alike. ``max_seconds`` stops early after that long (at least one
    cycle). A callable that raises is dropped from the cycle and its exception returned.
    """
    samples: dict[str, list[int]] = {name: [] for name in fns}
    errors: dict[str, Exception] = {}
    live = dict(fns)
    cap = None if max_seconds is None else time.perf_counter_ns() + int(max_seconds * 1e9)
    for _ in range(max(1, iters)):
        for name, fn in list(live.items()):
            start = time.perf_counter_ns()
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - reported per callable; the others go on
                errors[name] = exc
                del live[name]
                continue
            samples[name].append(time.perf_counter_ns() - start)
        if not live or (cap is not None and time.perf_counter_ns() >= cap):
            break
    return {n: np.asarray(s, dtype=np.int64) for n, s in samples.items() if n in live}, errors
