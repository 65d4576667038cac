"""Reference executor: runs a Graph node by node with the NumPy kernels in kernels.py.

It is the oracle other components are tested against, so it favours clear semantics.
"""
from __future__ import annotations

import numpy as np

from .errors import GraphError, InterpreterError
from .graph import Graph, node_label
from .kernels import KERNELS
from .ops import get_schema


def _check_feed(graph: Graph, inputs: dict) -> dict[str, np.ndarray]:
    missing = [n for n in graph.inputs if n not in inputs]
    extra = [n for n in inputs if n not in graph.inputs]
    if missing or extra:
        raise InterpreterError(f"graph '{graph.name}' inputs are {graph.inputs}; "
                               f"missing {missing}, unexpected {extra}")
    feed = {}
    for name in graph.inputs:
        value = graph.values[name]
        array = np.asarray(inputs[name])
        if array.shape != value.shape:
            raise InterpreterError(f"input '{name}' has shape {list(array.shape)}, "
                                   f"graph expects {list(value.shape)}")
        if array.dtype != value.dtype:
            if not np.can_cast(array.dtype, value.dtype, casting="same_kind"):
                raise InterpreterError(f"input '{name}' has dtype {array.dtype}, "
                                       f"graph expects {value.dtype}")
            array = array.astype(value.dtype)
        feed[name] = array
    return feed


def _as_list(result) -> list[np.ndarray]:
    return list(result) if isinstance(result, (list, tuple)) else [result]


def run_node(graph: Graph, node, env: dict) -> list[np.ndarray]:
    where = node_label(node.name, node.op)
    kernel = KERNELS.get(node.op)
    if kernel is None:
        raise InterpreterError(f"{where}: the interpreter has no kernel for op '{node.op}'")
    schema = get_schema(node.op)
    args = schema.pad_optional([env[i] if i else None for i in node.inputs])
    in_values = schema.pad_optional([graph.values.get(i) if i else None for i in node.inputs])
    try:
        attrs = schema.normalize_attrs(node.attrs, in_values, where)
        results = _as_list(kernel(args, attrs))
    except GraphError as exc:
        if where in str(exc):
            raise
        raise type(exc)(f"{where}: {exc}") from None
    except Exception as exc:
        raise InterpreterError(f"{where}: {type(exc).__name__}: {exc}") from exc
    if len(results) != len(node.outputs):
        raise InterpreterError(f"{where}: kernel gave {len(results)} outputs, "
                               f"node has {len(node.outputs)}")
    return [np.asarray(r).astype(graph.values[o].dtype, copy=False) if o in graph.values else r
            for o, r in zip(node.outputs, results)]


def run_graph(graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute `graph` on `inputs` (name -> array); returns {output name: array}."""
    env: dict[str, np.ndarray] = dict(graph.constants)
    env.update(_check_feed(graph, inputs))
    for node in graph.nodes:
        for i in node.inputs:
            if i and i not in env:
                raise InterpreterError(f"{node_label(node.name, node.op)}: input '{i}' has no value "
                                       f"yet (graph not in topological order?)")
        env.update(zip(node.outputs, run_node(graph, node, env)))
    return {name: env[name] for name in graph.outputs}


def evaluate_op(op: str, arrays: list, attrs: dict | None = None) -> list[np.ndarray]:
    """Run one IR op on concrete arrays (None for omitted inputs); used for constant folding.
    The op is checked (schema, shapes) exactly as Graph.add_node would."""
    graph = Graph(f"evaluate_{op}")
    names = [graph.add_constant(f"in{k}", a) if a is not None else "" for k, a in enumerate(arrays)]
    node = graph.add_node(op, names, attrs)
    return run_node(graph, node, dict(graph.constants))


__all__ = ["run_graph", "evaluate_op", "run_node"]
