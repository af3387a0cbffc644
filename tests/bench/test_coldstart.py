"""The cold-start benchmark runs both commands as real processes and reports both (a smoke test:
the timing itself is a benchmark, make coldstart, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from edgerun.bench import coldstart

MODEL = Path(__file__).resolve().parents[2] / "models" / "mnist_cnn.onnx"


def test_coldstart_runs_both_commands(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert coldstart.main([str(MODEL), "--runs", "1", "--workdir", str(tmp_path), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "edgerun run" in printed and "minimal cv2+ort" in printed and "edgerun / minimal" in printed
    image = str(tmp_path / "one.png")
    assert printed.count(f"{image}: 7 ") == 2  # both classify the drawn 7 as a 7
    report = json.loads(out.read_text())
    assert [len(c["wall_s"]) for c in report["cases"]] == [1, 1] and report["wall_ratio"] > 0
    assert all(c["rss_mb"][0] > 10 for c in report["cases"])
