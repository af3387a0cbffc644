"""``edgerun export`` (Keras -> ONNX with metadata, parity gate, int8/fp16/TFLite variants) and
``edgerun inspect`` (any ONNX file)."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgerun.runtime.argtypes import Parser, given_path, positive_int, print_error

from .opsets import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="edgerun export",
        description="Export a Keras model to ONNX with its metadata; fails unless onnxruntime "
        "matches Keras (max |dprob| <= 1e-5, same argmax) at batch 1 and 8.",
    )
    p.add_argument("model", type=Path, help="the .keras file (its NAME.json card is read if present)")
    p.add_argument("--out", type=Path, help="output .onnx (default: beside the model, NAME.onnx)")
    p.add_argument(
        "--opset",
        type=_opset,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})",
    )
    p.add_argument("--int8", action="store_true", help="also write NAME.int8.onnx (static QDQ)")
    p.add_argument("--calib-data", type=Path, help="directory of images or IDX files for --int8")
    p.add_argument("--calib-samples", type=positive_int, default=200, help="calibration images (default 200)")
    p.add_argument("--fp16", action="store_true", help="also write NAME.fp16.onnx (for GPUs)")
    p.add_argument(
        "--tflite",
        action="store_true",
        help="also write NAME.tflite (the bench's TFLite peer); with --int8 also NAME.int8.tflite, "
        "full-integer, calibrated on the same images as NAME.int8.onnx",
    )
    p.add_argument("--data-dir", type=Path, help="test data for the parity gate (default: the card's files)")
    p.add_argument(
        "--labels", type=given_path, help="class names, one per line (default: the card's or the registry's)"
    )
    p.add_argument(
        "--no-simplify",
        action="store_true",
        help="keep tf2onnx's graph as it comes (shape arithmetic, flatten Transpose); for comparison",
    )
    return p


def _opset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from {MIN_OPSET} to {MAX_OPSET}, got {text!r}"
        ) from None
    if not MIN_OPSET <= value <= MAX_OPSET:
        raise argparse.ArgumentTypeError(
            f"expected an opset from {MIN_OPSET} to {MAX_OPSET} (what tf2onnx converts and edgerun checks), got {value}"
        )
    return value


def _is_zip(path: Path) -> bool:
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _fail(message: str, code: int = 2) -> int:
    print_error("edgerun export", message)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.int8 and args.calib_data is None:
        return _fail("--int8 needs --calib-data DIR (a directory of images or of IDX files)")
    if args.calib_data is not None and not args.calib_data.is_dir():
        return _fail(f"--calib-data {args.calib_data} is not a directory")
    if args.calib_data is not None and not args.int8:
        return _fail("--calib-data calibrates the int8 model: add --int8, or leave --calib-data out")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        return _fail(
            f"--data-dir {args.data_dir} is not a directory; give the folder of the test IDX files for the "
            "parity check, or leave it out (the training card's data, else seeded random images)"
        )
    if args.model.is_file() and not _is_zip(args.model):
        return _fail(
            f"{args.model} is not a .keras file (a zip written by Keras' model.save); give the model edgerun "
            "train wrote"
        )
    if args.model.is_dir():
        return _fail(f"{args.model} is a directory; give the .keras file edgerun train wrote")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgerun.runtime.metadata import MetadataError, read_labels

    from .onnx import ExportError, QualityError, export_keras, read_card
    from .parity import ParityError, check_parity, parity_inputs
    from .quantize import QuantizeError

    out = args.out or args.model.with_suffix(".onnx")
    from edgerun.runtime.outputs import AtomicFile, OutputError, check_targets

    try:  # every file this export writes, checked before the first is written
        protected = _inputs(args, read_card(args.model))
        check_targets(_outputs(args, out), protected)
        staged = AtomicFile(out, protected, "--out")  # written only if it passes the parity gate
    except (OutputError, ExportError) as exc:
        return _fail(str(exc))
    if args.int8:  # the calibration data is read now, not after the conversion it would waste
        from .quantize import load_calibration

        try:
            load_calibration(args.calib_data, tuple(read_card(args.model).get("classes") or ()), args.calib_samples)
        except QuantizeError as exc:
            staged.discard()
            return _fail(str(exc))
    staging = staged.path
    try:
        command = shlex.join(["edgerun", "export", *(sys.argv[2:] if argv is None else argv)])
        labels = read_labels(args.labels, "--labels") if args.labels else None
        keras_model, exported = export_keras(
            args.model, staging, opset=args.opset, command=command, labels=labels, simplified=not args.no_simplify
        )
        cases, source = parity_inputs(exported.metadata, read_card(args.model), args.data_dir)
        report = check_parity(keras_model, staging, exported.metadata, cases, source)
    except (ExportError, ParityError, MetadataError) as exc:
        staged.discard()
        return _fail(str(exc))
    except BaseException:  # Ctrl-C while converting: no half-made .partial file left behind
        staged.discard()
        raise
    summary = exported.summary
    checked = [
        f"graph     {sum(summary.ops.values())} nodes, {summary.transposes} Transpose: "
        + ", ".join(f"{op} {n}" for op, n in summary.ops.items()),
        f"simplify  {exported.simplified.line() if exported.simplified else 'skipped (--no-simplify)'}",
        f"parity    vs Keras on {report.inputs} (tolerance {report.tolerance:g}):",
        *report.lines(),
    ]
    if not report.passed:  # the graph and the gate's figures, but no 'wrote' line: nothing was
        staged.discard()
        print("\n".join(checked), file=sys.stderr)
        return _fail(f"parity gate failed: max |dprob| {report.max_abs_diff:.2e}; the export was not written", 1)
    try:
        staged.commit()
    except OutputError as exc:
        return _fail(str(exc))
    listing = Listing()
    listing.wrote(out, f"{summary.size_bytes / 1e6:.2f} MB, opset {summary.opset}, layout {exported.metadata.layout}")
    lines = listing.lines
    lines += checked

    try:  # each variant appends its lines as it is written, so a failure still lists what was
        if args.tflite:
            tflite = variant_paths(out)["tflite"]
            from .tflite import export_tflite

            size, diff = export_tflite(keras_model, tflite, cases["batch 8"])
            listing.wrote(tflite, f"{size / 1e6:.2f} MB, max |dprob| vs Keras {diff:.2e} at batch 8")
        if args.int8:
            _int8(out, args, exported.metadata, keras_model, cases["batch 8"], listing)
        if args.fp16:
            from .quantize import convert_fp16

            fp16 = variant_paths(out)["fp16"]
            convert_fp16(out, fp16)
            size = fp16.stat().st_size
            listing.wrote(fp16, f"{size / 1e6:.2f} MB; fp16 is for GPUs: on CPU it runs slower than fp32")
    except (ExportError, QuantizeError) as exc:
        print("\n".join(lines))
        skipped = [str(path) for _, path in _outputs(args, out) if path not in listing.written]
        message = f"{exc}; not written: {', '.join(skipped)}" if skipped else str(exc)
        return _fail(message, 1 if isinstance(exc, QualityError) else 2)
    print("\n".join(lines))
    return 0


@dataclass
class Listing:
    """What the export prints on stdout, and the files it has written so far (kept as each is
    written, so a variant failing later still lists the ones before it)."""

    lines: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    def wrote(self, path: Path, detail: str) -> None:
        self.lines.append(f"wrote     {path}  ({detail})")
        self.written.append(path)


def variant_paths(out: Path) -> dict[str, Path]:
    """Where each variant of the export at ``out`` goes (NAME.tflite, NAME.int8.onnx, ...)."""
    return {
        "tflite": out.with_suffix(".tflite"),
        "int8": out.with_name(f"{out.stem}.int8.onnx"),
        "int8-tflite": out.with_name(f"{out.stem}.int8.tflite"),
        "fp16": out.with_name(f"{out.stem}.fp16.onnx"),
    }


def _outputs(args, out: Path) -> list[tuple[str, Path]]:
    """Every file the export writes: the ONNX model and the variants asked for."""
    paths = variant_paths(out)
    asked = [
        ("TFLite twin", "tflite", args.tflite),
        ("int8 model", "int8", args.int8),
        ("int8 TFLite twin", "int8-tflite", args.int8 and args.tflite),
        ("fp16 model", "fp16", args.fp16),
    ]
    return [("--out", out)] + [(what, paths[key]) for what, key, wanted in asked if wanted]


def _inputs(args, card: dict):
    """What no output may replace: the .keras model, its card, the labels, and every file of the
    data it reads (--data-dir, --calib-data, the card's test files and their folders)."""
    from edgerun.runtime.outputs import Protected

    folders = [Path(d) for d in (args.data_dir, args.calib_data) if d is not None]
    folders += [folder / sub for folder in list(folders) for sub in ("mnist", "fashion-mnist")]
    splits = card.get("data") if isinstance(card.get("data"), dict) else {}
    for split in splits.values():
        files = split.get("files") if isinstance(split, dict) else None
        folders += [Path(name).parent for name in files or []]
    data = []
    for folder in folders:
        try:
            data += [p for p in folder.iterdir() if p.is_file()]
        except OSError:
            continue  # not there (yet): the step that reads it says so
    return Protected([args.model, args.model.with_suffix(".json"), args.labels, *data])


def _int8(out: Path, args, metadata, keras_model, check_batch, listing: Listing) -> None:
    """Write NAME.int8.onnx (and with --tflite NAME.int8.tflite), listing each as it is written."""
    from .quantize import evaluate, load_calibration, quantize_int8, restamp

    calib, evaluation = load_calibration(args.calib_data, metadata.classes, args.calib_samples)
    int8 = variant_paths(out)["int8"]
    logger.info("calibrating int8 on %s", calib.source)
    int8_meta = quantize_int8(out, int8, calib)
    before, after = evaluate(out, evaluation), evaluate(int8, evaluation)
    if after.accuracy is not None:  # the int8 file carries its own accuracy, not the fp32 card's
        restamp(
            int8,
            int8_meta.replace(
                test={
                    "accuracy": after.accuracy,
                    "samples": len(evaluation.labels),
                    "data": evaluation.source,
                    "fp32_accuracy": before.accuracy,
                }
            ),
        )
    listing.wrote(int8, f"{int8.stat().st_size / 1e6:.2f} MB, QDQ per-channel, u8 activations / 7-bit s8 weights")
    lines = listing.lines
    lines.append(f"int8      calibrated on {calib.source}")
    if before.accuracy is not None:
        lines.append(
            f"accuracy  fp32 {before.accuracy:.4f}  int8 {after.accuracy:.4f}  "
            f"({(after.accuracy - before.accuracy) * 100:+.2f} points, "
            f"{len(evaluation.labels)} labelled images)"
        )
    else:
        lines.append("accuracy  not measured: the calibration data has no labels")
    for batch in before.p50_ms:
        b, a = before.p50_ms[batch], after.p50_ms[batch]
        lines.append(f"latency   batch {batch}: fp32 {b:.3f} ms  int8 {a:.3f} ms  ({b / a:.2f}x, CPU p50)")
    if args.tflite:
        _tflite_int8(out, keras_model, calib, evaluation, check_batch, listing)


def _tflite_int8(out: Path, keras_model, calib, evaluation, check_batch, listing: Listing) -> None:
    """NAME.int8.tflite from the same calibration images as NAME.int8.onnx."""
    import numpy as np

    from edgerun.runtime.model import Model, SessionConfig

    from .quantize import model_inputs
    from .tflite import accuracy_tflite, export_tflite_int8

    # the inputs the runtime itself makes of the images (Model.prepare), as for the int8 ONNX file
    fp32 = Model.load(out, SessionConfig(provider="cpu"))
    eval_inputs = None if evaluation is None else model_inputs(fp32, evaluation.frames)
    target = variant_paths(out)["int8-tflite"]
    check = check_batch if eval_inputs is None else np.concatenate([check_batch, eval_inputs[:500]])
    size, agreement = export_tflite_int8(keras_model, target, model_inputs(fp32, calib.frames), check)
    listing.wrote(
        target,
        f"{size / 1e6:.2f} MB, full-integer int8, same calibration images; "
        f"top class as Keras on {agreement:.1%} of {len(check)} images",
    )
    if evaluation is not None and evaluation.labels is not None:
        accuracy = accuracy_tflite(target, eval_inputs, evaluation.labels)
        listing.lines.append(f"accuracy  int8 TFLite {accuracy:.4f} ({len(evaluation.labels)} labelled images)")


def inspect_main(argv: list[str] | None = None) -> int:
    p = Parser(prog="edgerun inspect", description="Describe any ONNX file.")
    p.add_argument("model", help="an .onnx file (edgerun's or any other), or a bundled model's name")
    p.add_argument("--json", action="store_true", help="print the description as JSON (for scripts)")
    args = p.parse_args(argv)
    import onnx

    from edgerun.runtime.model import ModelError, check_model_file, resolve_model_path

    from .graph import format_summary, summarize

    try:
        path = resolve_model_path(args.model)
        check_model_file(path)
    except ModelError as exc:
        print_error("edgerun inspect", exc)
        return 2
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and others
        from edgerun.runtime.modelfile import unreadable_model

        print_error("edgerun inspect", unreadable_model(path, exc))
        return 2
    summary = summarize(proto, path, path.stat().st_size)
    if args.json:
        import json
        from dataclasses import asdict

        print(json.dumps(asdict(summary), indent=1))
    else:
        print(format_summary(summary))
    return 0
