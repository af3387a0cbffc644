"""``edgerun bench``: latency against batch size, peers in the same run, CI comparison."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from edgerun.runtime.argtypes import Parser, given_path, positive_float, positive_int, thread_count

from .gate import EXIT_ALL_FAILED, EXIT_INCONCLUSIVE, EXIT_REGRESSION, EXIT_USAGE  # noqa: F401 - public codes

logger = logging.getLogger(__name__)

MIN_GATE_ROUNDS = 5
ROUNDS = 20
BASELINE_ROUNDS = 40  # a baseline is made once: more rounds narrow every later comparison's interval
ROUND_SECONDS = 0.05  # default time per row and round
#: The gate's intra-op threads unless --threads says otherwise. With as many threads as cores, any
#: other process on a CI runner takes a core mid-call and the call waits for its slowest thread:
#: on 2 cores with one busy, 2-thread comparisons of unchanged code read -50% to +50% and were
#: inconclusive 2 times in 3; with 1 thread, within +-2% (README, CI gate).
GATE_THREADS = 1


def _batches(text: str) -> tuple[int, ...]:
    """Comma-separated batch sizes, each from 1 to the runtime's cap (``edgerun run --batch``'s)."""
    from edgerun.runtime.argtypes import batch_size

    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"batch sizes must be 1 or more, got {text!r}")
    twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if twice is not None:  # two rows of one key: the report repeats it, a baseline keeps one
        raise argparse.ArgumentTypeError(f"batch size {twice} is given twice in {text!r}; give each once")
    for value in values:
        try:
            batch_size(str(value))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"batch size {value}: {exc}") from None
    return values


def _percent(text: str) -> float:
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage like 15%, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite percentage above 0 (like 15%), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .backends import PEERS

    p = Parser(
        prog="edgerun bench",
        description="Latency against batch size for ONNX models, with peer runtimes measured in the same "
        "run, and a CI gate against a saved baseline. Exit 0; 1 when every row failed; 2 for bad arguments or "
        "an unusable baseline (before any measuring); 3 when --compare finds a regression; 4 when it is "
        "inconclusive (too noisy to decide even after extra rounds); 5 when an output could not be written; "
        "130/143 when SIGINT/SIGTERM stopped it (the rows measured are written, no baseline).",
    )
    p.add_argument(
        "models", nargs="*", type=given_path, help="ONNX models to measure (files, or bundled models' names)"
    )
    p.add_argument(
        "--batch", type=_batches, default=(1, 2, 4, 8, 16, 32, 64), help="e.g. 1,2,4,8, each 1-1024 (default 1..64)"
    )
    p.add_argument("--provider", choices=("cpu", "cuda", "tensorrt", "openvino"), default="cpu")
    p.add_argument("--warmup", type=int, default=5, help="warm-up runs, reported apart (default 5)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--iters", type=positive_int, help="timed runs per row")
    g.add_argument("--seconds", type=positive_float, help="time per row (default 0.05 s per round)")
    p.add_argument(
        "--rounds",
        type=positive_int,
        help=f"interleaved rounds per batch: every backend and the reference workload take turns, a block of calls "
        f"(default {ROUNDS}, {BASELINE_ROUNDS} with --save-baseline; --compare adds up to 2x more while undecided)",
    )
    p.add_argument(
        "--threads",
        type=thread_count,
        help="intra-op threads for every backend (default: all cores; 1 with --save-baseline, the baseline's "
        "with --compare: see README, CI gate)",
    )
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
    p.add_argument(
        "--tflite",
        type=Path,
        help="TFLite twin of the model's precision (default: NAME.tflite beside NAME.onnx, NAME.int8.tflite "
        "beside NAME.int8.onnx)",
    )
    p.add_argument("--keras", type=Path, help="Keras twin (default: NAME.keras beside the model)")
    p.add_argument(
        "--json",
        type=Path,
        help="write the report as JSON (atomic); '-': to standard output, the table to standard error",
    )
    p.add_argument("--markdown", type=Path, help="write the Markdown table")
    p.add_argument(
        "--plot",
        type=Path,
        help="plot image, a format OpenCV writes (.png, .jpg, ...); one per model: _NAME appended when several",
    )
    p.add_argument("--save-baseline", type=Path, metavar="FILE", help="write this run as the gate's baseline")
    p.add_argument("--compare", type=Path, metavar="FILE", help="judge this run against a baseline (exit 3/4)")
    p.add_argument(
        "--max-regression", type=_percent, default=15.0, help="allowed slow-down for --compare (default 15%%)"
    )
    p.add_argument(
        "--pipeline",
        type=Path,
        metavar="VIDEO",
        help="benchmark the run pipeline on this video file with one model at the first --batch (report: --json)",
    )
    from edgerun.runtime.cli import add_input_shape_options

    add_input_shape_options(p.add_argument_group("describing a foreign model (as edgerun run takes them)"))
    return p


def _validate(args, parser) -> None:
    from .backends import PEERS

    if not args.models:
        parser.error("give at least one ONNX model")
    from edgerun.runtime.cli import shape_overrides_from
    from edgerun.runtime.metadata import MetadataError

    try:
        args.overrides = shape_overrides_from(args)
    except MetadataError as exc:
        parser.error(str(exc))
    args.models, args.inputs = _check_models(args.models, parser, args.overrides)
    peers = list(PEERS) if args.vs.strip() == "all" else [v.strip() for v in args.vs.split(",") if v.strip()]
    unknown = [v for v in peers if v not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    twice = next((v for i, v in enumerate(peers) if v in peers[:i]), None)
    if twice is not None:
        parser.error(f"--vs names {twice} twice; give each peer once")
    args.peers = peers
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    _check_twins(args, parser)
    if args.pipeline is not None:
        _check_pipeline(args, parser)
    _check_outputs(args, parser)
    if args.rounds is None:
        args.rounds = BASELINE_ROUNDS if args.save_baseline and not args.compare else ROUNDS
    if (args.compare or args.save_baseline) and args.pipeline is None and args.rounds < MIN_GATE_ROUNDS:
        parser.error(f"--compare and --save-baseline need --rounds {MIN_GATE_ROUNDS} or more, got {args.rounds}")
    args.gate = None
    if args.compare is not None and args.pipeline is None:
        args.gate = _load_gate(args, parser)
    elif args.save_baseline is not None and args.threads is None:
        args.threads = GATE_THREADS
        logger.info("--save-baseline measures with %d intra-op thread (give --threads to choose)", GATE_THREADS)


def _check_models(given: list[Path], parser, overrides=None) -> tuple[list[Path], dict]:
    """Each model's file (a path, or a bundled model's name as ``edgerun run`` takes it) and the
    input the sweep will feed it, read now: a model the runtime cannot run is exit 2 before any
    measuring, with the runtime's own message. The onnx package parses the file where it is installed
    (the tools extra); the runtime install has none, and onnxruntime's reading in ``model_input``
    judges the file instead."""
    try:
        import onnx
    except ImportError:
        onnx = None

    from edgerun.runtime.metadata import MetadataError
    from edgerun.runtime.model import ModelError, check_model_file, resolve_model_path
    from edgerun.runtime.modelfile import unreadable_model
    from edgerun.runtime.preprocess import PreprocessError
    from edgerun.runtime.providers import ProviderError

    from .harness import model_input

    paths, inputs, names = [], {}, {}
    for spec in given:
        try:
            path = resolve_model_path(str(spec))
            check_model_file(path)
            if onnx is not None:
                onnx.load(str(path), load_external_data=False)
        except ModelError as exc:
            parser.error(str(exc))
        except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and others
            parser.error(unreadable_model(spec, exc))
        if path in paths:
            parser.error(f"model {spec} is given twice; give each model once")
        if path.name in names:  # the report, the plots and the gate tell models apart by file name
            parser.error(
                f"{names[path.name]} and {spec} have the same file name {path.name!r}; the report names rows by "
                "file name: copy or rename one of them"
            )
        names[path.name] = spec
        try:
            inputs[path] = model_input(path, overrides)
        except (ModelError, MetadataError, PreprocessError, ProviderError) as exc:
            parser.error(str(exc))
        paths.append(path)
    return paths, inputs


#: How a twin file given by hand starts: TFLite flatbuffers carry "TFL3" at byte 4; a .keras file
#: is a zip, an older Keras file HDF5.
TWIN_MAGIC = {"--tflite": ((4, b"TFL3"),), "--keras": ((0, b"PK\x03\x04"), (0, b"\x89HDF"))}


def _check_twins(args, parser) -> None:
    """A peer's file named by hand (--tflite, --keras) must be there and be that kind of file:
    refused now (exit 2), not a failed row after the measuring."""
    for option, path in (("--tflite", args.tflite), ("--keras", args.keras)):
        if path is None:
            continue
        if not path.is_file():
            parser.error(f"{option} {path} is not a file; give the peer's model file, or leave {option} out")
        try:
            with open(path, "rb") as handle:
                head = handle.read(8)
        except OSError as exc:
            parser.error(f"{option} {path} cannot be read: {exc.strerror}")
        if not any(head[at : at + len(magic)] == magic for at, magic in TWIN_MAGIC[option]):
            kind = "a TFLite flatbuffer (.tflite)" if option == "--tflite" else "a Keras model (.keras or .h5)"
            parser.error(f"{option} {path} is not {kind}; give the peer's model file, or leave {option} out")


def _check_pipeline(args, parser) -> None:
    """--pipeline: one existing video OpenCV can open, one model, and only the outputs it writes."""
    from edgerun.runtime.sources import VIDEO_SUFFIXES, SourceError, VideoFile, source_kind

    video, suffixes = args.pipeline, ", ".join(VIDEO_SUFFIXES)
    if video.is_dir():
        parser.error(f"--pipeline {video} is a directory; give one video file ({suffixes})")
    if not video.exists():
        parser.error(f"--pipeline video {video} does not exist")
    kind = source_kind(str(video))
    if kind != "video":
        what = "an image" if kind == "image" else f"not a video file (suffix {video.suffix or 'none'!r})"
        parser.error(
            f"--pipeline {video} is {what}; the pipeline benchmark times decoding, preprocessing and inference "
            f"over a video's frames: give a video file ({suffixes})"
        )
    try:
        source = VideoFile(video)
    except SourceError as exc:
        parser.error(f"--pipeline: {exc}")
    frames = len(source)
    source.close()
    batch = args.batch[0]
    if frames and frames < batch:
        parser.error(f"--pipeline {video} has {frames} frames, fewer than one batch of {batch}: give --batch {frames}")
    if len(args.models) != 1:
        parser.error(f"--pipeline measures one model, got {len(args.models)}")
    unused = [
        f"--{name.replace('_', '-')}"
        for name in ("markdown", "plot", "save_baseline", "compare")
        if getattr(args, name) is not None
    ] + (["--vs"] if args.peers else [])
    if unused:
        parser.error(f"--pipeline writes its report with --json only; {', '.join(unused)} would do nothing: drop it")


def _check_outputs(args, parser) -> None:
    """Every output, before any measuring: never an input (a model, a twin, the video, the baseline
    compared with), a device, FIFO or folder (the one writer's rules, edgerun.runtime.outputs), nor
    the file of another output (through links and ``..`` too); a plot in a format OpenCV writes."""

    import cv2

    from edgerun.runtime.outputs import OutputError, Protected, check_targets

    from .backends import twin
    from .finish import plot_targets

    twins = [
        twin(p, suffix, explicit)
        for p in args.models
        for suffix, explicit in ((".tflite", args.tflite), (".keras", args.keras))
    ]
    args.protected = Protected([*args.models, *twins, args.pipeline, args.compare])
    targets = [
        (f"--{option.replace('_', '-')}", getattr(args, option))
        for option in ("json", "markdown", "save_baseline")
        if getattr(args, option) is not None
    ]
    if args.plot is not None:
        if not cv2.haveImageWriter(str(args.plot)):
            parser.error(
                f"--plot {args.plot}: OpenCV cannot write images with the suffix {args.plot.suffix or '(none)'!r}; "
                "give a name ending in .png (or .jpg, .bmp, .tif, .webp)"
            )
        targets += [("--plot", p) for p in plot_targets(args.plot, [m.name for m in args.models]).values()]
    try:
        check_targets(targets, args.protected)
    except OutputError as exc:
        parser.error(str(exc))


def _load_gate(args, parser):
    """The baseline, checked before any measuring: exit 2 with what is wrong."""
    from edgerun.runtime.session import default_threads

    from .baseline import BaselineError, load_baseline
    from .gate import Gate
    from .machine import differences, environment

    try:
        baseline = load_baseline(args.compare)
    except BaselineError as exc:
        parser.error(str(exc))
    gate = Gate(baseline, args.max_regression)
    backends = ("edgerun", *args.peers)
    wanted = [(m.name, b, args.provider, n) for m in args.models for b in backends for n in args.batch]
    if not gate.in_common(wanted):
        parser.error(
            f"baseline {args.compare} has no rows in common with this run (model file name, backend, provider, "
            f"batch); it holds {gate.describe_baseline()}. Compare the same sweep, or re-create the baseline."
        )
    if args.threads is None:  # the baseline's threads: the same work, whatever this machine's cores
        saved = baseline["environment"].get("threads")
        args.threads = saved if isinstance(saved, int) and saved > 0 else GATE_THREADS
        logger.info("--compare measures with %d intra-op thread(s), as the baseline did", args.threads)
    models = baseline.get("models") if isinstance(baseline.get("models"), list) else []
    saved_inputs = {m.get("model"): m.get("input") for m in models if isinstance(m, dict)}
    for path, inp in args.inputs.items():  # the same work: a foreign model's --size must match the baseline's
        saved = saved_inputs.get(path.name)
        if isinstance(saved, list) and len(saved) == 3 and saved != list(inp.image):
            parser.error(
                f"baseline {args.compare} measured {path.name} on {saved[0]}x{saved[1]}x{saved[2]} inputs, this run "
                f"on {inp.image[0]}x{inp.image[1]}x{inp.image[2]}; give the baseline's --size (and --gray) or "
                "re-create the baseline"
            )
    now = environment(args.threads or default_threads(), args.provider)
    args.environment_notes = differences(baseline["environment"], now)
    return gate


def _uses_tuning(args) -> bool:
    """Whether the edgerun row reads the tune cache: not with --no-tune, nor when --threads or
    --no-spin fix the settings by hand, nor for the CI gate (a baseline must not depend on one
    machine's cache); only where the cache has entries for one of the models."""
    if args.no_tune or args.threads or args.no_spin or args.provider != "cpu" or args.compare or args.save_baseline:
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

        return pipeline_benchmark(
            args.pipeline, args.models[0], args.batch[0], args.threads, args.json, args.spin, args.protected
        )

    from .finish import finish
    from .harness import SweepConfig, run_sweep
    from .signals import terminate_raises

    seconds = None if args.iters else (args.seconds or ROUND_SECONDS * args.rounds)
    gate = args.gate
    tuned = _uses_tuning(args)
    config = SweepConfig(
        models=tuple(args.models),
        batches=args.batch,
        backends=("edgerun", *(("edgerun-default",) if tuned else ()), *args.peers),
        provider=args.provider,
        warmup=args.warmup,
        rounds=args.rounds,
        reference=bool(gate or args.save_baseline),
        max_rounds=3 * args.rounds if gate else None,
        iters=args.iters,
        seconds=seconds,
        threads=args.threads,
        spinning=not args.no_spin,
        twins={"tflite": args.tflite, "keras": args.keras},
        reference_batches=gate.reference_batches() if gate else {},
        tuned=tuned,
        inputs=args.inputs,
        overrides=args.overrides,
    )
    with terminate_raises():  # SIGTERM stops the sweep as SIGINT does: the rows measured are kept
        report = run_sweep(config, more_rounds=gate.undecided if gate else None)
    return finish(report, args)
