"""The CI gate: is this run slower than the baseline beyond noise? pass, regression or inconclusive.

The compared figure of a row is the ratio *model time / reference time*, each the 10th percentile of
its calls pooled over all rounds; model and reference took turns in short blocks, so contention and drift
that hit the model hit the reference too. :func:`~.stats.ratio_change` turns the baseline's rounds
and this run's into a change with a 95% bootstrap interval (rounds resampled). With ``T`` the
allowed slow-down:

- pass when the whole interval is at or below ``T``; regression when it is wholly above;
- when it straddles ``T``, more rounds are measured (up to 3x the rounds asked for); then an
  interval narrower than ``T`` itself is decided by its estimate (the change sits at the
  threshold and is known to within ``T``), and a wider one is *inconclusive*: the machine was too
  noisy to tell.

A row that fails now but ran in the baseline is a regression; a row failing in both is reported,
not judged. Exit codes: 0 pass, 1 every row failed, 2 unusable input, 3 regression, 4 inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stats import RatioChange, ratio_change

EXIT_PASS = 0
EXIT_ALL_FAILED = 1
EXIT_USAGE = 2
EXIT_REGRESSION = 3
EXIT_INCONCLUSIVE = 4

CONFIDENCE = 0.95


def row_key(row) -> tuple[str, str, str, int]:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return (get("model"), get("backend"), get("provider"), get("batch"))


@dataclass(frozen=True)
class Verdict:
    """One row's outcome: ``pass``, ``regression``, ``inconclusive``, or unjudged (``still failing``,
    ``fixed``, ``new``)."""

    key: tuple[str, str, str, int]
    outcome: str
    precision: str = ""
    change: RatioChange | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        model, backend, provider, batch = self.key
        out = {"model": model, "backend": backend, "provider": provider, "batch": batch}
        out.update({"precision": self.precision, "verdict": self.outcome, "reason": self.reason})
        if self.change is not None:
            c = self.change
            out.update(
                {
                    "change_pct": round(100 * c.estimate, 2),
                    "interval_pct": [round(100 * c.low, 2), round(100 * c.high, 2)],
                    "rounds": list(c.rounds),
                }
            )
        return out


def judge(change: RatioChange, threshold: float, final: bool = True) -> str | None:
    """The outcome for ``change`` against the allowed slow-down ``threshold`` (0.15 is 15%).

    Not ``final``: None while the interval straddles the threshold (measure more rounds).
    """
    if change.low > threshold:
        return "regression"
    if change.high <= threshold:
        return "pass"
    if not final:
        return None
    if change.high - change.low <= threshold:
        return "regression" if change.estimate > threshold else "pass"
    return "inconclusive"


class Gate:
    """A baseline and an allowed slow-down; judges rows of a run against them."""

    def __init__(self, baseline: dict, max_regression_pct: float, confidence: float = CONFIDENCE) -> None:
        self.threshold = max_regression_pct / 100.0
        self.confidence = confidence
        self.baseline = {row_key(r): r for r in baseline["results"]}

    def reference_batches(self) -> dict[tuple[str, int], int]:
        """(model, batch) -> the reference batch size the baseline used: the same work again."""
        return {(r["model"], r["batch"]): r["ref_batch"] for r in self.baseline.values() if r.get("ref_batch")}

    def in_common(self, keys: list[tuple[str, str, str, int]]) -> list[tuple[str, str, str, int]]:
        return [k for k in keys if k in self.baseline]

    def describe_baseline(self) -> str:
        models = sorted({k[0] for k in self.baseline})
        backends = sorted({k[1] for k in self.baseline})
        batches = sorted({k[3] for k in self.baseline if k[3]})
        providers = sorted({k[2] for k in self.baseline})
        return (
            f"models {', '.join(models)}; backends {', '.join(backends)}; provider {', '.join(providers)}; "
            f"batches {', '.join(map(str, batches))}"
        )

    def _change(self, base: dict, model_rounds: list, ref_rounds: list) -> RatioChange:
        def arrays(rounds):
            return [np.asarray(r, dtype=np.float64) for r in rounds]

        return ratio_change(
            (arrays(base["round_us"]), arrays(base["ref_round_us"])),
            (arrays(model_rounds), arrays(ref_rounds)),
            confidence=self.confidence,
        )

    def undecided(self, rows) -> bool:
        """True while some row's interval straddles the threshold: the harness measures more rounds."""
        for row in rows:
            base = self.baseline.get(row_key(row))
            if base is None or base.get("error") or row.error or len(row.round_us) < 2:
                continue
            if judge(self._change(base, row.round_us, row.ref_round_us), self.threshold, final=False) is None:
                return True
        return False

    def verdicts(self, results: list[dict]) -> list[Verdict]:
        """One verdict per row of this run that the baseline also has (or that is new)."""
        out = []
        skipped = {(r["model"], r["backend"], r["provider"]): r["error"] for r in results if r["batch"] == 0}
        for row in results:
            key = row_key(row)
            if row["batch"] == 0:  # a backend that could not start: judged through the baseline's rows below
                continue
            base = self.baseline.get(key)
            out.append(self._verdict(key, row, base))
        for (model, backend, provider), error in skipped.items():
            for key, base in self.baseline.items():
                if key[:3] == (model, backend, provider) and key[3] and not base.get("error"):
                    out.append(
                        Verdict(key, "regression", base.get("precision", ""), reason=f"did not run now: {error}")
                    )
        return out

    def _verdict(self, key, row: dict, base: dict | None) -> Verdict:
        precision = row.get("precision", "")
        if base is None:
            return Verdict(key, "new", precision, reason="not in the baseline")
        if row["error"]:
            if base.get("error"):
                return Verdict(key, "still failing", precision, reason=row["error"])
            return Verdict(key, "regression", precision, reason=f"fails now, ran in the baseline: {row['error']}")
        if base.get("error"):
            return Verdict(key, "fixed", precision, reason=f"failed in the baseline: {base['error']}")
        if len(row["round_us"]) < 2:
            return Verdict(key, "inconclusive", precision, reason="the reference workload did not run")
        change = self._change(base, row["round_us"], row["ref_round_us"])
        outcome = judge(change, self.threshold)
        reason = ""
        if outcome == "inconclusive":
            reason = (
                f"the {change.confidence:.0%} interval is {100 * (change.high - change.low):.0f} points wide, "
                f"wider than the {100 * self.threshold:g}% threshold, after {change.rounds[1]} rounds"
            )
        if base.get("precision") and base["precision"] != precision:
            reason = f"precision changed: baseline {base['precision']}, now {precision}. {reason}".strip()
        return Verdict(key, outcome, precision, change, reason)

    def format(self, verdicts: list[Verdict]) -> str:
        lines = [
            f"gate: change of model time / reference time (10th percentiles of calls interleaved in rounds; "
            f"{self.confidence:.0%} bootstrap interval over rounds); allowed slow-down {100 * self.threshold:g}%",
            f"{'model':<26} {'backend':<8} {'prec':<5} {'batch':>5} {'change':>8}  {'interval':<18} "
            f"{'rounds':>7}  verdict",
        ]
        for v in verdicts:
            model, backend, _, batch = v.key
            if v.change is not None:
                c = v.change
                figures = (
                    f"{100 * c.estimate:>+7.1f}%  [{100 * c.low:+.1f}%, {100 * c.high:+.1f}%]".ljust(28)
                    + f" {c.rounds[0]:>3}/{c.rounds[1]:<3}"
                )
            else:
                figures = f"{'-':>8}  {'':<18} {'':>7}"
            note = f"  ({v.reason})" if v.reason else ""
            lines.append(f"{model:<26} {backend:<8} {v.precision:<5} {batch:>5} {figures}  {v.outcome.upper()}{note}")
        return "\n".join(lines)


def exit_code(verdicts: list[Verdict]) -> int:
    """3 on any regression, else 4 on any inconclusive row, else 0 (every-row failure is checked apart)."""
    outcomes = {v.outcome for v in verdicts}
    if "regression" in outcomes:
        return EXIT_REGRESSION
    if "inconclusive" in outcomes:
        return EXIT_INCONCLUSIVE
    return EXIT_PASS


def summary(verdicts: list[Verdict], threshold_pct: float) -> str:
    judged = [v for v in verdicts if v.outcome in ("pass", "regression", "inconclusive")]
    bad = [v for v in judged if v.outcome == "regression"]
    unsure = [v for v in judged if v.outcome == "inconclusive"]
    if bad:
        return f"REGRESSION: {len(bad)} of {len(judged)} rows slower than the baseline by more than {threshold_pct:g}%"
    if unsure:
        return (
            f"INCONCLUSIVE: {len(unsure)} of {len(judged)} rows could not be decided: the machine was too noisy "
            f"for a {threshold_pct:g}% threshold even after extra rounds. Re-run on a quieter runner, give "
            "more --rounds or --seconds, or pin the job to dedicated cores."
        )
    if not judged:  # only new, fixed or still-failing rows: exit 2, never a pass
        return (
            f"NO VERDICT: none of {len(verdicts)} rows could be judged (new, fixed or still failing in the "
            "baseline); compare a sweep whose rows ran in the baseline"
        )
    return f"PASS: none of {len(judged)} rows slower than the baseline by more than {threshold_pct:g}%"
