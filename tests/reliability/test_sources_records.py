"""Every input a source names gets exactly one record, whatever the OS says of it; a source
that ends early or holds nothing says so in its exit code."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

import pytest

from edgerun.runtime.frames import SourceError
from edgerun.runtime.sources import open_source


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def open_tmp(tmp_path_factory):
    """A folder any user can reach (pytest's own are private to their owner)."""
    path = Path(tempfile.mkdtemp(prefix="edgerun-perm-"))
    path.chmod(0o777)
    yield path
    for sub in path.rglob("*"):
        if sub.is_dir() and not sub.is_symlink():
            sub.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


def test_unreadable_file_in_a_directory_is_one_error_record(mnist_cnn, open_tmp, digits, unprivileged, edgerun):
    tmp_path = open_tmp
    digits(tmp_path / "in", 5)
    (tmp_path / "in" / "00002.png").chmod(0)
    out = tmp_path / "r.jsonl"
    proc = edgerun("run", mnist_cnn, "--source", tmp_path / "in", "--json", out, user=unprivileged)
    assert proc.returncode == 1, proc.stderr.decode()
    got = records(out)
    assert [r["index"] for r in got] == list(range(5))
    assert "permission denied (EACCES)" in got[2]["error"] and all("top" in r for i, r in enumerate(got) if i != 2)


def test_a_glob_in_an_unlistable_folder_is_one_error_record(open_tmp, digits, unprivileged, edgerun, mnist_cnn):
    """'locked/*.png' where locked/ may not be read: the folder's own error record, not 'unexpected
    error: PermissionError' (deciding whether the pattern names a file asked the OS, which refused)."""
    tmp_path = open_tmp
    digits(tmp_path / "locked", 2)
    (tmp_path / "locked").chmod(0)
    out = tmp_path / "r.jsonl"
    proc = edgerun("run", mnist_cnn, "--source", f"{tmp_path}/locked/*.png", "--json", out, user=unprivileged)
    (tmp_path / "locked").chmod(0o755)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "unexpected" not in err, err
    (got,) = records(out)
    assert got["error"] == f"folder {tmp_path}/locked cannot be listed: permission denied (EACCES)"


def test_unlistable_folder_in_a_glob_is_one_error_record(open_tmp, digits, unprivileged, edgerun, mnist_cnn):
    tmp_path = open_tmp
    digits(tmp_path / "in" / "a", 2)
    digits(tmp_path / "in" / "b", 1)
    (tmp_path / "in" / "b").chmod(0)
    out = tmp_path / "r.jsonl"
    proc = edgerun("run", mnist_cnn, "--source", f"{tmp_path}/in/**/*.png", "--json", out, user=unprivileged)
    (tmp_path / "in" / "b").chmod(0o755)
    got = records(out)
    assert proc.returncode == 1 and len(got) == 3, proc.stderr.decode()
    assert "folder" in got[2]["error"] and "cannot be listed: permission denied" in got[2]["error"]


def test_long_names_and_link_loops_give_records(tmp_path, digits):
    paths = digits(tmp_path / "in", 2)
    (tmp_path / "in" / "self.png").symlink_to("self.png")
    (tmp_path / "in" / "gone.png").symlink_to("nowhere.png")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{paths[0]}\n{tmp_path / ('x' * 300 + '.png')}\n{paths[1]}\n")
    frames = list(open_source(str(listing)))
    assert len(frames) == 3 and "file name too long (ENAMETOOLONG)" in frames[1].error
    frames = {f.source.rsplit("/", 1)[-1]: f for f in open_source(str(tmp_path / "in"))}
    assert sorted(frames) == ["00000.png", "00001.png", "gone.png", "self.png"]
    assert "link loop" in frames["self.png"].error and "dangling" in frames["gone.png"].error


def test_glob_through_looping_links_reads_each_file_once(tmp_path, digits):
    digits(tmp_path / "in", 2)
    (tmp_path / "in" / "again").symlink_to(".")
    (tmp_path / "in" / "twice").symlink_to(".")  # two loops: 2^40 names for glob.glob
    start = time.monotonic()
    frames = list(open_source(f"{tmp_path}/in/**/*.png"))
    assert [f.source for f in frames] == [str(tmp_path / "in" / f"{i:05d}.png") for i in range(2)]
    assert time.monotonic() - start < 10


def test_list_file_keeps_names_that_are_not_utf8(tmp_path, digits):
    path = digits(tmp_path / "in", 1)[0]
    odd = os.path.join(os.fsencode(tmp_path / "in"), b"\xe9t\xe9.png")
    os.rename(path, odd)
    (tmp_path / "list.txt").write_bytes(odd + b"\n")
    (frame,) = open_source(str(tmp_path / "list.txt"))
    assert frame.error is None and frame.image.shape[:2] == (28, 28)


def test_video_that_ends_early_or_holds_nothing_is_exit_4(mnist_cnn, tmp_path, digit_video, edgerun):
    video = digit_video(tmp_path / "v.avi", 100)
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    proc = edgerun("run", mnist_cnn, "--source", video, "--json", tmp_path / "r.jsonl")
    assert proc.returncode == 4 and "ended early" in proc.stderr.decode()
    assert 30 < len(records(tmp_path / "r.jsonl")) < 100
    empty = tmp_path / "e-idx3-ubyte"
    empty.write_bytes(struct.pack(">IIII", 0x803, 0, 28, 28))
    proc = edgerun("run", mnist_cnn, "--source", empty)
    assert proc.returncode == 4 and "gave no inputs" in proc.stderr.decode()


def test_idx_truncated_gives_its_whole_images_then_exit_4(mnist_cnn, tmp_path, edgerun):
    path = tmp_path / "t-idx3-ubyte"
    path.write_bytes(struct.pack(">IIII", 0x803, 10, 28, 28) + bytes(28 * 28 * 3 + 100))
    proc = edgerun("run", mnist_cnn, "--source", path, "--json", tmp_path / "r.jsonl")
    assert proc.returncode == 4 and "the header says 10 records, the file holds 3" in proc.stderr.decode()
    assert len(records(tmp_path / "r.jsonl")) == 3


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ((0xFFFFFFFF, 0, 0), "images of 0x0 pixels"),
        ((5, 100_000, 100_000), "over the 64,000,000-pixel limit"),
    ],
)
def test_idx_impossible_headers_are_refused(tmp_path, header, message):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(struct.pack(">IIII", 0x803, *header))
    with pytest.raises(SourceError, match=message):
        open_source(str(path))


def test_idx_gzip_is_read_lazily_and_checked_against_its_size(tmp_path):
    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">IIII", 0x803, 200_000, 28, 28))
        for _ in range(200):
            fh.write(bytes(28 * 28 * 1000))  # 157 MB inflated from a few hundred KB
    source = open_source(str(path))
    frames = []
    for frame in source:
        frames.append(frame)
        if len(frames) == 10:
            break
    source.close()
    assert len(frames) == 10 and source.expected == 200_000
    lying = tmp_path / "lie-idx3-ubyte.gz"
    lying.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 4_000_000_000, 28, 28)))
    with pytest.raises(SourceError, match="more than a .*-byte gzip file can hold"):
        open_source(str(lying))


def test_fifos_named_as_inputs_are_refused_without_blocking(tmp_path, mnist_cnn, digits, edgerun):
    digits(tmp_path / "in", 1)
    for name in ("list.txt", "labels.txt", "v.avi", "x-idx3-ubyte"):
        os.mkfifo(tmp_path / name)
    for argv, message in [
        (["--source", tmp_path / "list.txt"], "not a regular file"),
        (["--source", tmp_path / "v.avi"], "not a regular file"),
        (["--source", tmp_path / "x-idx3-ubyte"], "not a regular file"),
        (["--source", tmp_path / "in", "--labels", tmp_path / "labels.txt"], "not a regular file"),
    ]:
        proc = edgerun("run", mnist_cnn, *argv, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr.decode(), proc.stderr.decode()


def test_a_folder_named_like_an_image_is_one_error_record_and_subfolders_are_mentioned(tmp_path, digits, caplog):
    """Every directory entry named like an image gives a record, a folder named 'x.png' too (its
    error says what it is); subfolders are not walked, and the log says how to include them."""
    import logging

    digits(tmp_path / "in", 2)
    (tmp_path / "in" / "x.png").mkdir()
    digits(tmp_path / "in" / "sub", 1)
    with caplog.at_level(logging.INFO, logger="edgerun.runtime.listing"):
        items = list(open_source(str(tmp_path / "in")))
    assert [Path(i.source).name for i in items] == ["00000.png", "00001.png", "x.png"]
    assert [i.error for i in items][:2] == [None, None] and "is a directory, not an image" in items[2].error
    assert f"1 subfolder(s) not read; to read them too: --source '{tmp_path / 'in'}/**/*.png'" in caplog.text


def test_a_link_given_as_the_source_says_what_is_wrong_with_it(tmp_path):
    (tmp_path / "a.png").symlink_to("b.png")
    (tmp_path / "b.png").symlink_to("a.png")
    (tmp_path / "gone.png").symlink_to("nothing.png")
    with pytest.raises(SourceError, match=r"a.png is a link loop \(it leads back to itself through b.png\)"):
        open_source(str(tmp_path / "a.png"))
    with pytest.raises(SourceError, match="gone.png is a link to nothing.png, which does not exist"):
        open_source(str(tmp_path / "gone.png"))


def test_an_idx_labels_file_as_the_source_points_at_the_images_file(tmp_path):
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(b"")
    with pytest.raises(SourceError, match=r"IDX labels file \(idx1\).*\(idx3, e\.g\. t10k-images-idx3-ubyte\.gz\)"):
        open_source(str(labels))


@pytest.mark.parametrize("spec", ["", " ", "\t"])
def test_an_empty_source_is_refused_not_read_as_the_working_folder(spec):
    with pytest.raises(SourceError, match=r"the source is empty .*for the current folder, give '\.'"):
        open_source(spec)


def test_a_damaged_frame_mid_video_is_one_error_record_and_the_run_goes_on(mnist_cnn, tmp_path, damaged_video, edgerun):
    video = damaged_video(100, 50)
    proc = edgerun("run", mnist_cnn, "--source", video, "--json", tmp_path / "r.jsonl")
    assert proc.returncode == 1, proc.stderr.decode()  # one input failed: not a source that ended early
    got = records(tmp_path / "r.jsonl")
    assert [r["index"] for r in got] == list(range(100))
    assert [r["index"] for r in got if r.get("error")] == [50]
    assert "ended early" not in proc.stderr.decode()
