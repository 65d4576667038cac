"""CUDA kernels: the generic computes left UNSCHEDULED (attr ``yuan.gpu_unscheduled``) so that
compiler/cuda_support.schedule_for_gpu can clear ``tirx.is_scheduled`` and let TVM's DLight default GPU
rules (Matmul / GEMV / Reduction / GeneralReduction / Fallback) bind threads.  The CPU schedules in
generic.py (parallel / vectorize) are not valid on a GPU.  Covered: conv2d, linear (float32), qconv2d,
qlinear and the integer light ops requantize, qadd, qglobal_avg_pool2d, qavg_pool2d, lut (int8/uint8;
requantize also int16/int32), each with the same compute and constant preparation as its generic kernel.
Where DLight's own pick would break the build, _for_dlight schedules the kernel here with the next rule."""
from __future__ import annotations

from . import generic
from .common import prep_requant
from .registry import register_kernel

I8 = ("int8", "uint8")


def _mark(f):
    return f.with_attr("yuan.gpu_unscheduled", True)


_RULES = ("Matmul", "GEMV", "Reduction", "GeneralReduction", "Fallback")   # the cuda pipeline's order


def _for_dlight(f, target):
    """Leave ``f`` to the cuda pipeline's DLight rules (marked) when they handle it; otherwise schedule it
    here with the first rule, in the pipeline's order, that does.  TVM 0.27's DLight fails on some small
    conv shapes: GEMV's normalize asserts (depthwise conv, N=1, 1x1 output), and Reduction splits the
    grouped input channel (o // (O/g)) * C/g + rc into a spatial loop that it leaves inside its
    cross-thread reduction, which LowerCrossThreadReduction rejects (shufflenet_v1's grouped convs on a
    1x1 map).  The check costs one rule application; the result is cached with the kernel."""
    import tvm
    from tvm.s_tir import dlight as dl
    from tvm.s_tir import transform as stt

    first = True                          # is the candidate the rule the pipeline itself would take?
    for name in _RULES:
        try:
            with target.tvm:
                sch = getattr(dl.gpu, name)().apply(f, target.tvm, False)
            if sch is None:
                continue
            stt.LowerCrossThreadReduction()(tvm.IRModule({"main": sch.mod["main"]}))
        except Exception:                 # this rule would break the build: the pipeline must not see f
            first = False
            continue
        return _mark(f) if first else sch.mod["main"]
    return _mark(f)                       # no rule works: let the build report it


@register_kernel("conv2d", "float32", requires={"cuda"}, priority=50, name="conv2d_f32_nchw_cuda")
def conv2d_cuda(attrs, in_types, out_type, target):
    return _for_dlight(generic._conv2d_f32_func(attrs, in_types, out_type), target)


@register_kernel("linear", "float32", requires={"cuda"}, priority=50,
                 applies=lambda a, it, ot: len(it[0][0]) == 2, name="linear_f32_cuda")
def linear_cuda(attrs, in_types, out_type, target):
    return _for_dlight(generic._linear_f32_func(attrs, in_types, out_type), target)


@register_kernel("qconv2d", I8, requires={"cuda"}, priority=50, prepare_constants=prep_requant,
                 name="qconv2d_nchw_cuda")
def qconv2d_cuda(attrs, in_types, out_type, target):
    return _for_dlight(generic._qconv_func(attrs, in_types, out_type), target)


@register_kernel("qlinear", I8, requires={"cuda"}, priority=50, prepare_constants=prep_requant,
                 name="qlinear_cuda")
def qlinear_cuda(attrs, in_types, out_type, target):
    return _for_dlight(generic._qlinear_func(attrs, in_types, out_type), target)


# Integer light ops: same computes (and constant preparation) as the generic CPU kernels, left for DLight.
@register_kernel("requantize", ("int8", "uint8", "int32", "int16"), requires={"cuda"}, priority=50,
                 prepare_constants=generic._prep_requant_only, name="requantize_cuda")
def requantize_cuda(attrs, in_types, out_type, target):
    return _for_dlight(generic._requantize_func(attrs, in_types, out_type), target)


@register_kernel("qadd", I8, requires={"cuda"}, priority=50, name="qadd_cuda")
def qadd_cuda(attrs, in_types, out_type, target):
    return _for_dlight(generic._qadd_func(attrs, in_types, out_type), target)


@register_kernel("qglobal_avg_pool2d", I8, requires={"cuda"}, priority=50, prepare_constants=generic._prep_gap,
                 name="qglobal_avg_pool2d_cuda")
def qglobal_avg_pool2d_cuda(attrs, in_types, out_type, target):
    return _for_dlight(generic._qgap_func(attrs, in_types, out_type), target)


@register_kernel("qavg_pool2d", I8, requires={"cuda"}, priority=50, name="qavg_pool2d_cuda")
def qavg_pool2d_cuda(attrs, in_types, out_type, target):
    return _for_dlight(generic._qavg_pool2d_func(attrs, in_types, out_type), target)


@register_kernel("lut", I8, requires={"cuda"}, priority=50, name="lut_cuda")
def lut_cuda(attrs, in_types, out_type, target):
    return _for_dlight(generic._lut_func(attrs, in_types, out_type), target)
