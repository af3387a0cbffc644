"""SIGINT and SIGTERM in the middle of a measurement.

Python raises ``KeyboardInterrupt`` for SIGINT where the program is; :func:`terminate_raises`
makes SIGTERM (what CI runners and ``timeout`` send) raise :class:`Terminated`, a kind of it, so
that ``edgerun bench`` and ``edgerun tune`` handle both alike: what was measured is kept and
written, and the command ends with 130 (SIGINT) or 143 (SIGTERM), as ``edgerun run`` does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, as SIGINT raises KeyboardInterrupt."""


def _raise(signum, frame) -> None:
    raise Terminated


@contextmanager
def terminate_raises() -> Iterator[None]:
    """Within the block (main thread only), SIGTERM raises :class:`Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def signal_name(exc: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


def exit_code(name: str) -> int:
    """130 for SIGINT, 143 for SIGTERM (128 + the signal's number, as a shell reports it)."""
    return EXIT_SIGTERM if name == "SIGTERM" else EXIT_SIGINT
