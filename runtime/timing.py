"""Timing: a callable measured with warm-up apart (``perf_counter_ns`` only), and a bounded
sample of a live run's latencies."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import random

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


@dataclass(eq=False)  # holds an array
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
    _rng: random.Random | None = field(default=None, repr=False)  # made once the sample is full

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
            return
        if self._rng is None:
            import random  # a short run never needs it

            self._rng = random.Random(0)
        slot = self._rng.randrange(self.seen)
        if slot < self.size:
            self.values[slot] = value

    def percentile(self, q: float) -> float | None:
        """Percentile ``q`` (0-100) of the sample, or None before the first value."""
        if not self.values:
            return None
        return percentile(self.values, q)


#: How long after a switch between callables their calls are not kept (see measure_blocks).
SETTLE_S = 0.03
#: A call at least this long is kept even when it starts within the settling time: what the
#: previous callable's threads take from it is then a small part of it.
LONG_CALL_S = 0.1


def measure_blocks(
    fns: dict[str, Callable[[], object]],
    block_s: float | None = None,
    block_calls: int | None = None,
    settle_s: float = SETTLE_S,
    turn: int = 0,
    max_seconds: float | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Exception]]:
    """Time several callables in turn, a block of calls each: one round of an interleaved run.

    Why blocks and not one call each: onnxruntime's (and XNNPACK's) worker threads spin for a
    while after a call, waiting for more work. Called one after another, each session finds the
    cores taken by the previous one's spinning threads: on 2 cores two identical ``mnist_cnn``
    sessions called in turn read 2.2x their p50 alone and 13x their p90, and a session needed
    about 30 ms of its own calls to get back to its speed alone. So each callable runs a block:
    ``block_s`` seconds, of which calls started in the first ``settle_s`` (at most half the
    block) are run but not kept unless they are long (:data:`LONG_CALL_S`); or ``block_calls``
    kept calls after half as many that are not kept. Blocks are short next to the drifts of a shared machine, so
    neighbouring blocks still see the same machine; ``turn`` rotates the order (each callable
    follows each of the others equally often over the rounds). At least one call per block is
    kept. ``max_seconds`` caps the whole round. A callable that raises is dropped and its
    exception returned.
    """
    if (block_s is None) == (block_calls is None):
        raise ValueError("give block_s or block_calls")
    samples: dict[str, list[int]] = {name: [] for name in fns}
    errors: dict[str, Exception] = {}
    names = list(fns)
    if names:
        k = turn % len(names)
        names = names[k:] + names[:k]
    cap = None if max_seconds is None else time.perf_counter_ns() + int(max_seconds * 1e9)
    per_block = None if max_seconds is None else int(max_seconds * 1e9 / max(1, len(names)))
    settle = int(min(settle_s, block_s / 2) * 1e9) if block_s else None
    settle_calls = 0 if block_calls is None else block_calls // 2
    for name in names:
        fn, kept, calls = fns[name], samples[name], 0
        begin = time.perf_counter_ns()
        while True:
            start = time.perf_counter_ns()
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - reported per callable; the others go on
                errors[name] = exc
                break
            end = time.perf_counter_ns()
            calls += 1
            if settle is not None:
                if start - begin >= settle or end - start >= LONG_CALL_S * 1e9:
                    kept.append(end - start)
            elif calls > settle_calls:
                kept.append(end - start)
            if not kept:
                continue
            if block_calls is not None and len(kept) >= block_calls:
                break
            if block_s is not None and end - begin >= block_s * 1e9:
                break
            if per_block is not None and end - begin >= per_block:
                break
        if cap is not None and time.perf_counter_ns() >= cap:
            break
    return {n: np.asarray(s, dtype=np.int64) for n, s in samples.items() if n not in errors and s}, errors
