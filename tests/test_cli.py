from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgerun import cli


def test_help_lists_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert f"  {name} " in out


def test_unknown_subcommand(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown subcommand 'frobnicate'" in capsys.readouterr().err


def test_installed_console_script_runs():
    script = shutil.which("edgerun", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("edgerun is not installed as a console script in this environment")
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    from edgerun import __version__

    assert out.stdout.strip() == f"edgerun {__version__}"


def test_every_subcommand_resolves_to_a_function():
    assert set(cli.SUBCOMMANDS) >= {"train", "export", "inspect", "run", "bench", "tune", "demo"}
    for target, _ in cli.SUBCOMMANDS.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("onnxruntime", "edgerun[cpu]"),
        ("cv2", "edgerun[cpu]"),
        ("onnx", "edgerun[tools]"),
        ("tensorflow", "edgerun[train]"),
    ],
)
def test_a_missing_dependency_is_one_line_naming_the_extra(monkeypatch, capsys, module, extra):
    def fails(_argv):
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)

    monkeypatch.setitem(sys.modules, "edgerun_fake_cmd", type(sys)("edgerun_fake_cmd"))
    sys.modules["edgerun_fake_cmd"].main = fails
    monkeypatch.setitem(cli.SUBCOMMANDS, "fake", ("edgerun_fake_cmd:main", "a command whose dependency is missing"))
    assert cli.main(["fake"]) == 2
    err = capsys.readouterr().err
    assert extra in err and "unexpected" not in err and len(err.strip().splitlines()) == 1


def test_version_loads_no_runtime():
    code = (
        "import sys; from edgerun.cli import main; main(['--version']); "
        "print(sorted(m for m in ('numpy', 'cv2', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")


QUICK_EXIT = """
import atexit, sys, threading, time
from pathlib import Path
import edgerun.cli as cli
marks, returned, command = Path(sys.argv[1]), threading.Event(), cli.main
atexit.register(lambda: (marks / "atexit").write_text("ran"))
def main(argv=None):
    try:
        return command(argv)
    finally:
        returned.set()
def late():  # a non-daemon thread still at work after the command has returned
    returned.wait()
    time.sleep(0.2)
    (marks / "thread").write_text("done")
if sys.argv[2] == "thread":
    threading.Thread(target=late).start()
cli.main, sys.argv = main, ["edgerun", *sys.argv[3:]]
cli.console()
"""


@pytest.mark.parametrize("thread", ["none", "thread"])
def test_the_quick_exit_loses_nothing(mnist_cnn, tmp_path, thread):
    """console() ends the process without the interpreter's teardown (README, Cold start): every
    record reaches a redirected standard output and the JSON file, atexit handlers run, the exit
    code is the command's, and a non-daemon thread still at work gets the normal exit."""
    import cv2
    import numpy as np

    images = tmp_path / "images"
    images.mkdir()
    for i in range(300):
        cv2.imwrite(str(images / f"{i:03d}.png"), np.full((28, 28), i % 256, np.uint8))
    marks = tmp_path / "marks"
    marks.mkdir()
    argv = [sys.executable, "-c", QUICK_EXIT, str(marks), thread]
    with open(tmp_path / "out.txt", "w") as out:
        done = subprocess.run(
            [*argv, "-q", "run", str(mnist_cnn), "--source", str(images), "--json", str(tmp_path / "r.jsonl")],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "out.txt").read_text().splitlines()) == 300
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 300
    assert (marks / "atexit").read_text() == "ran"
    if thread == "thread":
        assert (marks / "thread").read_text() == "done"
    missing = [*argv, "run", str(mnist_cnn), "--source", str(tmp_path / "missing.png")]
    failed = subprocess.run(missing, capture_output=True, text=True)
    assert failed.returncode == 2 and "does not exist" in failed.stderr


def test_two_quiet_flags_are_still_quiet():
    """-q -q once meant DEBUG (a level looked up by -2 fell through to the default)."""
    import logging

    from edgerun.cli import configure_logging

    root = logging.getLogger()
    handlers, before = root.handlers[:], root.level
    try:
        for verbosity, level in ((-2, logging.WARNING), (-1, logging.WARNING), (0, logging.INFO), (2, logging.DEBUG)):
            configure_logging(verbosity)
            assert root.level == level, verbosity
    finally:  # the process's logging as it was, for the tests after this one
        root.handlers[:] = handlers
        root.setLevel(before)


def test_ffmpeg_keeps_its_own_lines_to_itself(mnist_cnn, tmp_path, digit_video):
    """A cut-off .mp4 printed FFmpeg's '[mov,mp4,...] moov atom not found' before edgerun's own
    message; they show with -v."""
    video = digit_video(tmp_path / "v.mp4", 30)
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    run = [sys.executable, "-m", "edgerun"]
    # as a user's shell has it: in-process cli.main calls of other tests set these defaults here
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL")}
    quiet = subprocess.run(
        [*run, "-q", "run", str(mnist_cnn), "--source", str(cut)], capture_output=True, text=True, env=env
    )
    assert quiet.returncode == 2 and "could not be opened as a video" in quiet.stderr
    assert "moov atom" not in quiet.stderr and len(quiet.stderr.strip().splitlines()) == 1, quiet.stderr
    loud = subprocess.run(
        [*run, "-v", "run", str(mnist_cnn), "--source", str(cut)], capture_output=True, text=True, env=env
    )
    assert "moov atom not found" in loud.stderr


def test_threads_above_the_cores_are_allowed_with_a_warning(caplog):
    import os

    from edgerun.runtime.argtypes import thread_count

    cores = os.cpu_count() or 1
    with caplog.at_level("WARNING"):
        assert thread_count(str(cores)) == cores
    assert "more than this machine" not in caplog.text
    with caplog.at_level("WARNING"):
        assert thread_count(str(cores + 1)) == cores + 1
    assert f"--threads {cores + 1} is more than this machine's {cores} cores" in caplog.text
