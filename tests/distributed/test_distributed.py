"""``run --engine ray``: the local engine's records from a pool of Ray actors on a local instance.

One local Ray instance serves the module (start-up takes seconds); the interrupt test starts
its own through the command, as a user would, and checks that none of its processes outlive it.
Without the ray extra, the engine's tests skip with a message; the one-line install hint and the
flag checks are tested either way.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgerun
from edgerun.cli import main as edgerun_main
from edgerun.runtime.cli import main as run_main

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(
    not HAS_RAY, reason="the ray extra is not installed (pip install 'edgerun[ray]'): the Ray engine is not tested"
)


def records(path: Path) -> list[dict]:
    """The records of a .jsonl file in input order, without the timing (which differs run to run)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("latency_ms", None)
    return sorted(rows, key=lambda r: r["index"])


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module: the engine joins it instead of starting its own."""
    if not HAS_RAY:
        pytest.skip("the ray extra is not installed")
    from edgerun.runtime.distributed import cluster

    with cluster(num_cpus=2) as ray:
        yield ray


@pytest.fixture
def small_job(mnist_pngs, tmp_path) -> Path:
    """40 MNIST test PNGs, one file that is not an image and one empty file."""
    directory, _ = mnist_pngs
    job = tmp_path / "in"
    job.mkdir()
    for i in range(40):
        (job / f"{i:05d}.png").symlink_to(directory / f"{i:05d}.png")
    (job / "00040_broken.png").write_text("not an image")
    (job / "00041_empty.png").write_bytes(b"")
    return job


@needs_ray
def test_ray_engine_writes_the_local_engines_records(local_ray, small_job, tmp_path, capsys):
    def run(*extra: str, name: str) -> tuple[int, list[str]]:
        argv = ["mnist_cnn", "--source", str(small_job / "*.png"), "--batch", "4", "--topk", "3", "--no-progress"]
        code = run_main([*argv, "--json", str(tmp_path / f"{name}.jsonl"), "--save", str(tmp_path / name), *extra])
        return code, capsys.readouterr().out.splitlines()

    local_code, local_lines = run(name="local")
    ray_code, ray_lines = run("--engine", "ray", "--workers", "2", name="ray")
    assert local_code == ray_code == 1  # two inputs failed, each with its record
    ours, theirs = records(tmp_path / "local.jsonl"), records(tmp_path / "ray.jsonl")
    assert len(theirs) == 42 and [r["index"] for r in theirs] == list(range(42))  # nothing lost or doubled
    assert theirs == ours  # the same sources, top-3 classes, probabilities and error messages
    assert [r["source"] for r in theirs if "error" in r] == [
        str(small_job / n) for n in ("00040_broken.png", "00041_empty.png")
    ]
    assert sorted(ray_lines) == sorted(local_lines)
    saved = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert saved == sorted(p.name for p in (tmp_path / "local").iterdir()) and len(saved) == 40


@needs_ray
def test_python_api_on_arrays_and_paths_matches_the_model(local_ray, mnist_test, small_job):
    from edgerun.runtime import distributed

    images, labels = mnist_test
    items = [*images[:30], str(small_job / "00040_broken.png"), images[30]]
    model = edgerun.load("mnist_cnn", batch=8)
    expected = [r.to_dict() for r in model(items)]
    got = list(distributed.predict("mnist_cnn", items, workers=2, batch=8, keep_images=True))
    assert sorted(r.index for r in got) == list(range(32))
    by_index = {r.index: r for r in got}
    for want in expected:
        have = by_index[want["index"]].to_dict()
        want.pop("latency_ms", None), have.pop("latency_ms", None)
        assert have == want
    assert by_index[0].image is not None and by_index[0].plot().shape[:2] == (28, 28)
    assert [by_index[i].class_id for i in range(30)] == [r.class_id for r in model(items[:30])]


@needs_ray
def test_a_ray_dataset_through_the_predictor(local_ray, mnist_dir):
    """The step-by-step form from the module docstring, on an IDX file."""
    from edgerun.runtime import distributed

    inputs = distributed.enumerate_inputs(mnist_dir / "t10k-images-idx3-ubyte.gz").head(64)
    out = distributed.apply(distributed.dataset(inputs, 16), distributed.ModelFile.of("mnist_cnn"), workers=1, batch=16)
    rows = out.take_all()
    assert sorted(int(r["index"]) for r in rows) == list(range(64))
    lines = {int(r["index"]): json.loads(r["record"]) for r in rows}
    local = {r.index: r.to_dict() for r in edgerun.load("mnist_cnn")(str(mnist_dir / "t10k-images-idx3-ubyte.gz"))[:64]}
    assert all(lines[i]["top"] == local[i]["top"] and lines[i]["source"] == local[i]["source"] for i in range(64))


@needs_ray
def test_engine_failure_gives_every_input_an_error_record(local_ray, small_job):
    """Workers that cannot load the model: the run ends, and each input still has its one record."""
    from edgerun.runtime.distributed import enumerate_inputs
    from edgerun.runtime.distributed_run import RayJob, RayRun

    inputs = enumerate_inputs(small_job)
    run = RayRun(RayJob("mnist_cnn", {"optimization": "none-such", "threads": 1}, batch=4, workers=1), inputs)
    with run:
        results = list(run)
    assert sorted(r.index for r in results) == list(range(42))
    assert all(r.error.startswith("not run:") and "none-such" in r.error for r in results)
    assert run.exit_code == 1 and run.stats.lost == 42


@needs_ray
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "0"], "is a camera and stays local"),
        (["--source", "rtsp://127.0.0.1:1/x"], "is a stream and stays local"),
        (["--source", "{video}"], "is a video and stays local"),
        (["--source", "{dir}", "--show"], "--show stays local"),
        (["--source", "{dir}", "--save", "out.mp4"], "a video needs frames in order"),
    ],
)
def test_what_stays_local_is_refused_before_any_cluster_starts(small_job, digit_video, tmp_path, capsys, argv, message):
    video = digit_video(tmp_path / "v.avi", 3)
    argv = [a.format(video=video, dir=small_job) for a in argv]
    assert run_main(["mnist_cnn", *argv, "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@needs_ray
def test_a_pool_the_local_instance_cannot_hold_is_refused(local_ray, small_job, capsys):
    gpus = local_ray.cluster_resources().get("GPU", 0)
    argv = ["mnist_cnn", "--source", str(small_job), "--engine", "ray", "--provider", "cuda", "--workers", "2"]
    if gpus >= 2:
        pytest.skip("this machine's Ray instance has two GPUs")
    assert run_main(argv) == 2
    assert f"need 2 GPU (it has {gpus:g})" in capsys.readouterr().err


def test_without_the_extra_one_line_names_it(small_job, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    assert run_main(["mnist_cnn", "--source", str(small_job), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'edgerun[ray]'" in err
    assert edgerun_main(["run", "mnist_cnn", "--source", str(small_job), "--engine", "ray"]) == 2
    assert "pip install 'edgerun[ray]'" in capsys.readouterr().err


def test_ray_flags_need_the_ray_engine(small_job, capsys):
    assert run_main(["mnist_cnn", "--source", str(small_job), "--workers", "2"]) == 2
    assert "go with --engine ray" in capsys.readouterr().err


def test_runtime_imports_no_ray_until_asked():
    code = "import edgerun.runtime.cli, edgerun.runtime.distributed, sys; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _processes_tagged(tag: str) -> list[str]:
    """Processes whose environment holds ``tag`` (Ray's processes inherit the driver's), with their command."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if tag.encode() in (proc / "environ").read_bytes():
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name} {command[:120]}")
        except OSError:  # gone, or not ours to read
            continue
    return found


@needs_ray
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the run's processes")
def test_sigint_leaves_whole_lines_and_no_ray_process(mnist_dir, tmp_path):
    out, tag = tmp_path / "r.jsonl", f"EDGERUN_TEST_{uuid.uuid4().hex}"
    idx = mnist_dir / "t10k-images-idx3-ubyte.gz"
    argv = [sys.executable, "-m", "edgerun", "run", "mnist_cnn", "--source", str(idx), "--engine", "ray"]
    env = {**os.environ, tag: "1"}
    proc = subprocess.Popen(
        [*argv, "--batch", "1", "--workers", "1", "--json", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 50:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]
    assert _processes_tagged(tag)  # the driver, Ray's gcs_server and raylet, the worker
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "SIGINT received" in stderr
    lines = out.read_text().splitlines()
    parsed = [json.loads(line) for line in lines]  # every line is a whole record
    assert 50 <= len(parsed) < 10_000 and len({r["index"] for r in parsed}) == len(parsed)
    deadline = time.monotonic() + 30
    while _processes_tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_tagged(tag) == []


def test_block_rows_are_whole_batches():
    from edgerun.runtime.distributed import block_rows

    assert block_rows(5000, 32, 2) == 256
    assert block_rows(42, 4, 2) == 8
    assert block_rows(10, 64, 8) == 64
    assert all(block_rows(n, b, w) % b == 0 for n in (1, 99, 10_000) for b in (1, 3, 32) for w in (1, 4))


def test_inputs_match_the_local_sources_indices(small_job, tmp_path):
    from edgerun.runtime.distributed import enumerate_inputs
    from edgerun.runtime.sources import open_source

    inputs = enumerate_inputs(str(small_job))
    local = list(open_source(str(small_job)))
    assert inputs.index == [f.index for f in local] and inputs.source == [f.source for f in local]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(["in/00001.png", "# comment", "in/00002.png"]))  # small_job is tmp_path/in
    assert enumerate_inputs(listing).source == [f.source for f in open_source(listing)]
    arrays = enumerate_inputs([np.zeros((28, 28), np.uint8), str(small_job / "00001.png")])
    assert arrays.source == ["array[0]", str(small_job / "00001.png")] and arrays.image[1] == b""


@needs_ray
def test_readme_ray_example_runs_as_written(local_ray, mnist_test, tmp_path, monkeypatch, capsys):
    import re

    images, labels = mnist_test
    (tmp_path / "digits").mkdir()
    for i in range(6):
        cv2.imwrite(str(tmp_path / "digits" / f"{i}.png"), images[i])
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Scale-out with Ray", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README Ray block", "exec"), {})
    printed = {int(line.split()[0]): line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert printed == {i: str(labels[i]) for i in range(6)}
    written = [json.loads(line) for path in (tmp_path / "out" / "records").iterdir() for line in path.open()]
    assert sorted(json.loads(row["record"])["index"] for row in written) == list(range(6))


def test_rays_notice_that_token_auth_is_on_is_dropped_and_the_off_warning_kept():
    """Every Ray run printed Ray's notice that its secure default is on; that it is off still shows."""
    import logging

    from edgerun.runtime.distributed_run import _SecureDefaultNotice

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("ray", logging.WARNING, __file__, 1, message, None, None)

    notice = _SecureDefaultNotice()
    assert not notice.filter(record("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=..."))
    assert notice.filter(record("Token authentication is disabled for this Ray cluster. Anyone with network..."))
