"""Tensor indexing: basic indexing is traced as IR slice -> squeeze -> unsqueeze;
integer-array / mask indexing works eagerly only."""
import numbers

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import fmt_shape
from .shape import Squeeze, Unsqueeze


class Slice(Function):
    """Python slicing on the listed axes (IR `slice`)."""
    ir_op = "slice"

    @staticmethod
    def _key(ndim, starts, ends, axes, steps):
        key = [slice(None)] * ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            key[a] = slice(s, e, st)
        return tuple(key)

    @staticmethod
    def forward(ctx, x, starts, ends, axes, steps):
        key = Slice._key(x.ndim, starts, ends, axes, steps)
        ctx.key, ctx.in_shape = key, x.shape
        return x[key]

    @staticmethod
    def backward(ctx, g):
        dx = np.zeros(ctx.in_shape, dtype=g.dtype)
        dx[ctx.key] = g
        return dx

    @classmethod
    def ir_attrs(cls, starts, ends, axes, steps):
        return {"starts": list(starts), "ends": list(ends), "axes": list(axes), "steps": list(steps)}


class FancyIndex(Function):
    """Integer-array / boolean indexing: eager only (the IR has no gather)."""
    ir_op = None

    @staticmethod
    def forward(ctx, x, key):
        ctx.key, ctx.in_shape = key, x.shape
        return np.asarray(x[key])

    @staticmethod
    def backward(ctx, g):
        dx = np.zeros(ctx.in_shape, dtype=g.dtype)
        np.add.at(dx, ctx.key, g)  # repeated indices must accumulate
        return dx


def _is_basic(k):
    return (k is None or k is Ellipsis or isinstance(k, slice)
            or (isinstance(k, (numbers.Integral, np.integer)) and not isinstance(k, (bool, np.bool_))))


def getitem(x, key):
    """Basic indexing becomes slice -> squeeze -> unsqueeze (all traceable); anything
    else (integer arrays, masks) is a FancyIndex, which works eagerly only."""
    key = key if isinstance(key, tuple) else (key,)
    if not all(_is_basic(k) for k in key):
        key = tuple(k.data if isinstance(k, Tensor) else k for k in key)
        return FancyIndex.apply(x, key=key if len(key) > 1 else key[0])

    consuming = sum(1 for k in key if k is not None and k is not Ellipsis)
    if consuming > x.ndim:
        raise IndexError(f"too many indices for a tensor of shape {fmt_shape(x.shape)}")
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis")
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (x.ndim - consuming) + key[i + 1:]
    else:
        key = key + (slice(None),) * (x.ndim - consuming)

    starts, ends, axes, steps, squeeze_axes, new_axes = [], [], [], [], [], []
    axis = out_axis = 0
    for k in key:
        if k is None:
            new_axes.append(out_axis)
            out_axis += 1
            continue
        dim = x.shape[axis]
        if isinstance(k, slice):
            start, stop, step = k.indices(dim)
            if step < 0 and stop < 0:
                stop = -dim - 1  # Python-slice spelling of "run past the first element"
            if (start, stop, step) != (0, dim, 1):
                starts.append(start), ends.append(stop), axes.append(axis), steps.append(step)
            out_axis += 1
        else:
            i = int(k)
            if not -dim <= i < dim:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {dim}")
            i %= dim
            starts.append(i), ends.append(i + 1), axes.append(axis), steps.append(1)
            squeeze_axes.append(axis)
        axis += 1

    y = x
    if axes:
        y = Slice.apply(y, starts=tuple(starts), ends=tuple(ends), axes=tuple(axes), steps=tuple(steps))
    if squeeze_axes:
        y = Squeeze.apply(y, axes=tuple(squeeze_axes))
    if new_axes:
        y = Unsqueeze.apply(y, axes=tuple(new_axes))
    return y
