"""edgerun tune: measures, stores the winners, and bench shows tuned and default side by side."""

from __future__ import annotations

import json
import os

import pytest

from edgerun.bench import cli, tune
from edgerun.runtime import tuning
from edgerun.runtime.files import sha256_file

from ..runtime.test_model import make_model


@pytest.fixture
def model_file(tmp_path):
    return make_model(tmp_path / "m.onnx", ["batch", 1, 28, 28], softmax=True)


def test_tune_stores_a_winner_per_batch(model_file, tmp_path, capsys):
    cache = tmp_path / "tune.json"
    argv = [str(model_file), "--batch", "1,4", "--seconds", "0.01", "--rounds", "2", "--cache", str(cache)]
    assert tune.main(argv) == 0
    out = capsys.readouterr().out
    assert "default ms" in out and f"stored in {cache}" in out
    for batch in (1, 4):
        found = tuning.tuned_settings(sha256_file(model_file), batch, "cpu", exact=True, path=cache)
        assert found is not None and found.p50_ms > 0 and found.default_p50_ms > 0
        if found.session_key == tune.default_settings(found.threads).session_key:
            assert found.p50_ms == found.default_p50_ms  # defaults kept: one measurement
        else:
            assert found.p50_ms < found.default_p50_ms  # a change is kept only when it won head to head


def test_dry_run_stores_nothing(model_file, tmp_path, capsys):
    cache = tmp_path / "tune.json"
    argv = [str(model_file), "--batch", "1", "--seconds", "0.01", "--rounds", "1", "--cache", str(cache), "--dry-run"]
    assert tune.main(argv) == 0
    assert not cache.exists() and "stored" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{missing}"], "does not exist"),
        ([""], "argument models: expected a path (or a bundled model's name where a model goes), got an empty string"),
        (["{model}", "--margin", "150"], "--margin must be"),
        (["{model}", "--batch", "0"], "batch sizes"),
    ],
)
def test_tune_arguments_are_checked(argv, message, model_file, tmp_path, capsys):
    fill = {"missing": str(tmp_path / "nope.onnx"), "model": str(model_file)}
    with pytest.raises(SystemExit) as info:
        tune.main([a.format(**fill) for a in argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_bench_shows_tuned_and_default_side_by_side(model_file, tmp_path, monkeypatch, caplog):
    cache = tmp_path / "tune.json"
    monkeypatch.setenv(tuning.ENV_CACHE, str(cache))
    chosen = tuning.TunedSettings(1, False, "extended", "sequential", True, p50_ms=0.1, default_p50_ms=0.2)
    tuning.record(model_file, sha256_file(model_file), "cpu", {1: chosen})
    out = tmp_path / "r.json"
    args = [str(model_file), "--batch", "1,2", "--iters", "3", "--warmup", "1", "--json", str(out)]
    with caplog.at_level("INFO"):
        assert cli.main(args) == 0
    rows = {(r["backend"], r["batch"]) for r in json.loads(out.read_text())["results"]}
    assert rows == {(b, n) for b in ("edgerun", "edgerun-default") for n in (1, 2)}
    assert "batch 1 runs tuned: 1 thread, no spin, opt extended, sequential, io-binding" in caplog.text
    # batch 2 was not tuned: the log names the tuned batch whose settings it runs (README, Tuning)
    assert (
        "batch 2 runs tuned: 1 thread, no spin, opt extended, sequential, io-binding, "
        "as tuned for batch 1, the nearest tuned batch size" in caplog.text
    )
    assert cli.main([*args, "--no-tune"]) == 0
    assert {r["backend"] for r in json.loads(out.read_text())["results"]} == {"edgerun"}


def test_variants_are_measured_with_the_tuned_settings(model_file, tmp_path, capsys):
    variant = tmp_path / "variant.onnx"
    variant.write_bytes(model_file.read_bytes())
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model_file))  # the same graph with other weights: not the same model
    weight = proto.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 3, weight.name))
    other = tmp_path / "other.onnx"
    onnx.save(proto, str(other))
    argv = [str(model_file), "--batch", "1", "--seconds", "0.01", "--rounds", "1", "--dry-run"]
    assert tune.main([*argv, "--variant", str(variant), "--variant", str(other)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("variants"))
    assert f"{variant} " in line and " ms" in line
    assert f"{other} differs" in line
    with pytest.raises(SystemExit):
        tune.main([str(model_file), str(variant), "--variant", str(variant)])
    assert "exactly one model" in capsys.readouterr().err


def test_the_runtime_log_names_the_tuned_batch_it_took(model_file, tmp_path, monkeypatch, caplog):
    from edgerun.runtime.model import SessionConfig

    cache = tmp_path / "tune.json"
    monkeypatch.setenv(tuning.ENV_CACHE, str(cache))
    chosen = tuning.TunedSettings(1, False, "extended", "sequential", False)
    tuning.record(model_file, sha256_file(model_file), "cpu", {8: chosen, 64: chosen})
    with caplog.at_level("INFO"):
        _, used = tuning.tuned_config(model_file, 32, SessionConfig())
    assert used.from_batch == 64
    assert "tuned settings for batch 32 from" in caplog.text
    assert "as tuned for batch 64, the nearest tuned batch size" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO"):
        _, used = tuning.tuned_config(model_file, 8, SessionConfig())
    assert used.from_batch is None and "nearest" not in caplog.text  # a tuned batch: its own entry
    assert "from_batch" not in json.loads(cache.read_text())["machines"].popitem()[1]["models"].popitem()[1][
        "batches"]["8"]  # fmt: skip


@pytest.fixture
def no_tuning(monkeypatch):
    """Fails the test if the tuner starts measuring: arguments and the cache come first."""

    def started(*args, **kwargs):
        raise AssertionError("measuring started before the arguments were refused")

    monkeypatch.setattr(tune, "tune", started)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{model}", "--cache", "{file}/tune.json"], "tune.json cannot be used: a part of the path is not a directory"),
        pytest.param(
            ["{model}", "--cache", "/proc/nope/tune.json"],
            "/proc/nope/tune.json is a file of the kernel's /proc file system, not a place for outputs",
            marks=pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc"),
        ),
        (["{model}", "--cache", "{model}"], "is an input of this run"),
        (["{model}", "--cache", "{tmp}"], "is a directory, not a regular file"),
        (["{model}", "--cache", "{broken}"], "cannot be read"),
        (["{model}", "--cache", "{shaped}"], "is damaged: machines is list, expected an object; delete it"),
        (["{flat}", "--cache", "{tmp}/tune.json"], "input 'x' has shape [1, 784]"),
        (["{model}", "--batch", "2000"], "batch size 2000: expected at most 1024"),
        (["nosuch_model"], "'nosuch_model' is neither a file nor a bundled model"),
    ],
)
def test_tune_refuses_before_measuring(argv, message, model_file, tmp_path, no_tuning, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "shaped.json").write_text('{"schema": 1, "machines": []}')  # JSON, another shape
    fill = {
        "model": str(model_file),
        "file": str(tmp_path / "file"),
        "broken": str(tmp_path / "broken.json"),
        "shaped": str(tmp_path / "shaped.json"),
        "tmp": str(tmp_path),
        "flat": str(make_model(tmp_path / "flat.onnx", [1, 784])),
    }
    with pytest.raises(SystemExit) as info:
        tune.main([a.format(**fill) for a in argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_tune_takes_a_bundled_model_by_name(mnist_cnn, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no file named mnist_cnn here
    argv = ["mnist_cnn", "--batch", "1", "--seconds", "0.005", "--rounds", "1", "--dry-run"]
    assert tune.main(argv) == 0
    assert "mnist_cnn.onnx:" in capsys.readouterr().out


@pytest.mark.parametrize(("signum", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_tune_stores_the_batch_sizes_it_finished(model_file, tmp_path, signum, code):
    """Ctrl-C or SIGTERM in a long tune lost every batch size measured (they were stored only
    once all were done): those finished are stored, the message says what was not tuned."""
    import signal
    import subprocess
    import sys

    cache = tmp_path / "tune.json"
    argv = [str(model_file), "--batch", "1,8", "--seconds", "0.01", "--rounds", "2", "--cache", str(cache)]
    env = {**os.environ, tuning.ENV_CACHE: str(cache)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerun", "tune", *argv], stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        text=True,
    )  # fmt: skip
    for line in proc.stderr:  # batch 8's first decision: batch 1 is done
        if "batch 8 " in line:
            break
    proc.send_signal(getattr(signal, signum))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"interrupted ({signum}) while tuning m.onnx: batch 1 stored; batch 8 not tuned" in err
    assert f"stored in {cache}" in out
    assert tuning.tuned_settings(sha256_file(model_file), 1, "cpu", exact=True, path=cache) is not None
    assert tuning.tuned_settings(sha256_file(model_file), 8, "cpu", exact=True, path=cache) is None
