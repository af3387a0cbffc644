"""``edgerun bench --pipeline VIDEO MODEL``: does the run pipeline overlap its stages?

Measures each stage alone on the same video (decode only, preprocess only, inference only),
then the full pipeline, and reports end-to-end fps against the slowest stage.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edgerun.runtime.model import Model, SessionConfig
from edgerun.runtime.pipeline import Pipeline, PipelineConfig
from edgerun.runtime.preprocess import preprocessor
from edgerun.runtime.sources import VideoFile

logger = logging.getLogger(__name__)


def stage_fps(video: Path, model: Model, batch: int) -> dict:
    """fps of decode, preprocess and inference, each measured alone over the whole video."""
    start = time.perf_counter()
    frames = [f.image for f in VideoFile(video)]
    decode = len(frames) / (time.perf_counter() - start)
    prep = preprocessor(model.metadata.preprocessing)
    start = time.perf_counter()
    tensors = [prep(f) for f in frames]
    preprocess = len(tensors) / (time.perf_counter() - start)
    model.warmup((batch, *tensors[0].shape))
    start = time.perf_counter()
    for i in range(0, len(tensors) - batch + 1, batch):
        model.run(np.stack(tensors[i : i + batch]))
    done = (len(tensors) // batch) * batch
    inference = done / (time.perf_counter() - start) if done else 0.0
    return {
        "frames": len(frames),
        "decode_fps": decode,
        "preprocess_fps": preprocess,
        "inference_fps": inference,
    }


def pipeline_benchmark(
    video: Path, model_path: Path, batch: int, threads: int | None, json_out: Path | None, spinning: bool = False
) -> int:
    model = Model.load(model_path, SessionConfig(provider="cpu", threads=threads, spinning=spinning))
    alone = stage_fps(video, model, batch)
    stats = Pipeline(model, PipelineConfig(batch=batch, log_every_s=1e9)).run(VideoFile(video), lambda r, f: None)
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
    print(
        f"video {video}: {alone['frames']} frames, batch {batch}\n"
        f"decode only      {alone['decode_fps']:9.1f} fps\n"
        f"preprocess only  {alone['preprocess_fps']:9.1f} fps\n"
        f"inference only   {alone['inference_fps']:9.1f} fps\n"
        f"end-to-end       {stats.end_to_end_fps:9.1f} fps  = {ratio:.2f} x the slowest stage "
        f"({'overlapped' if ratio >= 0.9 else 'NOT overlapped: below 0.9'})"
    )
    if json_out:
        from .report import write_json

        write_json(report, json_out)
    return 0
