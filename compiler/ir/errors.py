"""Errors raised by the Graph IR."""


class GraphError(ValueError):
    """A graph is malformed: unknown op, bad attribute, undefined value, bad file..."""


class ShapeInferenceError(GraphError):
    """An op's inputs have shapes/dtypes the op cannot accept."""


class InterpreterError(GraphError):
    """The reference interpreter cannot execute a node."""


class QuantizationError(ValueError):
    """Integer arithmetic cannot be done as specified (quant/SPEC.md): degenerate scales, an
    int32 accumulator overflow, an unknown fused activation... `quant.QuantError` is this class."""
