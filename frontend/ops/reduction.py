"""Reductions: sum, mean, max (with gradients) and argmax (without)."""
import numpy as np

from ..autograd import Function
from ._util import as_tensor, normalize_axes


def _expand_grad(g, in_shape, axes, keepdims):
    """Broadcast a reduced gradient back over the reduced axes (as a fresh array)."""
    if not keepdims:
        g = np.expand_dims(g, axes)
    out = np.empty(in_shape, dtype=g.dtype)
    out[...] = g
    return out


class _Reduce(Function):
    @classmethod
    def ir_attrs(cls, axes, keepdims):
        return {"axes": [int(a) for a in axes], "keepdims": int(bool(keepdims))}


class Sum(_Reduce):
    ir_op = "reduce_sum"

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return np.asarray(np.sum(x, axis=axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, g):
        return _expand_grad(g, ctx.shape, ctx.axes, ctx.keepdims)


class Mean(_Reduce):
    ir_op = "reduce_mean"

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        ctx.count = int(np.prod([x.shape[a] for a in axes]))
        y = np.mean(x, axis=axes, keepdims=keepdims)
        if x.dtype.kind != "f":  # the mean of ints is a float32 tensor, not float64
            y = y.astype(np.float32)
        return np.asarray(y)

    @staticmethod
    def backward(ctx, g):
        return _expand_grad(g * (1 / ctx.count), ctx.shape, ctx.axes, ctx.keepdims)


class Max(_Reduce):
    """Gradient is shared equally among tied maxima."""
    ir_op = "reduce_max"

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        m = np.max(x, axis=axes, keepdims=True)
        ctx.x, ctx.m, ctx.axes, ctx.keepdims = x, m, axes, keepdims
        return m if keepdims else np.squeeze(m, axis=axes)

    @staticmethod
    def backward(ctx, g):
        mask = ctx.x == ctx.m
        count = mask.sum(axis=ctx.axes, keepdims=True)
        if not ctx.keepdims:
            g = np.expand_dims(g, ctx.axes)
        return (g / count).astype(g.dtype, copy=False) * mask


class ArgMax(Function):
    ir_op = None
    differentiable = False

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return np.asarray(np.argmax(x, axis=axis, keepdims=keepdims))


def reduce_sum(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return Sum.apply(x, axes=normalize_axes(axis, x.ndim), keepdims=bool(keepdims))


def reduce_mean(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return Mean.apply(x, axes=normalize_axes(axis, x.ndim), keepdims=bool(keepdims))


def reduce_max(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return Max.apply(x, axes=normalize_axes(axis, x.ndim), keepdims=bool(keepdims))
