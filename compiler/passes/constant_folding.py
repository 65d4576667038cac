"""Constant folding: replace nodes whose inputs are all constants by their results."""
from __future__ import annotations

from ..ir import Graph
from ..ir.interpreter import evaluate_op

# quantize/dequantize of constants are the QDQ form of quantized weights (int8 constant +
# dequantize): folding them would turn a quantized model back into a float one.
KEEP_OPS = frozenset({"quantize", "dequantize"})


def fold_constants(graph: Graph, keep_ops=KEEP_OPS) -> Graph:
    """A copy of `graph` where every node with only constant inputs (and not in `keep_ops`)
    is evaluated with the interpreter's kernels (evaluate_op) and becomes constants carrying
    the node's output names. Nodes writing a graph output are kept, so outputs stay computed
    values. Constants left unused are dropped."""
    result = graph.copy()
    outputs = set(result.outputs)
    kept = []
    for node in result.nodes:
        live = [i for i in node.inputs if i]
        foldable = (node.op not in keep_ops and live
                    and all(i in result.constants for i in live)
                    and not outputs.intersection(node.outputs))
        if not foldable:
            kept.append(node)
            continue
        arrays = [result.constants[i] if i else None for i in node.inputs]
        for name, array in zip(node.outputs, evaluate_op(node.op, arrays, node.attrs)):
            quant = result.values[name].quant
            del result.values[name]  # add_constant keeps the name only when it is free
            result.add_constant(name, array, quant)
    result.nodes = kept
    result.prune()
    return result
