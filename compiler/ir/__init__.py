"""Yuan Graph IR (docs/design.md): Graph/Value/Node/QuantParams, the op table, a reference
interpreter, a text printer and a one-file (.npz) serialization."""
from .errors import GraphError, InterpreterError, QuantizationError, ShapeInferenceError
from .graph import Graph
from .interpreter import evaluate_op, run_graph
from .ops import OP_SCHEMAS, get_schema
from .printer import format_graph
from .quant_params import QuantParams, quant_range, storage_dtype
from .schema import AttrSpec, Derived, OpSchema
from .serialize import load_graph, save_graph
from .values import Node, Value

__all__ = [
    "Graph", "Value", "Node", "QuantParams", "GraphError", "ShapeInferenceError",
    "InterpreterError", "QuantizationError", "OP_SCHEMAS", "OpSchema", "AttrSpec", "Derived", "get_schema",
    "run_graph", "evaluate_op", "format_graph", "save_graph", "load_graph", "quant_range",
    "storage_dtype",
]
