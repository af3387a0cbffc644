"""The ``edgerun`` command: one entry point that hands each subcommand to its package.

Subcommands are named here by module path and imported only when asked for, so ``edgerun run``
never loads TensorFlow and ``edgerun --version`` loads nothing. A missing optional dependency
is one line naming the extra that provides it.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
from typing import NoReturn

logger = logging.getLogger(__name__)

#: subcommand -> ("module:function" taking argv and returning an exit code, help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("edgerun.train.cli:main", "train a registry model (writes NAME.keras + NAME.json)"),
    "export": ("edgerun.export.cli:main", "export a .keras model to ONNX (parity gate, int8, fp16)"),
    "inspect": ("edgerun.export.cli:inspect_main", "describe any ONNX file: I/O, opset, metadata, ops"),
    "run": ("edgerun.runtime.cli:main", "run a model on a camera, stream, video, images (one line each)"),
    "bench": ("edgerun.bench.cli:main", "latency against batch size, peers in the same run, CI gate"),
    "tune": ("edgerun.bench.tune:main", "measure session settings on this machine, keep the fastest per batch"),
    "demo": ("edgerun.demo.app:main", "the main job on the bundled models: digits, localizer, video, latency"),
}

#: a module that may be missing -> the extra that installs it
EXTRAS = {
    "onnxruntime": "cpu",
    "cv2": "cpu",
    "onnx": "tools",
    "tensorflow": "train",
    "keras": "train",
    "tf2onnx": "train",
    "onnxconverter_common": "train",
    "ai_edge_litert": "train",
    "ray": "ray",
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_STDOUT_CLOSED = 141  # 128 + SIGPIPE, as a shell reports any tool whose reader left

#: OpenCV's own decoded-size limits, read once when OpenCV loads (so set here, before any
#: subcommand imports it): the second line behind edgerun's header checks (runtime/images.py).
OPENCV_LIMITS = {"OPENCV_IO_MAX_IMAGE_PIXELS": str(64_000_000)}

USAGE = """usage: edgerun [-v|-q] {subcommands} ...

edgerun: an ONNX edge-inference runtime with a benchmarking harness.

subcommands:
{table}

Run 'edgerun SUBCOMMAND --help' for a subcommand's options.
"""


def _usage() -> str:
    table = "\n".join(f"  {name:<8} {help_}" for name, (_, help_) in SUBCOMMANDS.items())
    return USAGE.format(subcommands="{" + ",".join(SUBCOMMANDS) + "}", table=table)


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """Let through edgerun's own records, and other libraries' warnings and errors."""
    return record.name.startswith("edgerun") or record.levelno >= logging.WARNING


class OneLineFormatter(logging.Formatter):
    """Log records with their control characters escaped: a file name or a model's metadata
    holding a newline or an escape code keeps its record on one line and off the terminal's
    controls (a traceback under -v is added after, as it is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        from edgerun.runtime.outputs import one_line

        return one_line(super().formatMessage(record))


def configure_logging(verbosity: int) -> None:
    """INFO progress from edgerun on stderr (-q: warnings only; -v: debug and libraries' INFO)."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    if verbosity < 1:
        handler.addFilter(_quiet_libraries)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def missing_dependency(name: str, exc: ImportError) -> str | None:
    """The one-line install hint for a missing optional package, or None if it is not one of ours."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        return None
    label = f"edgerun {name}" if name else "edgerun"  # no name: the Python API's import
    if extra == "cpu":
        return (
            f"{label}: {module} is not installed; install a runtime: pip install 'edgerun[cpu]' "
            "(or 'edgerun[gpu]' on an NVIDIA machine)"
        )
    return f"{label}: {module} is not installed; install it with: pip install 'edgerun[{extra}]'"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    reserve_standard_fds()  # before any file opens: none of them may become descriptor 1
    flags = _leading_flags(argv)
    name = argv[len(flags)] if len(argv) > len(flags) and argv[len(flags)] in SUBCOMMANDS else ""
    verbosity = sum(1 if a in ("-v", "--verbose") else -1 for a in flags)
    try:
        code = _dispatch(argv[len(flags) :], verbosity)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - each way out: its exit code and one line
        return _failure(name, exc, verbosity)
    try:
        _flush_stdout()  # a full disk under '> file' shows here, not in the interpreter's last gasp
    except OSError as exc:
        return _stdout_failed(name, exc)
    return code


def reserve_standard_fds() -> None:
    """Give a standard stream the caller closed (``>&-``) /dev/null, so that no file edgerun opens
    gets descriptor 0, 1 or 2, where a library's stray write to standard output would land in it.
    Python's ``sys.stdout`` stays None, so what prints knows the stream is closed."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            spare = os.open(os.devnull, os.O_RDWR)
        except OSError:
            logger.debug("could not hold descriptor %d with %s", fd, os.devnull, exc_info=True)
            return
        if spare != fd:
            os.dup2(spare, fd)
            os.close(spare)


def _print_or_fail(text: str, code: int) -> int:
    """Print ``text`` to standard output and return ``code``, or the exit code of a failed write."""
    try:
        print(text)
        _flush_stdout()
    except OSError as exc:
        return _stdout_failed("", exc)
    return code


def _stdout_failed(name: str, exc: OSError) -> int:
    """Standard output could not take the command's last lines: quiet for a reader that left (141),
    one line on standard error otherwise (a full disk under ``> file``)."""
    from edgerun.runtime.outputs import OutputError, os_reason, silence_stdout

    silence_stdout()
    if isinstance(exc, BrokenPipeError):
        return EXIT_STDOUT_CLOSED
    label = f"edgerun {name}" if name else "edgerun"
    print(f"{label}: error: cannot write to standard output: {os_reason(exc)}", file=sys.stderr)
    return OutputError.exit_code


def _leading_flags(argv: list[str]) -> list[str]:
    flags = []
    for arg in argv:
        if arg not in ("-v", "--verbose", "-q", "--quiet"):
            break
        flags.append(arg)
    return flags


def _dispatch(argv: list[str], verbosity: int) -> int:
    """``argv`` (its leading -v/-q taken off: ``verbosity``) to ``--help``, ``--version`` or a subcommand."""
    if not argv or argv[0] in ("-h", "--help"):
        return _print_or_fail(_usage(), EXIT_OK if argv else EXIT_USAGE)
    if argv[0] == "--version":
        from edgerun import __version__

        return _print_or_fail(f"edgerun {__version__}", EXIT_OK)
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"edgerun: unknown subcommand {name!r}; choose one of: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return EXIT_USAGE
    module_name, function = SUBCOMMANDS[name][0].split(":")
    configure_logging(verbosity)
    for key, value in OPENCV_LIMITS.items():
        os.environ.setdefault(key, value)  # a value the user set wins
    if verbosity < 1:  # OpenCV's own '[ WARN:0@...] cap_v4l.cpp ...' lines: edgerun says what failed (-v shows them)
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
        # and FFmpeg's ('[mov,mp4,...] moov atom not found', '[mjpeg] error y=19'): quiet (AV_LOG_QUIET)
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        return int(getattr(importlib.import_module(module_name), function)(rest) or 0)
    except ImportError as exc:
        hint = missing_dependency(name, exc)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return EXIT_USAGE


def _failure(name: str, exc: BaseException, verbosity: int) -> int:
    """The exit code for ``exc`` leaving a command, after its one line on standard error."""
    from edgerun.runtime.argtypes import print_error
    from edgerun.runtime.outputs import OutputError, StdoutClosed, silence_stdout

    label = f"edgerun {name}" if name else "edgerun"
    if isinstance(exc, KeyboardInterrupt):
        print(f"{label}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(exc, (BrokenPipeError, StdoutClosed)):  # standard output's reader left (| head): end quietly
        silence_stdout()
        return EXIT_STDOUT_CLOSED
    if isinstance(exc, OutputError):  # an output refused or not written: its own message and exit code
        print_error(label, exc)
        return exc.exit_code
    # A full disk (or I/O error) that reaches here unwrapped, from no named file: edgerun's own files
    # are written by runtime.outputs, which says which file failed (an OutputError); what is left is
    # standard output, written by print() (an unbuffered stream leaves nothing to fail a flush again).
    if isinstance(exc, OSError) and exc.errno in STDOUT_ERRNOS and (exc.filename is None or _stdout_broken()):
        return _stdout_failed(name, exc)
    return _unexpected(name, exc, verbosity)


def _flush_stdout() -> None:
    if sys.stdout is not None:  # None: started with standard output closed (>&-)
        sys.stdout.flush()


#: errno values that mean "standard output cannot take more" (disk full, I/O error, too large).
STDOUT_ERRNOS = (errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT)


def _stdout_broken() -> bool:
    """Whether standard output is what failed (a flush fails again)."""
    try:
        _flush_stdout()
    except OSError:
        return True
    return False


def _unexpected(name: str, exc: BaseException, verbosity: int) -> int:
    if verbosity > 0:
        logger.error("edgerun %s failed", name, exc_info=exc)
    label, rerun = (f"edgerun {name}", f"edgerun -v {name}") if name else ("edgerun", "edgerun -v")
    print(
        f"{label}: unexpected error: {type(exc).__name__}: {exc}\n"
        f"This is a bug in edgerun or a case it does not handle yet; run '{rerun} ...' "
        "for the traceback and report it.",
        file=sys.stderr,
    )
    return EXIT_FAILED


#: set (to anything) for the interpreter's full teardown at exit instead of :func:`console`'s quick one
ENV_FULL_EXIT = "EDGERUN_FULL_EXIT"


def console() -> NoReturn:
    """The ``edgerun`` command: :func:`main`, then a quick exit.

    When a command has returned, everything edgerun wrote is closed and flushed; what is left
    is the interpreter tearing itself down: freeing every module's objects and running
    onnxruntime's and OpenCV's static destructors. That is 35-40 ms here, a sixth of a
    one-image ``edgerun run`` (README, Cold start), spent after the answer and before the
    shell's prompt. So the process ends with :func:`os._exit` once standard output and error
    are flushed and the atexit handlers have run (logging, Ray, temporary files and
    multiprocessing clean up there). Whenever that could lose something (a flush fails, a
    non-daemon thread still runs) or ``EDGERUN_FULL_EXIT`` is set, the normal exit runs instead.
    """
    code = main()
    _quick_exit(code)
    sys.exit(code)


def _quick_exit(code: int) -> None:
    """End the process now, skipping the interpreter's teardown; returns where that is not safe."""
    import atexit
    import threading

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's; elsewhere: the normal exit
    if os.environ.get(ENV_FULL_EXIT) or run_exit_handlers is None:
        return
    main_thread = threading.main_thread()
    if any(t.is_alive() and not t.daemon and t is not main_thread for t in threading.enumerate()):
        return  # the normal exit waits for it
    if not _flushed():
        return  # the normal exit reports a standard stream it cannot write, as it always has
    run_exit_handlers()
    if _flushed():  # a handler may have written
        os._exit(code)


def _flushed() -> bool:
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return False
    return True


if __name__ == "__main__":
    console()
