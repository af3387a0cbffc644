"""What ``Model.run`` takes and what onnxruntime is given: one seam between them.

``Model.run`` takes a preprocessed NHWC batch (float32, or any numbers) of the model's input
shape, or a batch already in the model's own layout and type (``Model.feed``); :class:`BatchInput`
checks it, in one comparison on the hot path and in full only when that fails, and turns it into
the feed: transposed for an NCHW model, cast to its input type (uint8 pixels rounded and held to
0-255, never wrapped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .frames import describe, holds_numbers
from .metadata import ModelMetadata
from .modelfile import ModelError
from .modelio import INPUT_DTYPES, fixed_batch, input_spec, nhwc, whole


@dataclass(frozen=True, slots=True)
class BatchInput:
    """A model's input as ``Model.run`` sees it.

    Attributes:
        nchw: the model's input is NCHW (edgerun transposes NHWC batches to it).
        dtype: the numpy type onnxruntime is given.
        expected: the NHWC shape ``run`` takes (an int is a fixed size, anything else any size),
            or None when the input is not 4-D.
        fixed_batch: the model's fixed batch size, or None.
        tail: (H, W, C) when the model fixes all three, else None: the hot path's comparison.
    """

    nchw: bool
    dtype: type
    expected: list | None
    fixed_batch: int | None
    tail: tuple | None
    #: shape -> whether it is the model's own (see _own): decided once per shape, not per call
    _own_shapes: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, session, metadata: ModelMetadata) -> BatchInput:
        spec = input_spec(session, metadata)
        shape = list(spec.shape)
        expected = nhwc(shape, metadata) if len(shape) == 4 else None
        tail = tuple(expected[1:]) if expected is not None else ()
        tail = tail if len(tail) == 3 and all(whole(d) for d in tail) else None
        nchw = metadata.layout == "NCHW"
        return cls(
            nchw=nchw,
            dtype=INPUT_DTYPES.get(spec.type, np.float32),
            expected=expected,
            fixed_batch=fixed_batch(session, metadata),
            tail=tail,
        )

    def text(self, own: bool = False) -> str:
        """The batch ``Model.run`` takes, in words: ``(N, 28, 28, 1)``, N fixed where the model
        fixes it; ``own``: in the model's own NCHW order."""
        if self.expected is None:
            return "(N, H, W, C)"
        n, h, w, c = self.expected
        dims = (n, c, h, w) if own else (n, h, w, c)
        names = ("N", "C", "H", "W") if own else ("N", "H", "W", "C")
        return f"({', '.join(str(d) if whole(d) else name for d, name in zip(dims, names, strict=True))})"

    def _own(self, batch) -> bool:
        """``batch`` is already the model's own NCHW input: its type, contiguous, and a shape that
        fits (N, C, H, W) and not (N, H, W, C) (where both fit, it is read as NHWC, the documented form)."""
        if not (
            self.nchw
            and self.expected is not None
            and type(batch) is np.ndarray
            and batch.ndim == 4
            and batch.dtype == self.dtype
            and batch.flags.c_contiguous
            and batch.shape[0] > 0
        ):
            return False
        known = self._own_shapes.get(batch.shape)
        if known is None:
            n, h, w, c = self.expected

            def fits(want) -> bool:
                return all(not whole(d) or d == s for d, s in zip(want, batch.shape, strict=True))

            known = fits((n, c, h, w)) and not fits(self.expected)
            if len(self._own_shapes) < 64:  # a localizer's crops come in many sizes: bounded
                self._own_shapes[batch.shape] = known
        return known

    def refuse(self, got: str, hint: str = "") -> ModelError:
        layout = " (edgerun transposes it to the model's NCHW)" if self.nchw else ""
        if self.nchw and self.expected is not None:
            layout += f", or the model's own {self.text(own=True)} as Model.feed gives it"
        return ModelError(
            f"Model.run takes one preprocessed batch: a numpy array {self.text()}, NHWC{layout}, float32; "
            f"got {got}{hint or '; to run frames or files, call the model: model(x) or model.predict(frames)'}"
        )

    def feed(self, batch: np.ndarray) -> np.ndarray:
        """What onnxruntime is given for ``batch``: an NHWC batch transposed and cast to the
        model's own layout and type, or a batch in those already, as it is.

        Raises:
            ModelError: neither (the message says what ``Model.run`` takes).
        """
        if not (  # the common case in one test (a batch-1 call is ~170 us: the full checks cost 2%)
            type(batch) is np.ndarray
            and batch.dtype == self.dtype
            and batch.shape[1:] == self.tail
            and (batch.shape[0] == self.fixed_batch if self.fixed_batch else batch.shape[0] > 0)
        ):
            if self._own(batch):  # already the model's own NCHW input (Model.feed): as it is
                return batch
            self.check(batch)
        if self.nchw:
            batch = batch.transpose(0, 3, 1, 2)
        if self.dtype == np.uint8 and batch.dtype != np.uint8:  # pixels: rounded and held to 0-255, never wrapped
            batch = np.clip(np.rint(batch), 0, 255)
        if batch.dtype != self.dtype or not batch.flags.c_contiguous:
            batch = np.ascontiguousarray(batch, dtype=self.dtype)
        return batch

    def check(self, batch) -> None:
        """Raise :class:`ModelError` saying what ``Model.run`` takes, unless ``batch`` is one."""
        if not isinstance(batch, np.ndarray):
            hint = "; convert it first: np.asarray(x, np.float32)" if isinstance(batch, (list, tuple)) else ""
            raise self.refuse(describe(batch), hint)
        if not holds_numbers(batch):
            raise self.refuse(f"dtype {batch.dtype}", "; it must hold numbers: batch.astype(np.float32)")
        if batch.ndim != 4:
            raise self.refuse(f"shape {batch.shape}")
        if self.expected is not None:
            for axis, (want, got) in enumerate(zip(self.expected, batch.shape, strict=True)):
                if whole(want) and want != got:
                    hint = ""
                    if axis == 0:
                        hint = f"; the model's batch axis is fixed at {want}: run {want} input(s) per call"
                    raise self.refuse(f"shape {batch.shape}", hint)
        if len(batch) == 0:
            raise self.refuse("an empty batch (N = 0)", "; give at least one input")
