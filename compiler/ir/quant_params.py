"""Quantization parameters attached to IR values (affine: real = scale * (q - zero_point))."""
from __future__ import annotations

import numpy as np

from .errors import GraphError


def quant_range(bits: int, signed: bool, narrow_range: bool = False) -> tuple[int, int]:
    """Integer range [qmin, qmax] of a `bits`-wide (un)signed integer; narrow drops the lowest code."""
    if signed:
        qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        qmin, qmax = 0, (1 << bits) - 1
    return (qmin + 1 if narrow_range else qmin), qmax


def storage_dtype(bits: int, signed: bool) -> str:
    """Smallest NumPy integer type holding `bits`-wide values (bits < 8 still use 8-bit storage)."""
    for width in (8, 16, 32):
        if bits <= width:
            return f"{'' if signed else 'u'}int{width}"
    raise GraphError(f"quantization bits must be <= 32, got {bits}")


class QuantParams:
    """Affine quantization parameters, per-tensor (axis None) or per-axis (1-D scale along `axis`)."""

    def __init__(self, scale, zero_point=0, axis=None, bits=8, signed=True, narrow_range=False):
        self.scale = np.array(scale, dtype=np.float32)
        zero_point = np.array(zero_point)
        if zero_point.dtype.kind not in "iu":
            if not np.all(zero_point == np.round(zero_point)):
                raise GraphError(f"QuantParams zero_point must be integers, got {zero_point}")
            zero_point = zero_point.astype(np.int64)
        self.zero_point = zero_point
        self.axis = None if axis is None else int(axis)
        self.bits = int(bits)
        self.signed = bool(signed)
        self.narrow_range = bool(narrow_range)
        self._check()

    def _check(self):
        if not 2 <= self.bits <= 32:
            raise GraphError(f"QuantParams bits must be in [2, 32], got {self.bits}")
        if not np.all(np.isfinite(self.scale)) or np.any(self.scale <= 0):
            raise GraphError(f"QuantParams scale must be positive and finite, got {self.scale}")
        if self.axis is None and self.scale.size != 1:
            raise GraphError(f"per-tensor QuantParams need one scale, got shape {self.scale.shape}")
        if self.axis is not None and self.scale.ndim != 1:
            raise GraphError(f"per-axis QuantParams need a 1-D scale, got shape {self.scale.shape}")
        if self.zero_point.size not in (1, self.scale.size):
            raise GraphError(f"QuantParams zero_point shape {self.zero_point.shape} "
                             f"does not match scale shape {self.scale.shape}")
        if np.any(self.zero_point < self.qmin) or np.any(self.zero_point > self.qmax):
            raise GraphError(f"QuantParams zero_point {self.zero_point} outside [{self.qmin}, {self.qmax}]")

    @property
    def qmin(self) -> int:
        return quant_range(self.bits, self.signed, self.narrow_range)[0]

    @property
    def qmax(self) -> int:
        return quant_range(self.bits, self.signed, self.narrow_range)[1]

    @property
    def dtype(self) -> str:
        """Storage dtype name, e.g. 'int8' (4-bit values are still stored in int8)."""
        return storage_dtype(self.bits, self.signed)

    @property
    def per_axis(self) -> bool:
        return self.axis is not None

    def to_dict(self) -> dict:
        """JSON-able form; floats are float32 values widened exactly, so from_dict round-trips."""
        return {
            "scale": self.scale.tolist(), "scale_shape": list(self.scale.shape),
            "zero_point": self.zero_point.tolist(), "zero_point_shape": list(self.zero_point.shape),
            "zero_point_dtype": str(self.zero_point.dtype),
            "axis": self.axis, "bits": self.bits, "signed": self.signed,
            "narrow_range": self.narrow_range,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "QuantParams":
        scale = np.array(d["scale"], dtype=np.float32).reshape(d["scale_shape"])
        zero_point = np.array(d["zero_point"], dtype=d["zero_point_dtype"]).reshape(d["zero_point_shape"])
        return cls(scale, zero_point, d["axis"], d["bits"], d["signed"], d["narrow_range"])

    def __eq__(self, other) -> bool:
        if not isinstance(other, QuantParams):
            return NotImplemented
        return (self.axis, self.bits, self.signed, self.narrow_range) == (
            other.axis, other.bits, other.signed, other.narrow_range) and \
            self.scale.shape == other.scale.shape and np.array_equal(self.scale, other.scale) and \
            self.zero_point.shape == other.zero_point.shape and \
            np.array_equal(self.zero_point, other.zero_point)

    def __repr__(self) -> str:
        return f"QuantParams({format_quant(self)})"


def format_quant(q: QuantParams) -> str:
    """Short text: 'int8 scale=0.05 zp=0' or 'int8 axis=0 scale=float32[16] zp=int8[16]'."""
    kind = q.dtype if q.bits in (8, 16, 32) else f"{q.dtype}/{q.bits}bit"
    if q.narrow_range:
        kind += " narrow"
    if q.axis is None:
        return f"{kind} scale={float(q.scale.reshape(-1)[0]):.6g} zp={int(q.zero_point.reshape(-1)[0])}"
    return (f"{kind} axis={q.axis} scale=float32[{q.scale.size}] "
            f"zp={q.zero_point.dtype}[{q.zero_point.size}]")
