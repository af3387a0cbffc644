"""The one way edgerun writes where a user pointed it: checked targets, atomic files, whole lines.

Every output a user names (``run --json/--save``, ``bench --json/--markdown/--plot``, manifests,
cards) goes through here, so the same rules hold everywhere:

- A target is refused before anything is written (:class:`TargetRefused`, exit 2) when it is
  one of the run's inputs (the same file as the model or a source, by device and inode, through
  any symbolic link), or not a regular file (a directory, device, FIFO or socket): ``-`` is the
  way to write to standard output. A symbolic link to a regular file is written through.
- Files that are complete only at the end (reports, plots, images, videos) are written to a
  temporary file beside the target and renamed over it: a reader never sees half a file, and a
  failed write leaves the old file as it was.
- Streams (JSON lines) are written a whole line at a time; when the disk fills up part-way the
  half-written line is cut off again, so the file always holds whole records.
- A failed write (disk full, I/O error, file too large) is :class:`WriteFailed`: one message
  naming the target and the reason, exit 5. A closed standard output (``| head -1``) is
  :class:`StdoutClosed`: the run ends quietly with exit 141, as any Unix tool killed by SIGPIPE.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

EXIT_REFUSED = 2  # nothing ran: the output target was refused
EXIT_WRITE_FAILED = 5  # an output could not be written (disk full, I/O error)
EXIT_STDOUT_CLOSED = 141  # 128 + SIGPIPE: the reader of standard output left

STDOUT = "-"

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EIO: "input/output error (a failing disk or a lost network file system)",
    errno.EFBIG: "file too large (the file system or a ulimit caps its size)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EISDIR: "is a directory",
    errno.ELOOP: "too many levels of symbolic links (a link loop)",
    errno.EPIPE: "the reader closed the pipe",
}


def os_reason(exc: OSError) -> str:
    """What an OSError means, in words, with its errno name (``no space left ... (ENOSPC)``)."""
    code = exc.errno
    name = errno.errorcode.get(code, "") if code is not None else ""
    text = _REASONS.get(code) or (exc.strerror or str(exc)).lower()
    return f"{text} ({name})" if name else text


class OutputError(Exception):
    """An output that cannot be written; ``exit_code`` is what the command exits with."""

    exit_code = EXIT_WRITE_FAILED


class TargetRefused(OutputError):
    """The target would destroy an input or is not a file: nothing was written."""

    exit_code = EXIT_REFUSED


class WriteFailed(OutputError):
    """Writing failed part-way (disk full, I/O error); the message says what was kept."""

    exit_code = EXIT_WRITE_FAILED


class StdoutClosed(OutputError):
    """Standard output was closed by its reader (EPIPE): end quietly."""

    exit_code = EXIT_STDOUT_CLOSED


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


class Protected:
    """The files no output may replace: the model, every source file, and earlier outputs.

    Inputs are kept as paths; their device and inode numbers are read the first time a target
    that already exists is checked (a target that does not exist yet cannot be an input), so a
    source of a million files costs nothing until it matters.
    """

    def __init__(self, paths: Iterable[str | os.PathLike] = ()) -> None:
        self._paths: list[Path] = []
        self._ids: dict[tuple[int, int], Path] | None = None
        self._outputs: dict[Path, str] = {}  # an earlier output -> the option that writes it
        self.add(*paths)

    def add(self, *paths: str | os.PathLike, output: str | None = None) -> None:
        """Protect ``paths``: the run's inputs, or (``output``: the option, e.g. ``--json``) an
        output already claimed, which no second output may write over either."""
        for path in paths:
            if path is None or str(path) == STDOUT:
                continue
            self._paths.append(Path(path))
            if output is not None:
                self._outputs[Path(path)] = output
            if self._ids is not None:
                self._index(Path(path))

    def output_of(self, path: Path) -> str | None:
        """The option writing ``path`` when it is one of the run's outputs, else None (an input)."""
        return self._outputs.get(path)

    def _index(self, path: Path) -> None:
        try:
            st = os.stat(path)
        except (OSError, ValueError):  # an input that cannot be read protects nothing
            return
        self._ids.setdefault((st.st_dev, st.st_ino), path)  # type: ignore[union-attr]

    def owner(self, st: os.stat_result) -> Path | None:
        """The input that is this file (same device and inode), or None."""
        if self._ids is None:
            self._ids = {}
            for path in self._paths:
                self._index(path)
        return self._ids.get((st.st_dev, st.st_ino))


def check_target(
    path: str | os.PathLike, protected: Protected | None = None, what: str = "output", stdout_ok: bool = False
) -> Path:
    """The real path to write ``path`` to (symbolic links followed), or :class:`TargetRefused`.
    ``stdout_ok``: the option also takes ``-`` (standard output), and the message says so."""
    target = Path(path)
    try:
        real = Path(os.path.realpath(target))
        if real.parts[1:2] in (("proc",), ("sys",)):  # the kernel's files: writing one is a setting, not an output
            raise TargetRefused(
                f"{what} {target} is a file of the kernel's /{real.parts[1]} file system, not a place for "
                "outputs; give a path on a disk"
            )
        st = os.stat(real)
    except FileNotFoundError:
        return real  # a new file: it cannot be an input
    except (OSError, ValueError) as exc:
        reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
        raise TargetRefused(f"{what} {target} cannot be used: {reason}") from None
    if not stat.S_ISREG(st.st_mode):
        hint = "; give a file path" + (", or '-' for standard output" if stdout_ok else "")
        raise TargetRefused(f"{what} {target} is {_kind(st.st_mode)}, not a regular file{hint}")
    owner = protected.owner(st) if protected is not None else None
    if owner is not None:
        same = "" if Path(os.path.abspath(owner)) == Path(os.path.abspath(target)) else f" (the same file as {owner})"
        option = protected.output_of(owner)
        if option is not None:
            raise TargetRefused(f"{what} {target} is also this run's {option} output{same}: give each its own path")
        raise TargetRefused(
            f"{what} {target} is an input of this run{same}; writing there would destroy it: choose another path"
        )
    return real


def check_targets(targets: Iterable[tuple[str, str | os.PathLike]], protected: Protected | None = None) -> None:
    """Every output a command will write, checked before the first is created: each by
    :func:`check_target`, and no two the same file (an existing one by device and inode, so hard
    links and ``..`` count too; a new one by its resolved path). ``targets``: (option, path)
    pairs; ``--json`` may be ``-``.

    Raises:
        TargetRefused: the first output refused, saying why.
    """
    seen: dict[object, tuple[str, str | os.PathLike]] = {}
    for what, target in targets:
        if str(target) == STDOUT:
            if what != "--json":
                raise TargetRefused(f"{what} - : only --json writes to standard output; give {what} a file path")
            if sys.stdout is None:
                raise TargetRefused(
                    f"{what} - writes to standard output, which is closed (started with >&-); give a file instead"
                )
            if STDOUT in seen:
                raise TargetRefused(f"{what} - and {seen[STDOUT][0]} - would both write to standard output")
            seen[STDOUT] = (what, target)
            continue
        real = check_target(target, protected, what, stdout_ok=what == "--json")
        try:
            st = os.stat(real)
            key: object = (st.st_dev, st.st_ino)
        except OSError:
            key = real
        if key in seen:
            other, path = seen[key]
            raise TargetRefused(
                f"{what} {target} is the same file as {other} {path}; one would overwrite the other: "
                "give each output its own path"
            )
        seen[key] = (what, target)


def check_directory(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Create ``path`` if needed and prove a file can be made in it, or :class:`TargetRefused`."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        import tempfile  # shutil, lzma and bz2 with it: only runs that write files pay

        fd, probe = tempfile.mkstemp(dir=directory, prefix=".edgerun-probe-")
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise TargetRefused(f"{what} {directory} exists and is not a directory") from None
    except OSError as exc:
        raise TargetRefused(f"{what} {directory} cannot be written: {os_reason(exc)}") from None
    return directory


def _fail(target: Path, exc: OSError, kept: str) -> WriteFailed:
    return WriteFailed(f"cannot write {target}: {os_reason(exc)}; {kept}")


class AtomicFile:
    """A temporary file beside ``target`` that replaces it on :meth:`commit` (or is removed).

    ``path`` is where to write (it keeps the target's suffix, for writers such as OpenCV's that
    choose the format by name). Use as a context manager: committed on success, discarded on error.
    """

    def __init__(
        self, target: str | os.PathLike, protected: Protected | None = None, what: str = "output", durable: bool = True
    ) -> None:
        self.requested = Path(target)
        self.durable = durable  # fsync before the rename (reports); off for many small images
        self.target = check_target(target, protected, what)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            import tempfile

            # the stem cut short: a target's name may be up to the file system's 255 bytes, and
            # ".STEM.XXXXXXXX.partial.SUFFIX" is 18 longer (ENAMETOOLONG after a whole bench run)
            fd, tmp = tempfile.mkstemp(
                dir=self.target.parent, prefix=f".{self.target.stem[:64]}.", suffix=f".partial{self.target.suffix}"
            )
            os.close(fd)
        except OSError as exc:
            raise TargetRefused(f"{what} {self.requested} cannot be written: {os_reason(exc)}") from None
        self.path = Path(tmp)
        os.chmod(self.path, 0o644)  # mkstemp makes 0600; outputs are meant to be read by others
        self.done = False

    def commit(self) -> Path:
        try:
            if self.durable:
                with open(self.path, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(self.path, self.target)
        except OSError as exc:
            self.discard()
            raise _fail(self.requested, exc, "the previous file (if any) is unchanged") from None
        self.done = True
        return self.target

    def discard(self) -> None:
        if not self.done:
            self.path.unlink(missing_ok=True)
            self.done = True

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_bytes(
    target: str | os.PathLike, data: bytes, protected: Protected | None = None, what="output", durable: bool = True
) -> Path:
    """Write ``data`` to ``target`` atomically (see :class:`AtomicFile`)."""
    atomic = AtomicFile(target, protected, what, durable)
    try:
        with open(atomic.path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        atomic.discard()
        raise _fail(atomic.requested, exc, "nothing was written (the previous file, if any, is unchanged)") from None
    return atomic.commit()


def write_text(target: str | os.PathLike, text: str, protected: Protected | None = None, what="output") -> Path:
    return write_bytes(target, text.encode("utf-8"), protected, what)


def write_image(
    target: str | os.PathLike, image, protected: Protected | None = None, what="output", durable: bool = True
) -> Path:
    """Encode ``image`` by the target's suffix (OpenCV) and write it atomically."""
    import cv2

    target = Path(target)
    ok, encoded = cv2.imencode(target.suffix or ".png", image)
    if not ok:
        raise WriteFailed(f"cannot write {target}: OpenCV cannot encode {target.suffix or 'an image'} files")
    return write_bytes(target, encoded.tobytes(), protected, what, durable)


#: control characters (a newline in a file name, an escape sequence) -> what a line shows instead
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(32), 127]} | {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def one_line(text: str) -> str:
    """``text`` with its control characters escaped: one record stays one line, and a file name
    cannot move the terminal's cursor or change its colours."""
    return text.translate(_CONTROLS)


def printable(text: str, encoding: str | None = None) -> str:
    """``text`` as ``encoding`` can carry it: undecodable bytes of file names shown as ``\\xff``."""
    try:
        text.encode(encoding or "utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")  # a file name with bytes that are not UTF-8
        text = raw.decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.encode(encoding or "utf-8", "backslashreplace").decode(encoding or "utf-8")


class LineWriter:
    """Lines to a file (``path``) or standard output (``-``), each written whole and flushed.

    A file is created (or emptied) at once, so a run's records can be followed while it runs.
    When a write fails part-way (the disk filled up), the file is cut back to its last whole
    line and :class:`WriteFailed` says how many lines it keeps.
    """

    def __init__(
        self,
        target: str | os.PathLike,
        protected: Protected | None = None,
        what: str = "output",
        optional: bool = False,
    ) -> None:
        self.what = what
        self.lines = 0
        self.stdout = str(target) == STDOUT
        self._fd: int | None = None
        self._dropped = False  # standard output was closed before the run (>&-) and this writer is optional
        if self.stdout:
            self.target = Path(STDOUT)
            if sys.stdout is None:
                if not optional:
                    raise TargetRefused(
                        f"{what} {STDOUT} writes to standard output, which is closed (started with >&-); "
                        f"give a file instead"
                    )
                self._dropped = True
                logger.warning("standard output is closed: the per-input lines are not printed")
            return
        self.target = Path(target)
        real = check_target(target, protected, what, stdout_ok=True)
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise TargetRefused(f"{what} {self.target} cannot be written: {os_reason(exc)}") from None
        self._offset = 0

    def write(self, line: str) -> None:
        if self.stdout:
            self._write_stdout(line)
        else:
            self._write_file(line)
        self.lines += 1

    def _write_stdout(self, line: str) -> None:
        out = sys.stdout
        if self._dropped:
            return
        try:
            out.write(printable(one_line(line), getattr(out, "encoding", None)) + "\n")
            out.flush()
        except BrokenPipeError:
            raise StdoutClosed(f"standard output was closed after {self.lines} lines") from None
        except OSError as exc:
            raise WriteFailed(
                f"cannot write to standard output: {os_reason(exc)}; {self.lines} lines were written"
            ) from None

    def _write_file(self, line: str) -> None:
        data = memoryview((line + "\n").encode("utf-8", "backslashreplace"))
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._offset)  # no half line: the file ends with a whole record
                os.lseek(self._fd, self._offset, os.SEEK_SET)
            except OSError:
                logger.debug("could not cut %s back to its last whole line", self.target, exc_info=True)
            raise _fail(self.target, exc, f"it holds the first {self.lines} whole records") from None
        self._offset += written

    def close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EROFS):  # fsync not supported: nothing lost
                os.close(fd)
                raise _fail(self.target, exc, f"{self.lines} records may not be on disk") from None
        os.close(fd)


def silence_stdout() -> None:
    """After EPIPE: point standard output at /dev/null, so the interpreter's last flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        logger.debug("could not silence standard output", exc_info=True)
