"""Two models of the same input (fp32 and its int8 twin, say) measured interleaved: the speed-up.

``edgerun bench A B`` measures one model after the other, so a drifting shared machine can
bias the ratio; here both run in the same rounds, turn about, through edgerun's ``Model``
with the same session settings (``--no-tune`` style defaults unless ``--threads`` is given).

    python -m edgerun.bench.pair models/resnet50.onnx models/resnet50.int8.onnx --batch 1,8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from edgerun.runtime.argtypes import positive_float, positive_int, thread_count
    from edgerun.runtime.model import Model, SessionConfig
    from edgerun.runtime.timing import measure, percentile_ms

    from .cli import _batches
    from .harness import model_input

    p = argparse.ArgumentParser(prog="python -m edgerun.bench.pair", description=__doc__.split("\n\n")[0])
    p.add_argument("base", type=Path, help="the reference model (e.g. fp32)")
    p.add_argument("other", type=Path, help="the model compared with it (e.g. int8)")
    p.add_argument("--batch", type=_batches, default=(1, 8))
    p.add_argument("--rounds", type=positive_int, default=5)
    p.add_argument("--seconds", type=positive_float, default=2.0, help="per model per round")
    p.add_argument("--threads", type=thread_count)
    args = p.parse_args(argv)
    config = SessionConfig(provider="cpu", threads=args.threads)
    models = [Model.load(args.base, config), Model.load(args.other, config)]
    image = model_input(args.base).image
    print(f"{'batch':>5} {args.base.name + ' p50 ms':>28} {args.other.name + ' p50 ms':>28} {'speed-up':>9}")
    for batch in args.batch:
        x = np.random.default_rng(batch).random((batch, *image), dtype=np.float32)
        samples: list[list[np.ndarray]] = [[], []]
        for turn in range(args.rounds):
            for i, model in enumerate(models):
                t = measure(lambda m=model, x=x: m.run(x), warmup=2 if turn == 0 else 1, seconds=args.seconds)
                samples[i].append(t.samples_ns)
        base, other = (percentile_ms(np.concatenate(s), 50) for s in samples)
        print(f"{batch:>5} {base:>28.3f} {other:>28.3f} {base / other:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
