"""CUDA fp32 kernels on the CUDA cores (FFMA): conv2d (NCHW, group 1) and linear, scheduled here instead of
being left to DLight (cuda.py, priority 50, which keeps grouped / depthwise convs).

The implicit GEMM of cuda_implicit_gemm.py (shared with the dp4a int8 kernels) in fp32:
* the weight is packed at compile time to f32 [Op, KH, KW, C] (input channels innermost, O zero-padded to
  Op, a multiple of the block's channel tile: 4 per thread x up to 16 channel threads);
* each thread accumulates `wi` output columns x 4 output channels in registers; per (tap, kc input
  channels) step the block stages the input window (zero padding and the NCHW -> channels-last transpose
  on the way) and the weight tile in shared memory, then every thread runs wi x 4 x kc FFMA (unrolled);
* the write-back adds the bias and applies the fused activation (clip_min / clip_max): one kernel per conv.
Tile rule (fp32_tiles): as dp4a_tiles, but up to 4 columns per thread (the first of 4, 2, 1 dividing OW)
and kc = the first of 16, 12, 8, 6, 4, 3, 2, 1 dividing C (the RGB stem: 3).

Precision: plain fp32 FFMA, no TF32 or FP16 (the summation order differs from the CPU kernels, so results
agree to rounding, 1e-4 relative). PrimFunc params: x f32 [N,C,H,W] (linear [N,K]), w_packed
f32 [Op,KH,KW,C], (b f32 [O]) -> y [N,O,OH,OW] (linear [N,O]).

`build(..., gpu=False)` is the same schedule with serial block/thread loops: it runs on a CPU (the tests
compare it with NumPy).
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from .compute import bias_placeholder
from .cuda_implicit_gemm import channel_tile, gemm_tiles, geometry, pack_gpu_weight, schedule_implicit_gemm
from .dot_product import round_up
from .fp32_packed_conv import packed_weight_prepare, ungrouped
from .node_attrs import is_2d_input
from .registry import register_kernel
from .te_utils import bias_clip, create, image_cell


def fp32_tiles(N, OH, OW, O, C):
    """The tile rule of the fp32 kernels (see the module docstring)."""
    return gemm_tiles(N, OH, OW, O, C, wi_choices=(4, 2, 1), kc_choices=(16, 12, 8, 6, 4, 3, 2, 1))


def pack_weight(w):
    """f32 [O, C, KH, KW] (or [O, K]) -> [Op, KH, KW, C], O padded to the block's channel tile."""
    return pack_gpu_weight(np.asarray(w, np.float32), channel_tile(w.shape[0]), 1)


prepare = packed_weight_prepare("the CUDA fp32 kernel", pack_weight)   # x, w_packed, (b)


def build(attrs, in_types, out_type, gpu=True):
    """The scheduled, thread-bound fp32 conv2d (x NCHW) or linear (x [N, K]) PrimFunc; gpu=False leaves the
    block/thread loops serial so that the TIR runs on a CPU."""
    N, C, H, W, O, KH, KW, OH, OW, s, p, d = geometry(attrs, in_types, out_type)
    tl = fp32_tiles(N, OH, OW, O, C)
    Op = round_up(O, tl.channels)
    linear = len(in_types[0][0]) == 2
    x = te.placeholder(tuple(in_types[0][0]), "float32", "x")
    wp = te.placeholder((Op, KH, KW, C), "float32", "w_packed")
    args = [x, wp]
    b = bias_placeholder(in_types, args, "float32", "b")

    def stage(nn, hh, ww, cc):           # the padded channels-last input, zeros in the padding
        if linear:
            return x[nn, cc]
        inside, ih, iw = image_cell(hh, ww, p[0], p[1], H, W)
        return tirx.if_then_else(inside, x[nn, cc, ih, iw], tirx.const(0.0, "float32"))

    xs = te.compute((N, H + p[0] + p[2], W + p[1] + p[3], C), stage, name="xs")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    rc = te.reduce_axis((0, C), "rc")
    acc = te.compute((N, OH, OW, Op), lambda nn, h, ww, o: te.sum(
        xs[nn, h * s[0] + rh * d[0], ww * s[1] + rw * d[1], rc] * wp[o, rh, rw, rc], axis=[rh, rw, rc]),
        name="acc")
    if linear:
        y = te.compute((N, O), lambda nn, o: bias_clip(acc[nn, 0, 0, o], b, o, attrs), name="out")
    else:
        y = te.compute((N, O, OH, OW), lambda nn, o, h, ww: bias_clip(acc[nn, h, ww, o], b, o, attrs), name="out")

    sch = s_tir.Schedule(create(args + [y]))
    c1, _, w2, o2 = schedule_implicit_gemm(sch, tl, 1, 4, gpu)
    for loop in (c1, w2, o2):            # a straight run of FFMA on registers per staged step
        sch.unroll(loop)
    return sch.mod["main"]


_KERNEL = dict(requires={"cuda"}, priority=55, prepare_constants=prepare, needs_constant=(1,))


@register_kernel("conv2d", "float32", applies=ungrouped, name="conv2d_f32_nchw_cuda_tiled", **_KERNEL)
def conv2d_f32_cuda_tiled(attrs, in_types, out_type, target):
    """Group-1 fp32 conv: implicit GEMM, shared-memory staged window and weights, register tile, fused
    bias + activation."""
    return build(attrs, in_types, out_type)


@register_kernel("linear", "float32", applies=is_2d_input, name="linear_f32_cuda_tiled", **_KERNEL)
def linear_f32_cuda_tiled(attrs, in_types, out_type, target):
    """fp32 linear: the conv kernel on a 1x1 map, rows of x tiled over threads."""
    return build(attrs, in_types, out_type)
