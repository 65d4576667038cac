"""softmax / log_softmax along one axis, shifted by the max for numerical stability."""
import numpy as np

from ..autograd import Function
from ._util import as_tensor, normalize_axis


def log_softmax_array(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    shifted -= np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return shifted


class Softmax(Function):
    ir_op = "softmax"

    @staticmethod
    def forward(ctx, x, axis):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        e /= np.sum(e, axis=axis, keepdims=True)
        ctx.y, ctx.axis = e, axis
        return e

    @staticmethod
    def backward(ctx, g):
        y = ctx.y
        gy = g * y
        gy -= y * np.sum(gy, axis=ctx.axis, keepdims=True)
        return gy

    @classmethod
    def ir_attrs(cls, axis):
        return {"axis": int(axis)}


class LogSoftmax(Function):
    ir_op = "log_softmax"

    @staticmethod
    def forward(ctx, x, axis):
        y = log_softmax_array(x, axis)
        ctx.y, ctx.axis = y, axis
        return y

    @staticmethod
    def backward(ctx, g):
        return g - np.exp(ctx.y) * np.sum(g, axis=ctx.axis, keepdims=True)

    @classmethod
    def ir_attrs(cls, axis):
        return {"axis": int(axis)}


def softmax(x, axis=-1):
    x = as_tensor(x)
    return Softmax.apply(x, axis=normalize_axis(axis, x.ndim))


def log_softmax(x, axis=-1):
    x = as_tensor(x)
    return LogSoftmax.apply(x, axis=normalize_axis(axis, x.ndim))
