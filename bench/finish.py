"""What an ``edgerun bench`` sweep leaves behind: its files, then the table and the gate's verdict
on the screen, and the exit code.

The files come first and each is tried even when another fails: a standard output that is full
or whose reader left (``> full-disk``, ``| head``), or one output's full disk, must not cost the
others what was measured.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from edgerun.runtime.argtypes import print_error
from edgerun.runtime.outputs import STDOUT, OutputError, WriteFailed, write_text

from . import signals
from .baseline import baseline_problem
from .gate import EXIT_ALL_FAILED, EXIT_USAGE, exit_code, summary
from .report import human_stream, markdown, plot, write_json

logger = logging.getLogger(__name__)

PROG = "edgerun bench"


def finish(report: dict, args) -> int:
    """Write and print ``report`` as ``args`` (the checked command line) asks; the exit code.

    A sweep a signal stopped (``report["interrupted"]``) writes its rows to ``--json``,
    ``--markdown`` and ``--plot``, is not judged by the gate and leaves no ``--save-baseline``
    (a baseline missing rows or rounds would pass judgement on every later run): 130 / 143.
    """
    table = markdown(report)
    rows = [r for r in report["results"] if r["batch"]]
    code = EXIT_ALL_FAILED if not rows or all(r["error"] for r in rows) else 0
    interrupted = report.get("interrupted")
    verdict = ""
    if interrupted:
        code = signals.exit_code(interrupted)
    elif args.gate is not None and code == 0:
        code, verdict = judge(args.gate, report, args)
    failed = write_files(report, table, args, baseline=not interrupted)
    if str(args.json) == STDOUT:
        write_json(report, args.json)
    human = human_stream(args.json)
    print(table, file=human)
    if verdict:
        print(verdict, file=human)
    if args.save_baseline and not interrupted and "--save-baseline" not in failed:
        print(f"baseline written: {args.save_baseline}", file=human)
    for exc in failed.values():
        print_error(PROG, exc)
    if interrupted:
        print(f"{PROG}: interrupted ({interrupted}): {_kept(report, args, failed)}", file=sys.stderr)
    elif code == EXIT_ALL_FAILED:
        print_error(PROG, "every row failed; nothing was measured (see the errors above)")
    elif code == EXIT_USAGE and args.gate is not None:
        print_error(PROG, f"no row of this run could be compared with {args.compare}")
    return next(iter(failed.values())).exit_code if failed else code


def _kept(report: dict, args, failed: dict) -> str:
    """Where the rows measured before a signal went, and what was not done."""
    rows = sum(1 for r in report["results"] if r["batch"] and not r["error"])
    files = [
        str(getattr(args, option[2:]))
        for option in ("--json", "--markdown")
        if getattr(args, option[2:]) is not None and str(getattr(args, option[2:])) != STDOUT and option not in failed
    ]
    where = f"in {', '.join(files)}" if files else "above"
    unjudged = "; not judged against the baseline" if args.gate is not None else ""
    return (
        f"the {rows} rows measured before it are {where}"
        + (f"; no baseline written to {args.save_baseline} (it needs every row)" if args.save_baseline else "")
        + unjudged
    )


def write_files(report: dict, table: str, args, baseline: bool = True) -> dict[str, OutputError]:
    """Every output file asked for, each tried even when another fails; the failures by option.
    ``baseline`` False: no ``--save-baseline`` (an interrupted sweep)."""
    writes = {
        "--json": lambda: write_json(report, args.json, args.protected),
        "--save-baseline": lambda: write_baseline(report, args.save_baseline, args.protected),
        "--markdown": lambda: write_text(args.markdown, table + "\n", args.protected, "--markdown"),
        "--plot": lambda: plots(report, args.plot, args.protected),
    }
    failed = {}
    for option, write in writes.items():
        target = getattr(args, option[2:].replace("-", "_"))
        if target is None or str(target) == STDOUT or (option == "--save-baseline" and not baseline):
            continue
        try:
            write()
        except OutputError as exc:
            failed[option] = exc
    return failed


def write_baseline(report: dict, path: Path, protected) -> None:
    """``report`` as the gate's baseline, only if ``--compare`` could use it: one whose rows all
    failed, or that holds no rounds of the reference (it failed), was written and then refused
    by every later comparison."""
    problem = baseline_problem(report)
    if problem:
        raise WriteFailed(
            f"--save-baseline {path} not written: {problem}; the rows are in --json (if given): "
            "fix the failing rows and make the baseline again"
        )
    write_json(report, path, protected)


def plot_targets(target: Path, models: list[str]) -> dict[str, Path]:
    """Where each model's plot goes: ``target`` for one model, else TARGET_NAME.SUFFIX per model
    (NAME.int8.onnx -> TARGET_NAME.int8.png: a model's plot never overwrites its variant's)."""
    if len(models) == 1:
        return {models[0]: target}
    return {m: target.with_name(f"{target.stem}_{m.removesuffix('.onnx')}{target.suffix}") for m in models}


def plots(report: dict, target: Path, protected) -> None:
    models = list(dict.fromkeys(r["model"] for r in report["results"]))
    for model, path in plot_targets(target, models).items():
        try:
            logger.info("plot: %s", plot(report, model, path, protected))
        except ValueError as exc:
            logger.warning("no plot for %s: %s", model, exc)


def judge(gate, report: dict, args) -> tuple[int, str]:
    """The gate's exit code and its table and verdict to print; both go into the report (``gate``)."""
    verdicts = gate.verdicts(report["results"])
    line = summary(verdicts, args.max_regression)
    text = "\n".join(["", *args.environment_notes, gate.format(verdicts), "", line])
    code = exit_code(verdicts)
    if not any(v.outcome in ("pass", "regression", "inconclusive") for v in verdicts):
        code = EXIT_USAGE
    report["gate"] = {
        "baseline": str(args.compare),
        "max_regression_pct": args.max_regression,
        "confidence": gate.confidence,
        "environment_differences": args.environment_notes,
        "verdicts": [v.to_dict() for v in verdicts],
        "summary": line,
        "exit_code": code,
    }
    return code, text
