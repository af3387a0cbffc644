"""The latency sweep: models x backends x batch sizes, one row each, errors recorded not fatal.

Every (model, batch) is measured in interleaved rounds, the backends taking turns a short block each. For
the CI gate (:mod:`.gate`) the fixed reference workload (:mod:`.reference`) takes turns too, and every
row then also carries its own calls and the reference's, round by round: what the gate decides on.
The machine's peak for "% peak" is onnxruntime's own GEMM (:mod:`.peak`), measured in turns before,
during and after the sweep.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgerun.runtime.files import sha256_file
from edgerun.runtime.metadata import ANY_SIZE_PROBE
from edgerun.runtime.model import SessionConfig, default_threads
from edgerun.runtime.modelio import Overrides, fixed_batch
from edgerun.runtime.timing import Timings, measure, measure_blocks

from .backends import EdgerunBackend, PeerUnavailable, make_backend
from .flops import flops_per_image, precision
from .machine import environment
from .peak import Peak
from .reference import REFERENCE_ID, Reference
from .signals import signal_name
from .stats import LatencyStats, ratio_interval

logger = logging.getLogger(__name__)

SCHEMA = 2
STAT_FIELDS = ("iters", "first_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "ms_per_img", "imgs_per_s")
ESTIMATE_ITERS = 5  # timed runs after the warm-up; the fastest sizes the rounds and the reference
#: A round is cut off after this many times its planned time (a very busy machine).
ROUND_CAP = 3.0
#: SweepConfig fields the report's "settings" leave out (paths and what was read from them)
_NOT_SETTINGS = ("models", "twins", "reference_batches", "inputs", "overrides")


@dataclass(frozen=True)
class SweepConfig:
    models: tuple[Path, ...]
    batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    backends: tuple[str, ...] = ("edgerun",)
    provider: str = "cpu"
    warmup: int = 5
    iters: int | None = None
    seconds: float | None = 1.0  # measured time per row, spread over the rounds
    rounds: int = 3  # interleaved rounds per batch (the CLI asks for 20)
    reference: bool = False  # measure the reference workload in the same rounds (the gate needs it)
    max_rounds: int | None = None  # with more_rounds: extra rounds up to this many (default: none)
    threads: int | None = None
    spinning: bool = True
    twins: dict = field(default_factory=dict)
    tuned: bool = False  # the edgerun backend uses the tune cache (edgerun tune) where it has entries
    #: (model file name, batch) -> reference batch, from a baseline: the same reference work again.
    reference_batches: dict = field(default_factory=dict)
    #: model path -> its ModelInput, read when the arguments were checked (else read here)
    inputs: dict = field(default_factory=dict)
    #: --layout/--size/--gray: what a foreign model's input shape does not tell (runtime Overrides)
    overrides: Overrides | None = None


@dataclass
class Row:
    model: str
    backend: str
    provider: str
    batch: int
    precision: str = "fp32"
    iters: int = 0
    first_ms: float | None = None
    mean_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    ms_per_img: float | None = None
    imgs_per_s: float | None = None
    gflops: float | None = None  # GOP/s for int8 rows
    pct_peak: float | None = None  # of this machine's onnxruntime GEMM peak in the row's precision
    ref_batch: int | None = None  # the reference workload's batch size for this (model, batch)
    round_us: list[list[float]] = field(default_factory=list)  # every timed call, per round (microseconds)
    ref_round_us: list[list[float]] = field(default_factory=list)  # the reference's calls in the same rounds
    #: A peer's row: edgerun's median over this row's, with its 95% interval (bootstrap over the rounds)
    #: and the verdict, "faster", "level" or "slower" (edgerun's); None for edgerun or under 3 rounds.
    edgerun_ratio: dict | None = None
    error: str | None = None


@dataclass(frozen=True)
class ModelInput:
    """What the sweep feeds one model, read once per model, not once per batch size."""

    image: tuple[int, int, int]  # (height, width, channels) per image
    dynamic: tuple[int, int] | None  # the size used for a model of any size
    opset: int | None
    precision: str
    fixed_batch: int | None = None  # the batch size the model's batch axis is fixed at, if it is
    nchw: bool = False  # the model's input layout as the runtime reads it (peers transpose to it)


def model_input(path: Path, overrides: Overrides | None = None) -> ModelInput:
    """The input comes from the runtime's own reading of the model (metadata, or the shape of a
    foreign one, with ``overrides`` where the shape does not tell). The opset, and a foreign
    model's precision, need the onnx package: without it the opset is None and a foreign model
    counts as fp32."""
    from edgerun.runtime.model import Model

    model = Model.load(path, SessionConfig(provider="cpu", threads=1), overrides)
    meta = model.metadata
    dynamic = ANY_SIZE_PROBE if None in meta.preprocessing.size else None
    h, w = dynamic or meta.preprocessing.size
    kind = meta.variant if not model.foreign and meta.variant in ("fp32", "int8", "fp16") else "fp32"
    fixed, nchw = fixed_batch(model.session, meta), meta.layout == "NCHW"
    try:
        import onnx
    except ImportError:
        return ModelInput((h, w, model.input_channels), dynamic, None, kind, fixed, nchw)
    proto = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    kind = precision(proto) if model.foreign else kind
    return ModelInput((h, w, model.input_channels), dynamic, opset, kind, fixed, nchw)


def run_sweep(
    config: SweepConfig,
    progress: Callable[[str, int], None] | None = None,
    more_rounds: Callable[[list[Row]], bool] | None = None,
) -> dict:
    """Measure every (model, backend, batch); returns the report dict (schema in README).

    ``more_rounds``, given the rows of one (model, batch) after its rounds, says whether to
    measure more rounds of it (up to ``config.max_rounds``): the gate asks for them while a
    verdict is undecided.
    """
    threads = config.threads or default_threads()
    session = SessionConfig(provider=config.provider, threads=threads, spinning=config.spinning)
    # a CPU GEMM says nothing of a GPU's peak; OpenVINO's provider runs on this CPU
    peak = Peak(session, enabled=config.provider in ("cpu", "openvino"))
    if peak.enabled:
        logger.info("measuring the machine's peak: onnxruntime MatMul")
    sweep = _Sweep(config, session, peak, more_rounds, progress)
    interrupted = None
    try:
        peak.measure()
        sweep.reference = Reference(session) if config.reference else None
        for path in config.models:
            sweep.model(path)
        peak.measure()  # a second turn after the sweep: the best of both is the peak
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM through bench.signals: keep what was measured
        interrupted = signal_name(exc)
        logger.warning("%s: the sweep stops; the %d rows measured before it are kept", interrupted, len(sweep.rows))
    rows, models_info, providers_in_use, reference = sweep.rows, sweep.models_info, sweep.providers, sweep.reference
    for info in models_info:
        _rate([r for r in rows if r.model == info["model"]], {info["model"]: info["flops_per_image"]}, peak)
    return {
        "schema": SCHEMA,
        "environment": environment(threads, config.provider, sorted(providers_in_use)),
        "machine": {"peak": peak.to_dict()},
        "reference": {"id": REFERENCE_ID} if reference else None,
        "models": models_info,
        "settings": {k: v for k, v in asdict(config).items() if k not in _NOT_SETTINGS},
        "results": [asdict(r) for r in rows],
        # "SIGINT"/"SIGTERM" when a signal stopped the sweep: the rows are those measured before it
        "interrupted": interrupted,
    }


class _Sweep:
    """What a sweep has measured so far, model by model: an interrupt keeps every row in it."""

    def __init__(self, config: SweepConfig, session: SessionConfig, peak: Peak, more_rounds, progress) -> None:
        self.config, self.session, self.peak = config, session, peak
        self.more_rounds, self.progress = more_rounds, progress
        self.reference: Reference | None = None
        self.rows: list[Row] = []
        self.models_info: list[dict] = []
        self.providers: set[str] = set()

    def model(self, path: Path) -> None:
        """Every backend and batch size of one model, added to ``rows``; on an interrupt, the
        rows measured so far are added before it goes on up."""
        config, name = self.config, path.name
        inp = config.inputs.get(path) or model_input(path, config.overrides)
        self.models_info.append(_model_info(path, inp))
        backends, model_rows, group = [], [], None
        try:
            for backend_name in config.backends:
                try:
                    backends.append(
                        make_backend(
                            backend_name,
                            path,
                            self.session,
                            config.twins,
                            inp.precision,
                            config.tuned,
                            config.overrides,
                            inp.nchw,
                        )  # fmt: skip
                    )
                except PeerUnavailable as exc:
                    logger.warning("%s: skipping %s: %s", name, backend_name, exc)
                    model_rows.append(
                        Row(name, backend_name, config.provider, 0, inp.precision, error=f"skipped: {exc}")
                    )
                except Exception as exc:  # noqa: BLE001 - record, go on with the next backend
                    model_rows.append(Row(name, backend_name, config.provider, 0, inp.precision, error=_failure(exc)))
            fixed = [b for b in config.batches if inp.fixed_batch is not None and b != inp.fixed_batch]
            if fixed:
                logger.warning(
                    "%s: the model's batch axis is fixed at %d: batch %s skipped (re-export it with a dynamic batch "
                    "axis to measure them)", name, inp.fixed_batch, ",".join(map(str, fixed)),
                )  # fmt: skip
            for batch in config.batches:
                group = None
                if batch in fixed:
                    why = f"skipped: the model's batch axis is fixed at {inp.fixed_batch}"
                    model_rows += [Row(name, b.name, config.provider, batch, b.precision, error=why) for b in backends]
                    continue
                if self.progress:
                    self.progress(name, batch)
                names = [b.name for b in backends] + (["reference"] if self.reference else [])
                logger.info("%s  batch %d: %s", name, batch, ", ".join(names))
                self.peak.measure(seconds=0.1)  # turns spread over the run: the peak sees the same machine as the rows
                group = _Group(backends, self.reference, path, inp, config, batch, self.providers)
                model_rows.extend(group.measure(self.more_rounds))
                group = None
        except KeyboardInterrupt:
            if group is not None:  # the batch size in hand: its rows as far as its rounds went
                model_rows.extend(group.partial())
            raise
        finally:
            order = {b: i for i, b in enumerate(config.backends)}
            self.rows.extend(sorted(model_rows, key=lambda r: (order.get(r.backend, len(order)), r.batch)))


def _model_info(path: Path, inp: ModelInput) -> dict:
    try:
        flops = flops_per_image(path, inp.dynamic)
    except ImportError:
        logger.info("%s: FLOPs not counted: the onnx package is missing (pip install 'edgerun[tools]')", path.name)
        flops = None
    except Exception as exc:  # noqa: BLE001 - a model we cannot count still gets latencies
        logger.warning("%s: FLOPs not counted (%s)", path.name, exc)
        flops = None
    return {
        "model": path.name,
        "path": str(path),
        "sha256": sha256_file(path),
        "flops_per_image": flops,
        "opset": inp.opset,
        "precision": inp.precision,
        "input": list(inp.image),  # (height, width, channels) per image, as fed (--size for a foreign model)
    }


def _rate(rows: list[Row], flops: dict[str, int | None], peak: Peak) -> None:
    """Achieved GFLOP/s from p50, and its share of the peak in the row's precision."""
    for row in rows:
        per_image = flops.get(row.model)
        if not per_image or not row.p50_ms:
            continue
        row.gflops = per_image * row.batch / (row.p50_ms / 1e3) / 1e9
        top = peak.gflops.get(row.precision)
        row.pct_peak = 100 * row.gflops / top if top else None


def _failure(exc: BaseException) -> str:
    return "out of memory" if isinstance(exc, MemoryError) else f"{type(exc).__name__}: {str(exc)[:300]}"


def _microseconds(samples_ns: np.ndarray) -> list[float]:
    return [round(v / 1e3, 2) for v in samples_ns.tolist()]


class _Group:
    """Every backend at one batch size, and the reference, measured in interleaved rounds.

    On a shared machine the speed drifts from one second to the next; measuring one thing after
    another would turn that into a difference. Within a round the participants (the backends and
    the reference) therefore take turns, a short block of calls each (``measure_blocks``: not
    call by call, because a session's spinning worker threads take the cores from the next
    one), so neighbouring blocks see the same machine. Each backend's row also keeps the
    reference's calls of the same rounds. The first call and the warm-up runs are timed apart.
    """

    def __init__(self, backends, reference: Reference | None, path: Path, inp: ModelInput, config, batch, providers):
        self.config, self.batch, self.path = config, batch, path
        self.rows = {b.name: Row(path.name, b.name, config.provider, batch, b.precision) for b in backends}
        self.ready: dict[str, Callable[[], object]] = {}
        self.first: dict[str, Timings] = {}
        self.samples: dict[str, list[np.ndarray]] = {}
        self.turns: dict[str, list[int]] = {}
        self.reference = Reference.name
        x = np.random.default_rng(batch).random((batch, *inp.image), dtype=np.float32)
        for backend in backends:
            try:
                prepared = backend.prepare(x)
                providers.update(prepared.providers)
                self._start(backend.name, prepared.run, config.warmup)
            except Exception as exc:  # noqa: BLE001 - one failing batch size is a row, not the end
                self._fail(backend.name, exc)
        self.ref_batch = None
        if self.ready and reference is not None:
            try:
                target = min(self._estimate(name) for name in self.ready)
                known = config.reference_batches.get((path.name, batch))
                self.ref_batch = known or reference.calibrate(target / 1e6)
                self._start(reference.name, reference.prepare(self.ref_batch).run, 2)
            except Exception as exc:  # noqa: BLE001 - latencies stand without the reference
                logger.warning("%s batch %d: the reference workload failed: %s", path.name, batch, _failure(exc))
        # One block per participant per round: iters/rounds calls, or seconds/rounds of calls.
        if config.iters is not None:
            self.block = {"block_calls": math.ceil(config.iters / config.rounds)}
            planned_ns = sum(self._estimate(n) * self.block["block_calls"] for n in self.ready)
        else:
            block_s = (config.seconds or 1.0) / config.rounds
            self.block = {"block_s": block_s}
            planned_ns = sum(max(block_s * 1e9, 2 * self._estimate(n)) for n in self.ready)
        self.cap_s = ROUND_CAP * planned_ns / 1e9

    def _estimate(self, name: str) -> float:
        return max(float(self.first[name].samples_ns.min()), 1.0)

    def _start(self, name: str, run: Callable[[], object], warmup: int) -> None:
        self.first[name] = measure(run, warmup=warmup, iters=ESTIMATE_ITERS)
        self.ready[name] = run
        self.samples[name] = []
        self.turns[name] = []  # the rounds that samples[name] came from (a capped round may end early)

    def _fail(self, name: str, exc: BaseException) -> None:
        if name == self.reference:
            logger.warning("%s batch %d: the reference workload failed: %s", self.path.name, self.batch, exc)
        else:
            self.rows[name].error = _failure(exc)
            logger.warning("%s %s batch %d failed: %s", self.path.name, name, self.batch, self.rows[name].error)
        for table in (self.ready, self.samples, self.turns):
            table.pop(name, None)

    def _round(self, turn: int) -> None:
        samples, errors = measure_blocks(dict(self.ready), turn=turn, max_seconds=self.cap_s, **self.block)
        for name, exc in errors.items():
            self._fail(name, exc)
        for name, values in samples.items():
            self.samples[name].append(values)
            self.turns[name].append(turn)
        if self.reference not in samples:
            return
        ref_us = _microseconds(samples[self.reference])
        for name, row in self.rows.items():
            if name in samples:
                row.round_us.append(_microseconds(samples[name]))
                row.ref_round_us.append(ref_us)

    def measure(self, more_rounds: Callable[[list[Row]], bool] | None) -> list[Row]:
        config = self.config
        limit = max(config.rounds, config.max_rounds or config.rounds)
        chunk = max(5, config.rounds // 2)
        turn = 0
        while any(name in self.rows for name in self.ready):
            self._round(turn)
            turn += 1
            if turn >= limit:
                break
            if turn >= config.rounds and (turn - config.rounds) % chunk == 0:
                live = [self._filled(r) for r in self.rows.values() if r.error is None]
                if more_rounds is None or not more_rounds(live):
                    break
                logger.info("%s batch %d: undecided after %d rounds, measuring more", self.path.name, self.batch, turn)
        return self._finished(list(self.rows.values()))

    def partial(self) -> list[Row]:
        """The rows as far as the rounds went when a signal stopped them (a row with no block
        measured yet is left out, a failed one kept)."""
        for name, samples in self.samples.items():  # a round cut between its two appends: whole rounds only
            keep = min(len(samples), len(self.turns[name]))
            del samples[keep:], self.turns[name][keep:]
        return self._finished([r for r in self.rows.values() if r.error or self.samples.get(r.backend)])

    def _finished(self, rows: list[Row]) -> list[Row]:
        rows = [self._filled(row) for row in rows]
        for row in rows:
            if row.backend != EdgerunBackend.name:
                row.edgerun_ratio = self._edgerun_ratio(row.backend)
        return rows

    def _edgerun_ratio(self, peer: str) -> dict | None:
        """edgerun over ``peer`` from the rounds both ran in (pairs of blocks a few ms apart)."""
        ours, theirs = (
            dict(zip(self.turns.get(n, []), self.samples.get(n, []), strict=True)) for n in (EdgerunBackend.name, peer)
        )
        both = sorted(ours.keys() & theirs.keys())
        if len(both) < 3:
            return None
        interval = ratio_interval([ours[t] for t in both], [theirs[t] for t in both])
        return {**asdict(interval), "verdict": interval.verdict}

    def _filled(self, row: Row) -> Row:
        row.ref_batch = self.ref_batch
        chunks = self.samples.get(row.backend)
        if row.error is None and chunks:
            first = self.first[row.backend]
            timings = Timings(first.first_ns, first.warmup_ns, np.concatenate(chunks))
            stats = LatencyStats.from_timings(timings, self.batch)
            for key in (
                "iters",
                "first_ms",
                "mean_ms",
                "p50_ms",
                "p90_ms",
                "p99_ms",
                "max_ms",
                "ms_per_img",
                "imgs_per_s",
            ):
                setattr(row, key, getattr(stats, key))
        return row
