"""Generic kernels for channels-last (NHWC, attr layout="NHWC") integer ops on CPU targets (x86,
aarch64), so a planned graph never lacks a kernel (compiler/passes/layout_plan.py). They carry CPU
schedules (parallel loops), hence requires={"cpu"}: layout planning is never done for GPU targets.
The computes (and PrimFunc params) are those of compute.py with channels_last=True."""
from __future__ import annotations

from . import compute
from .constants import prep_requant
from .cpu_schedules import schedule_channel_sums, schedule_generic
from .registry import register_kernel

I8 = ("int8", "uint8")
NHWC = ("NHWC",)


@register_kernel("qconv2d", I8, requires={"cpu"}, priority=0, prepare_constants=prep_requant,
                 name="qconv2d_nhwc_generic", layouts=NHWC)
def qconv2d_nhwc_generic(attrs, in_types, out_type, target):
    """Any group; int32 accumulation of (x - zx) * w, requantize epilogue fused."""
    return schedule_generic(compute.qconv2d(attrs, in_types, out_type, channels_last=True), "acc", "out",
                            inline=())


@register_kernel("qglobal_avg_pool2d", I8, requires={"cpu"}, prepare_constants=prep_requant,
                 name="qglobal_avg_pool2d_nhwc_generic", layouts=NHWC)
def qgap_nhwc_generic(attrs, in_types, out_type, target):
    """acc = sum_{h,w} (x - zx) int32 with channels innermost (contiguous loads), then requantize."""
    return schedule_channel_sums(compute.qglobal_avg_pool2d(attrs, in_types, out_type, channels_last=True),
                                 channels_last=True)


@register_kernel("qavg_pool2d", I8, requires={"cpu"}, name="qavg_pool2d_nhwc_generic", layouts=NHWC)
def qavg_pool2d_nhwc_generic(attrs, in_types, out_type, target):
    """acc = sum_window (x - zx) (padding adds 0); y = clamp(requant(acc, mm[oh,ow], sm[oh,ow]) + zy)."""
    return schedule_generic(compute.qavg_pool2d(attrs, in_types, out_type, channels_last=True), "acc", "out",
                            inline=())
