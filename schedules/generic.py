"""Generic NCHW kernels: correct on every llvm target, modestly scheduled (parallel + vectorise).
The computes (and PrimFunc params) are those of compute.py; the cuda kernels share them."""
from __future__ import annotations

from . import compute
from .constants import prep_requant
from .cpu_schedules import schedule_channel_sums, schedule_elementwise, schedule_generic, schedule_rows_cols
from .node_attrs import conv_attrs, is_2d_input
from .registry import register_kernel

I8 = ("int8", "uint8")


@register_kernel("conv2d", "float32", priority=0, name="conv2d_f32_nchw_generic")
def conv2d_f32_generic(attrs, in_types, out_type, target):
    """Direct NCHW conv (groups, dilation, asymmetric pads), bias fused in a second block."""
    return schedule_generic(compute.conv2d_f32(attrs, in_types, out_type), "acc", "out")


def _is_depthwise(attrs, in_types, out_type):
    g = conv_attrs(attrs)[3]
    return g > 1 and g == in_types[0][0][1] and in_types[1][0][1] == 1


@register_kernel("conv2d", "float32", priority=1, applies=_is_depthwise, name="dwconv2d_f32_nchw_generic")
def dwconv2d_f32(attrs, in_types, out_type, target):
    """Depthwise conv (group == C, weight [C*mult, 1, KH, KW])."""
    return schedule_generic(compute.conv2d_f32(attrs, in_types, out_type), "acc", "out")


@register_kernel("linear", "float32", priority=0, applies=is_2d_input, name="linear_f32_generic")
def linear_f32_generic(attrs, in_types, out_type, target):
    """y = x @ w.T + b; parallel over rows*cols."""
    return schedule_rows_cols(compute.linear_f32(attrs, in_types, out_type))


@register_kernel("qconv2d", I8, priority=0, prepare_constants=prep_requant, name="qconv2d_nchw_generic")
def qconv2d_generic(attrs, in_types, out_type, target):
    """int32 accumulation of (x - zx) * w, requantize epilogue fused (second block)."""
    return schedule_generic(compute.qconv2d(attrs, in_types, out_type), "acc", "out")


@register_kernel("qlinear", I8, priority=0, prepare_constants=prep_requant, name="qlinear_generic")
def qlinear_generic(attrs, in_types, out_type, target):
    return schedule_rows_cols(compute.qlinear(attrs, in_types, out_type))


@register_kernel("requantize", ("int8", "uint8", "int32", "int16"), prepare_constants=prep_requant,
                 name="requantize_generic")
def requantize_generic(attrs, in_types, out_type, target):
    """y = clamp(requant(x - zx) + zy); per-channel mult/shift along axis 1 (attr "axis", default 1)."""
    return schedule_elementwise(compute.requantize(attrs, in_types, out_type))


@register_kernel("qadd", I8, name="qadd_generic")
def qadd_generic(attrs, in_types, out_type, target):
    """y = clamp(((A*m_a + B*m_b + 2^(n-1)) >> n) + zy); constants baked in."""
    return schedule_elementwise(compute.qadd(attrs, in_types, out_type))


@register_kernel("qglobal_avg_pool2d", I8, prepare_constants=prep_requant, name="qglobal_avg_pool2d_generic")
def qgap_generic(attrs, in_types, out_type, target):
    """acc = sum_{h,w} (x - zx) int32, then requantize (mult/shift of length 1 or C)."""
    return schedule_channel_sums(compute.qglobal_avg_pool2d(attrs, in_types, out_type), channels_last=False)


@register_kernel("qavg_pool2d", I8, name="qavg_pool2d_generic")
def qavg_pool2d_generic(attrs, in_types, out_type, target):
    """acc = sum_window (x - zx) (pads/out-of-range add 0); y = clamp(requant(acc, mm[oh,ow], sm[oh,ow]) + zy)."""
    return schedule_generic(compute.qavg_pool2d(attrs, in_types, out_type), "acc", "out", inline=())


@register_kernel("lut", I8, name="lut_generic")
def lut_generic(attrs, in_types, out_type, target):
    """y = table[x - qmin(x.dtype)], table [256] of the output dtype."""
    return schedule_elementwise(compute.lut(attrs, in_types, out_type))
