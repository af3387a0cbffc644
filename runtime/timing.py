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


def percentile(values, q: float) -> float:
    """Percentile ``q`` (0-100) by linear interpolation between closest ranks (numpy's "linear").

    Written out rather than ``np.percentile``, whose first call imports ``numpy.ma`` (20-150 ms
    on a 2-core machine): that was paid once by every ``edgerun run``.
    """
    data = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if data.size == 0:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    pos = (data.size - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, data.size - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def percentile_ms(samples_ns: np.ndarray, q: float) -> float:
    """Percentile ``q`` (0-100) of nanosecond samples, in ms."""
    return percentile(samples_ns, q) / 1e6


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
        return percentile(self.values, q)


def measure_interleaved(
    fns: dict[str, Callable[[], object]], iters: int, max_seconds: float | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Exception]]:
    """Time several callables in turn, one call each per cycle, for ``iters`` cycles.

    Calls of different callables sit microseconds apart, so a machine that slows down for a
    moment slows all of them alike. The order turns by one each cycle, so each callable follows
    each of the others equally often: a call made right after another model's (whose weights
    pushed it out of the caches) costs more, and a fixed order would charge that to one of them.
    ``max_seconds`` stops early after that long (at least one cycle). A callable that raises is
    dropped from the cycle and its exception returned.
    """
    samples: dict[str, list[int]] = {name: [] for name in fns}
    errors: dict[str, Exception] = {}
    live = dict(fns)
    cap = None if max_seconds is None else time.perf_counter_ns() + int(max_seconds * 1e9)
    for cycle in range(max(1, iters)):
        names = list(live)
        turn = cycle % len(names)
        for name in names[turn:] + names[:turn]:
            fn = live[name]
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
