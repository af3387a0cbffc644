"""No output ever overwrites an input or a device; failed writes are one message and exit 5;
a closed standard output ends the run quietly (exit 141)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys

import pytest

from edgerun.runtime import outputs
from edgerun.runtime.files import write_json_atomic
from edgerun.runtime.outputs import LineWriter, Protected, TargetRefused, WriteFailed, check_target


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_target_that_is_an_input_is_refused_by_any_name(mnist_cnn, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(mnist_cnn.read_bytes())
    (tmp_path / "link.onnx").symlink_to(model)
    os.link(model, tmp_path / "hard.onnx")
    protected = Protected([model])
    for name in ("m.onnx", "link.onnx", "hard.onnx"):
        with pytest.raises(TargetRefused, match="is an input of this run"):
            LineWriter(tmp_path / name, protected, "--json")
    assert sha(model) == sha(mnist_cnn)


@pytest.mark.parametrize("target", ["/dev/null", "/dev/full", "fifo", "folder"])
def test_non_regular_targets_are_refused(tmp_path, target):
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
    if target == "folder":
        (tmp_path / "folder").mkdir()
    path = tmp_path / target if not target.startswith("/") else target
    with pytest.raises(TargetRefused, match="not a regular file"):
        check_target(path, None, "--json")
    with pytest.raises(TargetRefused, match="not a regular file"):
        write_json_atomic(path, {"a": 1})


def test_reports_are_written_through_a_symlink_atomically(tmp_path):
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "link.json").symlink_to("real.json")
    write_json_atomic(tmp_path / "link.json", {"value": float("nan"), "ok": 1})
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_text()) == {"value": None, "ok": 1}
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


FILL = """
import json, resource, signal, sys
from edgerun.runtime.outputs import LineWriter, WriteFailed
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))  # the disk fills up after 1000 bytes
writer = LineWriter(sys.argv[1])
try:
    for i in range(1000):
        writer.write(json.dumps({"index": i, "pad": "x" * 37}))
except WriteFailed as exc:
    print(f"{exc}|{writer.lines}")
    sys.exit(5)
"""


def test_a_full_disk_leaves_only_whole_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    proc = subprocess.run([sys.executable, "-c", FILL, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 5, proc.stderr
    message, kept = proc.stdout.strip().rsplit("|", 1)
    assert "file too large" in message and "(EFBIG)" in message and f"holds the first {kept} whole" in message
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == int(kept) > 0 and all(line.endswith("\n") for line in lines)
    assert [json.loads(line)["index"] for line in lines] == list(range(int(kept)))


def test_an_io_error_is_one_clear_message(tmp_path, monkeypatch):
    writer = LineWriter(tmp_path / "r.jsonl")
    writer.write("{}")

    def failing(fd, data):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(outputs.os, "write", failing)  # the disk failing under us
    with pytest.raises(WriteFailed, match=r"input/output error .*\(EIO\).*holds the first 1 whole records"):
        writer.write("{}")


def test_cli_refuses_outputs_over_inputs_and_devices(mnist_cnn, tmp_path, digits, digit_video, edgerun):
    model = tmp_path / "model.onnx"
    model.write_bytes(mnist_cnn.read_bytes())
    images = digits(tmp_path / "in", 2)
    video = digit_video(tmp_path / "v.avi", 20)
    before = {p: sha(p) for p in (model, images[0], video)}
    cases = [
        (["--source", tmp_path / "in", "--json", model], "is an input of this run"),
        (["--source", tmp_path / "in", "--json", images[0]], "is an input of this run"),
        (["--source", video, "--save", video], "is an input of this run"),
        (["--source", tmp_path / "in", "--json", "/dev/full"], "is a character device"),
        (["--source", tmp_path / "in", "--save", "/proc/self/out"], "cannot be written"),
        (["--source", tmp_path / "in", "--json", "/proc/version"], "not a place for outputs; give a path on a disk"),
    ]
    for argv, message in cases:
        proc = edgerun("run", model, *argv)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and message in err, err
        assert "unexpected error" not in err and "Traceback" not in err
    assert before == {p: sha(p) for p in before}


def test_closed_stdout_ends_quietly(mnist_cnn, tmp_path, digits):
    digits(tmp_path / "in", 300)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerun", "run", str(mnist_cnn), "--source", str(tmp_path / "in")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = proc.stdout.readline()
    proc.stdout.close()  # | head -1
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and first.strip()
    assert "unexpected error" not in err and "Traceback" not in err and "Exception ignored" not in err


def test_two_outputs_on_one_path_are_refused_before_any_is_written(mnist_cnn, tmp_path, digits, digit_video, edgerun):
    """--json and --save on one file: refused as the other output (not 'an input'), and nothing is
    created; a refused --save video does not empty an earlier --json file either."""
    digits(tmp_path / "in", 2)
    same = tmp_path / "same.avi"
    proc = edgerun("run", mnist_cnn, "--source", tmp_path / "in", "--json", same, "--save", same)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "--save video" in err and "is the same file as --json" in err, err
    assert not same.exists()
    video = digit_video(tmp_path / "v.avi", 5)
    old = tmp_path / "old.jsonl"
    old.write_text('{"kept": true}\n')
    proc = edgerun("run", mnist_cnn, "--source", video, "--json", old, "--save", video)
    assert proc.returncode == 2 and "is an input of this run" in proc.stderr.decode()
    assert old.read_text() == '{"kept": true}\n'


def _closed_stdout(*argv):
    """``python -m edgerun ARGV`` started with standard output closed (``>&-``)."""
    return subprocess.run(
        [sys.executable, "-m", "edgerun", *map(str, argv)],
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),  # noqa: PLW1509 - the child's own descriptor, before exec
    )


def test_a_closed_stdout_loses_no_record(mnist_cnn, tmp_path, digits):
    """Started with >&-: the records still all reach --json FILE (the human lines are dropped with
    a warning) and no file edgerun opens takes descriptor 1; --json - is refused up front."""
    digits(tmp_path / "in", 5)
    proc = _closed_stdout("-q", "run", mnist_cnn, "--source", tmp_path / "in", "--json", tmp_path / "r.jsonl")
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "standard output is closed: the per-input lines are not printed" in err and "unexpected" not in err
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == [0, 1, 2, 3, 4] and all("top" in r for r in records)
    proc = _closed_stdout("-q", "run", mnist_cnn, "--source", tmp_path / "in", "--json", "-")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "standard output, which is closed" in err and "unexpected" not in err
    for argv in (["inspect", mnist_cnn], ["--version"], ["--help"]):
        proc = _closed_stdout(*argv)
        assert proc.returncode == 0 and not proc.stderr, (argv, proc.stderr)


@pytest.mark.parametrize(
    "argv", [["--version"], ["--help"], ["run", "--help"], ["bench", "--help"], ["inspect", "mnist_cnn"]]
)
def test_help_and_version_into_a_closed_pipe_or_a_full_disk(argv):
    """| head -0 ends quietly with 141; > /dev/full is one line and exit 5; never a traceback (a
    subcommand's --help too: argparse alone drops the error and exits 0)."""
    proc = subprocess.Popen([sys.executable, "-m", "edgerun", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader leaves before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and not err, err
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "edgerun", *argv], stdout=full, stderr=subprocess.PIPE)
    err = done.stderr.decode()
    assert done.returncode == 5 and "cannot write to standard output: no space left" in err, err
    assert len(err.strip().splitlines()) == 1


def test_stdout_on_a_full_disk_is_exit_5(mnist_cnn, tmp_path, digits, edgerun):
    digits(tmp_path / "in", 3)
    with open("/dev/full", "wb") as full:
        proc = edgerun("run", mnist_cnn, "--source", tmp_path / "in", "--json", "-", stdout=full)
    err = proc.stderr.decode()
    assert proc.returncode == 5 and "no space left on the device (ENOSPC)" in err, err


def test_non_utf8_names_under_a_strict_stdout(mnist_cnn, tmp_path, digits, edgerun):
    digits(tmp_path / "in", 1)
    os.rename(tmp_path / "in" / "00000.png", os.path.join(os.fsencode(tmp_path / "in"), b"\xff.png"))
    proc = edgerun("run", mnist_cnn, "--source", tmp_path / "in", env={"PYTHONIOENCODING": "utf-8:strict"})
    assert proc.returncode == 0, proc.stderr.decode()
    assert "\\xff.png" in proc.stdout.decode()
    proc = edgerun("run", mnist_cnn, "--source", tmp_path / "in", "--json", "-")
    assert json.loads(proc.stdout)["source"].endswith("\\xff.png")


def test_a_newline_in_a_file_name_keeps_one_line_per_record(mnist_cnn, tmp_path, digits, edgerun):
    digits(tmp_path / "in", 2)
    os.rename(tmp_path / "in" / "00000.png", tmp_path / "in" / "new\nline\x1b[31m.png")
    proc = edgerun("-q", "run", mnist_cnn, "--source", tmp_path / "in")
    lines = proc.stdout.decode().splitlines()
    assert proc.returncode == 0 and len(lines) == 2, lines
    assert "new\\nline\\x1b[31m.png" in lines[1] and "\x1b" not in proc.stdout.decode()


def test_names_in_error_lines_and_logs_are_escaped_too(mnist_cnn, tmp_path, digits, edgerun):
    """Standard error as well: an error line naming the file, argparse's own error, and a log
    line carrying a model's name from its metadata (a sweep found '\x1b[2J' clearing the screen)."""
    from reliability_cases import with_metadata

    digits(tmp_path / "in", 1)
    odd = tmp_path / "in" / "x\x1b[31m\nq.png"
    os.rename(tmp_path / "in" / "00000.png", odd)
    proc = edgerun("run", mnist_cnn, "--source", odd, "--json", odd)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "x\\x1b[31m\\nq.png is an input of this run" in err and "\x1b" not in err
    proc = edgerun("run", mnist_cnn, "--source", odd, "--batch", "1\x1b[2J")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "got '1\\x1b[2J'" in err and "\x1b" not in err
    named = with_metadata(mnist_cnn, tmp_path / "named.onnx", {"edgerun.name": "\x1b[2J\nX"})
    proc = edgerun("run", named, "--source", odd)
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "(\\x1b[2J\\nX, classify)" in err and "\x1b" not in err


def test_export_refuses_to_write_over_its_keras_model(tmp_path):
    from edgerun.export.cli import main as export_main

    keras = tmp_path / "m.keras"
    keras.write_bytes(b"not really a model, and it must stay as it is")
    assert export_main([str(keras), "--out", str(keras)]) == 2
    assert keras.read_bytes() == b"not really a model, and it must stay as it is"
