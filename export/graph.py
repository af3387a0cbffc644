"""Reading ONNX graphs: op histograms, dims, sizes. Used by export reports and ``edgerun inspect``.

Only ``onnx`` is needed here, not TensorFlow, so ``edgerun inspect`` works on a runtime install.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

from edgerun.runtime.outputs import one_line


def dims(value_info) -> list[int | str | None]:
    """Dims of a graph input/output: ints, symbolic names, or None where unknown."""
    out: list[int | str | None] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def elem_type_name(value_info) -> str:
    import onnx

    return onnx.TensorProto.DataType.Name(value_info.type.tensor_type.elem_type).lower()


@dataclass
class GraphSummary:
    path: str
    size_bytes: int
    opset: int | None
    producer: str
    inputs: list[tuple[str, str, list]] = field(default_factory=list)
    outputs: list[tuple[str, str, list]] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    initializers: int = 0
    parameters: int = 0  # elements of weight tensors: initializers and Constant nodes, numeric non-index types
    constant_nodes: int = 0  # Constant nodes holding a weight tensor (counted in parameters)
    shape_constants: int = 0  # int32/int64 tensors (shapes, axes, indices): not weights

    @property
    def transposes(self) -> int:
        return self.ops.get("Transpose", 0)


#: Tensor types that hold indices and shapes, not weights.
INDEX_TYPES = frozenset({6, 7})  # onnx.TensorProto.INT32, INT64


def _elements(tensor) -> int:
    n = 1
    for d in tensor.dims:
        n *= int(d)
    return n


def constant_tensors(graph) -> list:
    """The tensors of the graph's ``Constant`` nodes (``value`` attributes; scalars and lists of
    ``value_float(s)``/``value_int(s)`` as one-element or n-element tensors of that type)."""
    from onnx import TensorProto, helper

    found = []
    for node in graph.node:
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            continue
        for attr in node.attribute:
            value = helper.get_attribute_value(attr)
            if attr.name == "value":
                found.append(value)
            elif attr.name in ("value_float", "value_floats"):
                values = value if isinstance(value, list) else [value]
                found.append(helper.make_tensor("c", TensorProto.FLOAT, [len(values)], values))
            elif attr.name in ("value_int", "value_ints"):
                values = value if isinstance(value, list) else [value]
                found.append(helper.make_tensor("c", TensorProto.INT64, [len(values)], values))
    return found


def summarize(model, path: str | Path = "", size_bytes: int | None = None) -> GraphSummary:
    """Summarize an ``onnx.ModelProto``.

    ``parameters`` counts the elements of every weight tensor, whether stored as an initializer
    or in a ``Constant`` node (exporters use both); int32/int64 tensors (shapes, axes, indices)
    are counted apart as ``shape_constants``.
    """
    graph = model.graph
    init_names = {i.name for i in graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    ops = collections.Counter(node.op_type for node in graph.node)
    constants = constant_tensors(graph)
    weights = [*graph.initializer, *constants]
    return GraphSummary(
        path=str(path),
        size_bytes=size_bytes if size_bytes is not None else model.ByteSize(),
        opset=opset,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        inputs=[(i.name, elem_type_name(i), dims(i)) for i in graph.input if i.name not in init_names],
        outputs=[(o.name, elem_type_name(o), dims(o)) for o in graph.output],
        ops=dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        metadata={_text(p.key): _text(p.value) for p in model.metadata_props},
        initializers=len(graph.initializer),
        parameters=sum(_elements(t) for t in weights if t.data_type not in INDEX_TYPES),
        constant_nodes=sum(1 for t in constants if t.data_type not in INDEX_TYPES),
        shape_constants=sum(1 for t in weights if t.data_type in INDEX_TYPES),
    )


def _text(value: str | bytes) -> str:
    """A metadata string as text: protobuf hands over a value that is not UTF-8 as bytes."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def rename_dims(model, renames: dict[tuple[str, int], str]) -> None:
    """Give symbolic names to dims of inputs/outputs: ``{(tensor name, axis): new name}``.

    tf2onnx names dynamic dims ``unk__N``; edgerun names them ``batch``, ``height``, ``width``.
    Every other mention of the old name (value_info) is renamed too, so shapes stay consistent.
    """
    old_to_new: dict[str, str] = {}
    tensors = {t.name: t for t in (*model.graph.input, *model.graph.output)}
    for (name, axis), new in renames.items():
        dim = tensors[name].type.tensor_type.shape.dim[axis]
        if dim.HasField("dim_param"):
            old_to_new[dim.dim_param] = new
        dim.dim_param = new
    for vi in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dim in vi.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in old_to_new:
                dim.dim_param = old_to_new[dim.dim_param]


def format_summary(summary: GraphSummary) -> str:
    """The text ``edgerun inspect`` prints."""

    def shape(d: list) -> str:
        return "[" + ", ".join("?" if x is None else str(x) for x in d) + "]"

    lines = [
        f"file        {summary.path}",
        f"size        {summary.size_bytes / 1e6:.2f} MB ({summary.size_bytes:,} bytes)",
        f"opset       {summary.opset if summary.opset is not None else '(none: the model imports no ai.onnx opset)'}",
        f"producer    {summary.producer or '-'}",
        f"parameters  {summary.parameters:,} in {summary.initializers} initializers and "
        f"{summary.constant_nodes} Constant nodes ({summary.shape_constants} shape constants not counted)",
    ]
    for title, items in (("inputs", summary.inputs), ("outputs", summary.outputs)):
        lines.append(f"{title}:")
        lines.extend(f"  {name:<16} {dtype:<8} {shape(d)}" for name, dtype, d in items)
    total = sum(summary.ops.values())
    lines.append(f"ops ({total} nodes, {summary.transposes} Transpose):")
    lines.extend(f"  {op:<24} {count}" for op, count in summary.ops.items())
    lines.append("metadata:" if summary.metadata else "metadata: (none)")
    for key, value in summary.metadata.items():
        shown = value if len(value) <= 100 else value[:97] + "..."
        lines.append(f"  {key:<26} {shown}")
    # names, keys and values are the file's to choose: a newline or an escape code in one must
    # neither split a line nor reach the terminal (--json escapes them as JSON does)
    return "\n".join(one_line(line) for line in lines)
