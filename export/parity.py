"""The parity gate: Keras and onnxruntime (CPU) must agree on the same inputs, or the export fails.

Inputs are real test images where data is available (the files the training card names, or
``--data-dir``), otherwise seeded random inputs of the right range. Cases: batch 1 and 8; the
FCN also at a large size (308x336, the book's example).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgerun.runtime.metadata import ANY_SIZE_PROBE

logger = logging.getLogger(__name__)

FP32_TOLERANCE = 1e-5


class ParityError(Exception):
    """Keras and onnxruntime disagree beyond the tolerance."""


@dataclass
class ParityCase:
    label: str
    shape: tuple[int, ...]
    max_abs_diff: float
    argmax_agree: float  # fraction of positions whose argmax matches
    near_ties: int  # disagreements where Keras' top two differ by less than the diff itself

    def passed(self, tolerance: float) -> bool:
        return self.max_abs_diff <= tolerance and self.argmax_agree == 1.0


@dataclass
class ParityReport:
    tolerance: float
    inputs: str  # where the inputs came from
    cases: list[ParityCase] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed(self.tolerance) for c in self.cases)

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.cases), default=0.0)

    def lines(self) -> list[str]:
        return [
            f"  {c.label:<14} {str(list(c.shape)):<20} max|dprob| {c.max_abs_diff:.2e}  "
            f"argmax agree {c.argmax_agree:.2%}" + (f" ({c.near_ties} near-ties)" if c.near_ties else "")
            for c in self.cases
        ]

    def as_dict(self) -> dict:
        return {
            "tolerance": self.tolerance,
            "inputs": self.inputs,
            "passed": self.passed,
            "cases": [c.__dict__ | {"shape": list(c.shape)} for c in self.cases],
        }


def _real_images(card: dict, data_dir: str | Path | None, count: int) -> tuple[np.ndarray, str] | None:
    """Up to ``count`` uint8 test images (N, H, W) from data_dir or the card's test files."""
    from edgerun.train.data import DataError, read_idx

    candidates: list[Path] = []
    if data_dir is not None:
        for sub in ("", "mnist", "fashion-mnist"):
            candidates.append(Path(data_dir) / sub / "t10k-images-idx3-ubyte.gz")
    test_files = ((card.get("data") or {}).get("test") or {}).get("files") or []
    candidates.extend(Path(f) for f in test_files if "images" in Path(f).name)
    for path in candidates:
        if path.is_file():
            try:
                return read_idx(path)[:count], str(path)
            except DataError as exc:
                logger.warning("parity inputs: %s", exc)
    return None


def _scene(digits: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A black canvas with the digits pasted at random non-overlapping 28-px cells."""
    canvas = np.zeros(size, np.uint8)
    rows, cols = size[0] // 28, size[1] // 28
    cells = rng.choice(rows * cols, size=min(len(digits), rows * cols), replace=False)
    for digit, cell in zip(digits, cells, strict=False):
        r, c = divmod(int(cell), cols)
        canvas[r * 28 : r * 28 + 28, c * 28 : c * 28 + 28] = digit
    return canvas


def parity_inputs(metadata, card: dict, data_dir=None, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """Named NHWC float32 input batches for the gate, and where they came from."""
    rng = np.random.default_rng(seed)
    pre = metadata.preprocessing
    if pre.recipe == "caffe":
        h, w = pre.size
        images = rng.integers(0, 256, size=(8, h, w, 3)).astype(np.float32) - np.float32(pre.mean)
        return {"batch 1": images[:1], "batch 8": images}, f"seeded random images (seed {seed})"
    _, h, w, c = metadata.input_shape
    if metadata.task == "classify" and (h, w, c) != (28, 28, 1):  # not digit-shaped: pictures of its own size
        shape = (8, h if isinstance(h, int) else 64, w if isinstance(w, int) else 64, c if isinstance(c, int) else 3)
        pixels = rng.integers(0, 256, size=shape).astype(np.float32)
        images = (pixels * np.float32(pre.scale) - np.float32(pre.mean)) / np.float32(pre.std)
        return {
            "batch 1": images[:1],
            "batch 8": images,
        }, f"seeded random {shape[1]}x{shape[2]}x{shape[3]} images (seed {seed})"
    real = _real_images(card, data_dir, 16)
    if real is not None:
        digits, origin = real
        source = f"{len(digits)} real test images from {origin}"
    else:
        digits = (rng.random((16, 28, 28)) * 255).astype(np.uint8)
        source = f"seeded random images (seed {seed}); no test data found"
    x = (digits.astype(np.float32) * np.float32(pre.scale))[..., None]
    cases = {"batch 1": x[:1], "batch 8": x[:8]}
    if metadata.task == "localize":
        scene = _scene(digits, ANY_SIZE_PROBE, rng).astype(np.float32) * np.float32(pre.scale)
        cases[f"scene {ANY_SIZE_PROBE[0]}x{ANY_SIZE_PROBE[1]}"] = scene[None, :, :, None]
    return cases, source


def check_parity(
    keras_model,
    onnx_path: Path,
    metadata,
    cases: dict[str, np.ndarray],
    source: str,
    tolerance: float = FP32_TOLERANCE,
) -> ParityReport:
    """Run every case through Keras and onnxruntime (CPU) and compare the probabilities.

    Argmax agreement counts a mismatch as a near-tie, not a disagreement, when Keras' own top
    two probabilities differ by less than the largest difference seen: float rounding can
    flip exact ties (random-weight ResNet50 has many) without either runtime being wrong.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    report = ParityReport(tolerance=tolerance, inputs=source)
    for label, x in cases.items():
        expected = np.asarray(keras_model(x, training=False))
        got = session.run([metadata.output_name], {metadata.input_name: x})[0]
        if got.shape != expected.shape:
            raise ParityError(f"{label}: onnxruntime gave shape {got.shape}, Keras {expected.shape}")
        diff = float(np.abs(got - expected).max())
        flat_e, flat_g = expected.reshape(-1, expected.shape[-1]), got.reshape(-1, got.shape[-1])
        mismatch = flat_e.argmax(1) != flat_g.argmax(1)
        top2 = np.sort(flat_e, axis=1)[:, -2:]
        ties = mismatch & ((top2[:, 1] - top2[:, 0]) <= max(diff, 1e-7))
        agree = 1.0 - float(np.mean(mismatch & ~ties))
        report.cases.append(ParityCase(label, tuple(x.shape), diff, agree, int(ties.sum())))
    return report
