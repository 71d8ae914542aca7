"""FLOPs of an ONNX graph for one concrete input shape, counted as torch's flop counter does.

2 FLOPs per multiply-add; Conv, ConvTranspose, Gemm and MatMul are counted (biases, activations and
normalisations are not, as in ``torch.utils.flop_counter``). Shapes come from ONNX shape inference run
with the concrete input shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

COUNTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class FlopCount:
    """The total, the FLOPs per operator type, and the counted nodes whose shapes could not be inferred."""

    total: float = 0.0
    by_op: dict = field(default_factory=dict)
    unknown: list = field(default_factory=list)


def _dims(value_info) -> list[int] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return None if any(d is None for d in dims) else dims


def _conv(node, shape) -> float | None:
    y, w = shape(node.output[0]), shape(node.input[1])
    return None if y is None or w is None else 2.0 * math.prod(y) * math.prod(w[1:])


def _conv_transpose(node, shape) -> float | None:
    x, w = shape(node.input[0]), shape(node.input[1])
    return None if x is None or w is None else 2.0 * math.prod(x) * math.prod(w[1:])


def _gemm(node, shape) -> float | None:
    a, y = shape(node.input[0]), shape(node.output[0])
    if a is None or y is None:
        return None
    trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
    k = a[0] if trans_a else a[1]
    return 2.0 * math.prod(y) * k


def _matmul(node, shape) -> float | None:
    a, y = shape(node.input[0]), shape(node.output[0])
    if a is None or y is None:
        return None
    return 2.0 * math.prod(y) * a[-1]


RULES = {"Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm, "MatMul": _matmul}


def count_flops(path: str | Path, input_shapes: dict[str, list[int]]) -> FlopCount:
    """Count the FLOPs of the ONNX model at ``path`` for the given concrete input shapes (name -> dims)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)  # shapes only: weights are not needed
    for inp in model.graph.input:
        if inp.name in input_shapes:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, input_shapes[inp.name]):
                d.Clear()
                d.dim_value = int(v)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    g = inferred.graph
    known: dict[str, list[int] | None] = {i.name: list(i.dims) for i in g.initializer}
    for vi in (*g.input, *g.value_info, *g.output):
        known.setdefault(vi.name, _dims(vi))
    out = FlopCount()
    for node in g.node:
        rule = RULES.get(node.op_type)
        if rule is None:
            continue
        flops = rule(node, known.get)
        if flops is None:
            out.unknown.append(node.name or node.op_type)
            continue
        out.total += flops
        out.by_op[node.op_type] = out.by_op.get(node.op_type, 0.0) + flops
    return out
