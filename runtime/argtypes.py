"""argparse value types shared by every ``edgerun`` subcommand: one message for one mistake."""

from __future__ import annotations

import argparse
import functools
import logging
import math
import os
import sys
from pathlib import Path


class SizedHelpFormatter(argparse.HelpFormatter):
    """argparse's help formatter with the terminal width read once per process.

    argparse makes a formatter for every ``add_argument`` call (to check the metavar), and each
    asks ``shutil.get_terminal_size``; importing ``shutil`` brings ``bz2``, ``lzma`` and ``zlib``
    with it, about 3 ms of a one-image ``edgerun run`` on the 2-core Zen 3 (README, cold start).
    The width follows ``shutil``'s rule: ``$COLUMNS``, else standard output's terminal, else 80.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, terminal_columns() - 2 if width is None else width)


@functools.cache
def terminal_columns() -> int:
    """Columns of the terminal, as ``shutil.get_terminal_size().columns`` gives them."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


#: The most intra-op threads a session is given (--threads, a baseline's): onnxruntime makes one OS
#: thread each; 100,000 ended in std::bad_alloc, and 1,000 on 2 cores ran a 0.2 s bench past 2 minutes.
MAX_THREADS = 1024


def thread_count(text: str) -> int:
    """Intra-op threads: a whole number from 1 to MAX_THREADS."""
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(
            f"expected at most {MAX_THREADS} (one OS thread each; more than the cores only take turns), got {value}"
        )
    cores = os.cpu_count() or 1
    if value > cores:  # allowed (a container may see fewer cores than it gets), but rarely what was meant
        logging.getLogger(__name__).warning(
            "--threads %d is more than this machine's %d cores: the threads take turns, which is usually slower "
            "(64 on 2 cores made a 0.2 s bench take 30 s)",
            value,
            cores,
        )
    return value


def given_path(text: str) -> Path:
    """A path that names something: argparse's ``type=Path`` makes '' the working folder ('.')."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "expected a path (or a bundled model's name where a model goes), got an empty string"
        )
    return Path(text)


def positive_float(text: str) -> float:
    """A finite number above 0 (``inf`` seconds was an OverflowError after the models loaded)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """A number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value}")
    return value


def batch_size(text: str) -> int:
    """A batch size from 1 to MAX_BATCH (a bigger batch only holds more frames in memory)."""
    from .pipeline import MAX_BATCH

    value = positive_int(text)
    if value > MAX_BATCH:
        raise argparse.ArgumentTypeError(
            f"expected at most {MAX_BATCH} (one inference call; larger batches only hold more frames in memory), "
            f"got {value}"
        )
    return value


def print_error(prog: str, message: object) -> None:
    """The one-line ``PROG: error: MESSAGE`` every subcommand ends a refused run with, on standard
    error; a file name's newline or escape code in the message is shown escaped (one line, and
    nothing reaches the terminal's controls)."""
    from .outputs import one_line

    print(f"{prog}: error: {one_line(str(message))}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """argparse, except that ``--help`` or a usage message that cannot be written fails loudly:
    argparse drops the OSError and exits 0, so ``edgerun run --help | head -0`` looked like a
    success and ``> /dev/full`` lost the help without a word. The ``edgerun`` command then ends
    with 141 (reader gone) or 5 (disk full), as for every other output."""

    def error(self, message: str):  # argparse's: usage, then one escaped line, exit 2
        from .outputs import one_line

        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")

    def _print_message(self, message: str, file=None) -> None:
        if message:
            stream = file or sys.stderr
            if stream is None:  # closed by the caller (>&-): nothing to say it on
                return
            stream.write(message)
            stream.flush()
