"""CUDA kernels: the generic computes left UNSCHEDULED (attr ``yuan.gpu_unscheduled``) so that
compiler/cuda_support.schedule_for_gpu can clear ``tirx.is_scheduled`` and let TVM's DLight default GPU
rules (Matmul / GEMV / Reduction / GeneralReduction / Fallback) bind threads.  The CPU schedules in
generic.py (parallel / vectorize) are not valid on a GPU.  Covered: conv2d, linear (float32) and
qconv2d, qlinear (int8/uint8).  Other integer ops still get CPU schedules and fail on cuda
with a clear BuildError."""
from __future__ import annotations

from . import generic
from .registry import register_kernel

I8 = ("int8", "uint8")


def _mark(f):
    return f.with_attr("yuan.gpu_unscheduled", True)


@register_kernel("conv2d", "float32", requires={"cuda"}, priority=50, name="conv2d_f32_nchw_cuda")
def conv2d_cuda(attrs, in_types, out_type, target):
    return _mark(generic._conv2d_f32_func(attrs, in_types, out_type))


@register_kernel("linear", "float32", requires={"cuda"}, priority=50,
                 applies=lambda a, it, ot: len(it[0][0]) == 2, name="linear_f32_cuda")
def linear_cuda(attrs, in_types, out_type, target):
    return _mark(generic._linear_f32_func(attrs, in_types, out_type))


@register_kernel("qconv2d", I8, requires={"cuda"}, priority=50, prepare_constants=generic._prep_requant,
                 name="qconv2d_nchw_cuda")
def qconv2d_cuda(attrs, in_types, out_type, target):
    return _mark(generic._qconv_func(attrs, in_types, out_type))


@register_kernel("qlinear", I8, requires={"cuda"}, priority=50, prepare_constants=generic._prep_requant,
                 name="qlinear_cuda")
def qlinear_cuda(attrs, in_types, out_type, target):
    return _mark(generic._qlinear_func(attrs, in_types, out_type))
