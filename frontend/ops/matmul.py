"""Matrix products: `matmul` (NumPy semantics, batched) and `linear` (y = x @ w.T + b)."""
import numpy as np

from ..autograd import Function
from ._util import as_tensor, fmt_shape, shape_error, unbroadcast
from ..errors import ShapeError


class MatMul(Function):
    ir_op = "matmul"

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        # Treat 1-d operands as the matrices NumPy promotes them to.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        na, nb = ctx.needs_input_grad
        ga = gb = None
        if na:
            ga = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if nb:
            gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """y = x @ w.T + b over the last axis of x (any leading dims)."""
    ir_op = "linear"

    @staticmethod
    def forward(ctx, x, w, b=None):
        ctx.x, ctx.w = x, w
        y = np.matmul(x, w.T)
        if b is not None:
            y += b
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.x, ctx.w
        need_x, need_w = ctx.needs_input_grad[:2]
        g2 = g.reshape(-1, g.shape[-1])
        gx = np.matmul(g, w) if need_x else None
        gw = np.matmul(g2.T, x.reshape(-1, x.shape[-1])) if need_w else None
        if len(ctx.needs_input_grad) == 2:
            return gx, gw
        gb = g2.sum(axis=0) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


def matmul(a, b):
    return MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias; weight is [out_features, in_features]."""
    x = as_tensor(x)
    if weight.ndim != 2:
        raise ShapeError(f"linear: expected weight of shape (out_features, in_features), "
                         f"got {fmt_shape(weight.shape)}")
    out_features, in_features = weight.shape
    if x.ndim < 1 or x.shape[-1] != in_features:
        raise shape_error("linear", f"(N, {in_features})", x.shape)
    if bias is None:
        return Linear.apply(x, weight)
    if tuple(bias.shape) != (out_features,):
        raise ShapeError(f"linear: expected bias of shape ({out_features},), got {fmt_shape(bias.shape)}")
    return Linear.apply(x, weight, bias)
