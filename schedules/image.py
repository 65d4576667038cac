"""Image preprocessing kernels: resize (ONNX Resize, linear / nearest) in NCHW or NHWC.
The per-row / per-column coordinate tables are computed once per call (O(OH + OW)); the output loop
is parallel over rows, vectorised over the width (NCHW) or the channels (NHWC; 3 channels are unrolled);
on CUDA the same compute is left to DLight."""
from __future__ import annotations

from tvm import s_tir

from . import compute
from .cpu_schedules import first_divisor
from .cuda import _for_dlight
from .registry import register_kernel

FLOATS = ("float32",)
PIXELS = FLOATS + ("uint8", "int8")   # nearest resizes integer pixels too (compiler/ir/image_ops.py)


def schedule_resize(func, channels_last):
    sch = s_tir.Schedule(func)
    blk = sch.get_sblock("out")
    n, a, b, c = sch.get_loops(blk)
    if channels_last:        # n, oh, ow, c: all channels of a pixel share the taps
        sch.parallel(sch.fuse(n, a))
        channels = int(sch.get(c).extent)
        width = first_divisor(channels, (16, 8), None)
        if width:            # many channels: contiguous vector loads per tap
            _, lanes = sch.split(c, [None, width])
            sch.vectorize(lanes)
        else:                # RGB: unrolled (vectorising w x c makes every lane divide by C: 1.8x slower)
            sch.unroll(c)
        return sch.mod["main"]
    sch.parallel(sch.fuse(n, a, b))    # n, c, oh, ow
    width = first_divisor(int(sch.get(c).extent), (16, 8, 4, 2), None)
    if width:
        _, lanes = sch.split(c, [None, width])
        sch.vectorize(lanes)
    return sch.mod["main"]


@register_kernel("resize", PIXELS, requires={"cpu"}, name="resize_generic", layouts=("NCHW", "NHWC"))
def resize_generic(attrs, in_types, out_type, target):
    """ONNX Resize of H, W: coordinate tables, then 1 (nearest) or 4 (linear) taps per output; parallel
    rows, vectorised width (NCHW) or channels (NHWC, unrolled when 3)."""
    return schedule_resize(compute.resize(attrs, in_types, out_type),
                           channels_last=attrs.get("layout", "NCHW") == "NHWC")


@register_kernel("resize", PIXELS, requires={"cuda"}, priority=50, name="resize_cuda", layouts=("NCHW", "NHWC"))
def resize_cuda(attrs, in_types, out_type, target):
    """As resize_generic, left unscheduled for DLight's GPU rules."""
    return _for_dlight(compute.resize(attrs, in_types, out_type, fenced=False), target)   # CUDA C: no llvm.*
