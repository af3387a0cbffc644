"""The ``edgerun`` command: one entry point that hands each subcommand to its package.

The runtime owns the entry point because it is the one package every install has (an edge
device may have nothing else). Other packages' subcommands are named here by module path and
imported only when asked for, so ``edgerun run`` never loads TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

#: subcommand -> ("module:function" taking argv and returning an exit code, help, extra)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("edgerun.train.cli:main", "train a registry model (writes models/NAME.keras + .json)", "train"),
    "export": ("edgerun.export.cli:main", "export a .keras model to ONNX (parity gate, int8, fp16)", "train"),
    "inspect": (
        "edgerun.export.cli:inspect_main",
        "describe any ONNX file: I/O, opset, metadata, ops",
        "cpu",
    ),
    "run": (
        "edgerun.runtime.cli:run_main",
        "run a model on a camera, stream, video, images (one line each)",
        "cpu",
    ),
    "bench": (
        "edgerun.bench.cli:main",
        "latency against batch size, peers in the same run, CI compare",
        "cpu",
    ),
    "tune": ("edgerun.bench.tune:main", "measure session settings on this machine, keep the fastest per batch", "cpu"),
    "demo": (
        "edgerun.bench.demo:main",
        "the main job on the bundled models: digits, localizer, video, latency",
        "cpu",
    ),
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

USAGE = """usage: edgerun [-v|-q] {subcommands} ...

edgerun: an ONNX edge-inference runtime with a benchmarking harness.

subcommands:
{table}

Run 'edgerun SUBCOMMAND --help' for a subcommand's options.
"""


def _usage() -> str:
    table = "\n".join(f"  {name:<8} {help_}" for name, (_, help_, _) in SUBCOMMANDS.items())
    return USAGE.format(subcommands="{" + ",".join(SUBCOMMANDS) + "}", table=table)


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """Let through edgerun's own records, and other libraries' warnings and errors."""
    return record.name.startswith("edgerun") or record.levelno >= logging.WARNING


def configure_logging(verbosity: int) -> None:
    """INFO progress from edgerun on stderr (-q: warnings only; -v: debug and libraries' INFO)."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    if verbosity < 1:
        handler.addFilter(_quiet_libraries)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbosity = 0
    while argv and argv[0] in ("-v", "--verbose", "-q", "--quiet"):
        verbosity += 1 if argv.pop(0) in ("-v", "--verbose") else -1
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"edgerun {version('edgerun')}")
        return EXIT_OK
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"edgerun: unknown subcommand {name!r}; choose one of: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return EXIT_USAGE
    target, _, extra = SUBCOMMANDS[name]
    module_name, function = target.split(":")
    configure_logging(verbosity)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(
            f"edgerun {name}: a dependency is missing ({exc.name or exc}). "
            f"Install it with: pip install 'edgerun[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return int(getattr(module, function)(rest) or 0)
    except KeyboardInterrupt:
        print(f"edgerun {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no bare traceback
        if verbosity > 0:
            logger.exception("edgerun %s failed", name)
        print(
            f"edgerun {name}: unexpected error: {type(exc).__name__}: {exc}\n"
            f"This is a bug in edgerun or a case it does not handle yet; run 'edgerun -v {name} ...' "
            "for the traceback and report it.",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())


# -- edgerun run ---------------------------------------------------------------------------------

EXIT_SIGTERM = 143


def run_parser() -> argparse.ArgumentParser:
    from .argtypes import positive_int, probability
    from .providers import CHOICES

    p = argparse.ArgumentParser(
        prog="edgerun run",
        description="Run an ONNX model over a camera, stream, video, image, directory, glob or list file. "
        "Prints one line per input; exit 0 when every input worked, 1 when some failed (each has "
        "an error record), 2 for bad arguments, 130/143 when interrupted.",
    )
    p.add_argument("model", help="an .onnx file (edgerun's, or any image classifier)")
    p.add_argument("--source", required=True, help="0 (camera), image, directory, glob, list.txt, video or URL")
    p.add_argument("--provider", default="auto", choices=CHOICES, help="execution provider (default auto)")
    p.add_argument("--batch", type=positive_int, default=1, help="inputs per inference call (default 1)")
    p.add_argument("--topk", type=positive_int, default=5, help="classes to report (default 5)")
    p.add_argument("--json", type=Path, help="write one JSON record per input to this .jsonl file")
    p.add_argument("--save", type=Path, help="annotated output: a directory of images, or a video file")
    p.add_argument("--heatmaps", action="store_true", help="with --save, also write the localizer's class maps")
    p.add_argument("--show", action="store_true", help="show annotated frames in a window (needs a display)")
    p.add_argument("--max-frames", type=positive_int, help="stop after N inputs")
    p.add_argument("--threads", type=positive_int, help="onnxruntime intra-op threads (default: all cores)")
    p.add_argument(
        "--spin",
        action="store_true",
        help="let idle onnxruntime threads spin (off by default here: spinning threads take the "
        "cores the decode and preprocessing threads need)",
    )
    p.add_argument("--threshold", type=probability, default=0.98, help="localizer threshold (default 0.98)")
    g = p.add_argument_group("foreign models (no edgerun metadata)")
    g.add_argument("--layout", choices=("nchw", "nhwc"), help="input layout when the shape cannot tell")
    g.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"), help="input size when dynamic")
    g.add_argument("--gray", action="store_true", default=None, help="the model takes grayscale input")
    g.add_argument("--scale", type=float, help="multiply pixels by this (default 1/255)")
    g.add_argument("--mean", type=float, nargs="+", help="subtract per channel before scaling")
    return p


def _sinks(args, source, stop):
    from .sinks import Display, ImageSaver, JsonlSink, VideoSaver, has_display
    from .sources import VIDEO_SUFFIXES

    sinks = []
    if args.json:
        sinks.append(JsonlSink(args.json))
    if args.save:
        if args.save.suffix.lower() in VIDEO_SUFFIXES:
            sinks.append(VideoSaver(args.save, fps=getattr(source, "nominal_fps", 30.0)))
        else:
            sinks.append(ImageSaver(args.save, heatmaps=args.heatmaps))
    if args.show:
        ok, why = has_display()
        if ok:
            sinks.append(Display(on_quit=stop))
        else:
            logger.warning("--show: %s", why)
    return sinks


def run_main(argv: list[str] | None = None) -> int:
    import signal

    from .capture import LiveOptions
    from .metadata import MetadataError
    from .model import Model, ModelError, Overrides, SessionConfig
    from .pipeline import Pipeline, PipelineConfig
    from .postprocess import LocalizeConfig
    from .preprocess import PreprocessError
    from .providers import ProviderError
    from .sinks import SinkError
    from .sources import SourceError, open_source

    args = run_parser().parse_args(argv)
    overrides = Overrides(
        layout=args.layout,
        size=tuple(args.size) if args.size else None,
        gray=args.gray,
        scale=args.scale,
        mean=tuple(args.mean) if args.mean else None,
    )
    config = SessionConfig(provider=args.provider, threads=args.threads, spinning=args.spin)
    try:
        model = Model.load(args.model, config, overrides)
        pipeline = Pipeline(
            model,
            PipelineConfig(
                batch=args.batch,
                topk=args.topk,
                max_frames=args.max_frames,
                localize=LocalizeConfig(threshold=args.threshold),
            ),
        )
        source = open_source(args.source, LiveOptions())
        sinks = _sinks(args, source, pipeline.stop)
    except (ModelError, ProviderError, MetadataError, PreprocessError, SourceError, SinkError) as exc:
        print(f"edgerun run: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logger.info("providers in use: %s", ", ".join(model.providers))

    received: list[int] = []

    def on_signal(signum, _frame) -> None:
        if received:  # a second signal: stop now
            raise KeyboardInterrupt
        received.append(signum)
        logger.warning("%s received: finishing the frames in hand", signal.Signals(signum).name)
        pipeline.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def emit(result, frame) -> None:
        print(result.summary(), flush=False)
        for sink in sinks:
            sink.write(result, frame)

    try:
        stats = pipeline.run(source, emit)
    finally:
        for sink in sinks:
            sink.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.stdout.flush()
    summary = stats.as_dict()
    logger.info(
        "%d inputs, %d errors, %.1f fps end-to-end (decode %.1f, preprocess %.1f, inference %.1f fps)",
        summary["frames"],
        summary["errors"],
        summary["end_to_end_fps"],
        summary["decode_fps"],
        summary["preprocess_fps"],
        summary["inference_fps"],
    )
    if summary["source_fps"]:
        logger.info("source frame rate from timestamps: %.2f fps", summary["source_fps"])
    stop_reason = getattr(source, "stop_reason", None)
    if stop_reason:
        logger.warning("%s ended: %s", source.name, stop_reason)
    if received:
        return EXIT_INTERRUPTED if received[0] == signal.SIGINT else EXIT_SIGTERM
    if stats.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if summary["errors"] else EXIT_OK
