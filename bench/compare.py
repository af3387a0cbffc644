"""CI comparison: normalised p50 against a baseline; a regression past the threshold fails.

Rows are matched by (model, backend, provider, batch). The compared figure is the normalised
p50 (``p50 ms x SGEMM GFLOP/s`` of the machine in the same run), so a baseline taken on a faster
or slower machine still compares fairly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class BaselineError(ValueError):
    """A baseline file that cannot be used."""


@dataclass(frozen=True)
class Change:
    key: tuple
    baseline: float
    current: float

    @property
    def pct(self) -> float:
        return 100.0 * (self.current - self.baseline) / self.baseline


def _key(row: dict) -> tuple:
    return (row["model"], row["backend"], row["provider"], row["batch"])


def load_baseline(path: Path) -> dict:
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {path} cannot be read: {exc}") from exc
    if not isinstance(report, dict) or "results" not in report:
        raise BaselineError(f"baseline {path} is not an edgerun bench JSON (no 'results')")
    return report


def compare(current: dict, baseline: dict, max_regression_pct: float) -> tuple[list[Change], list[Change]]:
    """All matched changes, and those slower than the threshold."""
    base = {_key(r): r["norm_p50"] for r in baseline["results"] if r.get("norm_p50")}
    changes = [
        Change(_key(r), base[_key(r)], r["norm_p50"])
        for r in current["results"]
        if r.get("norm_p50") and _key(r) in base
    ]
    return changes, [c for c in changes if c.pct > max_regression_pct]


def format_changes(changes: list[Change], max_regression_pct: float) -> str:
    lines = [
        f"{'model':<28} {'backend':<8} {'batch':>5} {'baseline':>10} {'now':>10} {'change':>8}",
        "(normalised p50: ms x SGEMM GFLOP/s)",
    ]
    for c in changes:
        model, backend, _, batch = c.key
        flag = "  REGRESSION" if c.pct > max_regression_pct else ""
        lines.append(
            f"{model:<28} {backend:<8} {batch:>5} {c.baseline:>10.1f} {c.current:>10.1f} {c.pct:>+7.1f}%{flag}"
        )
    return "\n".join(lines)
