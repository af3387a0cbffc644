"""Latency statistics of one benchmark row.

Percentiles come from :func:`edgerun.runtime.timing.percentile_ms`, the one place they are
computed (numpy's linear interpolation between closest ranks). Warm-up runs and the first run
are never part of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgerun.runtime.timing import Timings, percentile_ms


@dataclass(frozen=True)
class LatencyStats:
    iters: int
    first_ms: float
    warmup_ms: tuple[float, ...]
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    ms_per_img: float
    imgs_per_s: float

    @classmethod
    def from_timings(cls, timings: Timings, batch: int) -> LatencyStats:
        s = timings.samples_ns
        p50 = percentile_ms(s, 50)
        return cls(
            iters=int(s.size),
            first_ms=timings.first_ns / 1e6,
            warmup_ms=tuple(w / 1e6 for w in timings.warmup_ns),
            mean_ms=float(s.mean()) / 1e6,
            p50_ms=p50,
            p90_ms=percentile_ms(s, 90),
            p99_ms=percentile_ms(s, 99),
            max_ms=float(s.max()) / 1e6,
            ms_per_img=p50 / batch,
            imgs_per_s=batch / (p50 / 1e3) if p50 > 0 else 0.0,
        )
