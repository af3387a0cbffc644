"""``edgerun train NAME``: train a registry model the book's way and write it with its card."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from edgerun.runtime.argtypes import Parser, positive_int, print_error

from .data import ENV_VAR, DataError
from .fit import RECIPES, TrainConfig, TrainError, train
from .models import MODELS, UnknownModelError

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="edgerun train",
        description="Train a registry model with the book's recipe; writes OUT/NAME.keras and "
        "OUT/NAME.json (classes, input and preprocessing spec, data provenance, test accuracy).",
    )
    parser.add_argument("name", help=f"model to train: {', '.join(MODELS)}")
    parser.add_argument(
        "--data-dir",
        help=f"directory of IDX gzip files (default: ${ENV_VAR}, then the Keras cache, then a download)",
    )
    parser.add_argument("--epochs", type=positive_int, help="epochs (default: the book's)")
    parser.add_argument("--batch-size", type=positive_int, help="batch size (default: the book's)")
    parser.add_argument("--limit", type=positive_int, help="train on a seeded random sample of N training images")
    parser.add_argument("--seed", type=int, default=0, help="random seed; seeded runs repeat (default 0)")
    parser.add_argument("--out", type=Path, default=Path("models"), help="output directory (default models/)")
    parser.add_argument(
        "--shifted-copies",
        type=int,
        help="add N randomly shifted copies of each training image (mnist_fcn default 4, others 0)",
    )
    parser.add_argument(
        "--recipe",
        choices=RECIPES,
        default="book",
        help="book: the book's exact recipe (default); field: augmented for camera pictures "
        "(scale, rotation, strokes, background, blur, noise, JPEG; negatives for mnist_fcn)",
    )
    parser.add_argument(
        "--holdout",
        type=int,
        help="training images kept apart to choose thresholds on (field localizers default 500, else 0); "
        "seeded, so a model trained to start another (--init) can keep the same ones apart",
    )
    parser.add_argument(
        "--init",
        help="start from a trained .keras model of the same architecture (a localizer: the CNN it is "
        "made from), e.g. mnist_small trained on clean digits before its field recipe",
    )
    parser.add_argument(
        "--weights",
        help="resnet50 only: 'imagenet' (downloads; the default), a local weights file, or 'none' (random)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.weights is not None and args.name != "resnet50":
        parser.error(f"--weights is for resnet50 (it is built from weights, not trained); {args.name} is trained here")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ banner quiet
    argv_list = sys.argv[1:] if argv is None else ["train", *argv]
    config = TrainConfig(
        name=args.name,
        data_dir=args.data_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        limit=args.limit,
        seed=args.seed,
        out=args.out,
        shifted_copies=args.shifted_copies,
        weights=args.weights or "imagenet",
        recipe=args.recipe,
        holdout=args.holdout,
        init=args.init,
        command=shlex.join(["edgerun", *argv_list]),
    )
    try:
        result = train(config)
    except (UnknownModelError, TrainError, DataError) as exc:
        print_error("edgerun train", exc)
        return 2
    except ModuleNotFoundError as exc:
        print(
            f"edgerun train: {exc.name} is not installed; install the training extra: pip install 'edgerun[train]'",
            file=sys.stderr,
        )
        return 2
    card = result.card
    lines = [f"model   {result.model_path}", f"card    {result.card_path}", f"params  {card['params']:,}"]
    if card.get("test"):
        test = card["test"]
        lines.append(f"test    accuracy {test['accuracy']:.4f} loss {test['loss']:.4f} on {test['samples']} images")
        lines.append(
            f"train   {card['training']['train_images']} images, {card['training']['epochs']} epochs, "
            f"{card['training']['seconds']:.1f}s"
        )
    print("\n".join(lines))
    return 0
