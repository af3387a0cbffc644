"""Ray for edgerun: connecting (a local instance started and fully shut down, or a cluster
joined), what each actor asks of it, stopping Ray Data's reader, and the one-line
message when Ray is not installed.

Ray is imported inside these functions only, never when this module is imported.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

EXTRA = "ray"

#: The name of Ray Data's thread that fetches blocks for ``iter_batches`` (Ray 2.x).
RAY_DATA_READER = "iter_threaded"


class EngineError(Exception):
    """The Ray engine cannot run this job; the message says why and what to do instead."""


class RayMissing(EngineError):
    """Ray (with its Data library) is not installed."""


def require_ray():
    """The ``ray`` module with ``ray.data`` loaded, or :class:`RayMissing` naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is what the engine uses
    except ImportError as exc:
        missing = (exc.name or "ray").split(".")[0]
        raise RayMissing(
            f"--engine ray needs Ray with its Data library ({missing} is not installed); "
            f"install it with: pip install 'edgerun[{EXTRA}]'"
        ) from None
    return ray


def resources(provider: str, threads: int | None, ray) -> tuple[float, float]:
    """(CPUs, GPUs) one actor asks Ray for: a GPU each on cuda/tensorrt (or auto where the
    cluster has GPUs), else ``threads`` CPUs (onnxruntime's intra-op threads, default 1)."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if provider in ("cuda", "tensorrt") or (provider == "auto" and gpus > 0):
        return 1.0, 1.0
    return float(threads or 1), 0.0


@contextmanager
def cluster(address: str | None = None, num_cpus: int | None = None):
    """Ray, connected: to the cluster at ``address``, or a local instance started here and shut
    down on leaving (no Ray process of it outlives the block). An instance that is already
    connected in this process (a notebook's, a test's) is used as it is and left running."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"address": address} if address else {"address": "local", "num_cpus": num_cpus}
    ray.init(**kwargs, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        started = _ray_processes(ray) if not address else []
        ray.shutdown()
        _wait_gone(started)


def stop_reader(blocks, before: set, timeout_s: float = 30.0) -> None:
    """Close Ray Data's block iterator and wait for its reader thread to end. Closing only asks
    the thread to stop; one still fetching a block when Ray is shut down takes the process with
    it ("the core worker has already been shutdown"), so a run that stops early (an output
    refused, Ctrl-C) waits for that block first."""
    close = getattr(blocks, "close", None)
    if close is not None:
        close()
    for thread in set(threading.enumerate()) - before:
        if thread.name == RAY_DATA_READER and thread.is_alive():
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning("Ray Data's reader thread did not stop within %g s", timeout_s)


def _ray_processes(ray) -> list:
    """The processes of the local instance started here: Ray's gcs_server, raylet, helpers, workers."""
    try:
        import psutil  # Ray ships its own copy and puts it on the path
    except ImportError:
        return []
    home = str(Path(ray.__file__).parent)
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            command = proc.cmdline()
        except psutil.Error:
            continue
        if command and (command[0].startswith("ray::") or any(home in part for part in command)):
            found.append(proc)
    return found


def _wait_gone(processes: list, timeout_s: float = 15.0) -> None:
    """Wait until the instance's processes have exited: its workers notice the raylet is gone and
    leave within a second or two; one that has not gone after ``timeout_s`` is killed, by its id."""
    if not processes:
        return
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    for proc in alive:
        logger.warning("Ray process %d (%s) outlived its instance; killing it", proc.pid, proc.name())
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=5)


def default_workers(ray, num_cpus: float, num_gpus: float) -> int:
    """One actor per GPU where actors take GPUs, else as many as the cluster's CPUs hold."""
    total = ray.cluster_resources()
    if num_gpus:
        return max(1, int(total.get("GPU", 0) // num_gpus))
    return max(1, int(total.get("CPU", 1) // num_cpus))
