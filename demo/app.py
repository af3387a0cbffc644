"""``edgerun demo``: the main job on the bundled models, with the runtime install only.

1. builds a test scene as the book's generator does, from real MNIST test images when data is
   found (``--data-dir``, ``EDGERUN_DATA_DIR``, ``../shared/data``), otherwise from digits drawn
   with OpenCV's Hershey fonts (labelled synthetic everywhere);
2. classifies single digits with ``mnist_cnn`` and reports accuracy against the labels;
3. localizes the digits on the scene with ``mnist_small_fcn`` (the field localizer; the book's
   ``mnist_fcn`` is bundled too): annotated PNG, per-class heatmaps, and
   precision/recall over more generated scenes;
4. pans a window over a larger scene to make a short video, runs the ``run`` pipeline over it,
   writes the annotated video and reports fps;
5. sweeps latency against batch size (1-64) for the bundled classifiers: Markdown + PNG;
6. prints every output path.

With ``--source 0`` (or any source) it runs ``mnist_cnn`` live on that source instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgerun.runtime.api import load
from edgerun.runtime.argtypes import Parser, positive_float, positive_int, print_error
from edgerun.runtime.idx import IdxError, read_idx
from edgerun.runtime.model import Model, ModelError
from edgerun.runtime.postprocess import heatmap_images
from edgerun.runtime.run import Run, RunConfig
from edgerun.runtime.sinks import VideoSaver
from edgerun.runtime.sources import open_source
from edgerun.scenes.book import make_scene
from edgerun.scenes.evaluate import book_scenes, score_pictures
from edgerun.scenes.field import make_page, pages
from edgerun.scenes.score import match

logger = logging.getLogger(__name__)

#: the bundled localizer the demo shows: the field one (README, Field pictures)
LOCALIZER = "mnist_small_fcn"

#: the one variable naming where the data sets live (a folder with mnist/, or the IDX files)
DATA_ENV = "EDGERUN_DATA_DIR"
HERSHEY = (
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
)


class DemoError(Exception):
    """Something the demo needs is missing; the message says how to get it."""


@dataclass
class Digits:
    images: np.ndarray  # uint8 (N, 28, 28), light on black
    labels: np.ndarray
    origin: str
    synthetic: bool


def find_mnist_test(data_dir: Path | None) -> Path | None:
    candidates = []
    for root in (data_dir, os.environ.get(DATA_ENV), Path.cwd().parent / "shared" / "data"):
        if root:
            candidates += [Path(root), Path(root) / "mnist"]
    return next((c for c in candidates if (c / "t10k-images-idx3-ubyte.gz").is_file()), None)


def synthetic_digits(count: int, seed: int = 0) -> Digits:
    """Digits drawn with Hershey fonts, jittered in size, stroke and position (MNIST-like framing)."""
    rng = np.random.default_rng(seed)
    images, labels = np.zeros((count, 28, 28), np.uint8), rng.integers(0, 10, count)
    for i, label in enumerate(labels):
        canvas = np.zeros((56, 56), np.uint8)
        font = HERSHEY[int(rng.integers(len(HERSHEY)))]
        scale, thickness = rng.uniform(1.3, 1.7), int(rng.integers(3, 6))
        (w, h), _ = cv2.getTextSize(str(label), font, scale, thickness)
        cv2.putText(canvas, str(label), ((56 - w) // 2, (56 + h) // 2), font, scale, 255, thickness, cv2.LINE_AA)
        ys, xs = np.nonzero(canvas)
        crop = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        f = 20 / max(crop.shape)
        crop = cv2.resize(
            crop, (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))), interpolation=cv2.INTER_AREA
        )
        top, left = (28 - crop.shape[0]) // 2, (28 - crop.shape[1]) // 2
        images[i, top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return Digits(images, labels, "synthetic digits drawn with OpenCV Hershey fonts", True)


def load_digits(data_dir: Path | None, count: int, synthetic: bool = False) -> Digits:
    if synthetic:
        return synthetic_digits(min(count, 1000))
    directory = find_mnist_test(data_dir)
    if data_dir is not None and (directory is None or directory not in (data_dir, data_dir / "mnist")):
        raise DemoError(
            f"--data-dir {data_dir} holds no MNIST test files (t10k-images-idx3-ubyte.gz, there or in "
            f"{data_dir / 'mnist'}); give the folder that holds them, or --synthetic for drawn digits"
        )
    if directory is not None:
        try:
            images = read_idx(directory / "t10k-images-idx3-ubyte.gz")
            labels = read_idx(directory / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
            return Digits(images[:count], labels[:count], f"real MNIST test images from {directory}", False)
        except IdxError as exc:
            logger.warning("MNIST test files unusable (%s); using synthetic digits", exc)
    logger.warning("no MNIST test data found: the demo uses SYNTHETIC digits (give --data-dir for real ones)")
    return synthetic_digits(min(count, 1000))


def bundled(models_dir: Path | None, name: str) -> Model:
    """A bundled model (shipped in the package), or ``models_dir/NAME.onnx`` when a folder is given."""
    try:
        return load(str(models_dir / f"{name}.onnx") if models_dir else name, provider="cpu")
    except ModelError as exc:
        raise DemoError(f"{exc}; the demo uses the bundled models (reinstall edgerun, or run `make models`)") from exc


def step_classify(model: Model, digits: Digits) -> dict:
    start = time.perf_counter()
    results = model.predict(list(digits.images), batch=64)
    seconds = time.perf_counter() - start
    predicted = np.array([r.class_id for r in results])
    accuracy = float(np.mean(predicted == digits.labels))
    return {"images": len(results), "accuracy": accuracy, "seconds": seconds}


def step_localize(model: Model, digits: Digits, out: Path, seed: int, scenes: int) -> dict:
    """The book's scene (annotated, with its class maps), a page of digits on lit paper as a
    webcam sees it (annotated), and precision/recall over more of both kinds."""
    rng = np.random.default_rng(seed)
    scene = make_scene(digits.images, digits.labels, rng)
    while len(scene.truth) < 3:  # a scene with something on it to look at
        scene = make_scene(digits.images, digits.labels, rng)
    with_maps = load(model.path, provider="cpu", heatmaps=True)  # the same model, asked for its maps too
    result = with_maps.predict([scene.image])[0]
    dets = result.detections or []
    annotated = result.plot(zoom=2, thickness=2, font_scale=0.6)
    if digits.synthetic:
        cv2.putText(
            annotated,
            "SYNTHETIC DIGITS",
            (4, annotated.shape[0] - 6),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 200, 255),
            1,
            cv2.LINE_AA,
        )
    cv2.imwrite(str(out / "scene.png"), scene.image)
    cv2.imwrite(str(out / "scene_annotated.png"), annotated)
    heat_dir = out / "heatmaps"
    heat_dir.mkdir(exist_ok=True)
    maps = heatmap_images(result.heat, scene.image.shape, model.metadata.preprocessing.stride)
    for digit, gray in enumerate(maps):
        cv2.imwrite(str(heat_dir / f"digit_{digit}.png"), gray)
    tiles = []
    for digit, gray in enumerate(maps):
        tile = cv2.cvtColor(np.pad(gray, 2, constant_values=128), cv2.COLOR_GRAY2BGR)
        cv2.putText(tile, f"digit {digit}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    strip = np.concatenate(tiles, axis=1)
    cv2.imwrite(str(out / "heatmaps.png"), strip)
    this = match(dets, scene.truth)
    page = make_page(digits.images, digits.labels, rng, "light")
    page_result = model.predict([page.image])[0]
    cv2.imwrite(str(out / "page.png"), page.image)
    cv2.imwrite(str(out / "page_annotated.png"), page_result.plot(thickness=2, font_scale=0.6))
    many = {
        "book": score_pictures(model, book_scenes(digits.images, digits.labels, scenes, seed + 1)),
        "light": score_pictures(model, pages(digits.images, digits.labels, scenes, seed + 1, "light")),
        "dark": score_pictures(model, pages(digits.images, digits.labels, scenes, seed + 1, "dark")),
    }
    return {
        "digits_on_scene": len(scene.truth),
        "found": len(dets),
        "scene_precision": this.precision,
        "scene_recall": this.recall,
        "digits_on_page": len(page.truth),
        "found_on_page": len(page_result.detections or []),
        "page_precision": match(page_result.detections or [], page.truth).precision,
        "page_recall": match(page_result.detections or [], page.truth).recall,
        "scenes": scenes,
        **{f"{kind}_{key}": value for kind, score in many.items() for key, value in score.to_dict().items()},
    }


def make_panning_video(digits: Digits, path: Path, seed: int, frames: int = 48) -> Path:
    """Three pages of digits on lit paper side by side, seen through a 640x480 window that pans
    left to right: what a webcam moved along a desk gives."""
    rng = np.random.default_rng(seed)
    strip = np.concatenate([make_page(digits.images, digits.labels, rng, "light").image for _ in range(3)], axis=1)
    height, width = strip.shape[0], strip.shape[1] // 3
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (width, height))
    for f in range(frames):
        x = int(round(f * (strip.shape[1] - width) / max(1, frames - 1)))
        writer.write(np.ascontiguousarray(strip[:, x : x + width]))
    writer.release()
    return path


def step_video(model: Model, digits: Digits, out: Path, seed: int) -> dict:
    video = make_panning_video(digits, out / "pan.avi", seed)
    found = []
    with Run(model, open_source(video), [VideoSaver(out / "pan_annotated.avi", fps=12.0)], RunConfig(batch=4)) as run:
        for result in run:
            found.append(len(result.detections or []))
    if run.signal is not None:  # the run finished the frames in hand; the demo stops there too
        raise KeyboardInterrupt
    return {
        "frames": run.stats.frames,
        "fps": run.stats.end_to_end_fps,
        "mean_detections": float(np.mean(found or [0])),
        "video": str(video),
        "annotated": str(out / "pan_annotated.avi"),
    }


def step_sweep(paths: list[Path], out: Path, seconds: float) -> dict:
    from edgerun.bench.harness import SweepConfig, run_sweep
    from edgerun.bench.report import markdown, plot, write_json

    report = run_sweep(SweepConfig(models=tuple(paths), batches=(1, 2, 4, 8, 16, 32, 64), seconds=seconds))
    write_json(report, out / "latency.json")
    (out / "latency.md").write_text(markdown(report) + "\n", encoding="utf-8")
    plots = [str(plot(report, p.name, out / f"latency_{p.stem}.png")) for p in paths]
    return {
        "table": str(out / "latency.md"),
        "json": str(out / "latency.json"),
        "plots": plots,
        "peak_gflops": report["machine"]["peak"]["fp32_gflops"],
    }


def run_live(models_dir: Path | None, source: str, out: Path, max_frames: int | None) -> int:
    """The live demo: mnist_cnn on ``source`` through the same run lifecycle as ``edgerun run``,
    writing an annotated video and showing a window where one can open."""
    from edgerun.runtime.frames import SourceError
    from edgerun.runtime.sinks import Display, has_display

    model = bundled(models_dir, "mnist_cnn")
    try:
        src = open_source(source)
    except SourceError as exc:
        raise DemoError(str(exc)) from exc
    run = Run(model, src, config=RunConfig(max_frames=max_frames))
    from edgerun.runtime.outputs import OutputError, Protected
    from edgerun.runtime.sources import input_files

    try:  # the annotated video never replaces the source (--source out/demo/live_annotated.avi)
        saver = VideoSaver(
            out / "live_annotated.avi",
            fps=src.nominal_fps or 30.0,
            protected=Protected(input_files(src)),
            what="the annotated video (--out)",
        )
    except OutputError as exc:
        src.close()
        raise DemoError(str(exc)) from exc
    sinks = [saver]
    display = has_display()
    if display.ok:
        sinks.append(Display(on_quit=run.stop))
    else:  # the live demo always offers a window: say why there is none, and where the frames go
        logger.warning("no window (%s): the annotated frames go to %s", display.cause, saver.path)
    run.sinks = sinks
    with run:
        for result in run:
            run.write_line(result.summary())
    run.log_summary()
    return run.exit_code


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="edgerun demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument("--models", type=Path, help="a folder of models to use instead of the bundled ones")
    p.add_argument("--data-dir", type=Path, help=f"MNIST IDX folder (default: ${DATA_ENV}, ../shared/data)")
    p.add_argument("--digits", type=positive_int, default=1000, help="test digits to classify (default 1000)")
    p.add_argument("--scenes", type=positive_int, default=30, help="scenes for localizer precision/recall (default 30)")
    p.add_argument("--seconds", type=positive_float, default=0.3, help="time per latency row (default 0.3)")
    p.add_argument("--synthetic", action="store_true", help="use drawn digits even where MNIST data exists")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source", help="run live on this source instead (0 = webcam)")
    p.add_argument("--max-frames", type=positive_int, help="with --source: stop after N frames")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out: Path = args.out
    from edgerun.runtime.outputs import OutputError, check_directory

    made = [folder for folder in (out, *out.parents) if not folder.exists()]  # deepest first
    try:
        check_directory(out, "--out")
    except OutputError as exc:
        print_error("edgerun demo", exc)
        return 2
    try:
        if args.source is not None:
            return run_live(args.models, args.source, out, args.max_frames)
        return _demo(args, out)
    except DemoError as exc:
        print_error("edgerun demo", exc)
        for folder in made:  # a refused demo leaves no empty --out folders behind (ones with files stay)
            try:
                folder.rmdir()
            except OSError:
                break
        return 2


def _demo(args, out: Path) -> int:
    start = time.perf_counter()
    cnn, fcn = bundled(args.models, "mnist_cnn"), bundled(args.models, LOCALIZER)
    digits = load_digits(args.data_dir, args.digits, args.synthetic)
    logger.info("1/5 digits: %s (%d)", digits.origin, len(digits.images))
    logger.info("2/5 classifying %d single digits with mnist_cnn", len(digits.images))
    classify = step_classify(cnn, digits)
    logger.info("3/5 localizing digits on scenes with %s", LOCALIZER)
    local = step_localize(fcn, digits, out, args.seed, args.scenes)
    logger.info("4/5 panning video through the run pipeline")
    video = step_video(fcn, digits, out, args.seed)
    logger.info("5/5 latency against batch size")
    small = args.models / "mnist_small.onnx" if args.models else None
    if small is None:
        from edgerun.models import names, path

        small = path("mnist_small") if "mnist_small" in names() else None
    classifiers = [p for p in (cnn.path, small) if p is not None and p.is_file()]
    sweep = step_sweep(classifiers, out, args.seconds)
    summary = {
        "digits": digits.origin,
        "synthetic": digits.synthetic,
        "classify": classify,
        "localize": local,
        "video": video,
        "latency": sweep,
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if sys.stdout is None:  # started with >&-: the lines below have nowhere to go
        logger.warning("standard output is closed: the summary is in %s", out / "summary.json")
    tag = " (SYNTHETIC digits)" if digits.synthetic else ""
    print(
        f"edgerun demo{tag}: {summary['seconds']} s\n"
        f"digits        {digits.origin}\n"
        f"classify      mnist_cnn accuracy {classify['accuracy']:.4f} on {classify['images']} digits\n"
        f"localize      {LOCALIZER}: {local['found']} detections for {local['digits_on_scene']} digits on the "
        f"book's scene (precision {local['scene_precision']:.3f}, recall {local['scene_recall']:.3f}), "
        f"{local['found_on_page']} for {local['digits_on_page']} on a page of lit paper "
        f"(precision {local['page_precision']:.3f}, recall {local['page_recall']:.3f})\n"
        + "".join(
            f"              {local['scenes']} {name}: precision {local[kind + '_precision']:.3f} "
            f"recall {local[kind + '_recall']:.3f}\n"
            for kind, name in (
                ("book", "book scenes"),
                ("light", "pages on lit paper"),
                ("dark", "pages on a dark board"),
            )
        )
        + f"video         {video['frames']} frames of 640x480 at {video['fps']:.1f} fps end-to-end\n"
        f"outputs       {out / 'scene_annotated.png'}\n"
        f"              {out / 'scene.png'}\n"
        f"              {out / 'page_annotated.png'}\n"
        f"              {out / 'page.png'}\n"
        f"              {out / 'heatmaps.png'} and {out / 'heatmaps'}/digit_N.png\n"
        f"              {video['video']} -> {video['annotated']}\n"
        f"              {sweep['table']}, {sweep['json']}\n"
        + "".join(f"              {p}\n" for p in sweep["plots"])
        + f"              {out / 'summary.json'}"
    )
    return 0
