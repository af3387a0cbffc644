"""``--engine ray`` refuses what the local engine refuses, the same way and before any cluster
starts: an output over an input (the model, an image, through a link), a cluster that does not
answer (one line, exit 2, within seconds, no per-input records), and bad arguments to the
Python API (edgerun's own error types, at the call). Only the ``--save`` test starts Ray (a
subprocess, as a user would: its clean shutdown after the refusal is part of what it checks).
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgerun
from edgerun.runtime.cli import main as run_main

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="the ray extra is not installed (pip install 'edgerun[ray]')"
)
MODEL = Path(__file__).resolve().parents[2] / "models" / "mnist_cnn.onnx"


def _digits(directory: Path, names: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        cv2.imwrite(str(directory / name), rng.integers(0, 256, (28, 28), np.uint8))
    return directory


def _ray_started() -> bool:
    import ray

    return ray.is_initialized()


def _closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_ray
@pytest.mark.parametrize("target", ["in/b.png", "m.onnx", "link.jsonl"])
def test_json_over_an_input_is_refused_before_ray_starts(tmp_path, monkeypatch, capsys, target):
    monkeypatch.chdir(tmp_path)
    _digits(tmp_path / "in", ["a.png", "b.png"])
    shutil.copy(MODEL, "m.onnx")
    Path("link.jsonl").symlink_to("in/a.png")  # through a link: the same file as an input
    before = {p: p.read_bytes() for p in (Path("in/a.png"), Path("in/b.png"), Path("m.onnx"))}
    argv = ["m.onnx", "--source", "in", "--engine", "ray", "--workers", "1", "--json", target]
    assert run_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"--json {target} is an input of this run" in err and len(err.splitlines()) == 1, err
    assert {p: p.read_bytes() for p in before} == before
    assert not _ray_started()


@needs_ray
def test_save_over_an_input_named_like_an_output_is_refused(tmp_path):
    """The first annotated image would be in5/000000_0000.png, which is an input: exit 2 and the
    local engine's line; the input is intact and Ray shuts down cleanly (its block reader
    stopped first, else the process dies with Ray's "core worker has already been shutdown")."""
    _digits(tmp_path / "in5", ["0000.png", "000000_0000.png", *(f"{i}.png" for i in range(1, 7))])
    victim = tmp_path / "in5" / "000000_0000.png"
    before = victim.read_bytes()
    argv = ["mnist_cnn", "--source", "in5", "--save", "in5", "--engine", "ray", "--workers", "1", "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-m", "edgerun", "run", *argv], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 2, proc.stderr
    assert "edgerun run: error: --save image in5/000000_0000.png is an input of this run" in proc.stderr
    assert victim.read_bytes() == before


@needs_ray
@pytest.mark.parametrize("address", ["::::", "ray://127.0.0.1:{port}"])  # HOST:PORT: the next test
def test_a_cluster_that_does_not_answer_is_exit_2_and_one_line(tmp_path, capsys, address):
    address = address.format(port=_closed_port())
    _digits(tmp_path / "in", ["a.png", "b.png"])
    out = tmp_path / "r.jsonl"
    argv = ["mnist_cnn", "--source", str(tmp_path / "in"), "--engine", "ray", "--ray-address", address]
    assert run_main([*argv, "--json", str(out), "--no-progress"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("edgerun run: error: ") and len(err.splitlines()) == 1, err
    assert f"{address!r}" in err and "or no address to start a local Ray instance" in err
    assert captured.out == "" and not out.exists()  # no per-input records, no emptied output
    assert not _ray_started()


@needs_ray
def test_an_address_nothing_answers_at_ends_within_seconds(tmp_path):
    """Ray itself retries such an address for many minutes; the command ends in seconds."""
    _digits(tmp_path / "in", ["a.png"])
    address = f"127.0.0.1:{_closed_port()}"
    argv = ["run", "mnist_cnn", "--source", "in", "--engine", "ray", "--ray-address", address]
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "edgerun", *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and time.monotonic() - start < 30, proc.stderr
    assert f"could not connect to the Ray cluster at '{address}': connection refused" in proc.stderr


@needs_ray
def test_a_port_that_answers_but_not_as_ray_is_refused():
    """A server that accepts and says nothing (as a web server would to gRPC): refused in the timeout."""
    from edgerun.runtime.distributed import check_address

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        start = time.monotonic()
        with pytest.raises(edgerun.ClusterError, match="something answers there, but not Ray"):
            check_address(f"127.0.0.1:{server.getsockname()[1]}", timeout_s=1.0)
        assert time.monotonic() - start < 10
    finally:
        server.close()
        for conn, _ in accepted:
            conn.close()


@needs_ray
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"workers": 0}, "EngineConfigError", "workers: expected a number of at least 1, got 0"),
        ({"workers": -2}, "EngineConfigError", "workers: expected a number of at least 1, got -2"),
        ({"workers": 2.5}, "EngineConfigError", "workers: expected a whole number, got float 2.5"),
        ({"batch": 0}, "SessionConfigError", "batch must be a whole number from 1 to 1024, got int 0"),
        ({"batch": 4096}, "SessionConfigError", "batch must be a whole number from 1 to 1024"),
        ({"topk": 0}, "HeadOptionsError", "topk must be a whole number >= 1"),
        ({"address": "::::"}, "ClusterError", "the Ray address '::::' is not HOST:PORT"),
        ({"address": "ray://"}, "ClusterError", "the Ray address 'ray://' names no HOST:PORT"),
        ({"address": 6379}, "ClusterError", "the Ray address must be a str such as '127.0.0.1:6379', got int"),
        # these passed at the call (it loads with threads=1) and failed on every worker
        ({"threads": 0}, "SessionConfigError", "threads must be a whole number >= 1"),
        ({"spinning": "no"}, "SessionConfigError", "spinning must be True or False"),
    ],
)
def test_python_api_checks_its_arguments_at_the_call(tmp_path, kwargs, error, message):
    from edgerun.runtime import distributed

    _digits(tmp_path / "in", ["a.png"])
    errors = {"EngineConfigError": distributed.EngineConfigError, "ClusterError": edgerun.ClusterError}
    expected = errors.get(error) or getattr(edgerun, error)
    with pytest.raises(expected, match=message) as caught:
        distributed.predict("mnist_cnn", tmp_path / "in", **kwargs)  # raised here, not when iterated
    assert isinstance(caught.value, (ValueError, edgerun.EngineError))
    assert not _ray_started()


@needs_ray
@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, r"the Ray engine cannot run None: expected .*path"),  # was "None does not exist"
        ({"a": 1}, "the Ray engine cannot run a dict"),
        (0, "camera 0 is a camera and stays local"),  # was opened first: "camera 0 could not be opened"
        ({"a.png"}, "a set has no order"),
        ([None], "item 0 of the inputs is None"),
    ],
)
def test_python_api_refuses_a_source_as_the_local_model_does(source, message):
    from edgerun.runtime import distributed

    with pytest.raises(edgerun.SourceError, match=message):
        distributed.predict("mnist_cnn", source)
    assert not _ray_started()


@needs_ray
def test_python_api_reads_a_generator_of_frames_as_the_local_model_does(tmp_path):
    # was "<generator object ...> does not exist"
    from edgerun.runtime import distributed

    inputs = distributed.enumerate_inputs(f for f in [np.zeros((28, 28), np.uint8)] * 2)
    assert inputs.source == ["array[0]", "array[1]"] and all(inputs.image)
    png = _digits(tmp_path / "in", ["a.png"]) / "a.png"

    class PathLike:
        def __fspath__(self):
            return str(png)

    assert distributed.enumerate_inputs(PathLike()).path == [str(png)]


@needs_ray
def test_a_stream_refused_by_the_ray_engine_keeps_its_password_hidden(capsys):
    assert run_main([str(MODEL), "--source", "http://admin:S3cretPW@127.0.0.1:1/x", "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert "http://admin:***@127.0.0.1:1/x is a stream and stays local" in err and "S3cret" not in err
    assert not _ray_started()


@needs_ray
def test_the_api_refuses_a_pool_the_local_instance_cannot_hold(tmp_path):
    """provider='cuda' on a machine without a GPU: Ray waited for ever ('The job may hang
    forever'); the CLI refused it, the API did not ask."""
    from edgerun.runtime import distributed

    _digits(tmp_path / "in", ["a.png"])
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has a GPU: a CUDA pool fits")
    with pytest.raises(edgerun.EngineError, match=r"need 1 GPU \(it has 0\) on the local Ray instance; run on the CPU"):
        list(distributed.predict("mnist_cnn", tmp_path / "in", workers=1, provider="cuda"))


@needs_ray
def test_auto_names_the_address_it_resolved(monkeypatch):
    from edgerun.runtime.raycluster import check_address

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")
    with pytest.raises(edgerun.ClusterError, match=r"could not connect to the Ray cluster at 'auto' \(\S+:\d+\)"):
        check_address("auto")
