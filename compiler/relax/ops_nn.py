"""Lowering rules: neural-network ops (convolution, linear, pools, batch norm).

conv2d / linear are heavy: they are computed by a kernel from schedules.select through
call_tir (see kernels.py). Pools are TE computes that follow the interpreter's
padding/ceil_mode/count rules exactly.
"""
from __future__ import annotations

import numpy as np
from tvm import relax, te, topi

from ..ir.layout import TO_NCHW, channels_last, permute
from ..ir.shape_inference import pool_output_size
from .common import const, dtype_of, fusable_activation, max_reducer, shape_of
from .fuse_conv_pairs import lower_conv_pair
from .fuse_residual import lower_conv_with_residual_add


# ---------------------------------------------------------------- heavy: conv2d / linear

def _conv2d(ctx, node, args, attrs):
    activation = fusable_activation(ctx, node)
    act_node = None
    if activation is not None:
        act_node, lo, hi = activation
        attrs = dict(attrs, clip_min=lo, clip_max=hi)   # the kernel's epilogue clamps (schedules.te_utils.clip_epilogue)
    if lower_conv_pair(ctx, node, args, attrs, act_node):
        return None   # one kernel computed this conv and its consumer (ctx.lowered_ahead)
    if act_node is not None:
        ctx.absorb(act_node)
    else:   # its only consumer may be a residual add (and that add's activation): one kernel call for all
        fused = lower_conv_with_residual_add(ctx, node, args, attrs)
        if fused is not None:
            return fused
    return ctx.call_kernel(node, args, attrs)


def _linear(ctx, node, args, attrs):
    return ctx.call_kernel(node, args, attrs)


# ---------------------------------------------------------------- batch norm

def _batch_norm(ctx, node, args, attrs):
    x, scale, bias, mean, var = args
    rank = len(shape_of(x))
    dt = dtype_of(x)
    r = lambda t: relax.op.reshape(t, (1, shape_of(t)[0]) + (1,) * (rank - 2))  # noqa: E731
    inv_std = relax.op.divide(const(1.0, dt), relax.op.sqrt(relax.op.add(r(var), const(attrs["epsilon"], dt))))
    y = relax.op.multiply(relax.op.multiply(relax.op.subtract(x, r(mean)), inv_std), r(scale))
    return relax.op.add(y, r(bias))


# ---------------------------------------------------------------- pools

def pool_geometry(in_shape, attrs):
    """(kh, kw, sh, sw, oh, ow, pads_begin, pads_end) with the ceil_mode extension in the end pads."""
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = attrs["kernel"], attrs["strides"], attrs["pads"]
    h, w = in_shape[2:]
    oh = pool_output_size(h, kh, sh, pt, pb, attrs["ceil_mode"])
    ow = pool_output_size(w, kw, sw, pl, pr, attrs["ceil_mode"])
    extra_h = max(0, (oh - 1) * sh + kh - (h + pt + pb))
    extra_w = max(0, (ow - 1) * sw + kw - (w + pl + pr))
    return kh, kw, sh, sw, oh, ow, (pt, pl), (pb + extra_h, pr + extra_w), (extra_h, extra_w)


def _window_te(x_shape, attrs, pad_value, reducer, name, nhwc=False):
    """Window reduction over H, W of an NCHW (or, with nhwc, NHWC) tensor."""
    nchw = permute(x_shape, TO_NCHW) if nhwc else tuple(x_shape)
    kh, kw, sh, sw, oh, ow, (pt, pl), (pb, pr), _ = pool_geometry(nchw, attrs)
    n, c = nchw[:2]

    def compute(x):
        begin, end = ([0, pt, pl, 0], [0, pb, pr, 0]) if nhwc else ([0, 0, pt, pl], [0, 0, pb, pr])
        xp = topi.nn.pad(x, begin, end, pad_value=pad_value) if (pt or pl or pb or pr) else x
        ry = te.reduce_axis((0, kh), name="ry")
        rx = te.reduce_axis((0, kw), name="rx")
        if nhwc:
            return te.compute((n, oh, ow, c), lambda b, y, xx, ch: reducer(
                xp[b, y * sh + ry, xx * sw + rx, ch], axis=[ry, rx]), name=name)
        return te.compute((n, c, oh, ow), lambda b, ch, y, xx: reducer(
            xp[b, ch, y * sh + ry, xx * sw + rx], axis=[ry, rx]), name=name)
    return compute


def _lowest(dtype):
    return float("-inf") if np.dtype(dtype).kind == "f" else int(np.iinfo(dtype).min)


def _max_pool2d(ctx, node, args, attrs):
    x = args[0]
    if not channels_last(attrs):   # a hand-scheduled kernel where the target has one (schedules/x86_pool_fp32.py)
        out = ctx.try_call_kernel(node, args, attrs)
        if out is not None:
            return out
    reducer = max_reducer(dtype_of(x), ctx.target)
    return ctx.emit_te(_window_te(shape_of(x), attrs, _lowest(dtype_of(x)), reducer, "max_pool",
                                  channels_last(attrs)), x, name="max_pool2d")


def avg_pool_counts(in_shape, attrs) -> np.ndarray:
    """Divisor per output cell, exactly as the interpreter counts it."""
    kh, kw, sh, sw, oh, ow, (pt, pl), (pb_ext, pr_ext), (extra_h, extra_w) = pool_geometry(in_shape, attrs)
    pb, pr = pb_ext - extra_h, pr_ext - extra_w
    counted = np.ones(in_shape[2:], dtype=np.float32)
    if attrs["count_include_pad"]:
        counted = np.pad(counted, ((pt, pb), (pl, pr)), constant_values=1)
        counted = np.pad(counted, ((0, extra_h), (0, extra_w)))
    else:
        counted = np.pad(counted, ((pt, pb + extra_h), (pl, pr + extra_w)))
    count = np.zeros((oh, ow), np.float32)
    for i in range(kh):
        for j in range(kw):
            count += counted[i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw]
    return count


def _avg_pool2d(ctx, node, args, attrs):
    x = args[0]
    dt = dtype_of(x)
    total = ctx.emit_te(_window_te(shape_of(x), attrs, 0.0, te.sum, "avg_pool_sum"), x, name="avg_pool_sum")
    count = avg_pool_counts(shape_of(x), attrs).astype(dt)
    return relax.op.divide(total, relax.const(count, dt))


def _global_avg_pool2d(ctx, node, args, attrs):
    return relax.op.mean(args[0], [2, 3], keepdims=True)


def _adaptive_avg_pool2d(ctx, node, args, attrs):
    return relax.op.nn.adaptive_avg_pool2d(args[0], tuple(int(v) for v in attrs["output_size"]))


LOWERINGS = {
    "conv2d": _conv2d,
    "linear": _linear,
    "batch_norm": _batch_norm,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "global_avg_pool2d": _global_avg_pool2d,
    "adaptive_avg_pool2d": _adaptive_avg_pool2d,
}
