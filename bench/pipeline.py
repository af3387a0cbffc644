"""``edgerun bench --pipeline VIDEO MODEL``: does the run pipeline overlap its stages?

Measures each stage alone on the same video (decode only, prepare only, inference only) through
the model's own steps (``Model.prepare``, ``Model.infer``), then the threaded pipeline over the
same video, and reports end-to-end fps against the slowest stage.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from edgerun.runtime.model import Model, SessionConfig
from edgerun.runtime.outputs import Protected
from edgerun.runtime.pipeline import Pipeline, PipelineConfig
from edgerun.runtime.sources import open_source

logger = logging.getLogger(__name__)


def stage_fps(video: Path, model: Model, batch: int) -> dict:
    """fps of decode, prepare and inference, each measured alone over the whole video."""
    start = time.perf_counter()
    frames = list(open_source(video))
    decode = len(frames) / (time.perf_counter() - start)
    start = time.perf_counter()
    items = [model.prepare(f) for f in frames]
    prepare = len(items) / (time.perf_counter() - start)
    model.infer(items[:batch])  # warm-up at this batch size
    start = time.perf_counter()
    done = 0
    for i in range(0, len(items) - batch + 1, batch):
        model.infer(items[i : i + batch])
        done += batch
    inference = done / (time.perf_counter() - start) if done else 0.0
    return {"frames": len(frames), "decode_fps": decode, "preprocess_fps": prepare, "inference_fps": inference}


def pipeline_benchmark(
    video: Path,
    model_path: Path,
    batch: int,
    threads: int | None,
    json_out: Path | None,
    spinning: bool = False,
    protected: Protected | None = None,
) -> int:
    """Measure and print; ``json_out`` is never one of ``protected`` (the model, the video)."""
    model = Model.load(model_path, SessionConfig(provider="cpu", threads=threads, spinning=spinning))
    alone = stage_fps(video, model, batch)
    pipeline = Pipeline(model, PipelineConfig(batch=batch))
    for _ in pipeline.results(open_source(video)):
        pass
    stats = pipeline.stats
    slowest = min(alone["decode_fps"], alone["preprocess_fps"], alone["inference_fps"])
    ratio = stats.end_to_end_fps / slowest if slowest else 0.0
    report = {
        **{k: round(v, 1) for k, v in alone.items()},
        "end_to_end_fps": round(stats.end_to_end_fps, 1),
        "slowest_stage_fps": round(slowest, 1),
        "overlap_ratio": round(ratio, 3),
        "frames_processed": stats.frames,
        "batch": batch,
        "model": str(model_path),
        "video": str(video),
    }
    from .report import human_stream

    print(
        f"video {video}: {alone['frames']} frames, batch {batch}\n"
        f"decode only      {alone['decode_fps']:9.1f} fps\n"
        f"preprocess only  {alone['preprocess_fps']:9.1f} fps\n"
        f"inference only   {alone['inference_fps']:9.1f} fps\n"
        f"end-to-end       {stats.end_to_end_fps:9.1f} fps  = {ratio:.2f} x the slowest stage "
        f"({'overlapped' if ratio >= 0.9 else 'NOT overlapped: below 0.9'})",
        file=human_stream(json_out),
    )
    if json_out:
        from .report import write_json

        write_json(report, json_out, protected or Protected([model_path, video]))
    return 0
