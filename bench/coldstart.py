"""Cold start as users feel it: one image through ``edgerun run``, process start to result.

Runs, interleaved, ``edgerun run MODEL --source IMAGE`` and the minimal hand-written cv2 +
onnxruntime script (``bench/minimal_classify.py``) as fresh processes, ``--runs`` times each,
and reports the median wall time (``perf_counter`` around the child, from spawn to exit) and the
median peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``). Both print the
top classes; the first line of each is shown so a broken run cannot pass for a fast one.

    python -m edgerun.bench.coldstart models/mnist_cnn.onnx [IMAGE.png] --runs 7
    make coldstart                                   # the bundled mnist_cnn on a drawn digit
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

MINIMAL = Path(__file__).with_name("minimal_classify.py")


@dataclass
class Samples:
    name: str
    argv: list[str]
    wall_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    first_line: str = ""

    @property
    def wall(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def rss(self) -> float:
        return statistics.median(self.rss_mb)


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, first stdout line) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read().decode(errors="replace")
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.strip()[-500:]}")
    return wall, usage.ru_maxrss / 1024.0, (out.splitlines() or [""])[0]


def drawn_digit(path: Path) -> Path:
    """A white 7 on black, 28x28, drawn with OpenCV: an input that needs no data set."""
    import cv2
    import numpy as np

    image = np.zeros((28, 28), np.uint8)
    cv2.putText(image, "7", (7, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


def edgerun_command() -> list[str]:
    found = shutil.which("edgerun", path=str(Path(sys.executable).parent)) or shutil.which("edgerun")
    return [found] if found else [sys.executable, "-m", "edgerun"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgerun.bench.coldstart", description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("image", type=Path, nargs="?", help="default: a digit drawn with OpenCV, written to --workdir")
    p.add_argument(
        "--workdir", type=Path, default=Path("out/coldstart"), help="for the drawn image (default out/coldstart)"
    )
    p.add_argument("--runs", type=int, default=7, help="runs of each command, interleaved (default 7)")
    p.add_argument("--edgerun-args", default="", help="extra arguments for edgerun run, e.g. '--no-tune'")
    p.add_argument("--json", type=Path, help="write the samples as JSON")
    args = p.parse_args(argv)
    if args.image is None:
        args.image = drawn_digit(args.workdir / "one.png")
    for path in (args.model, args.image):
        if not path.is_file():
            p.error(f"{path} does not exist")
    # Both commands run from bytecode, as after a pip install (pip compiles .pyc files): with
    # PYTHONDONTWRITEBYTECODE set, an editable checkout would compile edgerun's modules on every
    # run (about 0.2 s here) while the minimal script's libraries come precompiled.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cases = [
        Samples(
            "edgerun run",
            [*edgerun_command(), "-q", "run", str(args.model), "--source", str(args.image), *args.edgerun_args.split()],
        ),
        Samples("minimal cv2+ort", [sys.executable, str(MINIMAL), str(args.model), str(args.image)]),
    ]
    for case in cases:  # one untimed run each: file caches warm for both alike
        run_once(case.argv, env)
    for _ in range(args.runs):
        for case in cases:
            wall, rss, line = run_once(case.argv, env)
            case.wall_s.append(wall)
            case.rss_mb.append(rss)
            case.first_line = line
    base = cases[1]
    print(f"{'command':<18} {'wall p50 s':>10} {'min':>7} {'max':>7} {'peak RSS MB':>12}  first line")
    for case in cases:
        print(
            f"{case.name:<18} {case.wall:>10.3f} {min(case.wall_s):>7.3f} {max(case.wall_s):>7.3f} "
            f"{case.rss:>12.1f}  {case.first_line.strip()}"
        )
    ratio, delta = cases[0].wall / base.wall, cases[0].rss - base.rss
    print(f"edgerun / minimal: wall {ratio:.2f}x, peak RSS {delta:+.1f} MB ({args.runs} runs each, interleaved)")
    # The minimal script's own time is bimodal (onnxruntime's default spinning threads make its
    # session creation 19-21 or 36-40 ms here), so its median moves with the mix: the fastest
    # runs of each side are the steadier second look.
    fastest = min(cases[0].wall_s) / min(base.wall_s)
    print(f"fastest runs: {min(cases[0].wall_s):.3f} / {min(base.wall_s):.3f} s = {fastest:.2f}x")
    if args.json:
        from edgerun.runtime.files import write_json_atomic

        write_json_atomic(
            args.json,
            {
                "runs": args.runs,
                "cases": [
                    {"name": c.name, "argv": c.argv, "wall_s": c.wall_s, "rss_mb": c.rss_mb, "first_line": c.first_line}
                    for c in cases
                ],
                "wall_ratio": ratio,
                "rss_delta_mb": delta,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
