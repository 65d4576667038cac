"""The two records a Graph is made of: Value (a named typed tensor) and Node (one op application)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import GraphError
from .quant_params import QuantParams

# dtype names the IR accepts (NumPy spellings, see docs/design.md).
SUPPORTED_DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "uint16",
                    "int32", "uint32", "int64", "bool")


def normalize_dtype(dtype) -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError as exc:
        raise GraphError(f"unknown dtype {dtype!r}") from exc
    if name not in SUPPORTED_DTYPES:
        raise GraphError(f"dtype {name!r} is not supported by the IR (supported: {SUPPORTED_DTYPES})")
    return name


def normalize_shape(shape) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError) as exc:
        raise GraphError(f"shape must be a sequence of concrete ints, got {shape!r}") from exc
    if any(d < 0 for d in dims):
        raise GraphError(f"shape dims must be >= 0, got {shape!r}")
    return dims


@dataclass
class Value:
    """A tensor flowing through the graph: graph input, constant or node output."""
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: QuantParams | None = None

    def __post_init__(self):
        self.shape = normalize_shape(self.shape)
        self.dtype = normalize_dtype(self.dtype)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Node:
    """One op application. `inputs` may hold "" for an omitted optional input."""
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    name: str = ""
