"""Tuned session settings: what ``edgerun tune`` measured fastest on this machine, per model and batch.

The cache is one small JSON file (``$EDGERUN_TUNE_CACHE``, else ``$XDG_CACHE_HOME/edgerun/tune.json``,
else ``~/.cache/edgerun/tune.json``), keyed by machine fingerprint (CPU model, its ISA flags,
cores, onnxruntime version, provider), then model sha256, then batch size. A machine or an
onnxruntime that differs in any of those gets no tuned settings: they were measured elsewhere.

The contract the runtime calls (cheap: no file is hashed unless the cache has entries for this
machine, and the tuner leaves a size/mtime memo of the files it tuned)::

    settings = tuned_settings_for(path, batch=1, provider="cpu")   # TunedSettings | None
    config = settings.apply(config) if settings else config        # a SessionConfig

``tuned_settings(model_sha256, batch, provider)`` is the same lookup by hash. Writing is
``record(...)``, used by ``edgerun tune`` only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .session import SessionConfig, SessionConfigError

logger = logging.getLogger(__name__)

ENV_CACHE = "EDGERUN_TUNE_CACHE"
SCHEMA = 1
MAX_CACHE_BYTES = 64 << 20  # thousands of models' entries take a few MB


class TuningCacheError(ValueError):
    """The tune cache exists but cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class TunedSettings:
    """One measured winner: the onnxruntime session settings for a model at one batch size."""

    threads: int
    spinning: bool
    optimization: str  # one of model.OPTIMIZATION_LEVELS
    execution_mode: str  # one of model.EXECUTION_MODES
    io_binding: bool  # bind the input and a pre-allocated output (CPU)
    graph: str = "model"  # "model": the file itself; else a graph variant edgerun tune wrote (export/variants.py)
    # the graph's file, beside the cache, saved as onnxruntime optimised it on this machine (a run
    # opens it without optimising again): the variant's, or for "model" the model's own
    graph_file: str | None = None
    p50_ms: float | None = None  # the tuned settings, as measured by edgerun tune
    default_p50_ms: float | None = None  # edgerun's defaults, same run, interleaved
    measured: str | None = None  # ISO date of the measurement
    #: Set by a lookup for a batch size that was not tuned: the tuned batch these settings were
    #: measured at (the nearest one). Not stored in the cache; :meth:`label` names it.
    from_batch: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.threads is None:
            raise TuningCacheError("threads must be a whole number >= 1, got None")
        try:  # the ranges of the SessionConfig these settings become, checked there
            self.apply(SessionConfig())
        except SessionConfigError as exc:
            raise TuningCacheError(str(exc)) from None
        if not isinstance(self.graph, str) or (self.graph != "model" and not self.graph_file):
            raise TuningCacheError(f"graph {self.graph!r} needs its file (graph_file)")
        if self.graph_file is not None and not isinstance(self.graph_file, str):
            raise TuningCacheError(f"graph_file must be a path, got {self.graph_file!r}")
        for name in ("spinning", "io_binding"):
            if not isinstance(getattr(self, name), bool):
                raise TuningCacheError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, data: dict) -> TunedSettings:
        known = {f.name for f in fields(cls)} - {"from_batch"}  # a lookup's note, never the cache's
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise TuningCacheError(f"a tuned entry is incomplete ({exc})") from None

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["from_batch"]
        return data

    @property
    def session_key(self) -> tuple:
        """What makes two settings need different sessions (everything but the measurements)."""
        return (self.threads, self.spinning, self.optimization, self.execution_mode, self.io_binding, self.graph)

    def label(self) -> str:
        parts = [
            f"{self.threads} thread{'s' if self.threads != 1 else ''}",
            "spin" if self.spinning else "no spin",
            f"opt {self.optimization}",
            self.execution_mode,
        ]
        if self.io_binding:
            parts.append("io-binding")
        if self.graph != "model":
            parts.append(f"graph {self.graph}")
        if self.from_batch is not None:
            parts.append(f"as tuned for batch {self.from_batch}, the nearest tuned batch size")
        return ", ".join(parts)

    def apply(self, config: SessionConfig) -> SessionConfig:
        """``config`` with these settings."""
        return replace(
            config,
            threads=self.threads,
            spinning=self.spinning,
            optimization=self.optimization,
            execution_mode=self.execution_mode,
            io_binding=self.io_binding,
            graph=self.graph_file,
        )


def cache_path() -> Path:
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgerun" / "tune.json"


def graphs_dir(cache: Path | None = None) -> Path:
    """Where edgerun tune keeps the graph variants it measured: beside the cache file."""
    return (Path(cache) if cache else cache_path()).parent / "graphs"


def _cpu() -> tuple[str, list[str]]:
    """CPU model name and ISA flags (x86 ``flags`` or Arm ``Features``) from /proc/cpuinfo.

    ``platform.processor()`` is only the fallback: on Linux it runs ``uname -p`` in a child
    process, which a one-image run would feel."""
    model, flags = "", []
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Hardware", "CPU part") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = sorted(value.split())
        if flags and model:
            break
    if not model:
        model = platform.processor() or platform.machine()
    return model, flags


def machine(provider: str) -> dict:
    """What a tuned setting depends on: CPU model and flags, cores, onnxruntime, provider."""
    import onnxruntime as ort

    model, flags = _cpu()
    return {
        "cpu": model,
        "flags_sha256": _sha256_hex(" ".join(flags).encode())[:16],
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "onnxruntime": ort.__version__,
        "provider": provider,
    }


def fingerprint(provider: str) -> str:
    """A short stable key for :func:`machine`."""
    text = json.dumps(machine(provider), sort_keys=True)
    return _sha256_hex(text.encode())[:20]


def _sha256_hex(data: bytes) -> str:
    """SHA-256 of a few hundred bytes without loading OpenSSL: ``import hashlib`` loads
    ``_hashlib`` (libcrypto), 3 ms of a 0.2 s one-image run here, for keys hashed once per run.
    CPython's own builtin module gives the same digest; hashlib where a build lacks it."""
    try:
        from _sha2 import sha256  # CPython >= 3.12
    except ImportError:
        try:
            from _sha256 import sha256  # CPython 3.11
        except ImportError:
            from hashlib import sha256
    return sha256(data).hexdigest()


def _present(path: Path) -> bool:
    """Whether there is a cache to read; a cache we may not even look at counts as present, so
    that reading it fails with a warning instead of being silently skipped."""
    try:
        return path.is_file()
    except OSError:
        return True


def read_cache(path: Path) -> dict:
    """The cache file's contents (empty when there is none); a damaged one raises TuningCacheError."""
    try:
        if not path.is_file():  # stat itself fails where the folder is not ours to read
            return {"schema": SCHEMA, "machines": {}, "files": {}}
        if path.stat().st_size > MAX_CACHE_BYTES:  # every run reads it: never a file of gigabytes into memory
            raise ValueError(f"{path.stat().st_size:,} bytes, over the {MAX_CACHE_BYTES >> 20} MiB a tune cache can be")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not text at all (UnicodeDecodeError)
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise TuningCacheError(
            f"tune cache {path} cannot be read ({reason}); delete it and run edgerun tune again"
        ) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise TuningCacheError(
            f"tune cache {path} has schema {data.get('schema') if isinstance(data, dict) else '?'}, "
            f"this edgerun reads {SCHEMA}; "
            + (
                "a newer edgerun wrote it: keep it for that one and give this one its own (EDGERUN_TUNE_CACHE=FILE)"
                if isinstance(data, dict) and isinstance(data.get("schema"), int) and data["schema"] > SCHEMA
                else "delete it and run edgerun tune again"
            )
        )
    data.setdefault("machines", {})
    data.setdefault("files", {})
    problem = _shape_problem(data)
    if problem:
        raise TuningCacheError(f"tune cache {path} is damaged: {problem}; delete it and run edgerun tune again")
    return data


def _objects(value, where: str) -> str | None:
    """None when ``value`` is a JSON object of JSON objects, else what it is instead."""
    if not isinstance(value, dict):
        return f"{where} is {type(value).__name__}, expected an object"
    bad = next((k for k, v in value.items() if not isinstance(v, dict)), None)
    return None if bad is None else f"{where}[{bad!r}] is {type(value[bad]).__name__}, expected an object"


def _shape_problem(data: dict) -> str | None:
    """What in a parsed cache is not where the lookups expect it (valid JSON of another shape: a
    hand edit, another tool's file), or None. Checked whole, so a lookup never meets it half-way."""
    problem = _objects(data["machines"], "machines") or _objects(data["files"], "files")
    if problem:
        return problem
    for fp, entry in data["machines"].items():
        models = entry.get("models", {})
        problem = _objects(models, f"machines[{fp!r}].models")
        if problem:
            return problem
        for sha, model in models.items():
            batches = model.get("batches", {})
            problem = _objects(batches, f"the batches of model {sha[:12]}")
            if problem:
                return problem
            if not all(b.isdecimal() and int(b) >= 1 for b in batches):
                return f"model {sha[:12]} has batch sizes {sorted(batches)}, expected whole numbers of at least 1"
    return None


def _nearest(batches: dict, batch: int) -> int | None:
    """``batch`` if it was tuned, else the tuned batch nearest to it in log2 distance (ties: smaller)."""
    if str(batch) in batches:
        return batch
    sizes = sorted(int(b) for b in batches)
    if not sizes:
        return None
    return min(sizes, key=lambda b: (abs(math.log2(b) - math.log2(batch)), b))


def _load(cache: Path) -> dict | None:
    """The cache's contents, or None when there is none; a damaged one is a warning, never a failure."""
    if not _present(cache):
        return None
    try:
        return read_cache(cache)
    except TuningCacheError as exc:
        logger.warning("%s", exc)
        return None


def _machine_models(data: dict, provider: str) -> dict:
    """The cache's tuned models of this machine (fingerprinted once: /proc/cpuinfo is read for it)."""
    return data["machines"].get(fingerprint(provider), {}).get("models", {})


def _lookup(models: dict, model_sha256: str, batch: int, exact: bool, cache: Path):
    batches = models.get(model_sha256, {}).get("batches", {})
    tuned = (batch if str(batch) in batches else None) if exact else _nearest(batches, batch)
    if tuned is None:
        return None
    try:
        settings = TunedSettings.from_dict(batches[str(tuned)])
        if settings.threads > (os.cpu_count() or 1):  # the tuner tries 1 to the cores, which the fingerprint holds
            raise TuningCacheError(f"threads {settings.threads} is more than this machine's {os.cpu_count()} cores")
    except TuningCacheError as exc:
        logger.warning("tune cache %s: %s; ignoring it", cache, exc)
        return None
    return settings if tuned == batch else replace(settings, from_batch=tuned)


def tuned_settings(
    model_sha256: str, batch: int, provider: str, exact: bool = False, path: Path | None = None
) -> TunedSettings | None:
    """The tuned settings for this model, batch and provider on this machine, or None.

    Without ``exact``, a batch that was not tuned takes the nearest tuned one (log2 distance).
    A damaged cache is logged once as a warning and ignored: a run never fails for want of tuning.
    """
    cache = Path(path) if path else cache_path()
    data = _load(cache)
    return None if data is None else _lookup(_machine_models(data, provider), model_sha256, batch, exact, cache)


def _memo_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _model_sha256(path: Path, data: dict, stat: tuple[str, int, int] | None = None) -> str:
    """The file's sha256, from the tuner's size/mtime memo in ``data`` (the cache's contents)
    when the file has not changed since it was hashed."""
    key, size, mtime = stat or _memo_key(path)
    memo = data["files"].get(key)
    if memo and memo.get("size") == size and memo.get("mtime_ns") == mtime and isinstance(memo.get("sha256"), str):
        return memo["sha256"]
    from .files import sha256_file  # imports hashlib (OpenSSL, ~3 ms): only when the memo misses

    return sha256_file(path)


def tuned_settings_for(
    model_path: str | Path, batch: int, provider: str, exact: bool = False, path: Path | None = None
) -> TunedSettings | None:
    """:func:`tuned_settings` for a model file; hashes the file only when this machine has entries
    for a model of its size (a file of another size cannot be one of them)."""
    cache = Path(path) if path else cache_path()
    data = _load(cache)
    models = {} if data is None else _machine_models(data, provider)
    if not models:
        return None
    stat = _memo_key(Path(model_path))
    if not _may_be_tuned(stat[1], models, data):
        return None
    return _lookup(models, _model_sha256(Path(model_path), data, stat), batch, exact, cache)


def _may_be_tuned(size: int, models: dict, data: dict) -> bool:
    """Whether a file of ``size`` bytes can be one of the tuned ``models``. Their sizes come from
    their entries, else from the memo; a model of unknown size keeps the answer "maybe". Without
    this, one tuned model made every other model's run hash its whole file (ResNet50: 80-170 ms)."""
    memo_sizes = {memo.get("sha256"): memo.get("size") for memo in data["files"].values()}
    sizes = set()
    for sha, entry in models.items():
        known = entry.get("size", memo_sizes.get(sha))
        if known is None:
            return True
        sizes.add(known)
    return size in sizes


def record(
    model_path: str | Path,
    sha256: str,
    provider: str,
    winners: dict[int, TunedSettings],
    path: Path | None = None,
) -> Path:
    """Store ``winners`` (batch -> settings) for this model on this machine, atomically, under
    :func:`cache_lock`: two tunes that end at once both keep their entries."""
    cache = Path(path) if path else cache_path()
    with cache_lock(cache):
        return _record(model_path, sha256, provider, winners, cache)


@contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    """Hold the tune cache's lock file (``.NAME.lock`` beside it) for a read-modify-write: without
    it, four processes recording 20 entries each kept 25 of the 80. No locking where ``fcntl``
    is missing (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_name(f".{cache.name}.lock"), "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _record(model_path: str | Path, sha256: str, provider: str, winners: dict[int, TunedSettings], cache: Path):
    from .files import write_json_atomic

    data = read_cache(cache)
    fp = fingerprint(provider)
    entry = data["machines"].setdefault(fp, {"machine": machine(provider), "models": {}})
    model = entry["models"].setdefault(sha256, {"name": Path(model_path).name, "batches": {}})
    key, size, mtime = _memo_key(Path(model_path))
    model["name"], model["size"] = Path(model_path).name, size
    for batch, settings in winners.items():
        model["batches"][str(batch)] = settings.to_dict()
    data["files"][key] = {"size": size, "mtime_ns": mtime, "sha256": sha256}
    return write_json_atomic(cache, data)


def tuned_config(model_path: str | Path, batch: int, config, provider: str = "cpu", keep: tuple[str, ...] = ()):
    """``(config, settings)``: ``config`` with the tuned settings for this model and batch applied
    (fields named in ``keep``, which the user set by hand, stay as they are), and the settings
    used, or ``(config, None)`` when nothing is tuned here. Logs what it applied, once.

    ``provider`` is the one the session will really use ("cpu" after a CPU fallback): tuned
    settings are per provider. This is the call for ``Model.load`` and ``edgerun run``.
    """
    settings = tuned_settings_for(model_path, batch, provider)
    if settings is None:
        return config, None
    tuned = settings.apply(config)
    if keep:
        tuned = replace(tuned, **{name: getattr(config, name) for name in keep})
    if tuned.optimization != settings.optimization and "graph" not in keep:  # the tuned file holds that level's work
        tuned = replace(tuned, graph=None)
    logger.info(
        "%s: tuned settings for batch %d from %s: %s (edgerun tune; --no-tune ignores them)",
        Path(model_path).name,
        batch,
        cache_path(),
        settings.label(),
    )
    return tuned, settings
