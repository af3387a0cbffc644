"""Graph variants of an exported model: the same function, another graph that may run faster.

``edgerun tune`` writes the variants that apply to a model beside its tune cache, measures them
against the model itself per batch size (outputs must agree to 1e-4, like every candidate) and
keeps one only where it wins; ``edgerun run``, the API and ``edgerun bench`` then open the
variant for that batch size. The model file is never changed.

``dense-conv``: a Dense layer reading a flattened feature map (``Reshape([-1, C*H*W]) ->
MatMul(W) -> Add(b)``) becomes one ``Conv`` with an ``H x W`` kernel and a ``Reshape([-1, N])``;
a ``Relu`` on the Dense's output goes before that Reshape, where onnxruntime fuses it into the
Conv. onnxruntime then keeps its blocked (NCHWc) layout through the Dense: no reorder of the
whole map, and at batch 1 a faster kernel. Measured on the 2-core Zen 3, ``mnist_cnn``, interleaved
(README, Latency): batch 1 180-183 us against 191-194 us; batch 8 and 64 11-12% slower (a
convolution with a 1x1 output reuses no weights across the batch, the matrix product does),
so the tuner keeps it per batch size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .simplify import _index, flatten_into_matmul

logger = logging.getLogger(__name__)


def dense_as_conv(proto) -> int:
    """Rewrite, in place, each ``Reshape -> MatMul -> Add`` that reads a 4-D map of known
    C, H, W as one ``Conv`` (kernel H x W) and a ``Reshape``. Returns how many were rewritten.

    Applies only where the pattern is exact: the Reshape's shape is a constant ``[-1 or 0, K]``
    with ``K = C*H*W``, the Reshape and MatMul each feed one node, ``W`` (``[K, N]``) and ``b``
    (``[N]``) are initializers used there alone, and no intermediate value is a graph output.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto)
    consumers, outputs, inits = _index(graph)
    rewritten = 0
    for reshape in [n for n in graph.node if n.op_type == "Reshape"]:
        found = flatten_into_matmul(inferred, reshape, reshape.input[0], consumers, inits)
        if found is None:
            continue
        (c, h, w), matmul, weight = found
        adds = consumers[matmul.output[0]]
        if len(adds) != 1 or adds[0].op_type != "Add" or adds[0].input[0] != matmul.output[0]:
            continue
        add = adds[0]
        bias = inits.get(add.input[1])
        n = weight.dims[1]
        if bias is None or len(consumers[add.input[1]]) != 1 or list(bias.dims) != [n]:
            continue
        if {reshape.output[0], matmul.output[0]} & outputs:
            continue
        kernel = numpy_helper.to_array(weight).T.reshape(n, c, h, w)
        prefix = f"{matmul.name or matmul.output[0]}/dense_conv"
        kernel_name, shape_name, conv_out = f"{prefix}/kernel", f"{prefix}/shape", f"{prefix}/map"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.ascontiguousarray(kernel), kernel_name),
                numpy_helper.from_array(np.array([-1, n], np.int64), shape_name),
            ]
        )
        conv = helper.make_node(
            "Conv",
            [reshape.input[0], kernel_name, add.input[1]],
            [conv_out],
            name=f"{prefix}/conv",
            kernel_shape=[h, w],
        )
        # A Relu on the Dense's output moves before the Reshape (they commute), so onnxruntime
        # fuses it into the Conv instead of running it as one more node on the flat vector.
        after = consumers[add.output[0]]
        relu = after[0] if len(after) == 1 and after[0].op_type == "Relu" and add.output[0] not in outputs else None
        final = relu.output[0] if relu is not None else add.output[0]
        moved = [conv]
        if relu is not None:
            graph.node.remove(relu)
            relu.input[0], relu.output[0] = conv_out, f"{prefix}/map_relu"
            moved.append(relu)
        flat = helper.make_node("Reshape", [moved[-1].output[0], shape_name], [final], name=f"{prefix}/flatten")
        at = list(graph.node).index(reshape)
        for node in (reshape, matmul, add):
            graph.node.remove(node)
        for node in reversed([*moved, flat]):
            graph.node.insert(at, node)
        rewritten += 1
    if rewritten:
        used = {name for node in graph.node for name in node.input}
        for init in [i for i in graph.initializer if i.name not in used]:
            graph.initializer.remove(init)
        del graph.value_info[:]
    return rewritten


REWRITES: dict[str, Callable] = {"dense-conv": dense_as_conv}


def make_variants(model_path, write: Callable[[str, bytes], object]) -> list[str]:
    """Every variant of ``model_path`` that applies, serialised and handed to ``write(name,
    data)``; returns their names. The model's metadata goes with each variant."""
    import onnx

    made = []
    for name, rewrite in REWRITES.items():
        proto = onnx.load(str(model_path))
        count = rewrite(proto)
        if count:
            onnx.checker.check_model(proto)
            write(name, proto.SerializeToString())
            logger.info("%s: graph variant %s (%d rewritten)", model_path, name, count)
            made.append(name)
    return made
