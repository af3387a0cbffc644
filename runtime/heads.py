"""Task heads: how one model's inputs are made from a frame and its outputs become a Result.

A head is chosen from the model's metadata (``task``) and owns both ends of inference for its
task: :meth:`prepare` turns one frame into the tensors the model runs (one for a classifier;
a localizer may ask for several, one per scale), and :meth:`finish` turns the model's outputs
for those tensors into one :class:`~edgerun.runtime.results.Result`. The model runs tensors of
equal shape from many frames as one batch in between, so a head never calls the model itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .frames import Frame
from .metadata import MetadataError, ModelMetadata
from .postprocess import LocalizeConfig, localize, top_k
from .preprocess import preprocessor
from .results import Result

#: The book's threshold for a localizer's class maps.
DEFAULT_THRESHOLD = 0.98


class HeadOptionsError(ValueError):
    """A head option out of range (``topk``, ``threshold``): the message says what is allowed."""


@dataclass(frozen=True)
class HeadOptions:
    """What a user may set about turning outputs into answers (checked on creation, with the
    bounds ``edgerun run --topk/--threshold`` enforces)."""

    topk: int = 5
    threshold: float | None = None  # localize; None: the model's own (metadata), else DEFAULT_THRESHOLD
    heatmaps: bool = False  # page localizers: also run the whole picture once for its class maps

    def __post_init__(self) -> None:
        topk = self.topk
        if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
            raise HeadOptionsError(f"topk must be a whole number >= 1 (classes to report), got {topk!r}")
        threshold = self.threshold
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float, np.integer, np.floating))
            or not 0.0 < threshold <= 1.0  # NaN fails this too
        ):
            raise HeadOptionsError(
                f"threshold must be a number in (0, 1] (a localizer's minimum score), or None for the model's own; "
                f"got {threshold!r}"
            )
        if not isinstance(self.heatmaps, bool):
            raise HeadOptionsError(f"heatmaps must be True or False, got {self.heatmaps!r}")


@dataclass(eq=False)  # holds arrays
class Prepared:
    """One frame's model inputs (NHWC float32, one per run) and what :meth:`finish` needs back."""

    tensors: list[np.ndarray]
    context: Any = None
    blank: bool = False  # the picture is one flat value after preprocessing: nothing in it to answer


def is_blank(tensor: np.ndarray) -> bool:
    """Whether a prepared input holds one value everywhere (a blank page, a covered lens, a
    digit normaliser that found no ink): any answer to it is the model's guess for nothing."""
    return tensor.size > 0 and bool(tensor.min() == tensor.max())


class OutputError(ValueError):
    """Outputs a head cannot turn into an answer (non-finite values): one error record."""


class TaskHead(Protocol):
    task: str

    def prepare(self, image: np.ndarray) -> Prepared: ...

    def finish(self, outputs: list[np.ndarray], prepared: Prepared, frame: Frame, latency_ms: float) -> Result: ...


def check_finite(output: np.ndarray) -> None:
    if not np.all(np.isfinite(output)):
        bad = int(np.size(output) - np.count_nonzero(np.isfinite(output)))
        raise OutputError(
            f"the model produced {bad} non-finite value(s) (NaN or infinity) for this input; "
            "the model or its input scaling is broken for it"
        )


def _check_width(width: int, classes: tuple[str, ...]) -> None:
    """A model whose output width was unknown at load must still agree with its class names."""
    if classes and width != len(classes):
        raise OutputError(
            f"the model gave {width} scores but names {len(classes)} classes; a label would be a guess: "
            "give one name per output (--labels FILE)"
        )


class ClassifyHead:
    """One tensor per frame; the top ``k`` classes of its probabilities."""

    task = "classify"

    def __init__(self, metadata: ModelMetadata, options: HeadOptions) -> None:
        self.classes = metadata.classes
        self.topk = options.topk
        self._prep = preprocessor(metadata.preprocessing)

    def prepare(self, image: np.ndarray) -> Prepared:
        tensor = self._prep(image)
        return Prepared([tensor], blank=is_blank(tensor))

    def finish(self, outputs: list[np.ndarray], prepared: Prepared, frame: Frame, latency_ms: float) -> Result:
        probs = outputs[0]
        check_finite(probs)
        _check_width(probs.reshape(-1).size, self.classes)
        return Result(
            frame.source,
            frame.index,
            latency_ms,
            top=top_k(probs, self.classes, self.topk),
            image=frame.image,
            blank=prepared.blank,
        )


class LocalizeHead:
    """One tensor per frame (the whole picture); class maps -> detections in frame pixels.

    The map geometry (``stride``, ``window``) comes from the model's metadata.
    """

    task = "localize"

    def __init__(self, metadata: ModelMetadata, options: HeadOptions) -> None:
        pre = metadata.preprocessing
        if pre.stride is None or pre.window is None:
            raise MetadataError(
                f"localize model {metadata.name!r} does not say its map geometry (preprocessing stride "
                f"{pre.stride}, window {pre.window}); re-export it with this edgerun"
            )
        self.classes = metadata.classes
        own = (metadata.localize or {}).get("threshold", DEFAULT_THRESHOLD)
        threshold = own if options.threshold is None else options.threshold
        self.config = LocalizeConfig(threshold=threshold, stride=pre.stride, window=pre.window)
        self._prep = preprocessor(pre)

    def prepare(self, image: np.ndarray) -> Prepared:
        tensor = self._prep(image)
        h, w = image.shape[:2]
        return Prepared([tensor], (w / tensor.shape[1], h / tensor.shape[0]))

    def finish(self, outputs: list[np.ndarray], prepared: Prepared, frame: Frame, latency_ms: float) -> Result:
        heat = outputs[0]
        check_finite(heat)
        if heat.ndim != 3:
            raise OutputError(f"the localizer gave maps of shape {heat.shape}; expected (height, width, classes)")
        _check_width(heat.shape[-1], self.classes)
        detections = localize(heat, self.classes, self.config, prepared.context)
        return Result(frame.source, frame.index, latency_ms, detections=detections, image=frame.image, heat=heat)


HEADS = {"classify": ClassifyHead, "localize": LocalizeHead}


def check_outputs(metadata: ModelMetadata, output_shape: list) -> None:
    """Refuse a model whose output cannot be what its task says: a wrong label is worse than none.

    Raises:
        MetadataError: the output's rank or width disagrees with the task or the class names.
    """
    width = output_shape[-1] if output_shape else None
    expected_rank = 2 if metadata.task == "classify" else 4
    if not output_shape:  # onnxruntime reports [] when the declared shape contradicts the graph's
        raise MetadataError(
            f"onnxruntime knows no shape for output {metadata.output_name!r}: the shape the model declares for it "
            "is missing or contradicts what its graph computes (edgerun inspect shows the declared one); "
            "export the model again or fix its output's shape"
        )
    if len(output_shape) != expected_rank:
        kind = "(batch, classes)" if metadata.task == "classify" else "(batch, height, width, classes)"
        raise MetadataError(
            f"output {metadata.output_name!r} has shape {output_shape}, but a {metadata.task} model "
            f"needs {kind}; check the model's task (edgerun inspect) or use a {metadata.task} model"
        )
    if isinstance(width, int) and metadata.classes and width != len(metadata.classes):
        raise MetadataError(
            f"output {metadata.output_name!r} has {width} classes but the model names {len(metadata.classes)} "
            f"({', '.join(metadata.classes[:5])}{', …' if len(metadata.classes) > 5 else ''}); "
            "give one label per output (--labels FILE with one name per line)"
        )


def make_head(metadata: ModelMetadata, options: HeadOptions | None = None) -> TaskHead:
    """The head for ``metadata.task``."""
    if metadata.task == "localize" and metadata.preprocessing.recipe == "page":
        # Pages need OpenCV's background and proposal steps: loaded only for the models that use them.
        from .page_head import PageLocalizeHead

        return PageLocalizeHead(metadata, options or HeadOptions())
    try:
        head = HEADS[metadata.task]
    except KeyError:
        raise MetadataError(f"no head for task {metadata.task!r}; known: {', '.join(HEADS)}") from None
    return head(metadata, options or HeadOptions())
