"""Layout planning: keep 4-D activations channels-last (NHWC) between the ops whose target
kernels want it, and convert only where the graph leaves that region.

    plan_layout(graph, leaders={"qconv2d"}) -> Graph

`leaders` are the ops the target's kernels prefer in NHWC (schedules.preferred_layouts): each
leader node runs NHWC whatever layout its input has. Followers run NHWC when one of their 4-D
activation inputs already is NHWC, so a conversion is never added just for them:

* ops with a `layout` attribute (ir/layout.py: pools, channel_shuffle) switch to NHWC;
* layout-free ops (element-wise ones whose operands are all 4-D or single elements, per-tensor
  requantize, lut, concat and split with their axis remapped) take their inputs in NHWC.

Every other consumer of an NHWC value gets an NCHW copy through one `transpose` (made once per
value), and so do graph outputs. The result is equivalent to the input graph (the reference
interpreter gives identical outputs); run fold_constants afterwards to transpose constant
operands at compile time.

Naming: an original value name always denotes its NCHW form; the NHWC form of value `v` is a
fresh name `v_nhwc`. Graph inputs and outputs therefore keep their names and shapes. A graph
that already has NHWC nodes is returned unchanged (planning is idempotent).
"""
from __future__ import annotations

from ..ir import Graph
from ..ir.layout import LAYOUT_OPS, NCHW, NHWC, TO_NCHW, TO_NHWC
from ..ir.quant_params import QuantParams

# Ops whose result does not depend on the layout when every 4-D input has the same shape.
ELEMENTWISE = frozenset({"relu", "clip", "identity", "neg", "qadd", "lut", "requantize",
                         "add", "sub", "mul", "sigmoid", "tanh", "hardswish", "hardsigmoid",
                         "leaky_relu"})
# Ops with a channel-free axis attribute that only needs remapping.
AXIS_OPS = frozenset({"concat", "split"})


def plan_layout(graph: Graph, leaders) -> Graph:
    leaders = frozenset(leaders)
    if not leaders or not any(n.op in leaders for n in graph.nodes):
        return graph.copy()
    if any(n.attrs.get("layout", NCHW) != NCHW for n in graph.nodes):
        return graph.copy()   # already planned (by us or by hand): its layouts are kept
    return _Planner(graph, leaders).run()


class _Planner:
    def __init__(self, graph: Graph, leaders: frozenset):
        self.src = graph
        self.leaders = leaders
        self.out = Graph(graph.name)
        self.nhwc: dict[str, str] = {}   # original value -> name of its NHWC form in `out`
        self.nchw: set[str] = set()      # original values whose NCHW form exists in `out`

    def run(self) -> Graph:
        src, out = self.src, self.out
        out.reserve_names(src.values)   # fresh names never collide with original ones
        for name in src.inputs:
            v = src.values[name]
            out.add_input(name, v.shape, v.dtype, v.quant)
            self.nchw.add(name)
        for name, array in src.constants.items():
            out.add_constant(name, array, src.values[name].quant)
            self.nchw.add(name)
        for node in src.nodes:
            self._place(node)
        for name in src.outputs:
            self._as_nchw(name)
        out.mark_output(*src.outputs)
        out.validate()
        return out

    # ------------------------------------------------------------ decisions

    def _is_activation(self, name: str) -> bool:
        return bool(name) and name not in self.src.constants and self.src.values[name].rank == 4

    def _runs_nhwc(self, node) -> bool:
        data = [i for i in node.inputs if self._is_activation(i)]
        if node.op in self.leaders and node.op in LAYOUT_OPS:
            return self._is_activation(node.inputs[0])
        if not any(i in self.nhwc for i in data):
            return False
        if node.op in LAYOUT_OPS:
            return self._is_activation(node.inputs[0])
        if node.op in AXIS_OPS:
            return all(self.src.values[i].rank == 4 for i in node.inputs if i)
        if node.op in ELEMENTWISE:
            if node.op == "requantize" and len(node.attrs.get("multiplier", [0])) != 1:
                return False   # per-channel along axis 1
            # Transposing every operand the same way commutes with broadcasting, as long as each
            # operand is 4-D (or a single element).
            operands = [self.src.values[i] for i in _broadcast_operands(node)]
            return all(v.rank == 4 or v.size == 1 for v in operands) and \
                all(self.src.values[o].rank == 4 for o in node.outputs)
        return False

    # ------------------------------------------------------------ rewriting

    def _place(self, node) -> None:
        if not self._runs_nhwc(node):
            inputs = [self._as_nchw(i) if i else "" for i in node.inputs]
            self._copy(node, inputs, node.attrs, node.outputs)
            self.nchw.update(node.outputs)
            return
        attrs = dict(node.attrs)
        if node.op in LAYOUT_OPS:
            attrs["layout"] = NHWC
            inputs = [self._as_nhwc(node.inputs[0])] + [self._as_nchw(i) if i else "" for i in node.inputs[1:]]
        elif node.op in AXIS_OPS:
            attrs["axis"] = TO_NHWC.index(attrs["axis"] % 4)
            inputs = [self._as_nhwc(i) for i in node.inputs]
        else:   # element-wise: every 4-D operand in NHWC, single elements/tables as they are
            operands = set(_broadcast_operands(node))
            inputs = [self._as_nhwc(i) if i in operands and self.src.values[i].rank == 4 else i
                      for i in node.inputs]
        outputs = [self.out.unique_name(f"{o}_nhwc") for o in node.outputs]
        self._copy(node, inputs, attrs, outputs)
        for o, new in zip(node.outputs, outputs):
            self.nhwc[o] = new
            self.out.values[new].quant = _permuted_quant(self.src.values[o].quant)

    def _copy(self, node, inputs, attrs, outputs) -> None:
        self.out.add_node(node.op, inputs, attrs, outputs, name=node.name)
        for o_src, o in zip(node.outputs, outputs):
            if self.src.values[o_src].quant is not None and self.out.values[o].quant is None:
                self.out.values[o].quant = self.src.values[o_src].quant

    def _as_nhwc(self, name: str) -> str:
        if name not in self.nhwc:
            new = self.out.unique_name(f"{name}_nhwc")
            self.out.add_node("transpose", [name], {"perm": list(TO_NHWC)}, [new],
                              name=f"{name}_to_nhwc")
            self.out.values[new].quant = _permuted_quant(self.src.values[name].quant)
            self.nhwc[name] = new
        return self.nhwc[name]

    def _as_nchw(self, name: str) -> str:
        if name in self.nchw:
            return name
        self.out.add_node("transpose", [self.nhwc[name]], {"perm": list(TO_NCHW)}, [name],
                          name=f"{name}_to_nchw")
        self.out.values[name].quant = self.src.values[name].quant
        self.nchw.add(name)
        return name


def _broadcast_operands(node) -> list[str]:
    """The inputs an element-wise op combines (lut's table is looked up, not broadcast)."""
    return [node.inputs[0]] if node.op == "lut" else [i for i in node.inputs if i]


def _permuted_quant(quant):
    """Per-channel quant params of a 4-D activation follow its channel axis to NHWC."""
    if quant is None or quant.axis is None:
        return quant
    return QuantParams(quant.scale, quant.zero_point, TO_NHWC.index(quant.axis % 4), quant.bits,
                       quant.signed, quant.narrow_range)


__all__ = ["plan_layout"]
