"""Timing: a callable measured with warm-up apart (``perf_counter_ns`` only), and a bounded
sample of a live run's latencies."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass
class Reservoir:
    """A uniform sample of at most ``size`` values from a stream of any length (Vitter's
    algorithm R), so a run's latency percentiles take bounded memory however long it lasts."""

    size: int = 4096
    seen: int = 0
    values: list[float] = field(default_factory=list)
    _rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.size:
            self.values[slot] = value

    def percentile(self, q: float) -> float | None:
        """Percentile ``q`` (0-100) of the sample, or None before the first value."""
        if not self.values:
            return None
        return float(np.percentile(np.asarray(self.values), q, method=PERCENTILE_METHOD))
