"""The CI gate: statistics, verdicts, baselines, and the whole thing end to end with a planted slowdown."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgerun.bench import cli
from edgerun.bench.baseline import MAX_BASELINE_BYTES, BaselineError, load_baseline
from edgerun.bench.gate import EXIT_ALL_FAILED, EXIT_INCONCLUSIVE, EXIT_PASS, EXIT_REGRESSION, EXIT_USAGE, judge
from edgerun.bench.planted import plant_slowdown
from edgerun.bench.reference import REFERENCE_ID
from edgerun.bench.stats import RatioChange, ratio_change

MNIST_CNN = Path(__file__).resolve().parents[2] / "models" / "mnist_cnn.onnx"
needs_mnist_cnn = pytest.mark.skipif(not MNIST_CNN.is_file(), reason="bundled mnist_cnn.onnx missing (make models)")


def rounds(rng, n_rounds: int, model_us: float, ref_us: float, calls: int = 40, machine=None):
    """Synthetic interleaved rounds: each round's machine speed scales model and reference calls alike;
    calls are log-normal with a slow tail of preempted calls."""
    model, ref = [], []
    for _ in range(n_rounds):
        speed = machine(rng) if machine else 1.0
        for base, out in ((model_us, model), (ref_us, ref)):
            calls_us = base * speed * rng.lognormal(0.0, 0.05, calls)
            preempted = rng.random(calls) < 0.3
            calls_us[preempted] += rng.exponential(3 * base, preempted.sum())
            out.append(calls_us)
    return model, ref


def test_an_unchanged_model_on_a_slower_machine_shows_no_change():
    rng = np.random.default_rng(1)
    baseline = rounds(rng, 20, 400.0, 300.0)
    slower = rounds(rng, 20, 800.0, 600.0, machine=lambda r: r.uniform(1.0, 1.6))  # 2x slower, drifting
    change = ratio_change(baseline, slower)
    assert abs(change.estimate) < 0.05 and change.low < 0 < change.high
    assert change.rounds == (20, 20)
    assert ratio_change(baseline, slower) == change  # the same rounds give the same interval


def test_a_slower_model_is_measured_as_slower():
    rng = np.random.default_rng(2)
    change = ratio_change(rounds(rng, 20, 400.0, 300.0), rounds(rng, 20, 600.0, 300.0))
    assert change.estimate == pytest.approx(0.5, abs=0.06) and change.low > 0.3


def test_too_few_rounds_are_refused():
    one = ([np.ones(3)], [np.ones(3)])
    with pytest.raises(ValueError, match="2 or more rounds"):
        ratio_change(one, one)


@pytest.mark.parametrize(
    ("estimate", "low", "high", "final", "outcome"),
    [
        (0.02, -0.05, 0.09, True, "pass"),  # the whole interval below 15%
        (0.40, 0.30, 0.50, True, "regression"),  # the whole interval above
        (0.10, 0.03, 0.17, False, None),  # straddles: measure more rounds
        (0.10, 0.03, 0.17, True, "pass"),  # still straddles, but narrower than 15 points: the estimate decides
        (0.17, 0.12, 0.22, True, "regression"),
        (0.05, -0.20, 0.30, True, "inconclusive"),  # 50 points wide: too noisy to decide
        (0.15, 0.15, 0.15, True, "pass"),  # at the threshold is allowed
    ],
)
def test_verdicts(estimate, low, high, final, outcome):
    assert judge(RatioChange(estimate, low, high, 0.95, (20, 20)), 0.15, final=final) == outcome


def valid_baseline() -> dict:
    calls = [[400.0, 410.0], [405.0, 420.0]]
    row = {"model": "m.onnx", "backend": "edgerun", "provider": "cpu", "batch": 1, "error": None}
    row |= {"round_us": calls, "ref_round_us": calls, "ref_batch": 1, "precision": "fp32"}
    return {"schema": 2, "reference": {"id": REFERENCE_ID}, "environment": {}, "results": [row]}


def _edit(**changes):
    def apply(report):
        for dotted, value in changes.items():
            target, *path = dotted.split("__")
            where = report if target == "top" else report["results"][0]
            where[path[0]] = value
        return report

    return apply


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        (_edit(top__schema=1), "schema 1 and this edgerun reads schema 2"),
        (_edit(top__reference={"id": "other"}), "measured against reference 'other'"),
        (_edit(top__reference=None), "no rounds of the reference workload"),
        (_edit(top__results=[]), "no 'results' rows"),
        (_edit(row__batch="one"), "has batch 'one'"),
        (_edit(row__round_us=[[400.0]]), "fewer than 2 rounds of 'round_us'"),
        (_edit(row__ref_round_us=[[1.0], [-1.0]]), "not finite numbers above 0"),
        (_edit(row__ref_round_us=[[1.0], [1.0], [1.0]]), "different numbers of rounds"),
        (_edit(row__ref_batch=0), "has ref_batch 0"),
        # --compare measured with these: a std::bad_alloc, a SessionConfigError, a reference that never ran
        (_edit(top__environment={"threads": 10**9}), "threads 1000000000, expected a whole number from 1 to 1024"),
        (_edit(top__environment={"threads": True}), "threads True"),
        (_edit(row__ref_batch=10**9), "has ref_batch 1000000000, expected a whole number from 1 to 1024"),
        (_edit(row__ref_batch=True), "has ref_batch True"),
        (_edit(row__batch=True), "has batch True"),
        (lambda report: report | {"results": report["results"] * 2}, "repeats the row of results"),
        (_edit(row__error="boom"), "every row failed in it: there is nothing to compare with"),
    ],
)
def test_unusable_baselines_are_refused_with_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "baseline.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content(valid_baseline())))
    with pytest.raises(BaselineError, match=message.replace("(", r"\(")) as info:
        load_baseline(path)
    assert "--save-baseline" in str(info.value)  # and what to do about it
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(valid_baseline()))
    assert load_baseline(ok)["results"][0]["ref_batch"] == 1


@pytest.mark.parametrize("problem", ["missing", "malformed", "no rows in common"])
def test_compare_refuses_an_unusable_baseline_before_measuring(tmp_path, tiny_model, capsys, problem):
    model = tiny_model(tmp_path / "m.onnx", batch=None)
    baseline = tmp_path / "baseline.json"
    if problem == "malformed":
        baseline.write_text('{"schema": 2, "results": [')
    elif problem == "no rows in common":
        baseline.write_text(
            json.dumps(valid_baseline() | {"results": [valid_baseline()["results"][0] | {"batch": 64}]})
        )
    with pytest.raises(SystemExit) as info:
        cli.main([str(model), "--batch", "1", "--compare", str(baseline)])
    out, err = capsys.readouterr()
    assert info.value.code == EXIT_USAGE
    assert "Measured" not in out  # nothing was measured
    expected = {"missing": "no baseline at", "malformed": "is not JSON", "no rows in common": "no rows in common"}
    assert expected[problem] in err


def test_a_huge_baseline_is_not_read_into_memory(tmp_path):
    path = tmp_path / "baseline.json"
    with open(path, "wb") as handle:
        handle.truncate(MAX_BASELINE_BYTES + 1)  # sparse: a 3 GB one took 6.4 GB of memory and 20 s
    with pytest.raises(BaselineError, match="over the 256 MiB a baseline can be"):
        load_baseline(path)


def test_a_baseline_no_comparison_could_use_is_not_written(tmp_path, tiny_model, capsys):
    """Every row failing (the model's batch axis is fixed at 1): the baseline was written, exit 1,
    and every later --compare refused it; now it is not written and the run says why."""
    model, baseline, report = tiny_model(tmp_path / "fixed.onnx", batch=1), tmp_path / "b.json", tmp_path / "r.json"
    argv = [str(model), "--batch", "2,4", "--iters", "3", "--rounds", "5", "--save-baseline", str(baseline)]
    assert cli.main([*argv, "--json", str(report)]) == 5
    err = capsys.readouterr().err
    assert f"--save-baseline {baseline} not written: every row failed in it" in err
    assert not baseline.exists() and len(json.loads(report.read_text())["results"]) == 2


def test_a_comparison_with_no_row_to_judge_says_so_and_not_pass(tmp_path, tiny_model, capsys):
    """Batch 2 failed in the baseline and runs now ('fixed'): nothing was judged, exit 2, and the
    summary said 'PASS: none of 0 rows slower' above that error."""
    baseline = valid_baseline()
    baseline["results"].append(baseline["results"][0] | {"batch": 2, "error": "failed then"})
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    model = tiny_model(tmp_path / "m.onnx", batch=None)
    assert cli.main([str(model), "--batch", "2", "--iters", "5", "--rounds", "5", "--compare", str(path)]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert "NO VERDICT: none of 1 rows could be judged" in out and "PASS" not in out
    assert "no row of this run could be compared" in err


def test_every_row_failing_is_exit_1(tmp_path, tiny_model, capsys):
    model = tiny_model(tmp_path / "fixed.onnx", batch=1)
    assert cli.main([str(model), "--batch", "2,4", "--iters", "3"]) == EXIT_ALL_FAILED
    assert "every row failed" in capsys.readouterr().err


def test_a_row_that_fails_now_but_ran_in_the_baseline_is_a_regression(tmp_path, tiny_model, capsys):
    model = tiny_model(tmp_path / "m.onnx", batch=None)
    baseline = tmp_path / "baseline.json"
    common = ["--batch", "1,2", "--rounds", "5", "--seconds", "0.1"]
    assert cli.main([str(model), *common, "--save-baseline", str(baseline)]) == EXIT_PASS
    tiny_model(model, batch=1)  # the same graph, now refusing batch 2
    report = tmp_path / "now.json"
    assert cli.main([str(model), *common, "--compare", str(baseline), "--json", str(report)]) == EXIT_REGRESSION
    verdicts = {v["batch"]: v for v in json.loads(report.read_text())["gate"]["verdicts"]}
    assert verdicts[2]["verdict"] == "regression" and "fails now, ran in the baseline" in verdicts[2]["reason"]
    assert "REGRESSION" in capsys.readouterr().out


@needs_mnist_cnn
def test_gate_end_to_end_passes_the_same_model_and_fails_a_planted_slowdown(tmp_path, capsys):
    """Baseline, then the same model (with a baseline from another environment), then a copy that computes
    the same outputs with extra work: a few short rounds each, as in CI."""
    baseline = tmp_path / "baseline.json"
    common = ["--batch", "1,8", "--rounds", "6", "--seconds", "0.3"]
    assert cli.main([str(MNIST_CNN), *common, "--rounds", "12", "--save-baseline", str(baseline)]) == EXIT_PASS
    saved = load_baseline(baseline)  # round trip: what --save-baseline wrote, --compare reads
    assert {(r["model"], r["batch"]) for r in saved["results"]} == {("mnist_cnn.onnx", 1), ("mnist_cnn.onnx", 8)}
    saved["environment"]["onnxruntime"] = "0.0.1"
    saved["environment"]["cpu"]["cores"] = 64
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(saved))
    capsys.readouterr()

    same = tmp_path / "same.json"
    code = cli.main([str(MNIST_CNN), *common, "--compare", str(elsewhere), "--json", str(same)])
    printed = capsys.readouterr().out
    assert code in (EXIT_PASS, EXIT_INCONCLUSIVE), printed  # never a regression; inconclusive only on a busy machine
    assert "environment differs: onnxruntime: baseline 0.0.1, now" in printed
    assert "environment differs: cores: baseline 64, now" in printed
    gate = json.loads(same.read_text())["gate"]
    assert gate["exit_code"] == code and len(gate["verdicts"]) == 2
    assert all(v["verdict"] != "regression" for v in gate["verdicts"]), gate["verdicts"]

    planted = plant_slowdown(MNIST_CNN, tmp_path / "planted" / "mnist_cnn.onnx")
    slower = tmp_path / "slower.json"
    code = cli.main([str(planted), *common, "--compare", str(baseline), "--json", str(slower)])
    printed = capsys.readouterr().out
    assert code == EXIT_REGRESSION, printed
    verdicts = json.loads(slower.read_text())["gate"]["verdicts"]
    assert all(v["change_pct"] > 15 for v in verdicts), verdicts
    assert "REGRESSION" in printed


@needs_mnist_cnn
def test_planted_copy_computes_the_same_outputs(tmp_path):
    from edgerun.runtime.model import Model, SessionConfig

    planted = plant_slowdown(MNIST_CNN, tmp_path / "mnist_cnn.onnx")
    a, b = (Model.load(p, SessionConfig(provider="cpu")) for p in (MNIST_CNN, planted))
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    assert np.array_equal(a.run(x), b.run(x))
    assert planted.stat().st_size > MNIST_CNN.stat().st_size


def test_environment_differences_are_one_line_each():
    from edgerun.bench.machine import differences

    before = {"cpu": {"model": "Xeon A", "flags": ["avx2", "amx_tile"], "cores": 2}, "onnxruntime": "1.31.1"}
    before |= {"threads": 2, "provider": "cpu"}
    now = {"cpu": {"model": "Xeon A", "flags": ["avx2", "avx512f"], "cores": 2}, "onnxruntime": "1.32.0"}
    now |= {"threads": 2, "provider": "cpu"}
    assert differences(before, now) == [
        "environment differs: CPU flags: -amx_tile, +avx512f (baseline avx2 amx_tile)",
        "environment differs: onnxruntime: baseline 1.31.1, now 1.32.0",
    ]
    assert differences(now, now) == []


def test_the_gate_measures_one_thread_unless_told_and_compares_with_the_baselines(tmp_path, tiny_model, capsys):
    model = tiny_model(tmp_path / "m.onnx", batch=None)
    common = ["--batch", "1", "--rounds", "5", "--seconds", "0.05"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert cli.main([str(model), *common, "--save-baseline", str(one)]) == EXIT_PASS
    assert cli.main([str(model), *common, "--threads", "2", "--save-baseline", str(two)]) == EXIT_PASS
    assert load_baseline(one)["environment"]["threads"] == 1
    assert load_baseline(two)["environment"]["threads"] == 2
    for baseline, threads in ((one, 1), (two, 2)):
        report = tmp_path / f"now{threads}.json"
        code = cli.main([str(model), *common, "--compare", str(baseline), "--json", str(report)])
        assert code in (EXIT_PASS, EXIT_REGRESSION, EXIT_INCONCLUSIVE)  # judged (a tiny model, a few rounds)
        assert json.loads(report.read_text())["environment"]["threads"] == threads
    capsys.readouterr()


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path, encoding="ascii") as handle:
            return [int(c) for c in handle.read().split()]
    except OSError:
        return []


def _busy_loop(pid: int) -> int | None:
    for child in _children(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as handle:
                if b"while True: pass" in handle.read():
                    return child
        except OSError:
            continue
    return None


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads child processes from Linux's /proc")
def test_a_gate_check_stopped_by_sigterm_stops_its_busy_loop_and_keeps_its_runs(tmp_path):
    """make gate-check killed by a CI timeout (SIGTERM) died at once and left its busy-loop
    process burning a core with no parent; Ctrl-C ended in a traceback and no summary."""
    import signal
    import subprocess
    import sys
    import time

    from edgerun.runtime.model import resolve_model_path

    out = tmp_path / "gate-check"
    argv = ["--model", str(resolve_model_path("mnist_cnn")), "--batch", "1", "--runs", "1", "--rounds", "5"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerun.bench.gatecheck", *argv, "--seconds", "0.2", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline, loop = time.monotonic() + 300, None
    while loop is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        loop = _busy_loop(proc.pid)
    assert loop is not None, "no busy loop started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert not os.path.exists(f"/proc/{loop}") or b"Z" in open(f"/proc/{loop}/stat", "rb").read().split()[2:3]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == "SIGTERM"
    assert "Interrupted (SIGTERM)" in (out / "summary.md").read_text()


def test_gate_check_refuses_a_bad_batch_list_in_one_line(capsys):
    from edgerun.bench.gatecheck import main

    for bad in ("a", "1,1", "0"):
        with pytest.raises(SystemExit) as info:
            main(["--batch", bad])
        assert info.value.code == 2
        assert "argument --batch" in capsys.readouterr().err
