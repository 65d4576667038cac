"""Exceptions raised by the frontend."""


class ShapeError(ValueError):
    """An op or layer got an input whose rank or size it cannot accept.

    The message names the op, the expected shape and the actual shape.
    """


class TraceError(RuntimeError):
    """An op was called while tracing but has no Graph IR equivalent."""
