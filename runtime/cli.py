"""``edgerun run``: a model over a camera, stream, video, images or an IDX file, one line per input.

A thin layer over the public API: ``edgerun.load`` -> ``open_source`` -> :class:`Run`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .argtypes import (
    Parser,
    SizedHelpFormatter,
    batch_size,
    given_path,
    positive_float,
    positive_int,
    print_error,
    probability,
    thread_count,
)
from .providers import CHOICES
from .run import EXIT_USAGE, EXIT_WRITE_FAILED

if TYPE_CHECKING:
    from .modelio import Overrides

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="edgerun run",
        formatter_class=SizedHelpFormatter,
        description="Run an ONNX model over a camera, stream, video, image, directory, glob, list file or "
        "IDX file. Prints one line per input; exit 0 when every input worked, 1 when some failed (each has "
        "an error record), 2 for bad arguments (or an output that would overwrite an input), 4 when the "
        "source ended early or gave nothing, 5 when an output could not be written (disk full, I/O error), "
        "130/143 when interrupted, 141 when standard output was closed (| head).",
    )
    p.add_argument("model", help="an .onnx file (edgerun's, or any image classifier), or a bundled model's name")
    p.add_argument("--source", required=True, help="0 (camera), image, directory, glob, list.txt, video, IDX or URL")
    p.add_argument("--provider", default="auto", choices=CHOICES, help="execution provider (default auto)")
    p.add_argument("--batch", type=batch_size, default=1, help="inputs per inference call, 1-1024 (default 1)")
    p.add_argument("--topk", type=positive_int, default=5, help="classes to report (default 5)")
    p.add_argument("--json", help="write one JSON record per input to this .jsonl file ('-': standard output)")
    p.add_argument("--save", type=Path, help="annotated output: a directory of images, or a video file")
    p.add_argument("--heatmaps", action="store_true", help="with --save, also write the localizer's class maps")
    p.add_argument("--show", action="store_true", help="show annotated frames in a window (needs a display)")
    p.add_argument("--max-frames", type=positive_int, help="stop after N inputs")
    p.add_argument("--threads", type=thread_count, help="onnxruntime intra-op threads, 1-1024 (default: all cores)")
    p.add_argument(
        "--spin",
        action="store_true",
        help="let idle onnxruntime threads spin (off by default here: spinning threads take the "
        "cores the decode and preprocessing threads need)",
    )
    p.add_argument(
        "--threshold",
        type=probability,
        help="localizer threshold in (0, 1] (default: the model's own, from its metadata; else 0.98)",
    )
    p.add_argument("--no-tune", action="store_true", help="ignore the settings `edgerun tune` stored for this machine")
    progress = p.add_mutually_exclusive_group()
    progress.add_argument("--progress", action="store_true", default=None, help="always show a progress bar")
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show one (default: on a terminal)"
    )
    e = p.add_argument_group("scaling out (see README, Scale-out with Ray)")
    e.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: a pool of Ray actors, one model each, on a local Ray "
        "instance or the cluster at --ray-address (finite sources only; needs edgerun[ray])",
    )
    e.add_argument("--ray-address", help="with --engine ray: join this Ray cluster instead of starting a local one")
    e.add_argument("--workers", type=positive_int, help="with --engine ray: model actors (default: one per CPU or GPU)")
    g = p.add_argument_group("describing a model (needed for foreign models without edgerun metadata)")
    add_input_shape_options(g)
    g.add_argument("--color", choices=("rgb", "bgr"), help="channel order of a colour model (default rgb)")
    g.add_argument(
        "--resize",
        choices=("stretch", "crop"),
        help="stretch each frame to the size (default), or crop: shorter side to it, then the centre (torchvision)",
    )
    g.add_argument("--scale", type=positive_float, help="multiply pixels by this first (default 1/255)")
    g.add_argument("--mean", type=float, nargs="+", help="then subtract per channel (model's channel order)")
    g.add_argument("--std", type=positive_float, nargs="+", help="then divide per channel (e.g. 0.229 0.224 0.225)")
    g.add_argument("--labels", type=given_path, help="class names, one per line, in output order")
    return p


def add_input_shape_options(group) -> None:
    """``--layout``, ``--size`` and ``--gray``: what a foreign model's input shape may not tell
    (``edgerun run`` and ``edgerun bench`` take them alike)."""
    group.add_argument("--layout", choices=("nchw", "nhwc"), help="input layout when the shape cannot tell")
    group.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"), help="input size when dynamic")
    group.add_argument("--gray", action="store_true", default=None, help="the model takes grayscale input")


def shape_overrides_from(args) -> Overrides:
    """The input-shape options (``add_input_shape_options``) as :class:`Overrides`."""
    from .modelio import Overrides

    return Overrides(layout=args.layout, size=tuple(args.size) if args.size else None, gray=args.gray)


def overrides_from(args) -> Overrides:
    """What the command line says about the model, over what the model says of itself."""
    from dataclasses import replace

    from .metadata import read_labels

    return replace(
        shape_overrides_from(args),
        scale=args.scale,
        mean=tuple(args.mean) if args.mean else None,
        std=tuple(args.std) if args.std else None,
        labels=read_labels(args.labels, "--labels") if args.labels else None,
        color=args.color,
        resize=args.resize,
    )


def open_sinks(args, model, source, stop):
    """The sinks ``--json``, ``--save`` and ``--show`` ask for, for either engine. ``source`` is
    anything that lists the files it reads (a source, or the Ray engine's ``Inputs``): no output
    may replace one of them, the model or the labels.

    Raises:
        OutputError: an output target refused (checked before any file is created).
        SinkError: an output that cannot be opened.
    """
    from .images import VIDEO_SUFFIXES
    from .outputs import Protected, check_targets
    from .sinks import Display, ImageSaver, JsonlSink, VideoSaver, has_display
    from .sources import input_files

    # No output may replace an input: the model, the labels, every file the source reads.
    protected = Protected([model.path, args.labels, *input_files(source)])
    # Every output file is checked before the first is created (emptied): a refused --save must
    # not leave behind an empty --json file, or an emptied earlier one.
    targets = [("--json", args.json)] if args.json else []
    if args.save and args.save.suffix.lower() in VIDEO_SUFFIXES:
        targets.append(("--save video", args.save))
    check_targets(targets, protected)
    sinks = []
    if args.json:
        sinks.append(JsonlSink(args.json, protected))
    if args.save:
        if args.save.suffix.lower() in VIDEO_SUFFIXES:
            sinks.append(VideoSaver(args.save, fps=source.nominal_fps or 30.0, protected=protected))
        else:
            stride = model.metadata.preprocessing.stride or 1
            sinks.append(ImageSaver(args.save, heatmaps=args.heatmaps, stride=stride, protected=protected))
    if args.show:
        display = has_display()
        if display.ok:
            sinks.append(Display(on_quit=stop))
        elif display.fix:
            logger.warning("--show: %s; for a window swap it for the GUI build: %s", display.cause, display.fix)
        else:
            logger.warning("--show: %s; use --save to write annotated output instead", display.cause)
    return sinks


def main(argv: list[str] | None = None) -> int:
    from .frames import SourceError
    from .heads import HeadOptions
    from .metadata import MetadataError
    from .model import Model, ModelError, SessionConfig
    from .outputs import OutputError
    from .preprocess import PreprocessError
    from .providers import ProviderError
    from .run import Run, RunConfig
    from .sinks import SinkError
    from .sources import open_source, source_kind

    args = build_parser().parse_args(argv)
    if args.engine == "ray":
        from .distributed_run import main as ray_main  # imports Ray only when it runs

        return ray_main(args)
    if args.ray_address or args.workers:
        print("edgerun run: error: --ray-address and --workers go with --engine ray", file=sys.stderr)
        return EXIT_USAGE
    try:
        overrides = overrides_from(args)
        model = Model.load(
            args.model,
            # one still image runs once: weight prepacking would cost more than it saves
            SessionConfig(
                provider=args.provider,
                threads=args.threads,
                spinning=args.spin,
                prepack=source_kind(str(args.source)) != "image",
            ),
            overrides,
            HeadOptions(topk=args.topk, threshold=args.threshold, heatmaps=bool(args.heatmaps and args.save)),
            batch=args.batch,
            tune=not args.no_tune,
            # run keeps spinning off (the decode threads need the cores) and any --threads given
            keep=("spinning", "threads") if args.threads else ("spinning",),
        )
        source = open_source(args.source)  # cameras and streams: capture.LiveOptions' defaults
    except (ModelError, ProviderError, MetadataError, PreprocessError, SourceError) as exc:
        print_error("edgerun run", exc)
        return EXIT_USAGE
    try:
        run = Run(model, source, config=RunConfig(batch=args.batch, max_frames=args.max_frames, progress=args.progress))
        run.sinks = open_sinks(args, model, source, run.stop)
    except (SinkError, OutputError) as exc:
        source.close()
        print_error("edgerun run", exc)
        return EXIT_USAGE
    logger.info("providers in use: %s", ", ".join(model.providers))
    return drive(run, args)


def drive(run, args) -> int:
    """Run ``run`` (either engine's) to the end, one line per input unless ``--json -`` holds the
    records; the exit code: the run's, or an output's that failed (141 for a closed stdout)."""
    from .outputs import OutputError, StdoutClosed, silence_stdout
    from .sinks import SinkError

    lines = args.json != "-"  # with JSON on standard output, the records are the output
    try:
        with run:
            for result in run:
                if lines:
                    run.write_line(result.summary())
    except StdoutClosed as exc:  # | head: the reader has what it wanted; end quietly, like any Unix tool
        silence_stdout()
        logger.info("%s; stopping", exc)
        return exc.exit_code
    except (OutputError, SinkError) as exc:
        run.log_summary()
        print_error("edgerun run", exc)
        return getattr(exc, "exit_code", EXIT_WRITE_FAILED)
    run.log_summary()
    return run.exit_code
