"""Lowering rules: quantize / dequantize (SPEC §3) and the integer ops (SPEC §5)."""
from __future__ import annotations

import numpy as np
from tvm import relax, te, tirx

from ..ir.quant_params import quant_range, storage_dtype
from .common import clamp_nan_to_low, dtype_of, shape_of
from .fuse_residual import lower_conv_with_residual_add
from .qlinear_as_conv import lower_qlinear_as_pointwise_conv


def _as_vector(ctx, param):
    """Parameters enter the TE compute as 1-D tensors: [1] per tensor, [C] per axis."""
    shape = shape_of(param)
    size = int(np.prod(shape)) if shape else 1
    return param if len(shape) == 1 else ctx.emit(relax.op.reshape(param, (size,)))


def _param_index(rank, axis, param):
    """How element index i of x reads a per-tensor or per-axis parameter vector."""
    if axis is None or shape_of(param)[0] == 1:
        return lambda p, i: p[0]
    ax = axis % rank
    return lambda p, i: p[i[ax]]


def _param_inputs(ctx, x, scale, zp, axis):
    """TE inputs [x, scale(, zp)] with the parameters as vectors, and their element readers (z_idx None
    without a zero point)."""
    rank = len(shape_of(x))
    scale = _as_vector(ctx, scale)
    zp = _as_vector(ctx, zp) if zp is not None else None
    s_idx = _param_index(rank, axis, scale)
    z_idx = _param_index(rank, axis, zp) if zp is not None else None
    inputs = [x, scale] + ([zp] if zp is not None else [])
    return inputs, s_idx, z_idx


def _quantize(ctx, node, args, attrs):
    """q = clamp(nearbyint(x / s) + z, qmin, qmax): float32 division, round half to even; +-inf
    saturate and NaN becomes qmin, as integer_spec.quantize (a float->int cast of NaN is undefined)."""
    x, scale, zp = args
    qmin, qmax = quant_range(attrs["bits"], bool(attrs["signed"]), bool(attrs["narrow_range"]))
    out_dtype = storage_dtype(attrs["bits"], bool(attrs["signed"]))
    fdt = dtype_of(x)
    inputs, s_idx, z_idx = _param_inputs(ctx, x, scale, zp, attrs["axis"])

    def compute(xt, st, zt=None):
        def body(*i):
            s = s_idx(st, i).astype(fdt)
            q = tirx.nearbyint(xt[i] / s)
            if zt is not None:
                q = q + z_idx(zt, i).astype(fdt)
            q = clamp_nan_to_low(q, qmin, qmax, ctx.target)
            return q.astype(out_dtype)
        return te.compute(xt.shape, body, name="quantize")
    return ctx.emit_te(compute, *inputs, name="quantize")


def _dequantize(ctx, node, args, attrs):
    """y = float(q - z) * s, the difference taken in int64."""
    x, scale, zp = args
    out_dtype = dtype_of(scale)
    inputs, s_idx, z_idx = _param_inputs(ctx, x, scale, zp, attrs["axis"])

    def compute(xt, st, zt=None):
        def body(*i):
            d = xt[i].astype("int64")
            if zt is not None:
                d = d - z_idx(zt, i).astype("int64")
            return d.astype(out_dtype) * s_idx(st, i)
        return te.compute(xt.shape, body, name="dequantize")
    return ctx.emit_te(compute, *inputs, name="dequantize")


LOWERINGS = {
    "quantize": _quantize,
    "dequantize": _dequantize,
}


# ---------------------------------------------------------------- integer ops (SPEC §5)
# All run as kernels from schedules.select (requantization multipliers/shifts become constant
# kernel inputs through schedules.kernel_inputs).

def _integer_rule(ctx, node, args, attrs):
    return ctx.call_kernel(node, args, attrs)


def _qlinear_rule(ctx, node, args, attrs):
    as_conv = lower_qlinear_as_pointwise_conv(ctx, node, args, attrs)   # where only the conv has a fast kernel
    return as_conv if as_conv is not None else ctx.call_kernel(node, args, attrs)


def _qconv2d_rule(ctx, node, args, attrs):
    fused = lower_conv_with_residual_add(ctx, node, args, attrs)   # conv + its residual qadd in one kernel
    return fused if fused is not None else ctx.call_kernel(node, args, attrs)


INTEGER_OPS = ("qconv2d", "qlinear", "qadd", "requantize", "qavg_pool2d", "qglobal_avg_pool2d", "lut")
LOWERINGS.update({op: _integer_rule for op in INTEGER_OPS})
LOWERINGS["qconv2d"] = _qconv2d_rule
LOWERINGS["qlinear"] = _qlinear_rule
