"""Graph variants (export/variants.py): the same answers from another graph, and how tune and the
runtime use them."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgerun.bench import tune
from edgerun.export.variants import dense_as_conv
from edgerun.runtime import tuning
from edgerun.runtime.model import Model, SessionConfig


def _run(model, x):
    session = ort.InferenceSession(
        model if isinstance(model, bytes) else str(model), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_dense_as_conv_gives_the_same_answers(mnist_cnn, mnist_test, tmp_path):
    proto = onnx.load(str(mnist_cnn))
    assert dense_as_conv(proto) == 1
    onnx.checker.check_model(proto)
    ops = [n.op_type for n in proto.graph.node]
    assert "MatMul" in ops and ops.count("Conv") == 3  # the first Dense is a Conv now, the last stays
    kernels = [list(a.ints) for n in proto.graph.node for a in n.attribute if a.name == "kernel_shape"]
    assert [12, 12] in kernels
    # its Relu moved up beside it, where onnxruntime fuses it into the Conv: no Relu node remains
    optimized = ort.SessionOptions()
    optimized.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(proto.SerializeToString(), optimized, providers=["CPUExecutionProvider"])
    assert "Relu" not in [n.op_type for n in onnx.load(optimized.optimized_model_filepath).graph.node]
    assert {p.key for p in proto.metadata_props} == {p.key for p in onnx.load(str(mnist_cnn)).metadata_props}
    x = (mnist_test[0][:5, :, :, None] / 255.0).astype(np.float32)
    for batch in (1, 5):
        np.testing.assert_allclose(_run(proto.SerializeToString(), x[:batch]), _run(mnist_cnn, x[:batch]), atol=1e-6)


def test_a_graph_without_the_pattern_is_left_alone(mnist_fcn):
    proto = onnx.load(str(mnist_fcn))
    before = proto.SerializeToString()
    assert dense_as_conv(proto) == 0
    assert proto.SerializeToString() == before


def test_tune_keeps_a_variant_only_where_a_batch_size_runs_it(mnist_cnn, tmp_path):
    cache = tmp_path / "tune.json"
    argv = [str(mnist_cnn), "--batch", "1,2", "--seconds", "0.01", "--rounds", "2", "--cache", str(cache)]
    assert tune.main(argv) == 0
    entries = json.loads(cache.read_text())["machines"]
    batches = next(iter(entries.values()))["models"].popitem()[1]["batches"].values()
    used = {b["graph_file"] for b in batches if b["graph_file"]}
    files = set(map(str, (tmp_path / "graphs").glob("*.onnx"))) if (tmp_path / "graphs").exists() else set()
    assert files == used  # a variant no batch size runs is not kept
    for b in batches:  # a variant, or the model itself as onnxruntime optimised it here (level all)
        if b["graph"] != "model" or b["optimization"] == "all":
            assert f".{b['graph']}." in b["graph_file"] and b["graph_file"].endswith(".onnx")
        else:  # a tuned level below all: the model itself, optimised at that level when opened
            assert b["graph_file"] is None


def test_tune_keeps_the_model_optimised_and_the_runtime_opens_it_as_it_is(mnist_cnn, tmp_path, monkeypatch, caplog):
    """Runs the tuned settings send to the model itself open its optimised copy with optimisation
    off (onnxruntime does not redo it: README, Tuning), answer the same, and without the copy run
    the model with a warning."""
    cache = tmp_path / "tune.json"
    monkeypatch.setenv(tuning.ENV_CACHE, str(cache))
    argv = [str(mnist_cnn), "--batch", "8", "--seconds", "0.01", "--rounds", "2", "--margin", "99"]
    assert tune.main([*argv, "--cache", str(cache)]) == 0
    entry = tuning.tuned_settings_for(mnist_cnn, 8, "cpu")
    assert entry.graph == "model" and ".model." in entry.graph_file  # a 99% margin keeps the defaults
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    plain = Model.load(mnist_cnn, SessionConfig(provider="cpu"))
    tuned = Model.load(mnist_cnn, SessionConfig(provider="cpu"), batch=8, tune=True)
    off = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert tuned.session.get_session_options().graph_optimization_level == off
    np.testing.assert_allclose(tuned.run(x), plain.run(x), atol=1e-6)
    Path(entry.graph_file).unlink()
    with caplog.at_level(logging.WARNING):
        gone = Model.load(mnist_cnn, SessionConfig(provider="cpu"), batch=8, tune=True)
    assert "is gone" in caplog.text
    assert gone.session.get_session_options().graph_optimization_level != off
    np.testing.assert_allclose(gone.run(x), plain.run(x), atol=1e-6)


def test_a_dry_run_leaves_no_variant_behind(mnist_cnn, tmp_path):
    argv = [str(mnist_cnn), "--batch", "1", "--seconds", "0.01", "--rounds", "1", "--cache", str(tmp_path / "t.json")]
    assert tune.main([*argv, "--dry-run"]) == 0
    assert not (tmp_path / "graphs").exists() and not (tmp_path / "t.json").exists()


def test_the_runtime_opens_the_tuned_graph_and_falls_back_without_it(mnist_cnn, tmp_path, caplog):
    variants = tune.write_variants(mnist_cnn, tune.graph_paths(mnist_cnn, tmp_path / "graphs"))
    assert list(variants) == ["dense-conv"]
    settings = tuning.TunedSettings(2, True, "all", "sequential", False, graph="dense-conv",
                                    graph_file=str(variants["dense-conv"]))  # fmt: skip
    x = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
    plain = Model.load(mnist_cnn, SessionConfig(provider="cpu"))
    with caplog.at_level(logging.INFO):
        tuned = Model.load(mnist_cnn, settings.apply(SessionConfig(provider="cpu")))
    assert "opening the tuned graph" in caplog.text and tuned.path == mnist_cnn
    assert tuned.metadata == plain.metadata
    np.testing.assert_allclose(tuned.run(x), plain.run(x), atol=1e-6)
    variants["dense-conv"].unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = Model.load(mnist_cnn, settings.apply(SessionConfig(provider="cpu")))
    assert "is gone; running the model itself" in caplog.text
    np.testing.assert_allclose(again.run(x), plain.run(x), atol=1e-6)
    assert "graph dense-conv" in settings.label()


def test_a_damaged_variant_gives_way_to_the_model(mnist_cnn, tmp_path, caplog):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    settings = tuning.TunedSettings(2, True, "all", "sequential", False, graph="dense-conv", graph_file=str(broken))
    with caplog.at_level(logging.WARNING):
        model = Model.load(mnist_cnn, settings.apply(SessionConfig(provider="cpu")))
    assert "cannot be opened" in caplog.text and "running the model itself" in caplog.text
    assert model.run(np.zeros((1, 28, 28, 1), np.float32)).shape == (1, 10)


def test_pruning_keeps_every_variant_an_entry_names(mnist_cnn, tmp_path):
    cache = tmp_path / "tune.json"
    variants = tune.write_variants(mnist_cnn, tune.graph_paths(mnist_cnn, tuning.graphs_dir(cache)))
    named = variants["dense-conv"]
    stray = named.with_name("0" * 64 + ".dense-conv.machine.onnx")  # an earlier model's, no longer named
    stray.write_bytes(named.read_bytes())
    os.utime(stray, (time.time() - tune.STALE_GRAPH_S - 60,) * 2)
    running = named.with_name("1" * 64 + ".dense-conv.machine.onnx")  # a tune of another model, running now
    running.write_bytes(named.read_bytes())
    batch1 = tuning.TunedSettings(2, True, "all", "sequential", False, graph="dense-conv", graph_file=str(named))
    tuning.record(mnist_cnn, "a" * 64, "cpu", {1: batch1}, cache)
    # a later tune of batch 8 alone keeps batch 1's entry, so its variant stays
    tuning.record(mnist_cnn, "a" * 64, "cpu", {8: tuning.TunedSettings(2, True, "all", "sequential", False)}, cache)
    assert tune.prune_graphs(cache, "a" * 64) == [stray]
    assert named.is_file() and running.is_file() and not stray.exists()


def test_variants_given_to_tune_run_as_given_beside_a_tuned_graph(mnist_cnn, tmp_path):
    from onnx import numpy_helper

    proto = onnx.load(str(mnist_cnn))  # the same graph with other weights: another model
    weight = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 3, weight.name))
    other = tmp_path / "other.onnx"
    onnx.save(proto, str(other))
    variant = tune.write_variants(mnist_cnn, tune.graph_paths(mnist_cnn, tmp_path / "graphs"))["dense-conv"]
    chosen = tuning.TunedSettings(2, True, "all", "sequential", False, graph="dense-conv", graph_file=str(variant))
    results = [tune.BatchResult(1, tune.default_settings(2), chosen, [])]
    (line,) = tune.compare_variants(mnist_cnn, [other], results, tune.TuneConfig(seconds=0.01, rounds=1))
    assert f"{other} differs" in line  # not the tuned dense-conv graph standing in for it
