"""Baseline files of the CI gate: written by ``--save-baseline``, checked by ``--compare`` before any measuring.

A baseline is the report of an ``edgerun bench`` run (the same JSON as ``--json``): its
environment, the reference workload it was measured against, and per row the reference's batch
size and, round by round, every timed call of the model and of the reference. :func:`load_baseline` refuses, with one
clear message, anything that is not such a file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from edgerun.runtime.argtypes import MAX_THREADS
from edgerun.runtime.pipeline import MAX_BATCH

from .gate import row_key
from .harness import SCHEMA
from .reference import MAX_BATCH as REFERENCE_MAX_BATCH
from .reference import REFERENCE_ID

#: A baseline holds every call of a sweep: tens of MB for a long one. It is read whole.
MAX_BASELINE_BYTES = 256 << 20


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message says what to do."""


def _remake(path: Path) -> str:
    return f"make one with `edgerun bench MODELS --save-baseline {path}`"


def load_baseline(path: Path) -> dict:
    """The baseline report at ``path``, checked; raises :class:`BaselineError` with what is wrong."""
    path = Path(path)
    if str(path) == "-":
        raise BaselineError("--compare - : the baseline is read from a file; give the path --save-baseline wrote")
    if not path.exists():
        raise BaselineError(
            f"no baseline at {path}; {_remake(path)} (on the reference branch, on this kind of machine)"
        )
    if not path.is_file():
        raise BaselineError(f"baseline {path} is not a file; give the JSON written by --save-baseline")
    if path.stat().st_size > MAX_BASELINE_BYTES:  # read whole into memory: a 3 GB file took 6.4 GB and 20 s
        raise BaselineError(
            f"baseline {path} is {path.stat().st_size:,} bytes, over the {MAX_BASELINE_BYTES >> 20} MiB a baseline "
            f"can be; {_remake(path)}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"baseline {path} cannot be read ({exc}); {_remake(path)}") from None
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {path} is not JSON ({exc.msg} at line {exc.lineno}); {_remake(path)}") from None
    problem = baseline_problem(report)
    if problem:
        raise BaselineError(f"baseline {path} is not usable: {problem}; {_remake(path)}")
    return report


def baseline_problem(report) -> str | None:
    """What is wrong with a parsed baseline, or None."""
    if not isinstance(report, dict):
        return f"expected a JSON object, got {type(report).__name__}"
    if report.get("schema") != SCHEMA:
        return f"it has schema {report.get('schema')!r} and this edgerun reads schema {SCHEMA}"
    if report.get("reference") is None:
        return "it holds no rounds of the reference workload (a plain sweep's --json report)"
    reference = report["reference"].get("id") if isinstance(report["reference"], dict) else None
    if reference != REFERENCE_ID:
        return f"it was measured against reference {reference!r} and this edgerun measures {REFERENCE_ID!r}"
    if not isinstance(report.get("environment"), dict):
        return "no 'environment' object"
    threads = report["environment"].get("threads")
    if threads is not None and not _whole(threads, MAX_THREADS):  # --compare measures with them
        return f"its environment has threads {threads!r}, expected a whole number from 1 to {MAX_THREADS}"
    rows = report.get("results")
    if not isinstance(rows, list) or not rows:
        return "no 'results' rows"
    seen: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        problem = _row_problem(row)
        if problem:
            return f"results[{i}] {problem}"
        key = row_key(row)
        if key in seen:  # the gate keeps one row per key: the other would be judged unseen
            return f"results[{i}] repeats the row of results[{seen[key]}] ({key[0]}, {key[1]}, batch {key[3]})"
        seen[key] = i
    if all(row.get("error") is not None for row in rows):
        return "every row failed in it: there is nothing to compare with"
    return None


def _whole(value, top: int) -> bool:
    """A whole number from 1 to ``top`` (JSON's true is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= top


def _row_problem(row) -> str | None:
    if not isinstance(row, dict):
        return f"is {type(row).__name__}, expected an object"
    for key in ("model", "backend", "provider"):
        if not isinstance(row.get(key), str):
            return f"has no string {key!r}"
    if not (row.get("batch") == 0 or _whole(row.get("batch"), MAX_BATCH)):  # 0: a backend that did not start
        return f"has batch {row.get('batch')!r}, expected a whole number up to {MAX_BATCH}"
    if row.get("error") is not None:
        return None if isinstance(row["error"], str) else "has a non-text 'error'"
    for key in ("round_us", "ref_round_us"):
        rounds = row.get(key)
        if not isinstance(rounds, list) or len(rounds) < 2:
            return f"has fewer than 2 rounds of {key!r}"
        for calls in rounds:
            if not isinstance(calls, list) or not calls:
                return f"has a round of {key!r} that is not a list of timings"
            if not all(isinstance(t, (int, float)) and math.isfinite(t) and t > 0 for t in calls):
                return f"has {key!r} timings that are not finite numbers above 0"
    if len(row["round_us"]) != len(row["ref_round_us"]):
        return "has different numbers of rounds for the model and the reference"
    if not _whole(row.get("ref_batch"), REFERENCE_MAX_BATCH):  # --compare runs the reference at it
        return f"has ref_batch {row.get('ref_batch')!r}, expected a whole number from 1 to {REFERENCE_MAX_BATCH}"
    return None
