"""Graph hygiene after tf2onnx: static shapes where they are static, no shape-only subgraphs.

tf2onnx writes Keras' ``Flatten`` as runtime shape arithmetic (``Shape -> Gather -> Cast ->
Slice -> Concat -> Cast -> Reshape``) even where only the batch is dynamic, and keeps the
channels-last ``Transpose`` that Keras' flatten order needs. Two steps remove both:

1. ``onnxslim`` (constant folding with symbolic shape inference, dead-node removal): the
   Flatten becomes a ``Reshape`` to a constant ``[-1, C*H*W]``. Chosen over ``onnxsim`` by
   measurement (README, Export): both give the same graph on our models, onnxslim is pure
   Python and leaves the metadata alone, onnxsim writes 19 ``onnxsim.*`` entries into it.
2. :func:`fold_flatten_transpose` (ours): ``Transpose(NCHW->NHWC) -> Reshape([-1, K]) ->
   MatMul(W)`` becomes ``Reshape([-1, K]) -> MatMul(W')`` with W's rows permuted to NCHW
   order. The product is the same sum in another order; the parity gate checks it.
3. :func:`fold_pad_into_maxpool` (ours): ``Relu -> Pad(zeros) -> MaxPool`` (Keras'
   ZeroPadding2D before MaxPooling2D, as in ResNet50) becomes a MaxPool with ``pads``.

Nothing here changes the inputs, outputs, their names or the metadata.
"""

from __future__ import annotations

import collections
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: The Transpose that turns a convolution's NCHW output back into Keras' NHWC before Flatten.
TO_NHWC = [0, 2, 3, 1]


class SimplifyError(Exception):
    """The graph could not be simplified; the message says which step failed."""


@dataclass(frozen=True)
class SimplifyReport:
    nodes_before: int
    nodes_after: int
    removed: dict[str, int]  # op type -> how many fewer (positive) after simplification
    folded_transposes: int
    folded_pads: int = 0

    def line(self) -> str:
        gone = ", ".join(f"{op} {n}" for op, n in self.removed.items() if n > 0) or "nothing"
        folds = [f"{self.folded_transposes} flatten Transpose folded into the Dense weights"]
        if self.folded_pads:
            folds.append(f"{self.folded_pads} Pad folded into MaxPool")
        return f"{self.nodes_before} -> {self.nodes_after} nodes (removed: {gone}; {'; '.join(folds)})"


def _ops(proto) -> collections.Counter:
    return collections.Counter(n.op_type for n in proto.graph.node)


def slim(proto):
    """onnxslim with every option explicit: constant folding, shape inference, dead nodes."""
    import onnxslim

    try:
        out = onnxslim.slim(
            proto,
            model_check=False,
            no_shape_infer=False,
            skip_optimizations=None,
            skip_fusion_patterns=None,
            size_threshold=None,
            verbose=False,
        )
    except Exception as exc:  # noqa: BLE001 - onnxslim raises many kinds
        raise SimplifyError(f"onnxslim failed: {type(exc).__name__}: {exc}") from exc
    if out is None:
        raise SimplifyError("onnxslim returned no model")
    return out


def _static_shape(proto, name: str) -> list[int] | None:
    """The shape of tensor ``name`` if shape inference knows every dim except the first."""
    for vi in proto.graph.value_info:
        if vi.name == name:
            dims = vi.type.tensor_type.shape.dim
            rest = [d.dim_value if d.HasField("dim_value") else None for d in dims[1:]]
            if len(dims) == 4 and all(rest):
                return rest
    return None


def _index(graph) -> tuple[dict[str, list], set[str], dict]:
    """What the folding passes look up: each value's consuming nodes, the graph's output names,
    and the initializers by name."""
    consumers: dict[str, list] = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    return consumers, {o.name for o in graph.output}, {i.name: i for i in graph.initializer}


def flatten_into_matmul(inferred, reshape, source: str, consumers: dict, inits: dict):
    """``((C, H, W), matmul, weight)`` when ``reshape`` flattens the 4-D map ``source`` (C, H, W
    known) to a constant ``[-1 or 0, C*H*W]`` and feeds one MatMul alone, as its first input,
    whose weight is a ``[C*H*W, N]`` initializer used there alone; else None. The pattern both
    the Transpose fold and the dense-conv variant (export/variants.py) start from."""
    from onnx import numpy_helper

    chw = _static_shape(inferred, source)
    target = inits.get(reshape.input[1])
    if chw is None or target is None:
        return None
    c, h, w = chw
    k = c * h * w
    if numpy_helper.to_array(target).tolist() not in ([-1, k], [0, k]):
        return None
    after = consumers[reshape.output[0]]
    if len(after) != 1 or after[0].op_type != "MatMul" or after[0].input[0] != reshape.output[0]:
        return None
    matmul = after[0]
    weight = inits.get(matmul.input[1])
    if weight is None or len(consumers[matmul.input[1]]) != 1 or len(weight.dims) != 2 or weight.dims[0] != k:
        return None
    return (c, h, w), matmul, weight


def fold_flatten_transpose(proto) -> int:
    """Fold ``Transpose(perm 0,2,3,1) -> Reshape([-1, K]) -> MatMul(W)`` into the weights, in place.

    Applies only where the pattern is exact: the Transpose and Reshape each feed one node, the
    Reshape's shape is a constant ``[-1 or 0, K]`` with ``K = C*H*W`` of the Transpose input,
    and ``W`` is a ``[K, N]`` initializer used by that MatMul alone. Returns how many were folded.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto)
    consumers, outputs, inits = _index(graph)
    folded = 0
    for tr in [n for n in graph.node if n.op_type == "Transpose"]:
        perm = next((list(a.ints) for a in tr.attribute if a.name == "perm"), None)
        nexts = consumers[tr.output[0]]
        if perm != TO_NHWC or len(nexts) != 1 or nexts[0].op_type != "Reshape" or tr.output[0] in outputs:
            continue
        reshape = nexts[0]
        if reshape.output[0] in outputs:
            continue
        found = flatten_into_matmul(inferred, reshape, tr.input[0], consumers, inits)
        if found is None:
            continue
        (c, h, w), matmul, weight = found
        k = c * h * w
        w_hwc = numpy_helper.to_array(weight)
        w_chw = w_hwc.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(k, -1)
        weight.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w_chw), weight.name))
        reshape.input[0] = tr.input[0]
        graph.node.remove(tr)
        folded += 1
    if folded:
        stale = {n for n in (v.name for v in graph.value_info)} - {o for n in graph.node for o in n.output}
        for vi in [v for v in graph.value_info if v.name in stale]:
            graph.value_info.remove(vi)
    return folded


def _attr(node, name: str, default=None):
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def fold_pad_into_maxpool(proto) -> int:
    """Fold ``Relu -> Pad(zeros, spatial only) -> MaxPool`` into the MaxPool's own ``pads``, in place.

    Keras' ``ZeroPadding2D`` before ``MaxPooling2D`` (ResNet50's ``pool1_pad``) becomes a Pad node
    that breaks onnxruntime's NCHWc chain: a reorder out, the Pad, a reorder back in, each over
    the whole 112x112x64 tensor. MaxPool pads with -inf, not 0; the two agree because the input
    comes from a Relu (every value >= 0, and every window holds at least one real value).
    Returns how many were folded.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = proto.graph
    producers = {o: n for n in graph.node for o in n.output}
    consumers, outputs, inits = _index(graph)
    folded = 0
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        source = producers.get(pad.input[0])
        nexts = consumers[pad.output[0]]
        if source is None or source.op_type != "Relu" or len(nexts) != 1 or pad.output[0] in outputs:
            continue
        pool = nexts[0]
        if pool.op_type != "MaxPool" or _attr(pad, "mode", "constant") != "constant" or len(pad.input) > 3:
            continue
        if len(pad.input) == 3 and pad.input[2]:
            value = inits.get(pad.input[2])
            if value is None or np.any(numpy_helper.to_array(value) != 0):
                continue
        amounts = inits.get(pad.input[1]) if len(pad.input) > 1 else None
        if amounts is None:
            continue
        p = numpy_helper.to_array(amounts).tolist()
        if len(p) != 8 or any(v < 0 for v in p) or p[0] or p[1] or p[4] or p[5]:
            continue
        if _attr(pool, "auto_pad", "NOTSET") != "NOTSET" or any(_attr(pool, "pads", [0])):
            continue
        if _attr(pool, "ceil_mode", 0) or _attr(pool, "storage_order", 0) or len(pool.output) != 1:
            continue
        if any(d != 1 for d in _attr(pool, "dilations", [1, 1])):
            continue
        kept = [a for a in pool.attribute if a.name != "pads"]
        del pool.attribute[:]
        pool.attribute.extend([*kept, helper.make_attribute("pads", [p[2], p[3], p[6], p[7]])])
        pool.input[0] = pad.input[0]
        graph.node.remove(pad)
        folded += 1
    if folded:  # the pads (and zero value) tensors are left with no reader: drop them
        used = {name for node in graph.node for name in node.input}
        keep = used | outputs | {i.name for i in graph.input}
        for init in [i for i in graph.initializer if i.name not in keep]:
            graph.initializer.remove(init)
    return folded


def simplify(proto):
    """``proto`` slimmed and with its flatten transposes folded; returns (model, report).

    Raises:
        SimplifyError: onnxslim failed, or the result no longer has the same inputs and outputs.
    """
    before = _ops(proto)
    props = [(p.key, p.value) for p in proto.metadata_props]
    io = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
    out = slim(proto)
    folded = fold_flatten_transpose(out)
    pads = fold_pad_into_maxpool(out)
    init_names = {i.name for i in out.graph.initializer}
    got = ([i.name for i in out.graph.input if i.name not in init_names], [o.name for o in out.graph.output])
    if got != io:
        raise SimplifyError(f"simplification changed the graph's inputs/outputs from {io} to {got}")
    del out.metadata_props[:]
    for key, value in props:
        entry = out.metadata_props.add()
        entry.key, entry.value = key, value
    after = _ops(out)
    removed = {op: before[op] - after.get(op, 0) for op in sorted(before) if before[op] != after.get(op, 0)}
    report = SimplifyReport(sum(before.values()), sum(after.values()), removed, folded, pads)
    logger.info("simplified: %s", report.line())
    return out, report


def main(argv: list[str] | None = None) -> int:
    """``python -m edgerun.export.simplify IN.onnx --out OUT.onnx``: simplify an existing export.

    The result must give the same probabilities as the input (onnxruntime on both, seeded
    random inputs at batch 1 and 8, tolerance 1e-5, same argmax) or nothing is written.
    """
    import argparse

    import numpy as np
    import onnx
    import onnxruntime as ort

    from .onnx import save_onnx

    p = argparse.ArgumentParser(prog="python -m edgerun.export.simplify", description=main.__doc__)
    p.add_argument("model", type=Path)
    p.add_argument("--out", type=Path, required=True, help="where to write (never the input itself)")
    args = p.parse_args(argv)
    if not args.model.is_file():
        print(f"simplify: {args.model} does not exist", file=sys.stderr)
        return 2
    if args.out.resolve() == args.model.resolve():
        print("simplify: --out must differ from the input (outputs never overwrite inputs)", file=sys.stderr)
        return 2
    from edgerun.runtime.modelfile import unreadable_model
    from edgerun.runtime.outputs import OutputError, Protected, check_target

    try:
        check_target(args.out, Protected([args.model]), "--out")
        proto = onnx.load(str(args.model))
    except OutputError as exc:
        print(f"simplify: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and others
        print(f"simplify: {unreadable_model(args.model, exc)}", file=sys.stderr)
        return 2
    try:
        simple, report = simplify(proto)
    except SimplifyError as exc:
        print(f"simplify: {exc}", file=sys.stderr)
        return 1
    staging = args.out.with_name(f".{args.out.name}.staging")
    try:
        save_onnx(simple, staging)
    except OutputError as exc:
        print(f"simplify: {exc}", file=sys.stderr)
        return 2
    a = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(staging), providers=["CPUExecutionProvider"])
    inp = a.get_inputs()[0]
    fixed = [d if isinstance(d, int) else None for d in inp.shape[1:]]
    if None in fixed:
        fixed = [28 if d is None else d for d in fixed]
    worst = 0.0
    for batch in (1, 8):
        x = np.random.default_rng(batch).random((batch, *fixed), dtype=np.float32)
        ya, yb = a.run(None, {inp.name: x})[0], b.run(None, {inp.name: x})[0]
        worst = max(worst, float(np.abs(ya - yb).max()))
        if worst > 1e-5 or not np.array_equal(ya.argmax(-1), yb.argmax(-1)):
            staging.unlink(missing_ok=True)
            print(f"simplify: outputs differ at batch {batch} (max |d| {worst:.2e}); nothing written", file=sys.stderr)
            return 1
    try:
        staging.replace(args.out)
    except OSError as exc:
        staging.unlink(missing_ok=True)
        print(f"simplify: --out {args.out} cannot be written: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote     {args.out}\ngraph     {report.line()}\nparity    max |d| {worst:.2e} vs {args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
