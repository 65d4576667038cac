"""Dead-code elimination: drop nodes and constants that no graph output depends on."""
from __future__ import annotations

from ..ir import Graph


def eliminate_dead_code(graph: Graph) -> Graph:
    """A copy of `graph` without nodes/constants that do not reach an output.

    Graph inputs are kept even when unused: they are the model's interface."""
    result = graph.copy()
    result.prune()
    return result
