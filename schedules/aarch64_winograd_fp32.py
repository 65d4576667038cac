"""aarch64 fp32 Winograd conv: ``conv2d_f32_nchw_winograd_neon`` (requires aarch64 + neon, priority 12).

3x3, stride 1, dilation 1, group 1 convs as F(4x4, 3x3): the ISA-neutral TE of winograd_common.py
(`winograd_compute`: compile-time filter transform U = G w G^T packed f32 [36, Op/16, C, 16], channels-last padded
staging, input transform V = BT d BT^T [36, Pp, C], 36 batched GEMMs, output transform with bias and clip fused),
scheduled for NEON's 4-lane vectors:

* input and output transforms vectorised over 4 channels (the x86 kernel's 16 would spill: 36 values per tile);
* GEMM register tile: pt tiles (5, 4 or 6, the first that wastes at most 1/8 of the tiles when P is rounded up;
  winograd_common.gemm_tile) x 16 output channels = 4 pt accumulators. With C % 4 == 0 the reduction is unrolled
  by 4 channels: each tile's 4 V values are one vector load ("local" cache of vin) that feeds ``fmla`` by
  element (v.s[0..3]), so per 4 channels a tile costs one load instead of four ld1r / ldr s. Measured
  (bench/arm_fp32_layers.py, 64@56): pt 5 with the 4-channel unroll 13.4 M instructions, pt 6 15.1 M (24
  accumulators + 6 V + 4 weight vectors spill), pt 6 without the unroll 14.7 M, 16 x 32 tiles 19.1 M.

Params: x f32 [N,C,H,W], **u_packed f32 [36, Op/16, C, 16]**, (b f32 [O]) -> y [N,O,OH,OW]. Accuracy: about 1e-5
of max |y| against a float64 conv (tests: 1e-4).

F(6x6, 3x3) builds here (4-lane vectors, ~2 s) but costs more instructions on every ResNet-18 layer (64@56:
15.1 M against 14.7 M for F(4x4) with the same GEMM schedule; 512@7: 31.0 M against 17.3 M, its 8x8 tiles
mostly padding on a 7x7 map), so it is not offered.
"""
from __future__ import annotations

from tvm import s_tir

from .fp32_packed_conv import packed_weight_prepare
from .registry import register_kernel
from .te_utils import create
from .winograd_common import (gemm_tile, pack_winograd_weight, schedule_fp32_input, schedule_output_transform,
                              is_winograd_3x3_f32, unroll_then_vectorize, winograd_compute, winograd_out_type)
from .winograd_matrices import MAX_MULTIPLY_RATIO, multiply_ratio

NAME = "conv2d_f32_nchw_winograd_neon"
M = 4                   # output tile F(4x4, 3x3)
MIN_CHANNELS = 4        # see neon_winograd_tile
GEMM_TILES = (5, 4, 6)  # GEMM tile heights in order of preference (module docstring)


def neon_winograd_tile(attrs, in_types, out_type):
    """4 (F(4x4, 3x3)) where Winograd needs fewer instructions than conv2d_f32_nchw_neon, else None: fp32 3x3
    stride-1 dilation-1 group-1 convs with C >= MIN_CHANNELS on maps whose 4x4 tiles keep at most
    MAX_MULTIPLY_RATIO of the direct multiplies (winograd_matrices.py).

    bench/arm_fp32_layers.py --winograd all (qemu-aarch64 -cpu cortex-a76, instructions in the conv's code, C = O,
    pad 1): direct / Winograd = 4.1 (64@56), 4.7 (128@28), 4.0 (256@14), 4.1 (512@7), the ResNet-18 layers; 3.1-4.3
    on every other measured shape with C >= 20 (7x7 to 56x56 maps, C up to 512), 2.1 (16@56), 1.8 (8@28), 1.6 (4@28);
    C < 4 is not measured and stays direct."""
    if not is_winograd_3x3_f32(attrs, in_types) or in_types[0][0][1] < MIN_CHANNELS:
        return None
    OH, OW = out_type[0][2:]
    return M if multiply_ratio(M, OH, OW) <= MAX_MULTIPLY_RATIO else None


def neon_winograd_applies(attrs, in_types, out_type):
    return neon_winograd_tile(attrs, in_types, out_type) is not None


def build_winograd_neon(attrs, in_types, out_type, m=M):
    """The scheduled PrimFunc of F(m x m, 3 x 3) for NEON (module docstring)."""
    (N, C, H, W), _ = in_types[0]
    OH, OW = out_type[0][2:]
    pt = gemm_tile(N * -(-OH // m) * -(-OW // m), GEMM_TILES)
    args, y = winograd_compute(attrs, in_types, m, pt)
    sch = s_tir.Schedule(create(args + [y]))
    lanes = 4 if C % 4 == 0 else 1

    schedule_fp32_input(sch, lanes)   # padded channels-last staging, input transform per (tile, 4 channels)

    # batched GEMM: pt tiles x 16 output channels, 4 input channels per step (one V vector per tile)
    gb = sch.get_sblock("gemm")
    ge, gq, go, grc = sch.get_loops(gb)
    q0, q1 = sch.split(gq, [None, pt])
    o0, o1 = sch.split(go, [None, 16])
    rc0, rc1 = sch.split(grc, [None, lanes])
    sch.reorder(ge, q0, o0, rc0, rc1, q1, o1)
    cw = sch.cache_write(gb, 0, "global")
    sch.reverse_compute_at(cw, o0)
    sch.parallel(sch.fuse(ge, q0))
    unroll_then_vectorize(sch, [q1, o1])   # before decompose_reduction (see x86_fp32's 1x1 conv)
    if lanes > 1:
        sch.unroll(rc1)
        vr = sch.cache_read(gb, 0, "global")   # "global": on the stack, kept in registers; "local" is heap workspace in TVM 0.27
        sch.compute_at(vr, rc0)
        unroll_then_vectorize(sch, sch.get_loops(vr)[-2:])
    init = sch.decompose_reduction(gb, rc0)
    for b in (init, cw):
        unroll_then_vectorize(sch, sch.get_loops(b)[-2:])

    # output transform per (image, 16 channels, tile), vectorised over 4 of them, bias + clip at the write-back
    schedule_output_transform(sch, sch.get_loops(sch.get_sblock("out")), m, 4)
    return sch.mod["main"]


def _pack_for_node(w, attrs, in_types):
    return pack_winograd_weight(w, neon_winograd_tile(attrs, in_types, winograd_out_type(attrs, in_types)))


@register_kernel("conv2d", "float32", requires={"aarch64", "neon"}, priority=12, applies=neon_winograd_applies,
                 prepare_constants=packed_weight_prepare(NAME, _pack_for_node, per_node=True), needs_constant=(1,),
                 name=NAME)
def conv2d_f32_winograd_neon(attrs, in_types, out_type, target):
    """Winograd F(4x4, 3x3) fp32 conv for NEON: compile-time filter transform, 4-channel transforms, 36 batched
    GEMMs of pt tiles x 16 output channels with fmla by element, output transform with bias + activation fused."""
    return build_winograd_neon(attrs, in_types, out_type, neon_winograd_tile(attrs, in_types, out_type))
