"""onnxruntime session settings: what a session is opened with, and how its failures read.

:class:`SessionConfig` is the one description of a session (threads, spinning, optimisation,
execution mode, IO binding, a tuned graph file, prepacking); :func:`session_options` turns it
into onnxruntime's options. ``edgerun tune`` stores the fastest per model, batch and machine
(runtime/tuning.py); :class:`~edgerun.runtime.model.Model` opens its session with it.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .frames import describe

logger = logging.getLogger(__name__)

OPTIMIZATION_LEVELS = ("basic", "extended", "all")
EXECUTION_MODES = ("sequential", "parallel")


class SessionConfigError(ValueError):
    """A session setting out of range: the message says what was given and what is allowed."""


@dataclass(frozen=True)
class SessionConfig:
    """onnxruntime session settings.

    Defaults measured on a 2-core CPU: intra-op threads = all cores with spinning on is the
    fastest for both MNIST-sized and ResNet50-sized models (see README, Benchmarks).
    """

    provider: str = "auto"
    threads: int | None = None  # None: os.cpu_count()
    spinning: bool = True
    optimization: str = "all"  # "basic" | "extended" | "all"
    execution_mode: str = "sequential"  # "sequential" | "parallel" (edgerun tune measures both)
    io_binding: bool = False  # CPU: bind the input and a pre-allocated output (runtime/binding.py)
    # an equivalent graph file to open instead of the model, saved as onnxruntime optimised it
    # here (edgerun tune writes them): opened with optimisation off, it does not redo that work
    graph: str | None = None
    # onnxruntime's weight prepacking: it pays back over many runs; a session that runs once
    # (edgerun run on one image) starts ~4 ms sooner without it (README, Cold start)
    prepack: bool = True

    def __post_init__(self) -> None:
        threads = self.threads
        whole = isinstance(threads, (int, np.integer)) and not isinstance(threads, bool)
        if threads is not None and not (whole and threads >= 1):
            raise SessionConfigError(f"threads must be a whole number >= 1 (or None: all cores), got {threads!r}")
        if threads is not None:  # np.int64(2) as 2: onnxruntime's options take a Python int
            object.__setattr__(self, "threads", int(threads))
        for name in ("spinning", "io_binding", "prepack"):  # "no" is truthy: it switched spinning on
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise SessionConfigError(f"{name} must be True or False, got {describe(getattr(self, name))}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.graph is not None:
            if not isinstance(self.graph, (str, os.PathLike)) or isinstance(os.fspath(self.graph), bytes):
                raise SessionConfigError(
                    f"graph must be the path of a tuned graph file (str or Path) or None, got {describe(self.graph)}"
                )
            object.__setattr__(self, "graph", os.fspath(self.graph))
        if self.optimization not in OPTIMIZATION_LEVELS:
            raise SessionConfigError(
                f"optimization must be one of {', '.join(OPTIMIZATION_LEVELS)}, got {self.optimization!r}"
            )
        if self.execution_mode not in EXECUTION_MODES:
            raise SessionConfigError(
                f"execution_mode must be one of {', '.join(EXECUTION_MODES)}, got {self.execution_mode!r}"
            )


def import_onnxruntime():
    """onnxruntime, or an ImportError naming the extra that installs it (``pip install 'edgerun[cpu]'``)."""
    try:
        import onnxruntime
    except ModuleNotFoundError as exc:
        from edgerun import missing_extra

        raise missing_extra(exc) from None
    return onnxruntime


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


def session_options(config: SessionConfig, optimized: bool = False):
    """onnxruntime's options for ``config``; ``optimized``: the graph was saved optimised already."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads or default_threads()
    options.inter_op_num_threads = (config.threads or default_threads()) if config.execution_mode == "parallel" else 1
    options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if config.execution_mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL if optimized else levels[config.optimization]
    )
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
    if not config.prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    # errors come back as exceptions, which edgerun words itself; onnxruntime's own coloured log
    # lines only with -v
    options.log_severity_level = 2 if logger.isEnabledFor(logging.DEBUG) else 4
    return options


def tuned_graph(path: Path, graph: str | None) -> Path | None:
    """The tuned graph file (a variant, or the model saved optimised) to open instead of the
    model, while that file exists."""
    if graph is None:
        return None
    variant = Path(graph)
    if variant.is_file():
        logger.info("%s: opening the tuned graph %s (saved optimised for this machine)", path.name, variant.name)
        return variant
    logger.warning(
        "%s: the tuned graph %s is gone; running the model itself (edgerun tune makes it again)", path.name, variant
    )
    return None


def load_failure(path: Path, text: str) -> str:
    """A one-line reason from onnxruntime's load error, without its C++ source paths."""
    first = text.splitlines()[0] if text else "unknown error"
    reason = re.sub(r"/onnxruntime_src/\S+ [^(]*\([^)]*\) ", "", first)  # its C++ file and function
    if "IR version" in first:
        return (
            f"{path} needs a newer onnxruntime ({reason.split('failed:')[-1].strip()}); "
            "upgrade onnxruntime or export with an older opset"
        )
    lower = first.lower()
    if "external data" in lower or "outside" in lower or "external_data" in lower:
        return f"{path}: refused external data ({reason[:300]}); external files must sit beside the model"
    if "protobuf parsing failed" in lower:  # not an ONNX file at all, or a cut-off one
        return (
            f"{path} is not a loadable ONNX model: the file is not a complete ONNX protobuf (truncated "
            "download or copy, or another format); fetch or export it again"
        )
    return f"{path} is not a loadable ONNX model: {reason[:300]}"
