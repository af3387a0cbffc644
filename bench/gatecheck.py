"""``make gate-check``: the CI gate's acceptance runs, measured in both directions.

1. A planted-slowdown copy of the model (:mod:`.planted`); its true slowdown is measured apart,
   both models interleaved in 0.2 s blocks without extra load.
2. A baseline saved without extra load (``edgerun bench --save-baseline``).
3. ``--runs`` comparisons each (``edgerun bench --compare``, a fresh process per run, as CI runs it):
   the unchanged model under load (expected exit 0), the planted copy without load and under load
   (expected exit 3), and the unchanged model without load (expected exit 0).

The load is a busy-loop process (``python -c "while True: pass"``) started before a run and
stopped after it; ``--pin-load CPU`` pins it to one core. Every run's estimated change, interval,
verdict and the load average are written to ``OUT/summary.md`` and ``OUT/summary.json``; the exit
code is 0 when every run gave the expected verdict, else 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgerun.runtime.argtypes import positive_float, positive_int

from .signals import exit_code, signal_name, terminate_raises

logger = logging.getLogger(__name__)

BUSY_LOOP = "while True: pass"


def true_slowdown(model: Path, planted: Path, batches: tuple[int, ...], rounds: int = 30) -> dict[int, dict]:
    """planted / model time per batch, interleaved in blocks as the bench does: ratios of medians and of p10s."""
    from edgerun.runtime.model import Model, SessionConfig
    from edgerun.runtime.timing import measure_blocks

    from .cli import GATE_THREADS

    config = SessionConfig(provider="cpu", threads=GATE_THREADS)  # as the gate measures
    a, b = Model.load(model, config), Model.load(planted, config)
    out = {}
    for batch in batches:
        h, w = a.metadata.preprocessing.size
        x = np.random.default_rng(batch).random((batch, h, w, a.input_channels), dtype=np.float32)
        if not np.array_equal(a.run(x), b.run(x)):
            raise RuntimeError(f"{planted} does not compute the same outputs as {model}")
        a.warmup(x.shape)
        b.warmup(x.shape)
        pooled = {"a": [], "b": []}
        medians = []
        calls = {"a": lambda x=x: a.run(x), "b": lambda x=x: b.run(x)}
        for turn in range(rounds):
            samples, _ = measure_blocks(calls, block_s=0.2, turn=turn)
            pooled["a"].append(samples["a"])
            pooled["b"].append(samples["b"])
            medians.append(np.median(samples["b"]) / np.median(samples["a"]))
        pa, pb = np.concatenate(pooled["a"]), np.concatenate(pooled["b"])
        out[batch] = {
            "p50_ratio": round(float(np.median(medians)), 3),
            "p10_ratio": round(float(np.percentile(pb, 10) / np.percentile(pa, 10)), 3),
            "model_p50_ms": round(float(np.median(pa)) / 1e6, 3),
            "planted_p50_ms": round(float(np.median(pb)) / 1e6, 3),
        }
    return out


class BusyLoad:
    """A process that keeps one core busy while the context is open."""

    def __init__(self, cpu: int | None = None) -> None:
        self.cpu = cpu
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> BusyLoad:
        quiet = subprocess.DEVNULL  # it holds none of the gate check's streams open
        self.process = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdout=quiet, stderr=quiet)
        try:
            if self.cpu is not None:
                os.sched_setaffinity(self.process.pid, {self.cpu})
            time.sleep(0.5)  # let the scheduler see it
        except BaseException:  # a signal here: no with block will stop it
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _bench(args: list[str], log: Path) -> int:
    command = [sys.executable, "-m", "edgerun", "bench", *args]
    with open(log, "w", encoding="utf-8") as fh:
        return subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode


def _run(kind: str, model: Path, baseline: Path, common: list[str], out: Path, i: int, cpu: int | None) -> dict:
    loaded = kind.endswith("loaded")
    report = out / f"{kind}_{i}.json"
    report.unlink(missing_ok=True)  # an earlier gate check's verdicts must not stand in for a run that wrote none
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    if loaded:
        with BusyLoad(cpu):
            code = _bench(
                [str(model), *common, "--compare", str(baseline), "--json", str(report)], report.with_suffix(".log")
            )
    else:
        code = _bench(
            [str(model), *common, "--compare", str(baseline), "--json", str(report)], report.with_suffix(".log")
        )
    verdicts = json.loads(report.read_text())["gate"]["verdicts"] if report.is_file() else []
    if not verdicts:  # no gate ran (the command failed before judging): never counts as expected
        logger.error("%s run %d gave no verdict; see %s", kind, i, report.with_suffix(".log"))
        code = None
    return {
        "kind": kind,
        "run": i,
        "exit": code,
        "seconds": round(time.perf_counter() - start, 1),
        "load_1min_before": round(load_before, 2),
        "rows": [{k: v.get(k) for k in ("batch", "change_pct", "interval_pct", "rounds", "verdict")} for v in verdicts],
    }


EXPECTED = {"unchanged_loaded": 0, "planted_quiet": 3, "planted_loaded": 3, "unchanged_quiet": 0}


def _markdown(result: dict) -> str:
    lines = [
        f"Gate check: {result['model']} at batch {', '.join(map(str, result['batches']))}, "
        f"{result['settings']}; CPU {result['cpu']}; started at load average {result['load_at_start']}.",
        "",
        "True slowdown of the planted copy, measured apart (as the gate runs it: one thread, "
        "interleaved in 0.2 s blocks, no extra load):",
        "",
        "| batch | model p50 ms | planted p50 ms | p50 ratio | p10 ratio |",
        "|---:|---:|---:|---:|---:|",
    ]
    for batch, t in result["true_slowdown"].items():
        lines.append(
            f"| {batch} | {t['model_p50_ms']} | {t['planted_p50_ms']} | {t['p50_ratio']}x | {t['p10_ratio']}x |"
        )
    lines += [
        "",
        "| case | run | exit | expected | load before | per batch: change [95% interval] verdict (rounds) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for run in result["runs"]:
        rows = "; ".join(
            f"b{r['batch']}: {r['change_pct']:+.1f}% [{r['interval_pct'][0]:+.1f}, {r['interval_pct'][1]:+.1f}] "
            f"{r['verdict']} ({r['rounds'][1]})"
            if r.get("change_pct") is not None
            else f"b{r['batch']}: {r['verdict']}"
            for r in run["rows"]
        )
        lines.append(
            f"| {run['kind']} | {run['run']} | {run['exit']} | {EXPECTED[run['kind']]} | "
            f"{run['load_1min_before']} | {rows} |"
        )
    if result.get("interrupted"):
        lines += ["", f"Interrupted ({result['interrupted']}) after {len(result['runs'])} runs: scores of those."]
    lines += ["", "| case | as expected |", "|---|---:|"]
    for kind, score in result["score"].items():
        lines.append(f"| {kind} | {score} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .cli import _batches  # bench's own rule: whole numbers 1-1024, each once

    p = argparse.ArgumentParser(prog="python -m edgerun.bench.gatecheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=Path("models/mnist_cnn.onnx"))
    p.add_argument("--batch", type=_batches, default=(1, 8), help="comma-separated batch sizes (default 1,8)")
    p.add_argument("--runs", type=positive_int, default=5, help="comparisons per case (default 5)")
    p.add_argument("--rounds", type=positive_int, default=20, help="edgerun bench --rounds (default 20)")
    p.add_argument("--seconds", type=positive_float, default=1.0, help="edgerun bench --seconds (default 1.0)")
    p.add_argument("--max-regression", default="15%", help="edgerun bench --max-regression (default 15%%)")
    p.add_argument("--pin-load", type=int, metavar="CPU", help="pin the busy loop to this core (default: not pinned)")
    p.add_argument("--out", type=Path, default=Path("out/gate-check"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from .machine import cpu_info
    from .planted import plant_slowdown

    if not args.model.is_file():
        print(f"gatecheck: error: model {args.model} does not exist", file=sys.stderr)
        return 2
    batches = args.batch
    batch_list = ",".join(map(str, batches))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    planted = plant_slowdown(args.model, out / "planted" / args.model.name)
    load_at_start = round(os.getloadavg()[0], 2)
    logger.info("true slowdown of %s, measured apart", planted)
    truth = true_slowdown(args.model, planted, batches)
    common = ["--batch", batch_list, "--rounds", str(args.rounds), "--seconds", str(args.seconds)]
    common += ["--max-regression", args.max_regression]
    baseline = out / "baseline.json"
    logger.info("baseline, no extra load")
    # as the CLI's default for a baseline: twice the rounds (and time) of a comparison
    saving = ["--batch", batch_list, "--rounds", str(2 * args.rounds), "--seconds", str(2 * args.seconds)]
    code = _bench([str(args.model), *saving, "--save-baseline", str(baseline)], out / "baseline.log")
    if code != 0:
        print(
            f"gatecheck: error: saving the baseline failed (exit {code}); see {out / 'baseline.log'}", file=sys.stderr
        )
        return 1
    runs, interrupted = [], None
    try:
        for i in range(1, args.runs + 1):
            for kind in EXPECTED:
                model = planted if kind.startswith("planted") else args.model
                runs.append(_run(kind, model, baseline, common, out, i, args.pin_load))
                logger.info("%s run %d: exit %s %s", kind, i, runs[-1]["exit"], runs[-1]["rows"])
    except KeyboardInterrupt as exc:  # the busy loop is stopped (BusyLoad), the runs done are summarised
        interrupted = signal_name(exc)
        logger.warning("%s: the gate check stops after %d runs; they are in the summary", interrupted, len(runs))
    score = {
        kind: f"{sum(r['exit'] == expected for r in runs if r['kind'] == kind)}/{args.runs}"
        for kind, expected in EXPECTED.items()
    }
    cpu = cpu_info()
    result = {
        "model": str(args.model),
        "batches": batches,
        "settings": f"--rounds {args.rounds} --seconds {args.seconds} --max-regression {args.max_regression}, "
        f"load {'pinned to CPU ' + str(args.pin_load) if args.pin_load is not None else 'not pinned'}",
        "cpu": f"{cpu['model']} ({cpu['cores']} cores)",
        "load_at_start": load_at_start,
        "true_slowdown": truth,
        "runs": runs,
        "score": score,
        "interrupted": interrupted,
    }
    (out / "summary.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    table = _markdown(result)
    (out / "summary.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    if interrupted:
        return exit_code(interrupted)
    return 0 if all(r["exit"] == EXPECTED[r["kind"]] for r in runs) else 1


if __name__ == "__main__":
    # SIGTERM (a CI job's timeout) raises as Ctrl-C does: the busy loop is stopped, not left burning a core
    with terminate_raises():
        try:
            sys.exit(main())
        except KeyboardInterrupt as stopped:  # before the comparisons began: nothing to summarise
            print(f"gatecheck: interrupted ({signal_name(stopped)})", file=sys.stderr)
            sys.exit(exit_code(signal_name(stopped)))
