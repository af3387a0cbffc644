from __future__ import annotations

import json

import numpy as np
import pytest

from edgerun.train import cli
from edgerun.train.fit import TrainConfig, train


def test_train_cli_writes_model_and_card(mnist_dir, tmp_path, capsys):
    code = cli.main(
        [
            "mnist_cnn",
            "--data-dir",
            str(mnist_dir),
            "--epochs",
            "2",
            "--limit",
            "1000",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and str(tmp_path / "mnist_cnn.keras") in out
    card = json.loads((tmp_path / "mnist_cnn.json").read_text())
    assert card["name"] == "mnist_cnn" and card["task"] == "classify"
    assert card["classes"] == [str(d) for d in range(10)]
    assert card["params"] == 1_199_882
    assert card["data"]["train"]["samples"] == 1000
    assert card["data"]["test"]["samples"] == 5000
    assert card["data"]["train"]["files"][0].endswith("train-images-idx3-ubyte.gz")
    assert card["training"]["optimizer"] == "adadelta" and card["training"]["learning_rate"] == 1.0
    assert card["training"]["epochs"] == 2 and card["seed"] == 0
    assert card["command"].startswith("edgerun train mnist_cnn")
    # Two epochs on 1,000 images with the book's Adadelta(1.0) already learns something real.
    assert card["test"]["accuracy"] > 0.5  # chance is 0.1


def test_seeded_runs_repeat(mnist_dir, tmp_path):
    import keras

    weights = []
    for run in ("a", "b"):
        result = train(
            TrainConfig("mnist_small", data_dir=str(mnist_dir), epochs=1, limit=256, seed=7, out=tmp_path / run)
        )
        weights.append(keras.models.load_model(result.model_path).get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fcn_training_converts_the_shifted_cnn(mnist_dir, tmp_path):
    result = train(
        TrainConfig("mnist_fcn", data_dir=str(mnist_dir), epochs=1, limit=200, shifted_copies=1, out=tmp_path)
    )
    card = result.card
    assert card["task"] == "localize" and card["input"]["shape"] == [None, None, 1]
    assert card["training"]["train_images"] == 400 and card["training"]["shifted_copies"] == 1
    assert card["test"]["samples"] == 5000
    # the converted FCN answers for every test digit through its 1x1 map, as the CNN would
    assert 0.1 < card["test"]["accuracy"] <= 1.0 and card["test"]["loss"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuchmodel"], "unknown model 'nosuchmodel'; known models: mnist_cnn"),
        (["fashion_cnn", "--data-dir", "{fashion}"], "train split is missing"),
        (["mnist_cnn", "--data-dir", "/nonexistent/dir"], "does not exist"),
        (["resnet50", "--weights", "/nonexistent/w.h5"], "does not exist"),
    ],
)
def test_bad_requests_get_one_clear_line(argv, message, fashion_dir, tmp_path, capsys):
    argv = [a.format(fashion=fashion_dir) for a in argv] + ["--out", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_weights_are_for_resnet50_only(capsys):
    """--weights on a model that is trained, not built from weights, was silently ignored."""
    with pytest.raises(SystemExit) as info:
        cli.main(["mnist_cnn", "--weights", "imagenet"])
    assert info.value.code == 2 and "--weights is for resnet50" in capsys.readouterr().err


def test_bad_numbers_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["mnist_cnn", "--epochs", "0"])
    assert info.value.code == 2
    assert "expected a number of at least 1, got 0" in capsys.readouterr().err


def test_a_localizer_can_start_from_its_trained_cnn_with_the_same_holdout(mnist_dir, tmp_path):
    import keras

    cnn = train(TrainConfig("mnist_small", data_dir=str(mnist_dir), epochs=1, limit=300, holdout=100, out=tmp_path))
    # the book recipe keeps the held-out images apart too when asked, the same ones as the field recipe
    assert cnn.card["training"]["train_digits"] == 200 and cnn.card["training"]["holdout"]["count"] == 100
    start = keras.models.load_model(cnn.model_path).get_weights()
    fcn = train(
        TrainConfig(
            "mnist_small_fcn", data_dir=str(mnist_dir), epochs=1, limit=300, holdout=100, recipe="field",
            init=str(cnn.model_path), out=tmp_path / "fcn",
        )
    )  # fmt: skip
    training = fcn.card["training"]
    assert training["holdout"]["indices"] == cnn.card["training"]["holdout"]["indices"]
    assert training["init"]["path"] == str(cnn.model_path) and len(training["init"]["sha256"]) == 64
    assert fcn.card["test"]["accuracy"] > 0.1
    # what --init does before training: the CNN the localizer is made from gets the trained weights
    from edgerun.train.fit import _start_from
    from edgerun.train.models import create_model

    fresh = create_model("mnist_small")
    _start_from(fresh, str(cnn.model_path))
    for a, b in zip(fresh.get_weights(), start, strict=True):
        np.testing.assert_array_equal(a, b)


def test_init_must_be_a_model_of_the_same_architecture(mnist_dir, tmp_path, capsys):
    other = train(TrainConfig("mnist_cnn", data_dir=str(mnist_dir), epochs=1, limit=64, out=tmp_path))
    argv = ["mnist_small_fcn", "--recipe", "field", "--data-dir", str(mnist_dir), "--limit", "64", "--holdout", "8"]
    assert cli.main([*argv, "--init", str(other.model_path), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "has weights of shapes" in err and "same architecture" in err and "Traceback" not in err
    assert cli.main([*argv, "--init", str(tmp_path / "none.keras"), "--out", str(tmp_path / "b")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "text.keras").write_text("not a model")
    assert cli.main([*argv, "--init", str(tmp_path / "text.keras"), "--out", str(tmp_path / "c")]) == 2
    assert "is not a .keras file" in capsys.readouterr().err


def test_outputs_are_checked_before_training(mnist_dir, tmp_path, capsys):
    """'--init M/mnist_cnn.keras --out M' once trained and then wrote over the model it started
    from, and an --out that is a file failed only after the training; both are refused first."""
    pytest.importorskip("tensorflow", reason="needs the train extra")
    import shutil
    from pathlib import Path

    committed = Path(__file__).resolve().parents[2] / "models" / "mnist_cnn.keras"
    if not committed.is_file():
        pytest.skip("the committed mnist_cnn.keras is missing (make models)")
    start = tmp_path / "m" / "mnist_cnn.keras"
    start.parent.mkdir()
    shutil.copy(committed, start)
    before = start.read_bytes()
    argv = ["mnist_cnn", "--data-dir", str(mnist_dir), "--epochs", "1", "--limit", "50"]
    assert cli.main([*argv, "--init", str(start), "--out", str(start.parent)]) == 2
    assert "trained model" in capsys.readouterr().err and start.read_bytes() == before
    (tmp_path / "file").write_text("x")
    assert cli.main([*argv, "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
