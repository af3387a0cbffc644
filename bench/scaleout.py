"""Scale-out benchmark: ``run --engine ray`` against the local engine, same cores, same images.

    make ray-bench                       # or: python -m edgerun.bench.scaleout --data ../shared/data

The shared MNIST test images are written once as PNG files; then, in interleaved rounds, each
engine runs the first N of them for every N in ``--sizes``, each run in a fresh process running
the run command's own code (imports, model load and Ray's start-up included, as a user pays
them). Per run: wall time (measured here, around the process), and, from inside, the time to the
first and the last record. From those:

- start-up: time to the first record (Ray: import, ``ray.init``, actors loading the model);
- throughput after start-up: records after the first / time after the first;
- fixed cost and per-image cost: a least-squares line through (N, median wall time) per engine;
  Ray's per-image overhead is its per-image cost minus the local engine's;
- the driver's own cost per record (unpickle a Result, write its JSON line): the ceiling on
  records per second one driver can take from any number of machines.

Every Ray run's records are checked: N records, N distinct inputs, every top-1 equal to the
local engine's. A JSON report and a Markdown table go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

logger = logging.getLogger(__name__)


# -- one run, in its own process -----------------------------------------------------------------
TAG = "EDGERUN_SCALEOUT_RUN"  # set in each run's environment: Ray's processes inherit it


def tree_cpu_s(tag: str) -> float:
    """CPU seconds used so far by every live process whose environment holds ``tag`` (this one,
    and Ray's gcs_server, raylet and workers): work that does not grow with the machine's load."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if tag.encode() not in (proc / "environ").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def child(engine: str, source: str, count: int, batch: int, workers: int, out: str) -> dict:
    """Run one engine over the first ``count`` images of ``source`` as ``edgerun run`` does."""
    start = time.perf_counter()
    tag = f"{TAG}={os.environ.get(TAG, '')}"
    from edgerun.runtime.sinks import JsonlSink

    result: dict = {"engine": engine, "n": count}
    with ExitStack() as stack:
        if engine == "local":
            from edgerun.runtime.model import Model, SessionConfig
            from edgerun.runtime.run import Run, RunConfig
            from edgerun.runtime.sources import open_source

            model = Model.load("mnist_cnn", SessionConfig(spinning=False), batch=batch)
            config = RunConfig(batch=batch, max_frames=count, progress=False)
            run = Run(model, open_source(source), [JsonlSink(out)], config)
        else:
            from edgerun.runtime.distributed import cluster, enumerate_inputs, require_ray
            from edgerun.runtime.distributed_run import RayJob, RayRun, _quiet_ray

            require_ray()
            result["ray_imported_s"] = time.perf_counter() - start
            # Started here rather than inside RayRun (which joins it) only so that Ray's processes
            # can be counted before they go; ray.init is the same call either way.
            stack.enter_context(cluster())
            result["ray_ready_s"] = time.perf_counter() - start
            _quiet_ray()
            options = {"provider": "auto", "threads": 1, "spinning": False}
            inputs = enumerate_inputs(source).head(count)
            run = RayRun(RayJob("mnist_cnn", options, batch, workers), inputs, [JsonlSink(out)])
        records = 0
        with run:
            for _ in run:
                records += 1
                if records == 1:
                    result["first_s"] = time.perf_counter() - start
                    result["first_cpu_s"] = tree_cpu_s(tag)
        result["end_s"] = time.perf_counter() - start
        result["cpu_s"] = tree_cpu_s(tag)
    result["records"] = records
    return result


def _spawn(engine: str, source: Path, count: int, batch: int, workers: int, out: Path) -> dict:
    argv = [sys.executable, "-m", "edgerun.bench.scaleout", "--child", engine, "--source", str(source)]
    argv += ["--sizes", str(count), "--batch", str(batch), "--workers", str(workers), "--records", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, TAG: uuid.uuid4().hex})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    result["steady_fps"] = (result["records"] - 1) / (result["end_s"] - result["first_s"])
    return result


# -- the parts measured in this process ---------------------------------------------------------
def write_pngs(data: Path, directory: Path, count: int) -> Path:
    """The first ``count`` shared MNIST test images as PNG files (written once)."""
    import cv2

    from edgerun.runtime.idx import read_idx

    directory.mkdir(parents=True, exist_ok=True)
    if len(list(directory.glob("*.png"))) == count:
        return directory
    images = read_idx(data / "mnist" / "t10k-images-idx3-ubyte.gz")
    if len(images) < count:
        raise SystemExit(f"{data} holds {len(images)} test images; --sizes asks for {count}")
    for i in range(count):
        cv2.imwrite(str(directory / f"{i:05d}.png"), images[i])
    return directory


def driver_cost_us(records: Path, repeats: int = 5) -> float:
    """Median microseconds the driver spends per record: unpickling a Result, writing its line."""
    import pickle

    from edgerun.runtime.results import Result, TopClass
    from edgerun.runtime.sinks import JsonlSink

    rows = [json.loads(line) for line in records.read_text().splitlines()]
    blobs = [
        pickle.dumps(
            Result(r["source"], r["index"], r.get("latency_ms"), [TopClass(**t) for t in r.get("top", [])] or None),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        for r in rows
    ]
    times = []
    for _ in range(repeats):
        sink = JsonlSink(records.with_suffix(".driver.jsonl"))
        start = time.perf_counter()
        for blob in blobs:
            sink.write(pickle.loads(blob))  # noqa: S301 - our own objects
        sink.close()
        times.append((time.perf_counter() - start) / len(blobs) * 1e6)
    return statistics.median(times)


def top1(path: Path) -> dict[int, str | None]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["index"]: (r["top"][0]["label"] if "top" in r else None) for r in rows}


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(fixed seconds, seconds per image) of the least-squares line through (N, wall)."""
    if len(points) < 2:
        return float("nan"), float("nan")
    slope, intercept = statistics.linear_regression([n for n, _ in points], [w for _, w in points])
    return intercept, slope


def summarise(runs: list[dict], sizes: list[int]) -> dict:
    out: dict = {}
    for engine in ("local", "ray"):
        mine = [r for r in runs if r["engine"] == engine]
        by_size = {n: [r for r in mine if r["n"] == n] for n in sizes}
        keys = ("wall_s", "first_s", "steady_fps", "first_cpu_s", "cpu_s") + (
            ("ray_imported_s", "ray_ready_s") if engine == "ray" else ()
        )
        for r in mine:  # CPU per record once records flow: the load does not inflate it as it does wall time
            r["cpu_ms_per_image"] = (r["cpu_s"] - r["first_cpu_s"]) / max(1, r["records"] - 1) * 1e3
        keys += ("cpu_ms_per_image",)
        med = {n: {k: statistics.median(r[k] for r in rs) for k in keys} for n, rs in by_size.items()}
        fixed, per_image = fit([(n, m["wall_s"]) for n, m in med.items()])
        out[engine] = {"by_size": med, "fixed_s": fixed, "per_image_ms": per_image * 1e3}
    out["per_image_overhead_ms"] = out["ray"]["per_image_ms"] - out["local"]["per_image_ms"]
    largest = max(sizes)
    cpu = {e: out[e]["by_size"][largest]["cpu_ms_per_image"] for e in ("local", "ray")}
    out["cpu_overhead_ms_per_image"] = cpu["ray"] - cpu["local"]
    out["startup_cpu_s"] = {e: out[e]["by_size"][largest]["first_cpu_s"] for e in ("local", "ray")}
    out["steady_ratio"] = out["ray"]["by_size"][largest]["steady_fps"] / out["local"]["by_size"][largest]["steady_fps"]
    out["wall_ratio"] = out["ray"]["by_size"][largest]["wall_s"] / out["local"]["by_size"][largest]["wall_s"]
    return out


def markdown(report: dict) -> str:
    s, sizes = report["summary"], report["sizes"]
    lines = [
        f"Machine: {report['machine']['model']}, {report['machine']['cores']} cores "
        f"(load average at the end {report['load_average'][1]:.1f} over 5 min); "
        f"batch {report['batch']}; local: one process, onnxruntime on all cores; "
        f"ray: {report['workers']} actors x 1 thread on a local Ray instance; medians of {report['rounds']} rounds.",
        "",
        "| engine | images | wall s | first record s (Ray imported, Ray ready) | img/s after the first "
        "| CPU s to the first record | CPU s in all |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for engine in ("local", "ray"):
        for n in sizes:
            m = s[engine]["by_size"][n]
            parts = f" ({m['ray_imported_s']:.1f}, {m['ray_ready_s']:.1f})" if engine == "ray" else ""
            lines.append(
                f"| {engine} | {n:,} | {m['wall_s']:.2f} | {m['first_s']:.2f}{parts} | {m['steady_fps']:,.0f} "
                f"| {m['first_cpu_s']:.1f} | {m['cpu_s']:.1f} |"
            )
    if len(sizes) > 1:
        fitted = (
            f"- fit (wall = fixed + N x per-image): local {s['local']['fixed_s']:.2f} s + "
            f"{s['local']['per_image_ms']:.3f} ms/img; ray {s['ray']['fixed_s']:.2f} s + "
            f"{s['ray']['per_image_ms']:.3f} ms/img "
            f"(Ray's per-image overhead {s['per_image_overhead_ms']:+.3f} ms)"
        )
    else:
        fitted = "- fit (wall = fixed + N x per-image): needs two --sizes or more"
    lines += [
        "",
        fitted,
        f"- {max(sizes):,} images: ray/local wall {s['wall_ratio']:.2f}x; throughput after start-up ray/local "
        f"{s['steady_ratio']:.2f}x",
        f"- CPU per image once records flow ({max(sizes):,} images): local "
        f"{s['local']['by_size'][max(sizes)]['cpu_ms_per_image']:.3f} ms, ray "
        f"{s['ray']['by_size'][max(sizes)]['cpu_ms_per_image']:.3f} ms (Ray's overhead "
        f"{s['cpu_overhead_ms_per_image']:+.3f} ms); CPU to the first record: local "
        f"{s['startup_cpu_s']['local']:.1f} s, ray {s['startup_cpu_s']['ray']:.1f} s",
        f"- driver cost per record (unpickle + JSON line): {report['driver_us_per_record']:.1f} us "
        f"(one driver takes at most {1e6 / report['driver_us_per_record']:,.0f} records/s)",
        f"- checks: {report['checks']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgerun.bench.scaleout", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="directory holding mnist/")
    p.add_argument("--out", type=Path, default=Path("out/ray-bench"))
    p.add_argument("--sizes", default="1000,3000,5000", help="image counts (comma-separated)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="Ray actors (default: one per core)")
    p.add_argument("--report", type=Path, help="only re-render the tables from a scaleout.json written before")
    p.add_argument("--child", choices=("local", "ray"), help=argparse.SUPPRESS)
    p.add_argument("--source", help=argparse.SUPPRESS)
    p.add_argument("--records", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")]
    if args.report:
        report = json.loads(args.report.read_text())
        report["summary"] = summarise(report["runs"], report["sizes"])
        print(markdown(report))
        return 0
    if args.child:
        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(child(args.child, args.source, sizes[0], args.batch, args.workers or None, args.records)))
        return 0

    from edgerun.bench.machine import cpu_info

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    workers = args.workers or os.cpu_count() or 1
    pngs = write_pngs(args.data, args.out / "png", max(sizes))
    records = args.out / "records"
    records.mkdir(parents=True, exist_ok=True)
    runs, checks = [], []
    for round_ in range(args.rounds):
        for n in sizes:
            for engine in ("local", "ray"):
                out = records / f"{engine}-{n}.jsonl"
                result = _spawn(engine, pngs, n, args.batch, workers, out)
                result["round"] = round_
                runs.append(result)
                logger.info(
                    "round %d %s %5d: wall %.2f s, first record %.2f s, %.0f img/s after",
                    round_,
                    engine,
                    n,
                    result["wall_s"],
                    result["first_s"],
                    result["steady_fps"],
                )
            ours, theirs = top1(records / f"local-{n}.jsonl"), top1(records / f"ray-{n}.jsonl")
            lines = (records / f"ray-{n}.jsonl").read_text().count("\n")
            same = sum(ours.get(i) == label for i, label in theirs.items())
            checks.append({"n": n, "round": round_, "records": lines, "distinct": len(theirs), "top1_equal": same})
            if not (lines == len(theirs) == n == same):
                logger.error(
                    "round %d, %d images: %d records, %d distinct, %d top-1 equal", round_, n, lines, len(theirs), same
                )
    report = {
        "machine": cpu_info(),
        "load_average": os.getloadavg(),
        "sizes": sizes,
        "rounds": args.rounds,
        "batch": args.batch,
        "workers": workers,
        "runs": runs,
        "checks": "all passed"
        if all(c["records"] == c["distinct"] == c["n"] == c["top1_equal"] for c in checks)
        else checks,
        "driver_us_per_record": driver_cost_us(records / f"ray-{max(sizes)}.jsonl"),
        "png_bytes_mean": sum(p.stat().st_size for p in pngs.glob("*.png")) / max(sizes),
    }
    report["summary"] = summarise(runs, sizes)
    (args.out / "scaleout.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    (args.out / "scaleout.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
