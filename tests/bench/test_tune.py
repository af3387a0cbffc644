"""edgerun tune: measures, stores the winners, and bench shows tuned and default side by side."""

from __future__ import annotations

import json

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
