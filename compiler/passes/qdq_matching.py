"""Reading QDQ graphs: which float values are dequantized integer tensors, and with what
parameters. Used by qdq_to_integer (the rewrites themselves live in qdq_rewrites.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, QuantParams
from ..ir.errors import GraphError

INT8_DTYPES = ("int8", "uint8")


@dataclass(frozen=True)
class IntTensor:
    """An integer value `name` whose real value is (q - z) * s under `qp` (per tensor)."""
    name: str
    qp: QuantParams

    @property
    def scale(self) -> float:
        return np.float32(self.qp.scale.reshape(-1)[0])

    @property
    def zero_point(self) -> int:
        return int(self.qp.zero_point.reshape(-1)[0])

    @property
    def dtype(self) -> str:
        return self.qp.dtype


@dataclass(frozen=True)
class IntWeight:
    """An int8 constant weight, zero point 0, scale per output channel (axis 0) or per tensor."""
    name: str
    scale: np.ndarray  # float32, length 1 (per tensor) or O


class QDQView:
    """Queries on the original (unchanged) QDQ graph."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.producers = graph.producer_map()

    def producer(self, name: str):
        return self.producers.get(name)

    def constant(self, name: str):
        return self.graph.constants.get(name) if name else None

    def dequantize_parts(self, name: str):
        """(integer input, scale array, zero point array, axis) of the dequantize making `name`."""
        node = self.producer(name)
        if node is None or node.op != "dequantize":
            return None
        x, scale_name, zp_name = (node.inputs + ["", ""])[:3]
        scale = self.constant(scale_name)
        zero = self.constant(zp_name) if zp_name else np.zeros((), np.int64)
        if scale is None or zero is None:
            return None
        return x, scale.astype(np.float32), zero.astype(np.int64), node.attrs.get("axis")

    def dequantized(self, name: str) -> IntTensor | None:
        """`name` = dequantize(q int8/uint8, constant per-tensor scale / zero point)."""
        parts = self.dequantize_parts(name)
        if parts is None:
            return None
        x, scale, zero, _ = parts
        dtype = self.graph.values[x].dtype
        if dtype not in INT8_DTYPES or scale.size != 1 or zero.size != 1:
            return None
        try:
            qp = QuantParams(scale.reshape(()), zero.reshape(()), bits=8, signed=dtype == "int8")
        except GraphError:
            return None
        return IntTensor(x, qp)

    def dequantized_weight(self, name: str) -> IntWeight | None:
        """`name` = dequantize(int8 constant, scale per tensor or along axis 0, zero point 0)."""
        parts = self.dequantize_parts(name)
        if parts is None:
            return None
        x, scale, zero, axis = parts
        w = self.constant(x)
        if w is None or w.dtype != np.int8 or np.any(zero != 0):
            return None
        per_channel = scale.size > 1 or (axis is not None and scale.ndim == 1)
        if per_channel and (axis % w.ndim != 0 or scale.size != w.shape[0]):
            return None
        return IntWeight(x, scale.reshape(-1))

    def quantize_output(self, node) -> QuantParams | None:
        """Parameters of a quantize node with constant per-tensor scale / zero point (<= 8 bits)."""
        scale, zero = self.constant(node.inputs[1]), self.constant((node.inputs + [""])[2])
        if zero is None:
            zero = np.zeros((), np.int64)
        if scale is None or scale.size != 1 or zero.size != 1 or node.attrs["bits"] > 8:
            return None
        try:
            return QuantParams(scale.reshape(()).astype(np.float32), zero.reshape(()).astype(np.int64),
                               bits=node.attrs["bits"], signed=bool(node.attrs["signed"]),
                               narrow_range=bool(node.attrs["narrow_range"]))
        except GraphError:
            return None
