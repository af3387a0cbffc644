"""Ray for edgerun: connecting (a local instance started and fully shut down, or a cluster
joined, its address checked first), what each actor asks of it, the engine's own settings
(``workers``), stopping Ray Data's reader, and the one-line message when Ray is not installed.

Ray is imported inside these functions only, never when this module is imported.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

from .argtypes import positive_int
from .outputs import os_reason

logger = logging.getLogger(__name__)

EXTRA = "ray"
RAY_CLIENT = "ray://"

#: The name of Ray Data's thread that fetches blocks for ``iter_batches`` (Ray 2.x).
RAY_DATA_READER = "iter_threaded"


class EngineError(Exception):
    """The Ray engine cannot run this job; the message says why and what to do instead."""


class RayMissing(EngineError):
    """Ray (with its Data library) is not installed."""


class ClusterError(EngineError):
    """The Ray cluster could not be reached (or a local instance started); nothing ran."""


class EngineConfigError(EngineError, ValueError):
    """A setting of the engine itself out of range (``workers``); the message says what is allowed."""


#: How long the reachability check waits for the cluster's address to answer (seconds).
CONNECT_TIMEOUT_S = 5.0

_ADDRESS_HELP = (
    "give the head node's HOST:PORT (as `ray start --head` prints it), 'auto' (the cluster this "
    "machine belongs to) or ray://HOST:PORT, or no address to start a local Ray instance"
)


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
    check_address(address)
    kwargs = {"address": address} if address else {"address": "local", "num_cpus": num_cpus}
    try:
        ray.init(**kwargs, include_dashboard=False, logging_level=logging.WARNING)
    except Exception as exc:  # noqa: BLE001 - ray.init's failures have no common type (ValueError, ConnectionError, ...)
        ray.shutdown()  # whatever it had started
        what = f"connect to the Ray cluster at {address!r}" if address else "start a local Ray instance"
        hint = _ADDRESS_HELP if address else "run with -v for Ray's own log"
        raise ClusterError(f"could not {what}: {_one_line(exc)}; {hint}") from exc
    try:
        yield ray
    finally:
        started = _ray_processes(ray) if not address else []
        ray.shutdown()
        _wait_gone(started)


def check_address(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, within about ``timeout_s``, a cluster address nothing answers at: Ray itself would
    retry it for many minutes. ``None`` (a local instance to start) passes; ``auto`` is resolved
    as Ray resolves it (``RAY_ADDRESS``, then the cluster this machine started last).

    What answers must speak gRPC (as Ray's GCS and its client server do), so a port held by
    another kind of server is refused too.

    Raises:
        ClusterError: the address is malformed, or nothing (or nothing speaking gRPC) answers there.
    """
    if address is not None and not isinstance(address, str):
        raise ClusterError(f"the Ray address must be a str such as '127.0.0.1:6379', got {type(address).__name__}")
    if not address or address == "local":
        return
    target = _resolve(address)
    if not target:
        return
    host, port = _host_port(address, target)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else os_reason(exc)
        where = f"{address!r}" if target == address else f"{address!r} ({target})"  # 'auto' names what it found
        raise ClusterError(f"could not connect to the Ray cluster at {where}: {reason}; {_ADDRESS_HELP}") from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return  # a TLS cluster's handshake needs its certificates: the TCP answer is the check
    _check_grpc(address, f"{host}:{port}" if ":" not in host else f"[{host}]:{port}", timeout_s)


def _resolve(address: str) -> str:
    """``address`` as host:port (``ray://`` dropped); ``auto`` resolved the way ``ray.init`` does."""
    if address.startswith(RAY_CLIENT):
        rest = address[len(RAY_CLIENT) :]
        if not rest:
            raise ClusterError(f"the Ray address {address!r} names no HOST:PORT; {_ADDRESS_HELP}")
        return rest
    if address != "auto":
        return address
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:  # another Ray: let ray.init resolve it
        return ""
    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except (ConnectionError, ValueError) as exc:
        why = "none is named by RAY_ADDRESS or runs on this machine" if isinstance(exc, ConnectionError) else exc
        raise ClusterError(f"no Ray cluster found for 'auto': {why}; {_ADDRESS_HELP}") from None


def _host_port(address: str, target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"the Ray address {address!r} is not HOST:PORT; {_ADDRESS_HELP}")
    return host, int(port)


def _check_grpc(address: str, target: str, timeout_s: float) -> None:
    """A gRPC channel to ``target`` becomes ready within ``timeout_s``, or :class:`ClusterError`."""
    try:
        import grpc  # Ray's own dependency
    except ImportError:
        return
    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise ClusterError(
            f"could not connect to the Ray cluster at {address!r}: something answers there, but not Ray "
            f"(no gRPC handshake within {timeout_s:g} s); {_ADDRESS_HELP}"
        ) from None
    finally:
        channel.close()


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message, with its type."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "").rstrip(".")
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def check_workers(workers: int | None) -> None:
    """``workers`` by the rule of ``edgerun run --workers`` (a whole number, at least 1), or None.

    Raises:
        EngineConfigError: it is not.
    """
    from .frames import describe  # numpy and OpenCV: only when there is a value to check
    from .modelio import whole

    if workers is None:
        return
    problem = f"expected a whole number, got {describe(workers)}"
    if whole(workers):
        try:
            positive_int(workers)
            return
        except argparse.ArgumentTypeError as exc:
            problem = str(exc)
    raise EngineConfigError(f"workers: {problem} (or None: one per CPU, or per GPU with cuda)")


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
