"""The tune cache (runtime/tuning.py) and CPU IO binding with pre-allocated outputs (runtime/binding.py)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgerun.runtime import tuning
from edgerun.runtime.binding import MAX_SHAPES, OutputBinder
from edgerun.runtime.files import sha256_file
from edgerun.runtime.model import Model, SessionConfig
from edgerun.runtime.tuning import TunedSettings, TuningCacheError

from .test_model import make_model


def settings(threads=1, **kw) -> TunedSettings:
    base = {"spinning": False, "optimization": "extended", "execution_mode": "sequential", "io_binding": True}
    return TunedSettings(threads=threads, **(base | kw))


@pytest.fixture
def model_file(tmp_path):
    return make_model(tmp_path / "m.onnx", ["batch", 1, 28, 28], softmax=True)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "tune.json"
    monkeypatch.setenv(tuning.ENV_CACHE, str(path))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threads": 0}, "threads must be"),
        ({"optimization": "max"}, "optimization must be"),
        ({"execution_mode": "async"}, "execution_mode must be"),
    ],
)
def test_settings_are_validated(changes, message):
    with pytest.raises(TuningCacheError, match=message):
        settings(**changes)


def test_settings_round_trip_and_apply():
    s = settings(threads=2, p50_ms=0.1, default_p50_ms=0.2)
    assert TunedSettings.from_dict(s.to_dict() | {"unknown_future_field": 1}) == s
    config = s.apply(SessionConfig(provider="cpu"))
    assert (config.threads, config.spinning, config.optimization, config.io_binding) == (2, False, "extended", True)
    assert config.provider == "cpu"
    assert "io-binding" in s.label() and "2 threads" in s.label()


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv(tuning.ENV_CACHE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tuning.cache_path() == tmp_path / "edgerun" / "tune.json"
    monkeypatch.setenv(tuning.ENV_CACHE, str(tmp_path / "x.json"))
    assert tuning.cache_path() == tmp_path / "x.json"


def test_record_and_look_up(model_file, cache):
    sha = sha256_file(model_file)
    assert tuning.tuned_settings(sha, 1, "cpu") is None  # no cache yet
    tuning.record(model_file, sha, "cpu", {1: settings(threads=1), 64: settings(threads=2)})
    assert tuning.tuned_settings(sha, 1, "cpu").threads == 1
    assert tuning.tuned_settings(sha, 64, "cpu").threads == 2
    assert tuning.tuned_settings(sha, 4, "cpu").threads == 1  # nearest in log2: 4 is closer to 1 than to 64
    assert tuning.tuned_settings(sha, 16, "cpu").threads == 2
    assert tuning.tuned_settings(sha, 4, "cpu", exact=True) is None
    assert tuning.tuned_settings(sha, 1, "cuda") is None  # another provider: another fingerprint
    assert tuning.tuned_settings("0" * 64, 1, "cpu") is None  # another model
    data = json.loads(cache.read_text())
    (machine,) = data["machines"].values()
    assert machine["machine"]["onnxruntime"] == ort.__version__ and machine["machine"]["cores"] >= 1
    assert list(data["files"].values())[0]["sha256"] == sha


def test_another_machine_gets_nothing(model_file, cache, monkeypatch):
    sha = sha256_file(model_file)
    tuning.record(model_file, sha, "cpu", {1: settings()})
    monkeypatch.setattr(tuning, "_cpu", lambda: ("Some Other CPU", ["sse2"]))
    assert tuning.tuned_settings(sha, 1, "cpu") is None


def test_file_lookup_uses_the_memo_and_notices_changes(model_file, cache, monkeypatch):
    assert tuning.tuned_settings_for(model_file, 1, "cpu") is None  # no cache: nothing hashed
    tuning.record(model_file, sha256_file(model_file), "cpu", {1: settings(threads=1)})

    def no_hashing(_path):
        raise AssertionError("the memo should have answered")

    monkeypatch.setattr("edgerun.runtime.files.sha256_file", no_hashing)
    assert tuning.tuned_settings_for(model_file, 1, "cpu").threads == 1
    monkeypatch.undo()
    monkeypatch.setenv(tuning.ENV_CACHE, str(cache))
    model_file.write_bytes(model_file.read_bytes() + b"\0")  # another file now: no tuned settings
    assert tuning.tuned_settings_for(model_file, 1, "cpu") is None


def test_a_model_of_another_size_is_not_hashed(model_file, cache, tmp_path, monkeypatch):
    """One tuned model must not make every other model's run hash its whole file."""
    tuning.record(model_file, sha256_file(model_file), "cpu", {1: settings(threads=1)})
    other = tmp_path / "other.onnx"
    other.write_bytes(model_file.read_bytes() + b"\0" * 10)
    same_size = tmp_path / "same_size.onnx"
    same_size.write_bytes(model_file.read_bytes()[:-1] + b"\1")
    hashed = []

    def counting(path):
        hashed.append(Path(path).name)
        return sha256_file(path)

    monkeypatch.setattr("edgerun.runtime.files.sha256_file", counting)
    assert tuning.tuned_settings_for(other, 1, "cpu") is None
    assert hashed == []
    assert tuning.tuned_settings_for(same_size, 1, "cpu") is None  # same size: it must hash to know
    assert hashed == ["same_size.onnx"]
    data = json.loads(cache.read_text())
    del next(iter(data["machines"].values()))["models"][sha256_file(model_file)]["size"]
    data["files"].clear()  # a cache from before sizes were kept: every file hashed, as then
    cache.write_text(json.dumps(data))
    assert tuning.tuned_settings_for(other, 1, "cpu") is None
    assert hashed == ["same_size.onnx", "other.onnx"]


@pytest.mark.parametrize(
    ("content", "advice"),
    [
        ("{not json", "delete it and run edgerun tune again"),
        ('{"schema": 99, "machines": {}}', "a newer edgerun wrote it: keep it"),  # not ours to delete
        ("[1, 2]", "delete it and run edgerun tune again"),
    ],
)
def test_a_damaged_cache_is_ignored_with_a_warning(model_file, cache, content, advice, caplog):
    cache.parent.mkdir(parents=True)
    cache.write_text(content)
    with caplog.at_level(logging.WARNING):
        assert tuning.tuned_settings_for(model_file, 1, "cpu") is None
    assert advice in caplog.text
    with pytest.raises(TuningCacheError, match=advice):
        tuning.record(model_file, "0" * 64, "cpu", {1: settings()})


def _entry(**changes) -> dict:
    base = {"threads": 1, "spinning": True, "optimization": "all", "execution_mode": "sequential", "io_binding": False}
    return base | changes


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (lambda fp, sha: {"machines": []}, "machines is list, expected an object"),
        (lambda fp, sha: {"machines": {fp: "x"}}, "is str, expected an object"),
        (lambda fp, sha: {"machines": {fp: {"models": [1]}}}, ".models is list, expected an object"),
        (lambda fp, sha: {"machines": {fp: {"models": {sha: "x"}}}}, "is str, expected an object"),
        (lambda fp, sha: {"machines": {fp: {"models": {sha: {"batches": {"1": "x"}}}}}}, "is str"),
        (lambda fp, sha: {"machines": {fp: {"models": {sha: {"batches": {"a": _entry()}}}}}}, "batch sizes ['a']"),
        (lambda fp, sha: {"machines": {}, "files": [1]}, "files is list, expected an object"),
        (lambda fp, sha: {"machines": {fp: {"models": {sha: {"batches": {"1": _entry(spinning="no")}}}}}}, "spinning"),
        (lambda fp, sha: {"machines": {fp: {"models": {sha: {"batches": {"1": _entry(threads=10**6)}}}}}}, "cores"),
    ],
)
def test_a_cache_of_another_shape_is_a_warning_not_a_failure(model_file, cache, shape, message, caplog):
    """Valid JSON with the wrong shape (a hand edit, another tool's file) was an AttributeError in
    every edgerun run and Model.load on the machine; a huge thread count hung the session."""
    cache.parent.mkdir(parents=True)
    data = {"schema": tuning.SCHEMA} | shape(tuning.fingerprint("cpu"), sha256_file(model_file))
    cache.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        assert tuning.tuned_settings_for(model_file, 1, "cpu") is None
        model = Model.load(model_file, SessionConfig(provider="cpu"))
    assert message in caplog.text and model.run(np.zeros((1, 28, 28, 1), np.float32)).shape == (1, 10)


def test_a_huge_cache_is_not_read_into_memory(model_file, cache, caplog):
    cache.parent.mkdir(parents=True)
    with open(cache, "wb") as handle:
        handle.truncate(tuning.MAX_CACHE_BYTES + 1)  # sparse: no disk used
    with caplog.at_level(logging.WARNING):
        assert tuning.tuned_settings_for(model_file, 1, "cpu") is None
    assert "over the 64 MiB a tune cache can be" in caplog.text


def _record_many(model_file: Path, cache: Path, worker: int) -> None:
    for i in range(20):
        tuning.record(model_file, f"{worker:02d}{i:062d}", "cpu", {1: settings()}, cache)


def test_tunes_recording_at_once_keep_every_entry(model_file, tmp_path):
    """Two edgerun tune processes that end at once: each reads the cache, adds its model and
    writes it back. Without a lock, 4 processes recording 20 entries each kept 25 of the 80."""
    import multiprocessing

    cache = tmp_path / "cache" / "tune.json"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_record_many, args=(model_file, cache, w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 4
    machines = json.loads(cache.read_text())["machines"].values()
    assert sum(len(m["models"]) for m in machines) == 80


@pytest.mark.parametrize("io_binding", [False, True])
def test_model_outputs_are_the_same_with_tuned_settings(model_file, io_binding):
    plain = Model.load(model_file, SessionConfig(provider="cpu"))
    tuned = Model.load(model_file, settings(io_binding=io_binding).apply(SessionConfig(provider="cpu")))
    for batch in (1, 3, 1, 8):
        x = np.random.default_rng(batch).random((batch, 28, 28, 1), dtype=np.float32)
        np.testing.assert_allclose(tuned.run(x), plain.run(x), atol=1e-6)


def test_binder_returns_arrays_callers_can_keep(model_file):
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    binder = OutputBinder(session, "x", "probs")
    xs = [np.random.default_rng(i).random((2, 1, 28, 28), dtype=np.float32) for i in range(3)]
    outs = [binder.run(x) for x in xs]  # the first call allocates, the next two use the bound buffer
    for x, out in zip(xs, outs, strict=True):
        np.testing.assert_allclose(out, session.run(None, {"x": x})[0], atol=1e-6)
    assert not np.allclose(outs[1], outs[2])


def test_binder_keeps_buffers_for_a_bounded_number_of_shapes(model_file):
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    binder = OutputBinder(session, "x", "probs")
    for round_ in range(2):
        for batch in range(1, MAX_SHAPES + 4):  # more shapes than are kept, each twice
            x = np.random.default_rng(batch + round_).random((batch, 1, 28, 28), dtype=np.float32)
            for _ in range(2):
                np.testing.assert_allclose(binder.run(x), session.run(None, {"x": x})[0], atol=1e-6)
    assert len(binder._local.slots) == MAX_SHAPES


def test_binder_is_safe_across_threads(model_file):
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    binder = OutputBinder(session, "x", "probs")
    errors = []

    def work(seed):
        x = np.random.default_rng(seed).random((seed % 3 + 1, 1, 28, 28), dtype=np.float32)
        want = session.run(None, {"x": x})[0]
        for _ in range(50):
            if not np.allclose(binder.run(x), want, atol=1e-6):
                errors.append(seed)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_tuned_config_keeps_what_the_user_set(model_file, cache, caplog):
    base = SessionConfig(provider="cpu", threads=2, spinning=True)
    assert tuning.tuned_config(model_file, 1, base) == (base, None)
    tuning.record(model_file, sha256_file(model_file), "cpu", {1: settings(threads=1)})
    with caplog.at_level(logging.INFO):
        config, found = tuning.tuned_config(model_file, 1, base, keep=("spinning",))
    assert found.threads == 1 and config.threads == 1 and config.io_binding
    assert config.spinning is True  # kept: the user asked for it
    assert "tuned settings for batch 1" in caplog.text and "--no-tune" in caplog.text


def test_a_tuned_graph_file_is_not_used_at_an_optimisation_level_the_user_set(model_file, cache, tmp_path):
    """Tuned graph files hold the tuned level's optimisations (they open with optimisation off):
    a level the user sets by hand must not be skipped that way."""
    graph = tmp_path / "graph.onnx"
    graph.write_bytes(model_file.read_bytes())
    tuned = settings(optimization="all", graph_file=str(graph))
    tuning.record(model_file, sha256_file(model_file), "cpu", {1: tuned})
    config, _ = tuning.tuned_config(model_file, 1, SessionConfig(provider="cpu"))
    assert config.graph == str(graph)
    for level in ("basic", "extended"):
        config, _ = tuning.tuned_config(model_file, 1, SessionConfig(optimization=level), keep=("optimization",))
        assert (config.optimization, config.graph) == (level, None)
        by_hand = SessionConfig(provider="cpu", optimization=level)
        model = Model.load(model_file, by_hand, tune=True, keep=("optimization",))
        off = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        assert model.session.get_session_options().graph_optimization_level != off


def test_the_api_and_run_use_the_tuned_settings_and_no_tune_ignores_them(model_file, cache, tmp_path, caplog):
    import cv2

    import edgerun
    from edgerun.runtime.cli import main as run_main

    tuning.record(model_file, sha256_file(model_file), "cpu", {1: settings(threads=1, optimization="basic")})

    def used(model):
        options = model.session.get_session_options()
        return options.intra_op_num_threads, int(options.graph_optimization_level)

    basic = int(ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    with caplog.at_level(logging.INFO, logger="edgerun"):
        assert used(edgerun.load(model_file, provider="cpu")) == (1, basic)
    assert "tuned settings for batch 1" in caplog.text
    assert used(edgerun.load(model_file, provider="cpu", threads=2)) == (2, basic)  # what the user set stays
    assert used(edgerun.load(model_file, provider="cpu", tune=False))[1] != basic
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((28, 28), np.uint8))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edgerun"):
        assert run_main([str(model_file), "--source", str(tmp_path / "x.png"), "--provider", "cpu"]) == 0
        assert "tuned settings" in caplog.text
        caplog.clear()
        assert run_main([str(model_file), "--source", str(tmp_path / "x.png"), "--no-tune"]) == 0
        assert "tuned settings" not in caplog.text


def test_an_unreadable_cache_is_a_warning_not_a_failure(model_file, tmp_path, monkeypatch, caplog):
    folder = tmp_path / "locked"
    folder.mkdir()
    monkeypatch.setenv(tuning.ENV_CACHE, str(folder / "tune.json"))

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(folder), "stat", denied)
    with caplog.at_level(logging.WARNING, logger="edgerun"):
        assert tuning.tuned_settings_for(model_file, 1, "cpu") is None
    assert "cannot be read" in caplog.text and "Permission denied" in caplog.text


def test_machine_keys_hash_as_hashlib_does_without_loading_openssl(model_file, cache, tmp_path):
    """Fingerprints stay the keys existing caches hold, and a tuned lookup that the memo answers
    loads no ``_hashlib`` (OpenSSL: ~3 ms of a one-image run's start, README Cold start)."""
    import hashlib
    import os
    import subprocess
    import sys

    assert tuning._sha256_hex(b"edgerun") == hashlib.sha256(b"edgerun").hexdigest()
    tuning.record(model_file, sha256_file(model_file), "cpu", {1: settings(threads=1)})
    code = (
        "import sys; from edgerun.runtime import tuning; "
        f"assert tuning.tuned_settings_for({str(model_file)!r}, 1, 'cpu').threads == 1; "
        "print(sorted(m for m in ('hashlib', '_hashlib') if m in sys.modules))"
    )
    env = {**os.environ, tuning.ENV_CACHE: str(cache)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_one_image_runs_without_prepacking_and_answers_the_same(model_file, tmp_path, monkeypatch):
    import cv2

    from edgerun.runtime import model as model_module
    from edgerun.runtime.cli import main as run_main

    def prepacking(model):
        try:
            return model.session.get_session_options().get_session_config_entry("session.disable_prepacking")
        except RuntimeError:  # onnxruntime: no such entry set, i.e. its default (prepacking on)
            return ""

    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    packed = Model.load(model_file, SessionConfig(provider="cpu"))
    unpacked = Model.load(model_file, SessionConfig(provider="cpu", prepack=False))
    assert prepacking(unpacked) == "1"
    np.testing.assert_allclose(unpacked.run(x), packed.run(x), atol=1e-6)

    loaded = []
    real_load = Model.load.__func__

    def spy(cls, *args, **kwargs):
        loaded.append(real_load(cls, *args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(model_module.Model, "load", classmethod(spy))
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((28, 28), np.uint8))
    assert run_main([str(model_file), "--source", str(tmp_path / "0.png"), "--no-tune"]) == 0
    assert run_main([str(model_file), "--source", str(tmp_path), "--no-tune"]) == 0  # a folder: many runs
    assert [prepacking(m) for m in loaded] == ["1", ""]


def test_a_tune_cache_that_is_not_text_is_a_clear_error(tmp_path):
    """A binary file where the cache should be (a PNG given as --cache by mistake) is the same
    clear TuningCacheError as a damaged JSON file, not a UnicodeDecodeError."""
    from edgerun.runtime.tuning import TuningCacheError, read_cache

    cache = tmp_path / "tune.json"
    cache.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(TuningCacheError, match="cannot be read \\(not UTF-8 text\\); delete it"):
        read_cache(cache)


def test_a_graph_file_given_by_hand_is_not_replaced_by_the_tuned_one(model_file, cache, tmp_path, caplog):
    """edgerun.load(graph=...) names the file to open; a tuned graph must not take its place."""
    import edgerun

    tuned_graph = tmp_path / "tuned.onnx"
    tuned_graph.write_bytes(model_file.read_bytes())
    tuning.record(model_file, sha256_file(model_file), "cpu", {1: settings(graph_file=str(tuned_graph))})
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(model_file.read_bytes())
    config, _ = tuning.tuned_config(model_file, 1, SessionConfig(graph=str(mine)), keep=("graph",))
    assert config.graph == str(mine)
    assert tuning.tuned_config(model_file, 1, SessionConfig())[0].graph == str(tuned_graph)
    config, _ = tuning.tuned_config(
        model_file, 1, SessionConfig(graph=str(mine), optimization="basic"), keep=("graph", "optimization")
    )
    assert (config.graph, config.optimization) == (str(mine), "basic")
    with caplog.at_level(logging.INFO, logger="edgerun"), edgerun.load(model_file, provider="cpu", graph=str(mine)):
        pass
    assert "opening the tuned graph mine.onnx" in caplog.text and "tuned.onnx" not in caplog.text


def test_a_cache_from_a_newer_edgerun_is_kept_not_deleted(cache):
    """Deleting it would destroy the newer edgerun's measurements: this one says to use its own."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"schema": tuning.SCHEMA + 1, "machines": {}}))
    with pytest.raises(TuningCacheError, match=r"a newer edgerun wrote it: keep it .*EDGERUN_TUNE_CACHE") as info:
        tuning.read_cache(cache)
    assert "delete" not in str(info.value)
    cache.write_text(json.dumps({"schema": "x", "machines": {}}))
    with pytest.raises(TuningCacheError, match="delete it"):
        tuning.read_cache(cache)
