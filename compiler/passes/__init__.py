"""Graph -> Graph passes on the Yuan IR.

Every pass takes a Graph and returns a *new* Graph (the argument is left untouched), so
passes chain freely: `fold_batch_norm(fold_constants(g))`. Each one keeps the names of the
graph's inputs and outputs, and the result passes Graph.validate().
"""
from .constant_folding import fold_constants
from .dead_code import eliminate_dead_code
from .fold_batch_norm import fold_batch_norm
from .layout_plan import plan_layout
from .qdq_to_integer import qdq_to_integer

__all__ = ["fold_batch_norm", "fold_constants", "eliminate_dead_code", "plan_layout",
           "qdq_to_integer"]
