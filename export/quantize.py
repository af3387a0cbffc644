"""int8 (static QDQ, per-channel) and fp16 variants of an exported model.

int8 types were chosen by measurement, not by default: with onnxruntime 1.31 on an AVX-512 VNNI
CPU, uint8 activations with int8 weights ran ResNet50 about 3x faster than fp32, while int8
activations gave no gain (README, Export).
Every option is passed explicitly: the library's defaults have changed between versions.
Calibration reuses the runtime's own path (``Model.prepare``: the model's preprocessing recipe),
so int8 sees what the runtime will feed it, and accuracy is measured with ``Model.predict``.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerun.runtime.frames import Frame, SourceError
from edgerun.runtime.images import IMAGE_SUFFIXES, read_image
from edgerun.runtime.metadata import ANY_SIZE_PROBE, ModelMetadata, read_metadata
from edgerun.runtime.model import Model, SessionConfig
from edgerun.runtime.progress import progress_bar
from edgerun.runtime.timing import measure

logger = logging.getLogger(__name__)


class QuantizeError(Exception):
    """Calibration data or quantization failed; the message says what to provide."""


@dataclass
class LabelledInputs:
    """Images as read (frames), with labels where the data has them."""

    frames: list[np.ndarray]
    labels: np.ndarray | None
    source: str


def model_inputs(model: Model, frames: list[np.ndarray]) -> np.ndarray:
    """The NHWC float32 inputs ``model`` makes of ``frames``: the runtime's own preparation."""
    items = [model.prepare(Frame(f, "calibration", i, float(i))) for i, f in enumerate(frames)]
    bad = [item.error for item in items if item.error is not None]
    if bad:
        raise QuantizeError(f"{len(bad)} calibration image(s) could not be prepared, e.g. {bad[0]}")
    return np.stack([item.prepared.tensors[0] for item in items]).astype(np.float32)


def _from_idx(directory: Path, samples: int, seed: int):
    from edgerun.train.data import DataError, load_idx_split

    splits = {}
    for split in ("train", "test"):
        try:
            splits[split] = load_idx_split(directory, split)
        except DataError:
            continue
    if not splits:
        return None
    rng = np.random.default_rng(seed)
    if "train" in splits:  # calibrate on training images, evaluate on the test split
        calib_split = splits["train"]
        pick = rng.permutation(len(calib_split))[:samples]
        calib = calib_split.images[np.sort(pick)]
        evaluation = splits.get("test")
        eval_images = evaluation.images if evaluation else None
        eval_labels = evaluation.labels if evaluation else None
        origin = f"{directory} (calibration: {len(calib)} training images; evaluation: test split)"
    else:  # only a test split: calibrate on its first images, evaluate on the rest
        test = splits["test"]
        calib = test.images[:samples]
        eval_images, eval_labels = test.images[samples:], test.labels[samples:]
        origin = f"{directory} (calibration: first {len(calib)} test images; evaluation: the other {len(eval_images)})"
    calib_set = LabelledInputs(list(calib), None, origin)
    eval_set = None
    if eval_images is not None and len(eval_images):
        eval_set = LabelledInputs(list(eval_images), eval_labels, origin)
    return calib_set, eval_set


def _from_images(directory: Path, classes: tuple[str, ...], samples: int, seed: int):
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        return None
    rng = np.random.default_rng(seed)
    files = [files[i] for i in np.sort(rng.permutation(len(files))[:samples])]
    frames, labels = [], []
    index = {name: i for i, name in enumerate(classes)}
    for path in files:
        try:
            frames.append(read_image(path))  # the runtime's checked reader: no half-decoded files
        except SourceError as exc:
            logger.warning("calibration: skipping %s", exc)
            continue
        labels.append(index.get(path.parent.name, -1))
    if not frames:
        return None
    label_array = np.asarray(labels) if all(label >= 0 for label in labels) else None
    origin = f"{len(frames)} images from {directory}"
    # Images are too few to split; with folder labels the same set shows accuracy before/after.
    return LabelledInputs(frames, None, origin), LabelledInputs(frames, label_array, origin)


def load_calibration(directory: str | Path, classes: tuple[str, ...] = (), samples: int = 200, seed: int = 0):
    """Calibration images and (if labelled) evaluation images from a directory of IDX files or
    images (labelled by their folder's name when it is one of ``classes``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise QuantizeError(f"--calib-data {directory} is not a directory")
    found = _from_idx(directory, samples, seed) or _from_images(directory, classes, samples, seed)
    if found is None:
        raise QuantizeError(
            f"no calibration data in {directory}: expected IDX files (t10k-images-idx3-ubyte.gz, ...) "
            f"or images ({', '.join(IMAGE_SUFFIXES)})"
        )
    return found


def _reader(input_name: str, inputs: np.ndarray, batch: int = 16):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(range(0, len(inputs), batch))
            self._bar = progress_bar(len(inputs), "calibrating int8")

        def get_next(self) -> dict | None:
            start = next(self._batches, None)
            if start is None:
                if self._bar is not None:
                    self._bar.close()
                return None
            if self._bar is not None:
                self._bar.update(min(batch, len(inputs) - start))
            return {input_name: np.ascontiguousarray(inputs[start : start + batch])}

    return Reader()


def restamp(path: Path, metadata: ModelMetadata) -> None:
    """Write ``metadata`` into the model at ``path`` (quantization tools drop or keep it)."""
    import onnx

    from .onnx import save_onnx, write_metadata

    proto = onnx.load(str(path))
    write_metadata(proto, metadata)
    save_onnx(proto, path)


def quantize_int8(fp32_path: Path, out: Path, calibration: LabelledInputs) -> ModelMetadata:
    """Static QDQ int8: per-channel 7-bit int8 weights (see ``reduce_range`` below), uint8
    activations, MinMax calibration."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    metadata = read_metadata(onnx.load(str(fp32_path), load_external_data=False))
    inputs = model_inputs(Model.load(fp32_path, SessionConfig(provider="cpu")), calibration.frames)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=False)
        quantize_static(
            model_input=str(prepared),
            model_output=str(Path(tmp) / "int8.onnx"),
            calibration_data_reader=_reader(metadata.input_name, inputs),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights. onnxruntime runs QDQ Conv/MatMul as u8 x s8 integer kernels, and on x86
            # without VNNI (AVX2, AVX-512 without VNNI) those add pairs of products in 16 bits, which
            # saturate with 8-bit weights (VNNI adds in 32 bits): mnist_cnn.int8 scored 0.9766 there
            # at the default optimisation, 0.9808 unfused (level basic). With 7-bit weights no pair
            # can saturate: 0.9806 at every level, at the same speed (Zen 3, 2026-11-24).
            reduce_range=True,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        int8_meta = metadata.replace(variant="int8")
        from .onnx import save_onnx, write_metadata

        proto = onnx.load(str(Path(tmp) / "int8.onnx"))
        write_metadata(proto, int8_meta)
        save_onnx(proto, out)  # atomic, into out's own folder (the temporary one may be another disk)
    return int8_meta


def convert_fp16(fp32_path: Path, out: Path) -> ModelMetadata:
    """fp16 weights and compute with float32 inputs and outputs (for GPUs)."""
    import onnx
    from onnxconverter_common import float16

    proto = onnx.load(str(fp32_path))
    metadata = read_metadata(proto)
    with warnings.catch_warnings():  # it warns once per weight it rounds below fp16's range
        warnings.simplefilter("ignore", UserWarning)
        half = float16.convert_float_to_float16(proto, keep_io_types=True)
    fp16_meta = metadata.replace(variant="fp16")
    from .onnx import save_onnx, write_metadata

    write_metadata(half, fp16_meta)
    save_onnx(half, out)
    return fp16_meta


@dataclass
class VariantFigures:
    accuracy: float | None
    p50_ms: dict[int, float]


def evaluate(path: Path, evaluation: LabelledInputs | None, batches=(1, 8), seconds: float = 2.0) -> VariantFigures:
    """Accuracy on the labelled inputs (if any) and median CPU latency at each batch size."""
    model = Model.load(path, SessionConfig(provider="cpu"))
    accuracy = None
    if evaluation is not None and evaluation.labels is not None and model.task == "classify":
        predicted = np.array([r.class_id for r in model.predict(evaluation.frames, batch=256)])
        accuracy = float(np.mean(predicted == evaluation.labels))
    shape = model.metadata.preprocessing.size
    h, w = ANY_SIZE_PROBE if None in shape else shape
    channels = model.input_channels
    p50 = {}
    for batch in batches:
        x = np.random.default_rng(0).random((batch, h, w, channels), dtype=np.float32)
        p50[batch] = measure(lambda x=x: model.run(x), warmup=5, seconds=seconds).median_ms
    return VariantFigures(accuracy, p50)
