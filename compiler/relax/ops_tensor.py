"""Lowering rules: element-wise maths and tensor shuffling (Relax ops / TE)."""
from __future__ import annotations

import math

import numpy as np
from tvm import relax, te, tirx, topi

from ..ir.layout import channels_last
from .common import clamp_keeping_nan, dtype_of, elementwise, prim_dtype, shape_of


def _unary(fn):
    return lambda ctx, node, args, attrs: fn(args[0])


def _binary(fn):
    return lambda ctx, node, args, attrs: fn(args[0], args[1])


def _relu(ctx, node, args, attrs):
    return elementwise(ctx, args[0], lambda v: clamp_keeping_nan(v, 0.0, None, ctx.target), "relu")


def _hardswish(ctx, node, args, attrs):
    def fn(v):
        dt = prim_dtype(v)
        gate = v * tirx.const(1.0 / 6.0, dt) + tirx.const(0.5, dt)
        return v * clamp_keeping_nan(gate, 0.0, 1.0, ctx.target)
    return elementwise(ctx, args[0], fn, "hardswish")


def _hardsigmoid(ctx, node, args, attrs):
    alpha, beta = attrs["alpha"], attrs["beta"]
    return elementwise(ctx, args[0], lambda v: clamp_keeping_nan(
        v * tirx.const(alpha, prim_dtype(v)) + tirx.const(beta, prim_dtype(v)), 0.0, 1.0, ctx.target), "hardsigmoid")


def _leaky_relu(ctx, node, args, attrs):
    alpha = attrs["alpha"]
    # x < 0 is false for NaN, which passes through as in the interpreter
    return elementwise(ctx, args[0], lambda v: tirx.Select(v < tirx.const(0.0, prim_dtype(v)),
                                                           v * tirx.const(alpha, prim_dtype(v)), v), "leaky_relu")


def _clip(ctx, node, args, attrs):
    x = args[0]
    dt = dtype_of(x)
    lo, hi = attrs["min"], attrs["max"]
    if np.dtype(dt).kind in "iu":
        info = np.iinfo(dt)
        lo = None if lo is None else min(max(math.ceil(lo), info.min), info.max)
        hi = None if hi is None else max(min(math.floor(hi), info.max), info.min)
    if lo is None and hi is None:
        return x
    return elementwise(ctx, x, lambda v: clamp_keeping_nan(v, lo, hi, ctx.target), "clip")


def _sigmoid(ctx, node, args, attrs):
    return relax.op.sigmoid(args[0])


def _div(ctx, node, args, attrs):
    a, b = args
    if np.dtype(dtype_of(a)).kind in "iu":  # truncate toward zero (C / ONNX), like the interpreter
        return ctx.emit_te(lambda x, y: topi.trunc_divide(x, y), a, b, name="trunc_div")
    return relax.op.divide(a, b)


def _concat(ctx, node, args, attrs):
    return relax.op.concat(list(args), axis=attrs["axis"])


def _split(ctx, node, args, attrs):
    x = args[0]
    axis = attrs["axis"] % len(shape_of(x))
    bounds = [int(b) for b in np.cumsum(attrs["sizes"])[:-1]]
    tup = ctx.emit(relax.op.split(x, bounds, axis=axis))
    return [ctx.emit(relax.TupleGetItem(tup, i)) for i in range(len(attrs["sizes"]))]



def _reshape(ctx, node, args, attrs):
    return relax.op.reshape(args[0], tuple(ctx.value(node.outputs[0]).shape))


def _transpose(ctx, node, args, attrs):
    return relax.op.permute_dims(args[0], [int(p) for p in attrs["perm"]])


def _slice(ctx, node, args, attrs):
    x = args[0]
    shape = shape_of(x)
    rank = len(shape)
    start, step = [0] * rank, [1] * rank
    for s, e, a, st in zip(attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]):
        a %= rank
        start[a], _, step[a] = slice(s, e, st).indices(shape[a])
        step[a] = st
    out_shape = ctx.value(node.outputs[0]).shape
    if 0 in out_shape:
        raise ValueError("zero-sized slices are not supported by the lowering")

    def fcompute(t):
        return te.compute(out_shape, lambda *i: t[tuple(start[k] + i[k] * step[k] for k in range(rank))],
                          name="slice")
    return ctx.emit_te(fcompute, x, name="slice")


def _reduce(fn):
    def rule(ctx, node, args, attrs):
        x = args[0]
        axes = [a % len(shape_of(x)) for a in attrs["axes"]]
        if not axes:
            return x
        return fn(x, axes, bool(attrs["keepdims"]))
    return rule


def _softmax(ctx, node, args, attrs):
    return relax.op.nn.softmax(args[0], axis=attrs["axis"])


def _log_softmax(ctx, node, args, attrs):
    return relax.op.nn.log_softmax(args[0], axis=attrs["axis"])


def _pad(ctx, node, args, attrs):
    x = args[0]
    shape = shape_of(x)
    rank = len(shape)
    pads = attrs["pads"]
    begin, end = pads[:rank], pads[rank:]
    if any(p < 0 for p in pads):  # negative pads crop first
        x = ctx.emit(relax.op.strided_slice(
            x, list(range(rank)), [max(-b, 0) for b in begin],
            [d - max(-e, 0) for e, d in zip(end, shape)], assume_inbound=True))
        begin, end = [max(b, 0) for b in begin], [max(e, 0) for e in end]
    if not any(begin) and not any(end):
        return x
    mode = attrs["mode"]
    if mode == "constant":
        value = float(attrs["value"])
        return ctx.emit_te(lambda t: topi.nn.pad(t, list(begin), list(end), pad_value=value),
                           x, name="pad")
    if mode not in ("reflect", "edge"):
        raise ValueError(f"pad mode '{mode}' is not supported (constant, reflect, edge)")
    dims = shape_of(x)
    out_shape = tuple(d + b + e for d, b, e in zip(dims, begin, end))

    def source(i, k):
        """Input index read by output index i along axis k (NumPy 'reflect' / 'edge')."""
        d, j = dims[k], i - begin[k]
        if mode == "edge" or d == 1:
            return tirx.max(tirx.min(j, d - 1), 0)
        period = 2 * (d - 1)
        r = tirx.floormod(j, period)
        return tirx.Select(r < d, r, period - r)

    return ctx.emit_te(lambda t: te.compute(out_shape, lambda *i: t[tuple(source(i[k], k) for k in range(rank))],
                                            name="pad"), x, name="pad_" + mode)


def _channel_shuffle(ctx, node, args, attrs):
    x = args[0]
    shape = shape_of(x)
    g = attrs["groups"]
    if channels_last(attrs):   # [N, H, W, C]: the channel groups are the last axis
        c = shape[3]
        y = relax.op.reshape(x, tuple(shape[:3]) + (g, c // g))
        y = relax.op.permute_dims(y, [0, 1, 2, 4, 3])
        return relax.op.reshape(y, shape)
    n, c = shape[:2]
    y = relax.op.reshape(x, (n, g, c // g) + tuple(shape[2:]))
    perm = [0, 2, 1] + list(range(3, len(shape) + 1))
    y = relax.op.permute_dims(y, perm)
    return relax.op.reshape(y, shape)


def _identity(ctx, node, args, attrs):
    return args[0]


def _matmul(ctx, node, args, attrs):
    return relax.op.matmul(args[0], args[1])


LOWERINGS = {
    "relu": _relu,
    "identity": _identity,
    "neg": _unary(relax.op.negative),
    "sigmoid": _sigmoid,
    "tanh": _unary(relax.op.tanh),
    "exp": _unary(relax.op.exp),
    "log": _unary(relax.op.log),
    "sqrt": _unary(relax.op.sqrt),
    "hardswish": _hardswish,
    "hardsigmoid": _hardsigmoid,
    "leaky_relu": _leaky_relu,
    "clip": _clip,
    "add": _binary(relax.op.add),
    "sub": _binary(relax.op.subtract),
    "mul": _binary(relax.op.multiply),
    "div": _div,
    "pow": _binary(relax.op.power),
    "matmul": _matmul,
    "concat": _concat,
    "split": _split,
    "reshape": _reshape,
    "flatten": _reshape,
    "squeeze": _reshape,
    "unsqueeze": _reshape,
    "transpose": _transpose,
    "slice": _slice,
    "reduce_mean": _reduce(lambda x, a, k: relax.op.mean(x, a, k)),
    "reduce_sum": _reduce(lambda x, a, k: relax.op.sum(x, a, k)),
    "reduce_max": _reduce(lambda x, a, k: relax.op.max(x, a, k)),
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "pad": _pad,
    "channel_shuffle": _channel_shuffle,
}
