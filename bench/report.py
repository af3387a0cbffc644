"""Benchmark outputs: JSON (primary, written atomically), a Markdown table, and a PNG plot per
model (latency p50 with its p90-p99 band, and throughput, against batch size; one line per
backend). Plots are drawn with OpenCV so the runtime install needs no plotting library."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from edgerun.runtime.files import write_json_atomic
from edgerun.runtime.outputs import STDOUT, Protected, one_line, write_image

COLORS = [(200, 90, 30), (40, 160, 40), (40, 40, 210), (180, 60, 170), (20, 150, 200), (90, 90, 90)]


def write_json(report: dict, path: Path, protected: Protected | None = None) -> None:
    """Atomically: a reader never sees half a file, an interrupted run leaves the old one; never
    over an input (``protected``) or a device (see edgerun.runtime.outputs). ``-``: standard
    output (the bench then prints its table and notes on standard error, see :func:`human_stream`)."""
    if str(path) == STDOUT:
        import json
        import sys

        sys.stdout.write(json.dumps(report, indent=1) + "\n")
        sys.stdout.flush()
        return
    write_json_atomic(path, report, indent=1, protected=protected)


def human_stream(json_target: Path | None):
    """Where the bench prints its table and notes: standard error when the JSON report has
    standard output (``--json -``, for scripts piping it), else standard output."""
    import sys

    return sys.stderr if str(json_target) == STDOUT else sys.stdout


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _peak_line(machine: dict) -> str:
    peak = machine.get("peak") or {}
    parts = []
    if peak.get("fp32_gflops"):
        parts.append(f"fp32 {peak['fp32_gflops']:g} GFLOP/s")
    if peak.get("int8_gops"):
        parts.append(f"int8 {peak['int8_gops']:g} GOP/s")
    if not parts:  # the source then says why: "not measured: ..."
        return f"% peak: {peak.get('source') or 'not measured'}"
    return f"% peak is of this machine's peak in the row's precision ({', '.join(parts)}): " + (
        peak.get("source") or "-"
    )


def markdown(report: dict) -> str:
    """A table per model: every backend and batch with its precision, and the edgerun/peer ratio per batch."""
    env = report["environment"]
    cpu = env["cpu"]
    flags = ", ".join(cpu["flags"]) or "no SIMD flags"
    lines = [
        f"Measured {env['date']} on {cpu['model']} ({cpu['cores']} cores; {flags}), "
        f"onnxruntime {env['onnxruntime']}, {env['threads']} threads. " + _peak_line(report["machine"]) + ".",
        "",
    ]
    by_model: dict[str, list[dict]] = defaultdict(list)
    for row in report["results"]:
        by_model[row["model"]].append(row)
    for model, rows in by_model.items():
        ours = {r["batch"]: r["p50_ms"] for r in rows if r["backend"] == "edgerun" and r["p50_ms"]}
        lines += [
            f"### {model}",
            "",
            "| backend | precision | batch | p50 ms | p90 ms | p99 ms | ms/img | img/s | G(FL)OP/s | % peak "
            "| edgerun/peer |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            precision = r.get("precision", "")
            if r["error"]:
                lines.append(f"| {r['backend']} | {precision} | {r['batch'] or '-'} | {r['error']} | | | | | | | |")
                continue
            ratio = ours.get(r["batch"]) / r["p50_ms"] if r["backend"] != "edgerun" and ours.get(r["batch"]) else None
            interval = r.get("edgerun_ratio")
            shown = _fmt(ratio, ".2f")
            if interval:
                low, high = interval["low"], interval["high"]
                shown = f"{interval['estimate']:.3f} [{low:.3f}, {high:.3f}] {interval['verdict']}"
            lines.append(
                f"| {r['backend']} | {precision} | {r['batch']} | {_fmt(r['p50_ms'], '.3f')} | "
                f"{_fmt(r['p90_ms'], '.3f')} | {_fmt(r['p99_ms'], '.3f')} | {_fmt(r['ms_per_img'], '.3f')} | "
                f"{_fmt(r['imgs_per_s'], '.0f')} | {_fmt(r['gflops'], '.1f')} | {_fmt(r['pct_peak'], '.0f')} | "
                f"{shown} |"
            )
        lines.append("")
    if any(r.get("edgerun_ratio") for r in report["results"]):
        lines += [
            "edgerun/peer: edgerun's median latency over the peer's (all calls of the interleaved rounds), "
            "[its 95% interval: a paired bootstrap over rounds], and edgerun's verdict: faster or slower when "
            "the interval leaves out 1, else level.",
            "",
        ]
    return "\n".join(one_line(line) for line in lines)  # a model's file name cannot split a row or reach the terminal


class _Axes:
    """A log-log panel on an OpenCV canvas."""

    def __init__(self, canvas, box, xs, ys, title, ylabel):
        self.canvas, (self.x0, self.y0, self.x1, self.y1) = canvas, box
        self.lx = (math.log2(min(xs)), math.log2(max(xs)) if max(xs) > min(xs) else math.log2(min(xs)) + 1)
        lo, hi = math.log10(max(min(ys), 1e-6)), math.log10(max(max(ys), 1e-6))
        if hi - lo < 0.5:
            lo, hi = lo - 0.25, hi + 0.25
        self.ly = (lo, hi)
        cv2.rectangle(canvas, (self.x0, self.y0), (self.x1, self.y1), (0, 0, 0), 1)
        cv2.putText(canvas, title, (self.x0, self.y0 - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(
            canvas,
            ylabel,
            (self.x0 - 60, self.y0 - 10),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (60, 60, 60),
            1,
            cv2.LINE_AA,
        )
        for x in sorted(set(xs)):
            px = self.px(x)
            cv2.line(canvas, (px, self.y1), (px, self.y1 + 4), (0, 0, 0), 1)
            cv2.putText(
                canvas,
                str(x),
                (px - 6, self.y1 + 18),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (0, 0, 0),
                1,
                cv2.LINE_AA,
            )
        for e in range(math.floor(lo), math.ceil(hi) + 1):
            for m in (1, 2, 5):
                v = m * 10**e
                if lo <= math.log10(v) <= hi:
                    py = self.py(v)
                    cv2.line(canvas, (self.x0, py), (self.x1, py), (225, 225, 225), 1)
                    cv2.putText(
                        canvas,
                        f"{v:g}",
                        (self.x0 - 55, py + 4),
                        cv2.FONT_HERSHEY_SIMPLEX,
                        0.38,
                        (60, 60, 60),
                        1,
                        cv2.LINE_AA,
                    )
        cv2.putText(
            canvas,
            "batch size",
            ((self.x0 + self.x1) // 2 - 30, self.y1 + 36),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )

    def px(self, x) -> int:
        t = (math.log2(x) - self.lx[0]) / (self.lx[1] - self.lx[0])
        return int(self.x0 + 12 + t * (self.x1 - self.x0 - 24))

    def py(self, y) -> int:
        t = (math.log10(max(y, 1e-6)) - self.ly[0]) / (self.ly[1] - self.ly[0])
        return int(self.y1 - t * (self.y1 - self.y0))


def plot(report: dict, model: str, path: Path, protected: Protected | None = None) -> Path:
    """One PNG for ``model``: p50 latency (p90-p99 band) and images/s against batch size."""
    rows = [r for r in report["results"] if r["model"] == model and not r["error"]]
    if not rows:
        raise ValueError(f"no successful rows for {model}")
    width, height = 1200, 600
    canvas = np.full((height, width, 3), 255, np.uint8)
    xs = [r["batch"] for r in rows]
    lat = _Axes(
        canvas,
        (90, 70, 570, 470),
        xs,
        [r["p50_ms"] for r in rows] + [r["p99_ms"] for r in rows],
        "latency p50 (band: p90-p99)",
        "ms",
    )
    thr = _Axes(canvas, (690, 70, 1170, 470), xs, [r["imgs_per_s"] for r in rows], "throughput", "img/s")
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    precisions = {r["backend"]: r.get("precision", "") for r in rows}
    legend_x, legend_y = 90, 545
    for i, backend in enumerate(backends):
        color = COLORS[i % len(COLORS)]
        series = sorted((r for r in rows if r["backend"] == backend), key=lambda r: r["batch"])
        band = [(lat.px(r["batch"]), lat.py(r["p90_ms"])) for r in series] + [
            (lat.px(r["batch"]), lat.py(r["p99_ms"])) for r in reversed(series)
        ]
        overlay = canvas.copy()
        cv2.fillPoly(overlay, [np.array(band, np.int32)], color)
        cv2.addWeighted(overlay, 0.15, canvas, 0.85, 0, canvas)
        for axes, key in ((lat, "p50_ms"), (thr, "imgs_per_s")):
            points = [(axes.px(r["batch"]), axes.py(r[key])) for r in series]
            for a, b in zip(points, points[1:], strict=False):
                cv2.line(canvas, a, b, color, 2, cv2.LINE_AA)
            for p in points:
                cv2.circle(canvas, p, 3, color, -1, cv2.LINE_AA)
        # legend entries laid out by their text's width, wrapping to a second line
        label = f"{backend} ({precisions[backend]})" if precisions[backend] else backend
        width = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0] + 38 + 30
        if legend_x + width > canvas.shape[1] - 20:
            legend_x, legend_y = 90, legend_y + 24
        lx, ly = legend_x, legend_y
        cv2.line(canvas, (lx, ly), (lx + 30, ly), color, 3)
        cv2.putText(canvas, label, (lx + 38, ly + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        legend_x += width
    env = report["environment"]
    cv2.putText(
        canvas,
        f"{model}  -  {env['cpu']['model']}, {env['threads']} threads, onnxruntime {env['onnxruntime']}"
        f", {env['date'][:10]}",
        (90, 30),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.55,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    write_image(path, canvas, protected, "--plot")
    return Path(path)
