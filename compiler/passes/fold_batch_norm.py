"""Fold inference-form batch norm into the conv2d / linear that feeds it (quant/SPEC.md §7)."""
from __future__ import annotations

import numpy as np

from ..ir import Graph

FOLDABLE_PRODUCERS = ("conv2d", "linear")


def fold_batch_norm(graph: Graph) -> Graph:
    """A copy of `graph` where each `batch_norm` that directly follows a conv2d / linear is
    folded into that layer's weight and bias:

        w' = w * g,  b' = beta + (b - mean) * g,   g = gamma / sqrt(var + eps)

    computed in float64 and stored as float32 (g scales output channel c = weight axis 0).
    A batch norm stays when the producer's output has another consumer or is a graph output
    (folding would change what they see), when a parameter is not a constant, or when it
    normalises another axis than the layer's output channels (linear on rank > 2 inputs).
    The folded layer writes the batch norm's output name; replaced weights get new constants
    (the old ones may be shared), and constants left unused are dropped."""
    result = graph.copy()
    producers = result.producer_map()
    consumers = result.consumer_map()
    outputs = set(result.outputs)
    removed = set()
    for bn in result.nodes:
        if bn.op != "batch_norm":
            continue
        layer = producers.get(bn.inputs[0])
        if layer is None or not _can_fold(result, layer, bn, consumers, outputs):
            continue
        _fold_into(result, layer, bn)
        removed.add(id(bn))
        producers[bn.outputs[0]] = layer  # a second batch norm in a row folds too
    result.nodes = [n for n in result.nodes if id(n) not in removed]
    result.prune()
    return result


def _can_fold(graph: Graph, layer, bn, consumers, outputs) -> bool:
    if layer.op not in FOLDABLE_PRODUCERS:
        return False
    y = layer.outputs[0]
    if y in outputs or len(consumers.get(y, [])) != 1:
        return False
    params = [i for i in layer.inputs[1:] + bn.inputs[1:] if i]
    if not all(p in graph.constants for p in params):
        return False
    # Batch norm normalises axis 1; the layer's output channels are axis 1 only for conv2d
    # and for a linear with 2-D output.
    return layer.op == "conv2d" or graph.values[y].rank == 2


def _fold_into(graph: Graph, layer, bn) -> None:
    c = graph.constants
    gamma, beta, mean, var = (c[name].astype(np.float64) for name in bn.inputs[1:5])
    factor = gamma / np.sqrt(var + np.float64(bn.attrs.get("epsilon", 1e-5)))
    w_name = layer.inputs[1]
    w = c[w_name].astype(np.float64)
    b_name = layer.inputs[2] if len(layer.inputs) > 2 else ""
    b = c[b_name].astype(np.float64) if b_name else np.zeros(w.shape[0])
    w_folded = w * factor.reshape((-1,) + (1,) * (w.ndim - 1))
    b_folded = beta + (b - mean) * factor
    dtype = c[w_name].dtype if c[w_name].dtype.kind == "f" else np.float32
    new_w = graph.add_constant(f"{w_name}_bn_folded", w_folded.astype(dtype))
    new_b = graph.add_constant(f"{b_name or layer.name + '_bias'}_bn_folded", b_folded.astype(dtype))
    # The layer now writes the batch norm's output; its own output value disappears.
    del graph.values[layer.outputs[0]]
    layer.inputs = [layer.inputs[0], new_w, new_b]
    layer.outputs = [bn.outputs[0]]
