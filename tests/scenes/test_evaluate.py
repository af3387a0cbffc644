"""The field evaluation end to end on a few pictures, with the bundled models and real MNIST test digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgerun.scenes import evaluate

MODELS = Path(__file__).resolve().parents[2] / "models"
needs_models = pytest.mark.skipif(
    not (MODELS / "mnist_cnn.onnx").is_file() or not (MODELS / "mnist_fcn.onnx").is_file(),
    reason="bundled models missing (make models)",
)


@needs_models
@pytest.mark.parametrize("localizer", ["mnist_fcn", "mnist_small_fcn"])
def test_evaluate_reports_every_figure(localizer, mnist_dir, tmp_path, capsys):
    if not (MODELS / f"{localizer}.onnx").is_file():
        pytest.skip(f"bundled {localizer} missing (make models)")
    out = tmp_path / "field.json"
    code = evaluate.main(
        ["--data-dir", str(mnist_dir), "--fcn", str(MODELS / f"{localizer}.onnx"),
         "--cnn", str(MODELS / "mnist_cnn.onnx"),
         "--pages", "4", "--book", "3", "--photos", "40", "--fps-frames", "2", "--threshold", "0.9",
         "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    for key in ("pages_light", "pages_dark", "book"):
        figures = report[key]
        assert figures["hits"] + figures["missed"] > 10
        # The field-trained localizer on real test digits: a handful of pictures, a loose bar.
        assert figures["precision"] > 0.8 and figures["recall"] > 0.8, (key, figures)
    assert report["photos"]["photos"] == 40 and report["photos"]["photo_accuracy"] > 0.85
    assert report["fps_640x480"]["fps"] > 0 and report["split"] == "test"


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    assert evaluate.main(["--data-dir", str(tmp_path)]) == 2
    assert "no MNIST test IDX files" in capsys.readouterr().err


def test_holdout_needs_a_field_card(mnist_dir, tmp_path, capsys):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"training": {"recipe": "book"}}))
    assert evaluate.main(["--data-dir", str(mnist_dir), "--split", "train", "--holdout", str(card)]) == 2
    assert "has no training.holdout" in capsys.readouterr().err


@needs_models
def test_sweep_records_the_best_threshold_in_the_card(mnist_dir, tmp_path, capsys):
    card = tmp_path / "mnist_fcn.json"
    held = list(range(0, 400, 4))  # training images standing in for a model's held-out ones
    card.write_text(json.dumps({"localize": {"threshold": 0.5}, "training": {"holdout": {"indices": held}}}))
    argv = ["--data-dir", str(mnist_dir), "--split", "train", "--holdout", str(card), "--pages", "3",
            "--fcn", str(MODELS / "mnist_fcn.onnx"), "--sweep", "0.8,0.9"]  # fmt: skip
    refit = tmp_path / "refit" / "mnist_fcn.json"  # the same recipe on all training images: nothing kept apart
    refit.parent.mkdir()
    refit.write_text(json.dumps({"localize": {"threshold": 0.5}, "training": {"holdout": {"indices": []}}}))
    assert evaluate.main([*argv, "--record", "--also", str(refit)]) == 0
    report = json.loads(capsys.readouterr().out)
    written = json.loads(card.read_text())
    assert written["localize"]["threshold"] == report["best_threshold"] in (0.8, 0.9)
    assert written["threshold_choice"]["sweep"] == report["sweep"] and written["training"]["holdout"]["indices"] == held
    carried = json.loads(refit.read_text())
    assert carried["localize"]["threshold"] == report["best_threshold"]
    choice = carried["threshold_choice"]
    assert choice["chosen_with"] == str(card) and choice["sweep"] == report["sweep"]
    # --also copies a recorded choice: alone it has nothing to copy
    assert evaluate.main([*argv, "--also", str(refit)]) == 2
    assert "--also goes with --record" in capsys.readouterr().err
    # --record without a sweep has nothing to record
    assert evaluate.main(["--data-dir", str(mnist_dir), "--split", "train", "--holdout", str(card), "--record"]) == 2
    assert "--record writes the sweep's best threshold" in capsys.readouterr().err


def test_record_refuses_a_card_without_localize_before_sweeping(mnist_dir, tmp_path, capsys):
    card = tmp_path / "mnist_cnn.json"
    card.write_text(json.dumps({"training": {"holdout": {"indices": [1, 2, 3]}}}))
    argv = ["--data-dir", str(mnist_dir), "--split", "train", "--holdout", str(card), "--sweep", "0.8",
            "--fcn", str(tmp_path / "never-loaded.onnx"), "--record"]  # fmt: skip
    assert evaluate.main(argv) == 2
    assert "has no localize block" in capsys.readouterr().err
