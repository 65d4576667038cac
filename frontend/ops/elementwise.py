"""Element-wise ops: arithmetic with broadcasting, unary math, activations, comparisons."""
import numpy as np

from ..autograd import Function
from ._util import unbroadcast

# ------------------------------------------------------------------ binary arithmetic


class Add(Function):
    ir_op = "add"

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, sa) if na else None), (unbroadcast(g, sb) if nb else None)


class Sub(Function):
    ir_op = "sub"

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, sa) if na else None), (unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    ir_op = "mul"

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g * b, a.shape) if na else None), (unbroadcast(g * a, b.shape) if nb else None)


class Div(Function):
    ir_op = "div"

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        na, nb = ctx.needs_input_grad
        ga = unbroadcast(g / b, a.shape) if na else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if nb else None
        return ga, gb


class Pow(Function):
    ir_op = "pow"

    @staticmethod
    def forward(ctx, a, b):
        y = a * a if (b.ndim == 0 and b == 2) else np.power(a, b)
        ctx.a, ctx.b, ctx.y = a, b, y
        return y

    @staticmethod
    def backward(ctx, g):
        a, b, y = ctx.a, ctx.b, ctx.y
        na, nb = ctx.needs_input_grad
        ga = unbroadcast(g * b * np.power(a, b - 1), a.shape) if na else None
        gb = None
        if nb:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0)
            gb = unbroadcast(g * y * log_a, b.shape)
        return ga, gb


# ------------------------------------------------------------------ unary math


class Neg(Function):
    ir_op = "neg"

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return -g


class Exp(Function):
    ir_op = "exp"

    @staticmethod
    def forward(ctx, x):
        ctx.y = np.exp(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        return g * ctx.y


class Log(Function):
    ir_op = "log"

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return np.log(x)

    @staticmethod
    def backward(ctx, g):
        return g / ctx.x


class Sqrt(Function):
    ir_op = "sqrt"

    @staticmethod
    def forward(ctx, x):
        ctx.y = np.sqrt(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        return g / (2 * ctx.y)


class Abs(Function):
    ir_op = None  # no abs in the IR table

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return np.abs(x)

    @staticmethod
    def backward(ctx, g):
        return g * np.sign(ctx.x)


class Cast(Function):
    ir_op = None  # the IR has no cast op

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.in_dtype) if ctx.in_dtype.kind == "f" else None


# ------------------------------------------------------------------ activations


def _clamp_(a, lo, hi):
    """Clamp `a` in place to [lo, hi] and return it."""
    np.maximum(a, lo, out=a)
    return np.minimum(a, hi, out=a)


class Relu(Function):
    ir_op = "relu"

    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        ctx.y = y
        return y

    @staticmethod
    def backward(ctx, g):
        return g * (ctx.y > 0)  # multiplying by a bool mask is ~6x faster than np.where


class Sigmoid(Function):
    ir_op = "sigmoid"

    @staticmethod
    def forward(ctx, x):
        # 0.5 * (1 + tanh(x / 2)) cannot overflow, unlike 1 / (1 + exp(-x)).
        y = np.tanh(x * 0.5)
        y += 1
        y *= 0.5
        ctx.y = y
        return y

    @staticmethod
    def backward(ctx, g):
        y = ctx.y
        return g * y * (1 - y)


class Tanh(Function):
    ir_op = "tanh"

    @staticmethod
    def forward(ctx, x):
        ctx.y = np.tanh(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        y = ctx.y
        return g * (1 - y * y)


class Clip(Function):
    ir_op = "clip"

    @staticmethod
    def forward(ctx, x, min=None, max=None):
        ctx.x, ctx.lo, ctx.hi = x, min, max
        y = x if min is None else np.maximum(x, min)
        if max is not None:
            y = np.minimum(y, max, out=y) if y is not x else np.minimum(x, max)
        return y

    @staticmethod
    def backward(ctx, g):
        x, lo, hi = ctx.x, ctx.lo, ctx.hi
        if lo is None:
            inside = x <= hi
        elif hi is None:
            inside = x >= lo
        else:
            inside = (x >= lo) & (x <= hi)
        return g * inside

    @classmethod
    def ir_attrs(cls, min=None, max=None):
        return {"min": None if min is None else float(min), "max": None if max is None else float(max)}


class Hardswish(Function):
    """x * relu6(x + 3) / 6 (PyTorch)."""
    ir_op = "hardswish"

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        gate = x + 3
        _clamp_(gate, 0, 6)  # in place; np.clip is several times slower
        gate *= 1 / 6
        return x * gate

    @staticmethod
    def backward(ctx, g):
        x = ctx.x
        # slope: 0 below -3, x/3 + 1/2 on [-3, 3], 1 above 3 (PyTorch)
        slope = x * (1 / 3)
        slope += 0.5
        slope *= (x >= -3) & (x <= 3)
        slope += x > 3
        return g * slope


class Hardsigmoid(Function):
    """relu6(x + 3) / 6 (PyTorch) == max(0, min(1, x / 6 + 0.5))."""
    ir_op = "hardsigmoid"

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        y = x * (1 / 6)
        y += 0.5
        return _clamp_(y, 0, 1)

    @staticmethod
    def backward(ctx, g):
        x = ctx.x
        return g * ((x > -3) & (x < 3)) * (1 / 6)

    @classmethod
    def ir_attrs(cls):
        return {"alpha": 1.0 / 6.0, "beta": 0.5}


# ------------------------------------------------------------------ comparisons (no gradient)


class _Comparison(Function):
    ir_op = None
    differentiable = False
    compare = None

    @classmethod
    def forward(cls, ctx, a, b):
        return cls.compare(a, b)


class Less(_Comparison):
    compare = staticmethod(np.less)


class LessEqual(_Comparison):
    compare = staticmethod(np.less_equal)


class Equal(_Comparison):
    compare = staticmethod(np.equal)


class NotEqual(_Comparison):
    compare = staticmethod(np.not_equal)


# ------------------------------------------------------------------ functional wrappers


def relu(x):
    return Relu.apply(x)


def relu6(x):
    return Clip.apply(x, min=0.0, max=6.0)


def clip(x, min=None, max=None):
    if min is None and max is None:
        return x
    return Clip.apply(x, min=min, max=max)


def hardswish(x):
    return Hardswish.apply(x)


def hardsigmoid(x):
    return Hardsigmoid.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def tanh(x):
    return Tanh.apply(x)


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)
