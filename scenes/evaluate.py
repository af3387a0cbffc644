"""The digit models measured on field pictures and on the book's scenes.

``python -m edgerun.scenes.evaluate --fcn FCN.onnx --cnn CNN.onnx --data-dir DIR`` (``make
field-eval``) reports, as JSON and one line per figure:

- localizer precision and recall on pages of digits, light paper and dark background apart;
- localizer precision and recall on the book's scenes;
- classifier accuracy on 640x480 photos of one digit, and on the same digits clean;
- frames per second of the whole 640x480 localisation path (grey conversion, background
  normalisation, proposals, model, suppression), the model on ``--threads`` threads.

Pictures are made from the MNIST split given (``test`` for acceptance figures; ``train`` to
choose settings, never the test split). The localizer path is :class:`PageLocalizer`
(``mode="proposals"``), or the book's way for comparison (``mode="book"``: the FCN over the
whole picture after ``recipe_fcn``, then ``postprocess.localize``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgerun.runtime.idx import IdxError, read_idx
from edgerun.runtime.multiscale import MultiScaleConfig, localize_proposals, localize_pyramid, relabel
from edgerun.runtime.pages import BackgroundConfig, ProposalConfig, ink_proposals, normalise_background
from edgerun.runtime.preprocess import to_gray

from . import book
from . import field as scenes_field
from .score import Score, match

logger = logging.getLogger(__name__)

SPLITS = {"train": "train", "test": "t10k"}
MODES = ("proposals", "pyramid", "book")


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


@dataclass(frozen=True)
class PageSettings:
    """Everything the page localizer is set by (defaults: the values chosen on training pages)."""

    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    multiscale: MultiScaleConfig = field(default_factory=MultiScaleConfig)


class PageLocalizer:
    """Frame -> digits: grey, background normalised, ink proposals, FCN on crops, suppression.

    ``model`` is an :class:`edgerun.runtime.model.Model` (or anything with ``run(batch)``) whose
    input is a grey picture scaled to [0, 1], as every MNIST model here.
    """

    def __init__(
        self, model, settings: PageSettings = PageSettings(), mode: str = "proposals", classifier=None
    ) -> None:
        if mode not in MODES:
            raise EvaluateError(f"mode must be one of {MODES}, got {mode!r}")
        self.model, self.settings, self.mode, self.classifier = model, settings, mode, classifier
        if mode == "book":
            from edgerun.runtime.preprocess import preprocessor

            self._prep = preprocessor(model.metadata.preprocessing)

    def __call__(self, frame: np.ndarray):
        if self.mode == "book":
            from edgerun.runtime.postprocess import LocalizeConfig, localize

            heat = self.model.run(self._prep(frame)[None])[0]
            return localize(heat, self.model.metadata.classes, LocalizeConfig())
        ink = normalise_background(to_gray(frame), self.settings.background).ink
        if self.mode == "pyramid":
            return localize_pyramid(self.model.run, ink, self.settings.multiscale)
        proposals = ink_proposals(ink, self.settings.proposals)
        found = localize_proposals(self.model.run, ink, proposals, self.settings.multiscale)
        if self.classifier is not None:
            found = relabel(self.classifier.run, ink, found, proposals)
        return found


def score_pictures(localizer, pictures) -> Score:
    total = Score()
    for picture in pictures:
        total.add(match(localizer(picture.image), picture.truth))
    return total


def book_scenes(digits: np.ndarray, labels: np.ndarray, count: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield book.make_scene(digits, labels, rng)


def photo_accuracy(model, digits: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Accuracy of a classifier on field photos of ``digits`` and on the digits themselves."""
    from edgerun.runtime.preprocess import preprocessor

    prep = preprocessor(model.metadata.preprocessing)
    right_photo = 0
    for picture in scenes_field.photos(digits, labels, seed):
        right_photo += int(model.run(prep(picture.image)[None])[0].argmax() == picture.truth[0].label)
    clean = np.concatenate(
        [model.run(np.stack([prep(d) for d in digits[i : i + 256]])) for i in range(0, len(digits), 256)]
    )
    return {
        "photos": len(digits),
        "photo_accuracy": round(right_photo / len(digits), 4),
        "clean_accuracy": round(float(np.mean(clean.argmax(axis=1) == labels)), 4),
    }


def frames_per_second(localizer, pictures: list, rounds: int = 3) -> dict:
    """Median fps of the whole localisation path over ``pictures``, ``rounds`` passes after a warm-up."""
    for picture in pictures[:2]:
        localizer(picture.image)
    times = []
    for _ in range(rounds):
        for picture in pictures:
            start = time.perf_counter()
            localizer(picture.image)
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


def sweep_thresholds(model, digits, labels, pages: int, seed: int, thresholds, settings: PageSettings) -> list[dict]:
    """Precision and recall on light and dark pages for each threshold (choose on training digits)."""
    from dataclasses import replace

    rows = []
    for threshold in thresholds:
        chosen = replace(settings, multiscale=replace(settings.multiscale, threshold=threshold))
        localizer = PageLocalizer(model, chosen)
        row: dict = {"threshold": threshold}
        for background in scenes_field.BACKGROUNDS:
            row[background] = score_pictures(
                localizer, scenes_field.pages(digits, labels, pages, seed, background)
            ).to_dict()
        row["worst"] = min(min(row[b]["precision"], row[b]["recall"]) for b in scenes_field.BACKGROUNDS)
        rows.append(row)
        logger.info("threshold %.3f: %s", threshold, row)
    return rows


def evaluate(args: argparse.Namespace) -> dict:
    from edgerun.runtime.model import Model, SessionConfig

    digits, labels = load_digits(args.data_dir, args.split)
    if args.holdout:
        if args.split != "train":
            raise EvaluateError("--holdout selects training images: use it with --split train")
        digits, labels = holdout_digits(args.holdout, digits, labels)
    session = SessionConfig(provider="cpu", threads=args.threads, spinning=False)
    report: dict = {
        "split": args.split,
        "seed": args.seed,
        "machine": machine(),
        "command": " ".join(["python -m edgerun.scenes.evaluate", *(args.argv or [])]),
    }
    report["digits"] = int(len(digits))
    if args.fcn and args.sweep:
        fcn = Model.load(args.fcn, session)
        thresholds = [float(t) for t in args.sweep.split(",")]
        base = PageSettings(multiscale=MultiScaleConfig(margin=args.margin))
        rows = sweep_thresholds(fcn, digits, labels, args.pages, args.seed, thresholds, base)
        report["sweep"] = rows
        report["best_threshold"] = max(rows, key=lambda r: (r["worst"], r["threshold"]))["threshold"]
        return report
    if args.fcn:
        fcn = Model.load(args.fcn, session)
        settings = PageSettings(multiscale=MultiScaleConfig(threshold=args.threshold, margin=args.margin))
        relabeller = Model.load(args.relabel, session) if args.relabel else None
        localizer = PageLocalizer(fcn, settings, mode=args.mode, classifier=relabeller)
        if args.relabel:
            report["relabel"] = str(args.relabel)
        report["fcn"] = str(args.fcn)
        report["mode"] = args.mode
        report["threshold"] = args.threshold
        for background in scenes_field.BACKGROUNDS:
            pictures = scenes_field.pages(digits, labels, args.pages, args.seed, background)
            report[f"pages_{background}"] = {"pictures": args.pages, **score_pictures(localizer, pictures).to_dict()}
        if args.book:
            report["book"] = {
                "pictures": args.book,
                **score_pictures(localizer, book_scenes(digits, labels, args.book, args.seed)).to_dict(),
            }
        if args.fps_frames:
            sample = [
                *scenes_field.pages(digits, labels, args.fps_frames // 2, args.seed + 1, "light"),
                *scenes_field.pages(digits, labels, args.fps_frames - args.fps_frames // 2, args.seed + 1, "dark"),
            ]
            report["fps_640x480"] = {"threads": args.threads, **frames_per_second(localizer, sample)}
    if args.cnn:
        cnn = Model.load(args.cnn, session)
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
    p.add_argument("--mode", default="proposals", choices=MODES)
    p.add_argument("--relabel", type=Path, help="a 28x28 classifier giving each found digit's class (two-stage)")
    p.add_argument("--threshold", type=float, default=MultiScaleConfig().threshold)
    p.add_argument("--margin", type=int, default=MultiScaleConfig().margin, help="model px of context around a crop")
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
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
