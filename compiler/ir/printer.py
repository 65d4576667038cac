"""Readable text listing of a Graph (what str(graph) prints).

    graph 'tiny' {
      input %x: float32[1,3,8,8]
      const %conv1.weight: float32[8,3,3,3]
      %y: float32[1,8,4,4] = conv2d(%x, %conv1.weight) strides=[2,2] pads=[1,1,1,1]
      output %y
    }

Constants show shape/dtype (and the value when they hold one element); attributes equal to
the op's default are left out; quant params follow the type in braces.
"""
from __future__ import annotations

from .ops import OP_SCHEMAS
from .quant_params import format_quant
from .schema import Derived


def format_type(value) -> str:
    text = f"{value.dtype}[{','.join(str(d) for d in value.shape)}]"
    if value.quant is not None:
        text += f" {{{format_quant(value.quant)}}}"
    return text


def format_attr(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ",".join(format_attr(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def non_default_attrs(op: str, attrs: dict) -> dict:
    schema = OP_SCHEMAS.get(op)
    if schema is None:
        return dict(attrs)
    shown = {}
    for key, value in attrs.items():
        spec = schema.attrs.get(key)
        if spec is None or isinstance(spec.default, Derived) or spec.default != value:
            shown[key] = value
    return shown


def format_node(graph, node) -> str:
    outs = ", ".join(f"%{o}: {format_type(graph.values[o])}" if o in graph.values else f"%{o}"
                     for o in node.outputs)
    args = ", ".join(f"%{i}" if i else "_" for i in node.inputs)
    line = f"{outs} = {node.op}({args})"
    attrs = non_default_attrs(node.op, node.attrs)
    if attrs:
        line += " " + " ".join(f"{k}={format_attr(v)}" for k, v in attrs.items())
    if node.outputs and node.name != node.outputs[0]:
        line += f"  # {node.name}"
    return line


def format_constant(name, array, value) -> str:
    line = f"const %{name}: {format_type(value)}"
    if array.size == 1:
        line += f" = {format_attr(array.reshape(-1)[0].item())}"
    return line


def format_graph(graph) -> str:
    lines = [f"graph '{graph.name}' {{"]
    lines += [f"  input %{n}: {format_type(graph.values[n])}" for n in graph.inputs]
    lines += ["  " + format_constant(n, a, graph.values[n]) for n, a in graph.constants.items()]
    lines += ["  " + format_node(graph, n) for n in graph.nodes]
    lines += [f"  output %{n}" for n in graph.outputs]
    lines.append("}")
    return "\n".join(lines)
