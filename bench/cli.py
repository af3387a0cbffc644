"""``edgerun bench``: latency against batch size, peers in the same run, CI comparison."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edgerun.runtime.argtypes import positive_float, positive_int

logger = logging.getLogger(__name__)

EXIT_REGRESSION = 3


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"batch sizes must be 1 or more, got {text!r}")
    return values


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage like 15%, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"the threshold must be 0% or more, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .backends import PEERS

    p = argparse.ArgumentParser(
        prog="edgerun bench",
        description="Latency against batch size for ONNX models, with peer runtimes measured in the same "
        "run. Exit 0; 2 for bad arguments; 3 when --compare finds a regression past the threshold.",
    )
    p.add_argument("models", nargs="*", type=Path, help="ONNX models to measure")
    p.add_argument("--batch", type=_batches, default=(1, 2, 4, 8, 16, 32, 64), help="e.g. 1,2,4,8 (default 1..64)")
    p.add_argument("--provider", choices=("cpu", "cuda", "tensorrt"), default="cpu")
    p.add_argument("--warmup", type=int, default=5, help="warm-up runs, reported apart (default 5)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--iters", type=positive_int, help="timed runs per row")
    g.add_argument("--seconds", type=positive_float, help="time per row (default 1.0 s)")
    p.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="interleaved turns per backend and batch, so machine drift hits all alike (default 3)",
    )
    p.add_argument("--threads", type=positive_int, help="intra-op threads for every backend (default: all cores)")
    spin = p.add_mutually_exclusive_group()
    spin.add_argument("--no-spin", action="store_true", help="onnxruntime threads sleep when idle")
    spin.add_argument(
        "--spin",
        action="store_true",
        help="--pipeline only: let onnxruntime threads spin (off by default there: they "
        "would take the cores the decode and preprocessing threads need)",
    )
    p.add_argument(
        "--no-tune",
        action="store_true",
        help="ignore the tune cache (edgerun tune): edgerun runs with its defaults only",
    )
    p.add_argument("--vs", default="", help=f"peers, comma-separated: {','.join(PEERS)} (or 'all')")
    p.add_argument("--tflite", type=Path, help="TFLite twin (default: NAME.tflite beside the model)")
    p.add_argument("--keras", type=Path, help="Keras twin (default: NAME.keras beside the model)")
    p.add_argument("--json", type=Path, help="write the report as JSON (atomic)")
    p.add_argument("--markdown", type=Path, help="write the Markdown table")
    p.add_argument("--plot", type=Path, help="PNG plot (one per model: NAME appended when several)")
    p.add_argument("--compare", type=Path, help="baseline JSON; written from this run when missing")
    p.add_argument("--max-regression", type=_percent, default=15.0, help="allowed slow-down (default 15%%)")
    p.add_argument("--pipeline", type=Path, metavar="VIDEO", help="benchmark the run pipeline on this video")
    return p


def _validate(args, parser) -> None:
    from .backends import PEERS

    if not args.models:
        parser.error("give at least one ONNX model")
    import onnx

    from edgerun.runtime.model import ModelError, check_model_file

    for path in args.models:
        try:
            check_model_file(path)
            onnx.load(str(path), load_external_data=False)
        except ModelError as exc:
            parser.error(str(exc))
        except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and others
            parser.error(f"{path} is not an ONNX model ({type(exc).__name__}: {exc})")
    peers = list(PEERS) if args.vs.strip() == "all" else [v.strip() for v in args.vs.split(",") if v.strip()]
    unknown = [v for v in peers if v not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    args.peers = peers
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    if args.pipeline is not None and not args.pipeline.is_file():
        parser.error(f"--pipeline video {args.pipeline} does not exist")
    if args.compare is not None and args.compare.exists() and not args.compare.is_file():
        parser.error(f"--compare {args.compare} is not a file")
    # No output may replace an input (a model, a twin, the video) or be a device, FIFO or folder.
    from edgerun.runtime.outputs import OutputError, Protected, check_target

    from .backends import twin

    twins = [
        twin(p, suffix, explicit)
        for p in args.models
        for suffix, explicit in ((".tflite", args.tflite), (".keras", args.keras))
    ]
    args.protected = Protected([*args.models, *twins, args.pipeline])
    for option in ("json", "markdown", "plot", "compare"):
        target = getattr(args, option)
        if target is not None and (option != "compare" or not target.exists()):
            try:
                check_target(target, args.protected, f"--{option}")
            except OutputError as exc:
                parser.error(str(exc))


def _uses_tuning(args) -> bool:
    """Whether the edgerun row reads the tune cache: not with --no-tune, nor when --threads or
    --no-spin fix the settings by hand; only where the cache has entries for one of the models."""
    if args.no_tune or args.threads or args.no_spin or args.provider != "cpu":
        return False
    from edgerun.runtime.tuning import tuned_settings_for

    found = [p.name for p in args.models if tuned_settings_for(p, 1, args.provider) is not None]
    if found:
        logger.info(
            "tuned settings from the tune cache for %s: rows 'edgerun' (tuned) and 'edgerun-default'", ", ".join(found)
        )
    return bool(found)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(args, parser)
    if args.pipeline is not None:
        from .pipeline import pipeline_benchmark

        return pipeline_benchmark(args.pipeline, args.models[0], args.batch[0], args.threads, args.json, args.spin)

    from edgerun.runtime.outputs import write_text

    from .compare import BaselineError, compare, format_changes, load_baseline
    from .harness import SweepConfig, run_sweep
    from .report import markdown, plot, write_json

    seconds = args.seconds if args.iters is None and args.seconds else (None if args.iters else 1.0)
    tuned = _uses_tuning(args)
    config = SweepConfig(
        models=tuple(args.models),
        batches=args.batch,
        backends=("edgerun", *(("edgerun-default",) if tuned else ()), *args.peers),
        provider=args.provider,
        warmup=args.warmup,
        rounds=args.rounds,
        iters=args.iters,
        seconds=seconds,
        threads=args.threads,
        spinning=not args.no_spin,
        twins={"tflite": args.tflite, "keras": args.keras},
        tuned=tuned,
    )
    report = run_sweep(config)
    table = markdown(report)
    print(table)
    if args.json:
        write_json(report, args.json, args.protected)
    if args.markdown:
        write_text(args.markdown, table + "\n", args.protected, "--markdown")
    if args.plot:
        models = list(dict.fromkeys(r["model"] for r in report["results"]))
        for model in models:
            target = (
                args.plot if len(models) == 1 else args.plot.with_name(f"{args.plot.stem}_{model.split('.')[0]}.png")
            )
            try:
                logger.info("plot: %s", plot(report, model, target, args.protected))
            except ValueError as exc:
                logger.warning("no plot for %s: %s", model, exc)
    if args.compare is None:
        return 0
    if not args.compare.exists():
        write_json(report, args.compare, args.protected)
        print(f"\nno baseline at {args.compare}: wrote this run as the baseline")
        return 0
    try:
        baseline = load_baseline(args.compare)
    except BaselineError as exc:
        print(f"edgerun bench: error: {exc}", file=sys.stderr)
        return 2
    changes, regressions = compare(report, baseline, args.max_regression)
    print("\n" + format_changes(changes, args.max_regression))
    if not changes:
        print(
            f"edgerun bench: error: no rows in common with {args.compare} (model, backend, provider, batch);"
            " nothing was compared. Re-create the baseline for this sweep.",
            file=sys.stderr,
        )
        return 2
    if regressions:
        print(f"\n{len(regressions)} row(s) regressed by more than {args.max_regression:g}%")
        return EXIT_REGRESSION
    print(f"\nno regression past {args.max_regression:g}% in {len(changes)} rows")
    return 0
