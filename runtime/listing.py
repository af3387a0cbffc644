"""Which files a source names: a directory's image entries, a list file's lines, a glob's matches.

Enumeration never aborts on one bad entry: an entry the OS refuses (a link loop, a dangling
link, a name too long, an unreadable file) is still listed, and gives its own error record when
read; a folder a glob cannot list is returned among the errors. Globs walk each real folder once
(by device and inode), so a link loop neither repeats a file nor runs forever.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import re
from pathlib import Path

from .frames import SourceError
from .images import IMAGE_SUFFIXES
from .outputs import os_reason

logger = logging.getLogger(__name__)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def list_file(path: Path) -> list[Path]:
    """The paths a list file names, one per line, relative to its folder; names that are not
    UTF-8 are kept as the bytes they are (so they still name their file)."""
    if not path.is_file():
        raise SourceError(f"{path} is not a regular file; expected a text file with one image path per line")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"list file {path} cannot be read: {os_reason(exc)}") from None
    entries = []
    for number, line in enumerate(raw.splitlines(), 1):
        text = os.fsdecode(line.strip())
        if not text or text.startswith("#"):
            continue
        if _URL.match(text):  # read as a path it named a file 'http:/...' that does not exist
            from .httpprobe import shown

            raise SourceError(
                f"list file {path}, line {number}: {shown(text)} is a URL; a list file names image files, one per "
                "line: give a stream as --source itself"
            )
        entry = Path(text)
        entries.append(entry if entry.is_absolute() else path.parent / entry)
    if not entries:
        raise SourceError(f"{path} lists no paths; expected one image path per line")
    return entries


def images_in(directory: Path) -> list[Path]:
    """Every entry of ``directory`` named like an image, whatever it is (a file, a folder, a link
    to nothing, a link loop, an unreadable file): each will give one record. Subfolders are not
    walked; the log says how many there are and how to include them."""
    folders = 0
    try:
        with os.scandir(directory) as entries:
            found = []
            for entry in entries:
                if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                    found.append(Path(entry.path))  # a folder named like an image too: its error record
                    continue
                try:
                    folders += entry.is_dir()
                except OSError:
                    pass
    except OSError as exc:
        raise SourceError(f"directory {directory} cannot be listed: {os_reason(exc)}") from None
    if folders:
        pattern = os.path.join(directory, "**", "*.png")
        logger.info("%s: %d subfolder(s) not read; to read them too: --source '%s'", directory, folders, pattern)
    return sorted(found)


def _split_pattern(spec: str) -> tuple[Path, list[str]]:
    """A glob's fixed root (the folders before the first wildcard) and its remaining parts."""
    import glob  # only sources that are patterns

    parts = Path(spec).parts
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return Path(*parts[:i]) if i else Path("."), list(parts[i:])
    return Path(spec).parent, [Path(spec).name]


def _match(parts: list[str], names: tuple[str, ...]) -> bool:
    """Do path components ``names`` match pattern components ``parts`` (``**``: any depth)?
    As glob does, a name starting with '.' matches only a part that starts with '.'."""
    if not parts:
        return not names
    head, rest = parts[0], parts[1:]
    if head == "**":
        if _match(rest, names):
            return True
        return bool(names) and not names[0].startswith(".") and _match(parts, names[1:])
    if not names or (names[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(names[0], head) and _match(rest, names[1:])


def glob_files(spec: str) -> tuple[list[Path], dict[Path, str]]:
    """The files ``spec`` matches, walking each real folder once: a link loop cannot repeat a
    file or run forever, and a file reached by two names is read once. A folder that cannot be
    listed is returned among the errors (it gives one error record)."""
    root, parts = _split_pattern(spec)
    recursive = "**" in parts
    depth = None if recursive else len(parts) - 1
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    found: list[Path] = []
    errors: dict[Path, str] = {}

    def unlisted(exc: OSError) -> None:
        path = Path(exc.filename) if exc.filename else root
        if path != root or exc.errno not in (errno.ENOENT, errno.ENOTDIR):  # a missing root: nothing matches
            errors[path] = f"folder {path} cannot be listed: {os_reason(exc)}"

    for top, dirs, files in os.walk(root, followlinks=True, onerror=unlisted):
        here = Path(top)
        level = len(here.parts) - len(root.parts) if root != Path(".") else len(here.parts)
        try:
            st = os.stat(top)
            key = (st.st_dev, st.st_ino)
        except OSError:
            key = None
        if key is not None and key in seen_dirs:
            dirs[:] = []
            continue
        if key is not None:
            seen_dirs.add(key)
        if depth is not None and level >= depth:
            dirs[:] = []
        dirs.sort()
        rel = here.parts[len(here.parts) - level :] if level else ()
        for name in sorted(files):
            if not _match(parts, (*rel, name)):
                continue
            path = here / name
            try:
                st = os.stat(path)
                ident = (st.st_dev, st.st_ino)
            except OSError:  # a loop or unreadable entry: it gives its own error record
                found.append(path)
                continue
            if ident not in seen_files:
                seen_files.add(ident)
                found.append(path)
    found.extend(errors)
    return sorted(found), errors
