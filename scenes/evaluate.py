"""The digit models measured on field pictures and on the book's scenes.

``python -m edgerun.scenes.evaluate --fcn FCN.onnx --cnn CNN.onnx --data-dir DIR`` (``make
field-eval``) reports, as JSON and one line per figure:

- localizer precision and recall on pages of digits, light paper and dark background apart;
- localizer precision and recall on the book's scenes;
- classifier accuracy on 640x480 photos of one digit, and on the same digits clean;
- frames per second of the whole 640x480 localisation path (grey conversion, background
  normalisation, proposals, model, suppression), the model on ``--threads`` threads.

Pictures are made from the MNIST split given (``test`` for acceptance figures; ``train`` to
choose settings, never the test split). Every figure goes through the runtime's one path,
``edgerun.load(model).predict(pictures)``: the localizer's head is the one its metadata chooses
(``PageLocalizeHead`` for the bundled, page-trained ``mnist_fcn``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgerun.runtime.api import load
from edgerun.runtime.argtypes import print_error
from edgerun.runtime.idx import IdxError, read_idx

from . import book
from . import field as scenes_field
from .score import Score, match

logger = logging.getLogger(__name__)

SPLITS = {"train": "train", "test": "t10k"}


class EvaluateError(Exception):
    """Missing data or models; the message says what to give."""


def load_digits(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (N, 28, 28) uint8 and labels of ``split`` from a directory of IDX files."""
    if split not in SPLITS:
        raise EvaluateError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    root = Path(data_dir)
    for directory in (root, root / "mnist"):
        images = directory / f"{SPLITS[split]}-images-idx3-ubyte.gz"
        if images.is_file():
            try:
                return read_idx(images), read_idx(directory / f"{SPLITS[split]}-labels-idx1-ubyte.gz").astype(np.int64)
            except IdxError as exc:
                raise EvaluateError(str(exc)) from exc
    raise EvaluateError(f"no MNIST {split} IDX files in {root} or {root / 'mnist'}; give --data-dir")


def score_pictures(model, pictures) -> Score:
    """Precision and recall of a localize model over ``pictures`` (each with its truth)."""
    total = Score()
    for picture in pictures:
        total.add(match(model.predict([picture.image])[0].detections or [], picture.truth))
    return total


def book_scenes(digits: np.ndarray, labels: np.ndarray, count: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield book.make_scene(digits, labels, rng)


def photo_accuracy(model, digits: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Accuracy of a classifier on field photos of ``digits`` and on the digits themselves."""
    photos = list(scenes_field.photos(digits, labels, seed))
    right_photo = sum(
        r.class_id == p.truth[0].label for p, r in zip(photos, model.predict([p.image for p in photos]), strict=True)
    )
    clean = np.array([r.class_id for r in model.predict(list(digits), batch=256)])
    return {
        "photos": len(digits),
        "photo_accuracy": round(right_photo / len(digits), 4),
        "clean_accuracy": round(float(np.mean(clean == labels)), 4),
    }


def frames_per_second(model, pictures: list, rounds: int = 3) -> dict:
    """Median fps of the whole localisation path (``predict``: background, proposals, model,
    suppression) over ``pictures``, ``rounds`` passes after a warm-up."""
    for picture in pictures[:2]:
        model.predict([picture.image])
    times = []
    for _ in range(rounds):
        for picture in pictures:
            start = time.perf_counter()
            model.predict([picture.image])
            times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {"frames": len(times), "median_ms": round(median * 1000, 2), "fps": round(1 / median, 1)}


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=5).stdout
        name = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "")
    except (OSError, subprocess.SubprocessError):
        name = ""
    import os

    return f"{name or platform.processor() or 'unknown CPU'}, {os.cpu_count()} logical CPUs"


def holdout_digits(card_path: Path, digits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training images a field-recipe model kept apart (its card's ``training.holdout``)."""
    try:
        held = json.loads(Path(card_path).read_text(encoding="utf-8"))["training"]["holdout"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EvaluateError(
            f"{card_path} has no training.holdout ({type(exc).__name__}: {exc}); "
            "give the card of a model trained with --recipe field"
        ) from exc
    if held.get("limit") is not None:
        raise EvaluateError(f"{card_path} was trained on a --limit sample; its holdout indices need that sample")
    indices = np.asarray(held["indices"], np.int64)
    return digits[indices], labels[indices]


def sweep_thresholds(path, digits, labels, pages: int, seed: int, thresholds, options: dict) -> list[dict]:
    """Precision and recall on light and dark pages for each threshold (choose on training digits)."""
    rows = []
    for threshold in thresholds:
        model = load(path, threshold=threshold, **options)
        row: dict = {"threshold": threshold}
        for background in scenes_field.BACKGROUNDS:
            row[background] = score_pictures(
                model, scenes_field.pages(digits, labels, pages, seed, background)
            ).to_dict()
        row["worst"] = min(min(row[b]["precision"], row[b]["recall"]) for b in scenes_field.BACKGROUNDS)
        rows.append(row)
        logger.info("threshold %.3f: %s", threshold, row)
    return rows


def _localizer_card(card_path: Path) -> dict:
    """The card, if it is a page localizer's (it has a ``localize`` block to record into)."""
    try:
        card = json.loads(Path(card_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvaluateError(f"cannot read the card {card_path}: {exc}") from exc
    if not isinstance(card, dict) or not isinstance(card.get("localize"), dict):
        raise EvaluateError(f"{card_path} has no localize block: only a page localizer's card takes a threshold")
    return card


def record_threshold(card_path: Path, report: dict, also: Path | None = None) -> None:
    """Write the sweep's best threshold into the model card's ``localize`` block (``edgerun
    export`` carries it into the ONNX metadata) and the sweep beside it, as ``threshold_choice``.

    ``also``: the card of the same recipe refit on all training images (``--holdout 0``), which
    keeps nothing apart to choose on; it gets the same threshold and says where it was chosen.
    """
    choice = {
        "command": report["command"],
        "digits": report["digits"],
        "rule": "the highest threshold with the best worst-of(precision, recall) over light and dark pages",
        "sweep": report["sweep"],
    }
    cards = [(Path(card_path), choice)]
    if also is not None:
        cards.append((Path(also), {**choice, "chosen_with": str(card_path), "on": "the images that model kept apart"}))
    loaded = [(path, _localizer_card(path), block) for path, block in cards]  # both readable before either is written
    from edgerun.runtime.files import write_json_atomic

    for path, card, block in loaded:
        card["localize"]["threshold"] = report["best_threshold"]
        card["threshold_choice"] = block
        write_json_atomic(path, card)
        logger.info("%s: localize threshold %s recorded", path, report["best_threshold"])


def evaluate(args: argparse.Namespace) -> dict:
    digits, labels = load_digits(args.data_dir, args.split)
    if args.record and not (args.sweep and args.holdout):
        raise EvaluateError("--record writes the sweep's best threshold into the --holdout card: give both")
    if args.also and not args.record:
        raise EvaluateError("--also goes with --record: it copies the recorded threshold into a second card")
    if args.record:
        _localizer_card(args.holdout)  # refused before the sweep, not after it
        if args.also:
            _localizer_card(args.also)
    if args.holdout:
        if args.split != "train":
            raise EvaluateError("--holdout selects training images: use it with --split train")
        digits, labels = holdout_digits(args.holdout, digits, labels)
    options = {"provider": "cpu", "threads": args.threads, "spinning": False, "tune": False}
    report: dict = {
        "split": args.split,
        "seed": args.seed,
        "machine": machine(),
        "command": " ".join(["python -m edgerun.scenes.evaluate", *(args.argv or [])]),
    }
    report["digits"] = int(len(digits))
    if args.fcn and args.sweep:
        thresholds = [float(t) for t in args.sweep.split(",")]
        rows = sweep_thresholds(args.fcn, digits, labels, args.pages, args.seed, thresholds, options)
        report["sweep"] = rows
        report["best_threshold"] = max(rows, key=lambda r: (r["worst"], r["threshold"]))["threshold"]
        if args.record:
            record_threshold(args.holdout, report, args.also)
        return report
    if args.fcn:
        fcn = load(args.fcn, threshold=args.threshold, **options)
        report["fcn"] = str(args.fcn)
        report["threshold"] = args.threshold or "the model's"
        for background in scenes_field.BACKGROUNDS:
            pictures = scenes_field.pages(digits, labels, args.pages, args.seed, background)
            report[f"pages_{background}"] = {"pictures": args.pages, **score_pictures(fcn, pictures).to_dict()}
        if args.book:
            report["book"] = {
                "pictures": args.book,
                **score_pictures(fcn, book_scenes(digits, labels, args.book, args.seed)).to_dict(),
            }
        if args.fps_frames:
            sample = [
                *scenes_field.pages(digits, labels, args.fps_frames // 2, args.seed + 1, "light"),
                *scenes_field.pages(digits, labels, args.fps_frames - args.fps_frames // 2, args.seed + 1, "dark"),
            ]
            report["fps_640x480"] = {"threads": args.threads, **frames_per_second(fcn, sample)}
    if args.cnn:
        cnn = load(args.cnn, **options)
        n = min(args.photos, len(digits))
        report["cnn"] = str(args.cnn)
        report["photos"] = photo_accuracy(cnn, digits[:n], labels[:n], args.seed)
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edgerun.scenes.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="directory with MNIST IDX files (or an mnist/ sub-directory)")
    p.add_argument("--split", default="test", choices=tuple(SPLITS), help="digits the pictures are made of")
    p.add_argument("--fcn", type=Path, help="localizer ONNX model (skip localizer figures without it)")
    p.add_argument("--cnn", type=Path, help="classifier ONNX model for the photos (skip without it)")
    p.add_argument("--holdout", type=Path, help="with --split train: only the images this model card kept apart")
    p.add_argument(
        "--sweep", help="comma-separated thresholds: report pages per threshold and the best (no test data!)"
    )
    p.add_argument(
        "--record", action="store_true", help="with --sweep: write the best threshold into the --holdout card"
    )
    p.add_argument(
        "--also",
        type=Path,
        help="with --record: write the same threshold into this card too (the recipe refit on all training images)",
    )
    p.add_argument("--threshold", type=float, help="localizer threshold (default: the model's own)")
    p.add_argument("--pages", type=int, default=100, help="pages per background (default 100)")
    p.add_argument("--book", type=int, default=100, help="book scenes (default 100)")
    p.add_argument("--photos", type=int, default=1000, help="photos of one digit, the first N digits (default 1000)")
    p.add_argument("--fps-frames", type=int, default=20, help="640x480 pages timed for fps (0: skip)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the report here")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        report = evaluate(args)
    except EvaluateError as exc:
        print_error("evaluate", exc)
        return 2
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
