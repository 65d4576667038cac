"""QDQ graph -> integer graph (design.md "Integer IR ops"; arithmetic of quant/SPEC.md §5).

Every `quantize` is a possible pattern end: walking back from it through an optional fused
relu / clip to a float op whose inputs are all `dequantize`d integer tensors, the whole
pattern becomes one integer op writing the quantize's output (qdq_rewrites.REWRITES says
which ops and how). Because the integer op writes the quantize's output name, the
`dequantize`s of the next pattern read it directly: Q -> DQ pairs between patterns vanish.
What matches no pattern stays in float (float islands, float weights); the quantize of the
model input and the dequantize of its outputs stay. Dead nodes are removed at the end.
"""
from __future__ import annotations

from ..ir import Graph
from ..ir.errors import QuantizationError
from .qdq_matching import QDQView
from .qdq_rewrites import ACTIVATIONS, FUSES_ACTIVATION, REWRITES, Emitter, Match


def qdq_to_integer(graph: Graph) -> Graph:
    """A new Graph computing `graph` with integer ops wherever a QDQ pattern allows.
    Input and output names are kept; the result passes Graph.validate()."""
    view = QDQView(graph)
    result = Graph(graph.name)
    result.reserve_names(graph.values)   # new names never clash with the original ones
    for name in graph.inputs:
        value = graph.values[name]
        result.add_input(name, value.shape, value.dtype, value.quant)
    for name, array in graph.constants.items():
        result.add_constant(name, array, graph.values[name].quant)
    emitter = Emitter(result, view)
    for node in graph.nodes:
        if not (node.op == "quantize" and _rewrite(emitter, node)):
            result.add_node(node.op, node.inputs, node.attrs, node.outputs, name=node.name)
        for o in node.outputs:   # keep the quantization labels of every value
            result.values[o].quant = graph.values[o].quant
    result.outputs = list(graph.outputs)
    result.prune()
    result.validate()
    return result


def _candidates(view: QDQView, quantize, qp_y):
    """Matches ending at `quantize`, the longest (op + fused activation) first."""
    source = quantize.inputs[0]
    producer = view.producer(source)
    if producer is None:
        return
    if producer.op in ACTIVATIONS:
        inner = view.producer(producer.inputs[0])
        if inner is not None and inner.op in FUSES_ACTIVATION:
            yield Match(inner, producer, qp_y, quantize.outputs[0], producer.inputs[0])
    yield Match(producer, None, qp_y, quantize.outputs[0], source)


def _rewrite(emitter: Emitter, quantize) -> bool:
    qp_y = emitter.view.quantize_output(quantize)
    if qp_y is None:
        return False
    for match in _candidates(emitter.view, quantize, qp_y):
        rewrite = REWRITES.get(match.node.op)
        try:
            if rewrite is not None and rewrite(emitter, match):
                return True
        except QuantizationError as exc:
            raise QuantizationError(f"qdq_to_integer: node '{match.node.name}' ({match.node.op}): {exc}") from None
    return False
