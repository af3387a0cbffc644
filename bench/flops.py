"""What an ONNX graph computes: FLOPs per image (Conv, Gemm and MatMul nodes) and in which precision.

A multiply-add counts as 2 FLOPs (int8 graphs: 2 integer operations). Shapes come from ONNX shape
inference with the batch fixed to 1 (and, for models of any size, the input size given).
"""

from __future__ import annotations

import numpy as np


def _shape_map(model) -> dict[str, list[int]]:
    shapes = {}
    for vi in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def flops_per_image(path, input_hw: tuple[int, int] | None = None) -> int:
    """FLOPs for one image through the Conv/Gemm/MatMul nodes of the model at ``path``."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    inp = next(i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    dims = inp.type.tensor_type.shape.dim
    dynamic = [axis for axis, d in enumerate(dims) if axis > 0 and not d.HasField("dim_value")]
    if dynamic and (input_hw is None or len(dynamic) != 2):
        raise ValueError(f"input {inp.name} has dynamic dims {dynamic}; give input_hw (height, width)")
    fixed = {0: 1, **dict(zip(dynamic, input_hw or (), strict=False))}
    for axis, value in fixed.items():
        dims[axis].Clear()
        dims[axis].dim_value = int(value)
    model = shape_inference.infer_shapes(model)
    shapes = _shape_map(model)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = shapes.get(node.input[1])
            out = shapes.get(node.output[0])
            if not w or not out or 0 in out:
                continue
            _, c_in_per_group, *kernel = w  # [C_out, C_in / groups, kh, kw]
            total += 2 * int(np.prod(out[1:])) * c_in_per_group * int(np.prod(kernel))
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes.get(node.input[0]) or [], shapes.get(node.input[1]) or []
            if len(b) < 2 or 0 in b:
                continue
            transposed = node.op_type == "Gemm" and any(x.name == "transB" and x.i for x in node.attribute)
            k, n = (b[-1], b[-2]) if transposed else (b[-2], b[-1])
            rows = int(np.prod([d or 1 for d in a[:-1]])) if len(a) > 1 else 1  # unknown dims: batch 1
            total += 2 * rows * k * n
    return total


QUANTIZED_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger"}
)


def precision(model) -> str:
    """``int8`` (quantized ops), ``fp16`` (mostly half-precision weights) or ``fp32``, from the graph itself."""
    from onnx import TensorProto

    if any(node.op_type in QUANTIZED_OPS for node in model.graph.node):
        return "int8"
    sizes = {TensorProto.FLOAT: 0, TensorProto.FLOAT16: 0}
    for init in model.graph.initializer:
        if init.data_type in sizes:
            sizes[init.data_type] += int(np.prod(init.dims))
    return "fp16" if sizes[TensorProto.FLOAT16] > sizes[TensorProto.FLOAT] else "fp32"
