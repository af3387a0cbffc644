"""The head of page localizers (``page`` recipe): camera pictures of digits on paper or a board.

Kept apart from :mod:`edgerun.runtime.heads` so that classifiers never load the background,
proposal and multi-scale steps (runtime/pages.py, runtime/multiscale.py): ``make_head`` imports
this module only for a model whose metadata asks for it.
"""

from __future__ import annotations

import numpy as np

from .frames import Frame
from .heads import HeadOptions, Prepared, check_finite
from .metadata import MetadataError, ModelMetadata
from .multiscale import MultiScaleConfig, MultiScaleError, collect, plan_crops
from .pages import ink_proposals, normalise_background
from .preprocess import to_gray
from .results import Detection, Result


class PageLocalizeHead:
    """Camera pictures of digits (pages on paper or a board): the background is normalised, each
    piece of ink proposes a crop at its own scale, the crops run as one batch, and candidates are
    suppressed across crops and scales (runtime/pages.py, runtime/multiscale.py).

    Chosen by the ``page`` recipe; the map geometry and the thresholds come from the model's
    metadata (``preprocessing`` stride and window, the ``localize`` block).
    """

    task = "localize"

    def __init__(self, metadata: ModelMetadata, options: HeadOptions) -> None:
        pre = metadata.preprocessing
        spec = dict(metadata.localize or {})
        if options.threshold is not None:
            spec["threshold"] = options.threshold
        for key in ("factors", "levels"):
            if key in spec and isinstance(spec[key], list):
                spec[key] = tuple(spec[key])
        if pre.stride is None or pre.window is None:
            raise MetadataError(
                f"localize model {metadata.name!r} does not say its map geometry (preprocessing stride "
                f"{pre.stride}, window {pre.window}); re-export it with this edgerun"
            )
        try:
            self.config = MultiScaleConfig(**spec, window=pre.window, stride=pre.stride)
        except (TypeError, MultiScaleError) as exc:
            raise MetadataError(f"the model's localize settings {metadata.localize!r} cannot be used: {exc}") from None
        self.classes = metadata.classes
        self.gain = np.float32(255.0 * pre.scale)  # ink is in [0, 1]; the model takes pixels x scale
        self.heatmaps = options.heatmaps

    def prepare(self, image: np.ndarray) -> Prepared:
        ink = normalise_background(to_gray(image)).ink
        plan = plan_crops(ink, ink_proposals(ink), self.config)
        tensors = [t * self.gain for t in plan.tensors] if self.gain != 1.0 else list(plan.tensors)
        if self.heatmaps:  # the whole picture once more, for the book's class maps (not for finding)
            whole = ink if min(ink.shape) >= self.config.window else _pad_to(ink, self.config.window)
            tensors.append((whole * self.gain)[:, :, None])
        return Prepared(tensors, plan)

    def finish(self, outputs: list[np.ndarray], prepared: Prepared, frame: Frame, latency_ms: float) -> Result:
        for heat in outputs:
            check_finite(heat)
        heat = outputs.pop() if self.heatmaps else None
        found = collect(prepared.context, outputs, self.config)
        detections = [
            Detection(
                c.class_id,
                self.classes[c.class_id] if c.class_id < len(self.classes) else str(c.class_id),
                c.score,
                c.box,
            )
            for c in sorted(found, key=lambda c: (c.center[1], c.center[0]))
        ]
        return Result(frame.source, frame.index, latency_ms, detections=detections, image=frame.image, heat=heat)


def _pad_to(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape
    return np.pad(image, ((0, max(0, size - h)), (0, max(0, size - w))))
