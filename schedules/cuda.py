"""CUDA kernels: the computes of compute.py left UNSCHEDULED (attr ``yuan.gpu_unscheduled``) so that the
cuda backend can clear ``tirx.is_scheduled`` and let TVM's DLight default GPU rules (Matmul / GEMV /
Reduction / GeneralReduction / Fallback) bind threads. The CPU schedules of generic.py (parallel /
vectorize) are not valid on a GPU. Covered: conv2d, linear (float32), qconv2d, qlinear and the integer
light ops requantize, qadd, qglobal_avg_pool2d, qavg_pool2d, lut (int8/uint8; requantize also
int16/int32), each with the same compute and constant preparation as its generic kernel. Where DLight's
own pick would break the build, _for_dlight schedules the kernel here with the next rule.

These are the fallbacks (priority 50). The per-shape rule for convs and linears on CUDA (highest priority
that applies; the sidecar's kernel list names the pick per layer; table also in schedules/README.md):
  int8, group 1, N % 16 == 0, sm_75+ (imma), a window and C >= 8 or 1x1 / linear with O >= 320
                                             -> cuda_imma_tiled.py tensor cores (WMMA s8)     prio 75
                                                (cuda_imma.py, its untiled A/B baseline:      prio 70)
  int8, group 1, other N or shape, sm_61+    -> cuda_dp4a.py   __dp4a implicit GEMM (IDP.4A)  prio 60
  int8 / fp32 depthwise (group == C)         -> cuda_depthwise.py  CUDA cores, shared window  prio 55
  fp32, group 1 conv, strided / 1x1 / deep  -> cuda_fp32_gemm.py  SGEMM tiles (no TF32)      prio 56
  fp32, group 1 conv, linear                 -> cuda_fp32.py   FFMA implicit GEMM (no TF32)   prio 55
  other grouped convs, the rest              -> here (DLight)                                 prio 50"""
from __future__ import annotations

import tvm
from tvm.s_tir import dlight as dl
from tvm.s_tir import transform as stt

from . import compute
from .constants import prep_requant
from .node_attrs import is_2d_input
from .registry import register_kernel

I8 = ("int8", "uint8")
CUDA = dict(requires={"cuda"}, priority=50)


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


@register_kernel("conv2d", "float32", name="conv2d_f32_nchw_cuda", **CUDA)
def conv2d_cuda(attrs, in_types, out_type, target):
    return _for_dlight(compute.conv2d_f32(attrs, in_types, out_type), target)


@register_kernel("linear", "float32", applies=is_2d_input, name="linear_f32_cuda", **CUDA)
def linear_cuda(attrs, in_types, out_type, target):
    return _for_dlight(compute.linear_f32(attrs, in_types, out_type), target)


@register_kernel("qconv2d", I8, prepare_constants=prep_requant, name="qconv2d_nchw_cuda", **CUDA)
def qconv2d_cuda(attrs, in_types, out_type, target):
    return _for_dlight(compute.qconv2d(attrs, in_types, out_type), target)


@register_kernel("qlinear", I8, prepare_constants=prep_requant, name="qlinear_cuda", **CUDA)
def qlinear_cuda(attrs, in_types, out_type, target):
    return _for_dlight(compute.qlinear(attrs, in_types, out_type), target)


@register_kernel("requantize", ("int8", "uint8", "int32", "int16"), prepare_constants=prep_requant,
                 name="requantize_cuda", **CUDA)
def requantize_cuda(attrs, in_types, out_type, target):
    return _for_dlight(compute.requantize(attrs, in_types, out_type), target)


@register_kernel("qadd", I8, name="qadd_cuda", **CUDA)
def qadd_cuda(attrs, in_types, out_type, target):
    return _for_dlight(compute.qadd(attrs, in_types, out_type), target)


@register_kernel("qglobal_avg_pool2d", I8, prepare_constants=prep_requant, name="qglobal_avg_pool2d_cuda", **CUDA)
def qglobal_avg_pool2d_cuda(attrs, in_types, out_type, target):
    return _for_dlight(compute.qglobal_avg_pool2d(attrs, in_types, out_type), target)


@register_kernel("qavg_pool2d", I8, name="qavg_pool2d_cuda", **CUDA)
def qavg_pool2d_cuda(attrs, in_types, out_type, target):
    return _for_dlight(compute.qavg_pool2d(attrs, in_types, out_type), target)


@register_kernel("lut", I8, name="lut_cuda", **CUDA)
def lut_cuda(attrs, in_types, out_type, target):
    return _for_dlight(compute.lut(attrs, in_types, out_type), target)
