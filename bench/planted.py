"""A planted slowdown: a copy of a model that computes the same outputs with extra work.

The gate's own check (``make gate-check``, and a test in ``make test``) needs a model that is
really slower while being, to every caller, the same model. :func:`plant_slowdown` adds a
convolution branch to a CNN: it reads the first convolution's activations, runs ``widths``
further 3x3 convolutions (with ReLU), averages them to one value per channel, projects them to
the class count, multiplies by zero and adds the result to the logits before the softmax. The
outputs are bit-identical (x + 0 * finite = x); onnxruntime does not fold ``* 0`` away, so the
work stays. The default branch (three 32-channel convolutions) made the committed ``mnist_cnn``
1.57x slower at batch 1 and 2.06x at batch 8 (p50, interleaved, 2-core Xeon; README, CI gate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_WIDTHS = (32, 32, 32)


class PlantError(ValueError):
    """A graph this builder cannot extend (no convolution, or no softmax/output to add to)."""


def plant_slowdown(src: Path, dst: Path, widths: tuple[int, ...] = DEFAULT_WIDTHS, seed: int = 0) -> Path:
    """Write to ``dst`` a copy of ``src`` with a zero-weighted convolution branch added."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    conv = next((n for n in graph.node if n.op_type == "Conv" and n.input[1] in inits), None)
    if conv is None:
        raise PlantError(f"{src} has no convolution with constant weights to branch from")
    feature = conv.output[0]
    relu = next((n for n in graph.node if n.op_type == "Relu" and n.input[0] == feature), None)
    feature = relu.output[0] if relu is not None else feature
    channels = int(inits[conv.input[1]].dims[0])
    softmax = [n for n in graph.node if n.op_type == "Softmax"]
    if not softmax:
        raise PlantError(f"{src} has no Softmax whose input could take the branch")
    final = softmax[-1]
    classes = graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    if not classes:
        raise PlantError(f"{src}: the output's class count is not fixed")

    rng = np.random.default_rng(seed)
    nodes, x, c_in = [], feature, channels
    for i, width in enumerate(widths):
        w = rng.normal(0.0, 0.05, (width, c_in, 3, 3)).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(w, f"planted_w{i}"))
        nodes += [
            helper.make_node("Conv", [x, f"planted_w{i}"], [f"planted_c{i}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"planted_c{i}"], [f"planted_r{i}"]),
        ]
        x, c_in = f"planted_r{i}", width
    graph.initializer.extend(
        [
            numpy_helper.from_array(rng.normal(0.0, 0.05, (c_in, classes)).astype(np.float32), "planted_fc"),
            numpy_helper.from_array(np.zeros((), np.float32), "planted_zero"),
        ]
    )
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["planted_pool"]),
        helper.make_node("Flatten", ["planted_pool"], ["planted_flat"]),
        helper.make_node("MatMul", ["planted_flat", "planted_fc"], ["planted_logits"]),
        helper.make_node("Mul", ["planted_logits", "planted_zero"], ["planted_nothing"]),
        helper.make_node("Add", [final.input[0], "planted_nothing"], ["planted_sum"]),
    ]
    final.input[0] = "planted_sum"
    at = list(graph.node).index(final)
    for offset, node in enumerate(nodes):
        graph.node.insert(at + offset, node)
    onnx.checker.check_model(model)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst
