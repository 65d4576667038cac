"""Graph IR -> TVM Relax lowering (docs/design.md, "Kernels and lowering")."""
from .lower import LOWERINGS, LowerContext, LoweringError, lower_graph, supported_ops

__all__ = ["lower_graph", "LoweringError", "LowerContext", "supported_ops", "LOWERINGS"]
