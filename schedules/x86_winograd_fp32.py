"""x86 fp32 Winograd conv: ``conv2d_f32_nchw_winograd`` (requires avx512, priority 12).

3x3, stride 1, dilation 1, group 1 convs, F(m x m, 3 x 3) with a = m + 2 (matrices: winograd_matrices.py):

* filter transform at compile time (`prepare_constants`): U = G w G^T in float64, packed
  f32 [a*a, Op/16, C, 16] for the batched GEMM (O zero-padded to Op, a multiple of 16);
* input: x NCHW is copied once, padded and channels-last ("xh" [N, nH*m+2, nW*m+2, C]), so that the input
  transform ("tin" then "vin": V = BT d BT^T, [a*a, P, C], P = N*nH*nW tiles) runs on 16-channel vectors;
* a*a batched GEMMs ("gemm": M[e, p, o] = sum_c V[e, p, c] U[e, o/16, c, o%16]) with a register tile of
  pt tiles x oj*16 output channels, FMA vectorised over the output channels;
* output transform ("zt" then "out": y = AT M AT^T) on 16-channel vectors, bias and the fused activation
  (clip_min / clip_max) applied at the write-back to NCHW y.

The transforms are written as sums over the non-zero matrix entries only (`winograd_common.lincomb`),
selected by the unrolled transform index, so they cost their real additions, not a*a*a multiplies.

Params: x f32 [N,C,H,W], **u_packed f32 [a*a, Op/16, C, 16]**, (b f32 [O]) -> y [N,O,OH,OW].

Accuracy: fp32 Winograd rounds differently from the direct sum; against a float64 conv the error is
about 1e-6 (m = 2) to 1e-5 (m = 4) of the output's scale (tests: rel 1e-4 of max |y|).

When it applies and which m (`winograd_tile`, measured by `python bench/conv_algos.py` on Zen4, 1 thread,
against conv2d_f32_nchw_tiled): see that function's docstring. F(6x6) is not offered: its build did not
finish in 5 minutes (the 8-way Select chains of the transforms).
"""
from __future__ import annotations

from tvm import s_tir

from .cpu_schedules import first_divisor
from .fp32_packed_conv import packed_weight_prepare
from .registry import register_kernel
from .te_utils import create
from .winograd_common import (pack_winograd_weight, schedule_fp32_input, schedule_output_transform,
                              is_winograd_3x3_f32, unroll_then_vectorize, winograd_compute, winograd_out_type)
from .winograd_matrices import MAX_MULTIPLY_RATIO, multiply_ratio

NAME = "conv2d_f32_nchw_winograd"


def winograd_tile(attrs, in_types, out_type):
    """The output tile m of the Winograd conv for this node, or None when it is not a 3x3 stride-1
    dilation-1 group-1 fp32 conv with C and O multiples of 16 (those stay on the direct kernels).

    Rule (bench/conv_algos.py --shapes all, Zen4 1 thread, ratios to conv2d_f32_nchw_tiled): F(4x4, 3x3)
    on every such shape (56x56: C = 16..64 1.9-3.7x; 28x28: 2.6-4.9x; 14x14: 1.9-2.8x; 7x7 with C = 128 /
    256: 2.4x / 1.4x) except 7x7-class maps (OH or OW < 14) with C >= 512, where F(2x2) wins (2.0x against
    1.05x for F(4x4): 4 tiles per image no longer amortise streaming the 36 transformed 512x512 weight
    matrices, 38 MB; F(2x2) has 16 tiles and 16 matrices). Winograd never lost to direct in that table."""
    (N, C, H, W), _ = in_types[0]
    O = in_types[1][0][0]
    if not is_winograd_3x3_f32(attrs, in_types) or C % 16 or O % 16:
        return None
    OH, OW = out_type[0][2:]
    preferred = 2 if min(OH, OW) < 14 and C >= 512 else 4
    for m in (preferred, 2):   # a map too small for the preferred tile may still suit F(2x2)
        if multiply_ratio(m, OH, OW) <= MAX_MULTIPLY_RATIO:
            return m
    return None


def winograd_applies(attrs, in_types, out_type):
    return winograd_tile(attrs, in_types, out_type) is not None


def _pack_for_node(w, attrs, in_types):
    return pack_winograd_weight(w, winograd_tile(attrs, in_types, winograd_out_type(attrs, in_types)))


def gemm_tile(P, Op):
    """(pt, oj): pt tiles x oj 16-channel vectors per register tile (pt * oj + oj <= 30 zmm registers)."""
    oj = 2 if Op % 32 == 0 else 1
    pt = first_divisor(P, (12, 14, 8, 7, 6, 4, 3, 2) if oj == 2 else (14, 12, 8, 7, 6, 4, 3, 2))
    return pt, oj


def build_winograd(attrs, in_types, out_type, m, tile=None):
    """The scheduled PrimFunc of F(m x m, 3 x 3) (`tile` = (pt, oj) overrides gemm_tile, for benches)."""
    args, y = winograd_compute(attrs, in_types, m)
    sch = s_tir.Schedule(create(args + [y]))
    C = int(args[0].shape[1])
    cv = 16 if C % 16 == 0 else 1

    # padded channels-last staging, then the input transform: per (tile, 16 channels), tin then vin in registers
    schedule_fp32_input(sch, cv)

    # batched GEMM with a pt x oj*16 register tile
    gb = sch.get_sblock("gemm")
    ge, gq, go, grc = sch.get_loops(gb)
    P = int(sch.get(gq).extent)
    Op = int(sch.get(go).extent)
    pt, oj = tile or gemm_tile(P, Op)
    q0, q1 = sch.split(gq, [None, pt])
    o0, oo, o1 = sch.split(go, [None, oj, 16])
    sch.reorder(ge, q0, o0, grc, q1, oo, o1)
    # the register tile's sums go straight to "gemm" (LLVM keeps them in registers over the reduction): a
    # tile-sized staging buffer and its copy cost ResNet-18 fp32 1.7 % end to end
    sch.parallel(sch.fuse(ge, q0))
    unroll_then_vectorize(sch, [q1, oo, o1])   # before decompose_reduction (see x86_fp32's 1x1 conv)
    init = sch.decompose_reduction(gb, grc)
    unroll_then_vectorize(sch, sch.get_loops(init)[-3:])

    # output transform per (image, 16 channels, tile): zt, then the m x m outputs with bias + clip
    schedule_output_transform(sch, sch.get_loops(sch.get_sblock("out")), m, 16)
    return sch.mod["main"]


@register_kernel("conv2d", "float32", requires={"avx512"}, priority=12, applies=winograd_applies,
                 prepare_constants=packed_weight_prepare(NAME, _pack_for_node, per_node=True), needs_constant=(1,),
                 name=NAME)
def conv2d_f32_winograd(attrs, in_types, out_type, target):
    """Winograd F(m x m, 3 x 3) fp32 conv: compile-time filter transform, channels-last input transform,
    a*a batched GEMMs vectorised over 16 output channels, output transform with bias + activation fused."""
    return build_winograd(attrs, in_types, out_type, winograd_tile(attrs, in_types, out_type))
