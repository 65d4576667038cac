"""Small helpers shared by the lowering tables."""
from __future__ import annotations

import numpy as np
from tvm import relax


def dtype_of(expr) -> str:
    dtype = expr.ty.dtype
    return getattr(dtype, "dtype", str(dtype))


def shape_of(expr) -> tuple[int, ...]:
    return tuple(int(d) for d in expr.ty.shape)


def const(value, dtype):
    return relax.const(np.asarray(value, dtype=dtype), dtype)


def ttype(expr):
    """(shape, dtype) pair of a Relax expression, as schedules.select wants it."""
    return shape_of(expr), dtype_of(expr)
