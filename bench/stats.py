"""Statistics: the latency figures of one benchmark row, and the change of a per-round ratio.

Percentiles come from :func:`edgerun.runtime.timing.percentile_ms`, the one place they are
computed (numpy's linear interpolation between closest ranks). Warm-up runs and the first run
are never part of them. :func:`ratio_change` is what the CI gate decides on; :func:`ratio_interval`
puts an interval on the edgerun / peer ratio of one run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


#: The low percentile of all calls (pooled over rounds) that a run's speed is read from: on a shared
#: machine most calls wait for a core at some point, and the fast tail is the code's own speed.
POOLED_QUANTILE = 10
RESAMPLES = 2000


#: The quantile method: the smallest value with at least q% of calls at or below it (no interpolation),
#: so that the bootstrap, which reweights rounds, reads it from one sorted array.
QUANTILE_METHOD = "inverted_cdf"


def pooled_ratio(model_rounds: list[np.ndarray], ref_rounds: list[np.ndarray], q: float = POOLED_QUANTILE) -> float:
    """The ``q``-th percentile of the model's calls over that of the reference's, all rounds pooled."""
    model = np.percentile(np.concatenate(model_rounds), q, method=QUANTILE_METHOD)
    ref = np.percentile(np.concatenate(ref_rounds), q, method=QUANTILE_METHOD)
    return float(model / ref)


def _resampled_quantiles(rounds: list[np.ndarray], picks: np.ndarray, q: float) -> np.ndarray:
    """The pooled ``q``-th percentile for every resample of rounds (``picks``: [resamples, rounds] indexes).

    A resample is a multiset of rounds, so each call weighs as often as its round was drawn; the
    weighted inverted-CDF percentile (the smallest value with at least q% of the weight at or below
    it) is found for all resamples at once by a binary search over the distinct values, counting
    each round's calls at or below a value in that round's sorted calls: no array of resamples x
    calls (a batch-1 sweep has tens of thousands of calls), about 20 steps.
    """
    counts = np.zeros((picks.shape[0], len(rounds)))
    np.add.at(counts, (np.arange(picks.shape[0])[:, None], picks), 1.0)
    per_round = [np.sort(r) for r in rounds]
    target = (counts @ np.array([r.size for r in rounds], dtype=float)) * (q / 100.0) - 1e-3
    values = np.unique(np.concatenate(rounds))
    lo = np.zeros(picks.shape[0], dtype=np.int64)
    hi = np.full(picks.shape[0], values.size - 1, dtype=np.int64)
    while (lo < hi).any():
        mid = (lo + hi) // 2
        at_or_below = sum(counts[:, i] * np.searchsorted(r, values[mid], side="right") for i, r in enumerate(per_round))
        reached = at_or_below >= target
        hi = np.where(reached, mid, hi)
        lo = np.where(reached, lo, mid + 1)
    return values[lo]


@dataclass(frozen=True)
class RatioChange:
    """How much the model / reference ratio changed from a baseline: ``estimate`` and its interval.

    Values are relative changes (0.12 is 12% slower); ``low``/``high`` bound the
    ``confidence`` interval. ``rounds`` counts the rounds behind the baseline and the current figure.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    rounds: tuple[int, int]


def _resampled(model_rounds, ref_rounds, rng, resamples: int, q: float) -> np.ndarray:
    picks = rng.integers(0, len(model_rounds), (resamples, len(model_rounds)))
    return _resampled_quantiles(model_rounds, picks, q) / _resampled_quantiles(ref_rounds, picks, q)


def ratio_change(
    baseline: tuple[list[np.ndarray], list[np.ndarray]],
    current: tuple[list[np.ndarray], list[np.ndarray]],
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    q: float = POOLED_QUANTILE,
    seed: int = 0,
) -> RatioChange:
    """Change of the pooled model / reference ratio from ``baseline`` to ``current``, with its interval.

    Each side is (model calls per round, reference calls per round), in nanoseconds. The
    interval is a two-sample percentile bootstrap over rounds: each resample draws whole rounds
    with replacement (a round's model and reference calls stay together, as they were measured
    side by side), within the baseline and within the current run separately. The seed is
    fixed, so the same rounds always give the same interval.
    """
    for side, (model, ref) in (("baseline", baseline), ("current", current)):
        if len(model) < 2 or len(model) != len(ref):
            raise ValueError(f"the {side} needs 2 or more rounds of model and reference calls, got {len(model)}")
    rng = np.random.default_rng(seed)
    a = _resampled(*baseline, rng, resamples, q)
    b = _resampled(*current, rng, resamples, q)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(np.log(b) - np.log(a), [tail, 100 - tail])
    estimate = pooled_ratio(*current, q) / pooled_ratio(*baseline, q)
    return RatioChange(
        float(estimate - 1),
        float(np.expm1(low)),
        float(np.expm1(high)),
        confidence,
        (len(baseline[0]), len(current[0])),
    )


@dataclass(frozen=True)
class RatioInterval:
    """One run's ratio of medians (all calls pooled) of two backends measured side by side, and its
    ``confidence`` interval; ``rounds`` is how many rounds it rests on."""

    estimate: float
    low: float
    high: float
    confidence: float
    rounds: int

    @property
    def verdict(self) -> str:
        """``faster``/``slower`` when the interval leaves out 1 (the first backend is that), else ``level``."""
        return "faster" if self.high < 1 else "slower" if self.low > 1 else "level"


def ratio_interval(
    a_rounds: list[np.ndarray],
    b_rounds: list[np.ndarray],
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> RatioInterval:
    """Median of ``a``'s calls over the median of ``b``'s, with a paired percentile bootstrap over
    rounds: a resample draws whole rounds with replacement and keeps a round's calls of both
    backends together, as they were measured side by side (the rounds are the units that share a
    machine's drift, the calls within a round are not independent). Fixed seed: the same rounds
    always give the same interval. Needs 3 or more rounds of each, in the same rounds."""
    if len(a_rounds) < 3 or len(a_rounds) != len(b_rounds):
        raise ValueError(f"needs 3 or more rounds of both backends, got {len(a_rounds)} and {len(b_rounds)}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(a_rounds), (resamples, len(a_rounds)))
    ratios = _resampled_quantiles(a_rounds, picks, 50) / _resampled_quantiles(b_rounds, picks, 50)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return RatioInterval(pooled_ratio(a_rounds, b_rounds, 50), float(low), float(high), confidence, len(a_rounds))
