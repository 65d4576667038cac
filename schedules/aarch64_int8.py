"""aarch64 int8 fast paths: Armv8.2 dot product (SDOT), and plain Armv8.0 NEON (smull/saddlp, no dotprod).

* ``qconv2d_int8_nchw_sdot`` / ``qconv2d_int8_nhwc_sdot`` (requires aarch64 + dotprod, priority 10): the
  dot-product conv of dot_product.py with ``sdot`` (s8 x s8 -> s32, 4 output channels x 4 input
  channels); where C % 16 == 0 the indexed form (sdot_lane_intrin.py: one ``ldr q`` feeds 16 channels,
  where ``ld1r`` + address ``add`` fed 4). The input is staged as int8 (x - 128 for uint8 input). Applies when group == 1 and
  O % 4 == 0; needs constant w (and b). Params: x, w_packed int8 [O/4, KH, KW, Cp/4, 4, 4],
  bias_eff int32 [O], mult, shift -> y.
* ``qlinear_int8_sdot`` (requires aarch64 + dotprod, priority 10): the same idea for qlinear: x [N,K] ->
  int8 staging (K padded to a multiple of 4), w_packed int8 [O/4, Kp/4, 4, 4], bias_eff, mult, shift.
  O % 4 == 0.
* ``qconv2d_int8_nchw_neon`` / ``qconv2d_int8_nhwc_neon`` / ``qlinear_int8_neon`` (requires aarch64 + neon,
  priority 5): for CPUs without dotprod, 8-bit widening multiplies: the conv of neon_int8_conv.py (smull +
  smlsl2 + sadalp, the reduction along the lanes; its own weight packing), qlinear with the smull/saddlp/addp
  4x4 intrinsic (neon_intrinsics.py, the sdot qlinear's params and packing).
Integer arithmetic is exact, so results are bit-identical to the generic kernels / the NumPy reference.
"""
from __future__ import annotations

from tvm import s_tir, te, tirx

from .dot_product import (DotProductConv, folded_constants, pack_linear_weight, round_up,
                          staging_offset)
from .intrinsics import SDOT
from .neon_int8_conv import build_neon_conv, prepare as neon_conv_prepare
from .neon_intrinsics import NEON_DOT
from .registry import register_kernel
from .sdot_lane_intrin import SDOT_LANE_NAME
from .requant import RequantEpilogue
from .te_utils import create

I8 = ("int8", "uint8")
DOTPROD = {"aarch64", "dotprod"}
NEON = {"aarch64", "neon"}

# Up to 8 columns x 2 groups of 4 output channels: 16 accumulators, 8 weight and up to 8 input registers for
# the indexed sdot (bench/arm_insn.py, ResNet-18: 170 M instructions; 8 x 4 spilled: 296 M with ld1r).
SDOT_CONV = DotProductConv(SDOT, "the sdot conv", column_tiles=(8, 7, 4, 6, 5, 3, 2, 1), lane_groups=(2, 1),
                           pads_output_channels=False, wide_intrin=SDOT_LANE_NAME, k_steps=4)
_SDOT_KERNEL = dict(requires=DOTPROD, priority=10, applies=SDOT_CONV.applies, prepare_constants=SDOT_CONV.prepare,
                    needs_constant=(1, 2))


@register_kernel("qconv2d", I8, name="qconv2d_int8_nchw_sdot", **_SDOT_KERNEL)
def qconv2d_sdot(attrs, in_types, out_type, target):
    """Direct conv, NHWC int8 staging + sdot over 4 output channels x 4 input channels."""
    return SDOT_CONV.build(attrs, in_types, out_type, channels_last=False)


@register_kernel("qconv2d", I8, name="qconv2d_int8_nhwc_sdot", layouts=("NHWC",), **_SDOT_KERNEL)
def qconv2d_sdot_nhwc(attrs, in_types, out_type, target):
    """The sdot conv reading and writing NHWC (layout planning): staging is a contiguous copy."""
    return SDOT_CONV.build(attrs, in_types, out_type, channels_last=True)


# the sdot conv's applicability (group 1, int8 weights, O % 4 == 0)
_NEON_KERNEL = dict(requires=NEON, priority=5, applies=SDOT_CONV.applies, prepare_constants=neon_conv_prepare,
                    needs_constant=(1, 2))


@register_kernel("qconv2d", I8, name="qconv2d_int8_nchw_neon", **_NEON_KERNEL)
def qconv2d_neon(attrs, in_types, out_type, target):
    """Direct conv, NHWC int8 staging + smull/smlsl2/sadalp along the reduction (neon_int8_conv.py)."""
    return build_neon_conv(attrs, in_types, out_type, channels_last=False)


@register_kernel("qconv2d", I8, name="qconv2d_int8_nhwc_neon", layouts=("NHWC",), **_NEON_KERNEL)
def qconv2d_neon_nhwc(attrs, in_types, out_type, target):
    """The NEON smull conv reading and writing NHWC (layout planning)."""
    return build_neon_conv(attrs, in_types, out_type, channels_last=True)


def _lin_applies(attrs, in_types, out_type):
    return len(in_types[0][0]) == 2 and in_types[1][0][0] % 4 == 0 and in_types[1][1] == "int8"


def _lin_kernel(intrin, name, requires, priority):
    """Register the qlinear kernel of one 4x4 int8 dot-product intrinsic."""
    def prepare(attrs, in_types, arrays):
        return folded_constants(attrs, in_types, arrays, intrin, pack_linear_weight, name)

    def builder(attrs, in_types, out_type, target):
        return _qlinear(intrin, attrs, in_types, out_type)
    builder.__doc__ = f"x [N,K] staged to int8 [N,Kp]; {intrin.name} over 4 outputs x 4 k."
    return register_kernel("qlinear", I8, requires=requires, priority=priority, applies=_lin_applies,
                           prepare_constants=prepare, needs_constant=(1, 2), name=name)(builder)


def _qlinear(intrin, attrs, in_types, out_type):
    """x [N,K] staged to int8 [N,Kp]; the intrinsic over 4 outputs x 4 k."""
    (N, K), xdt = in_types[0]
    O = in_types[1][0][0]
    Kp = round_up(K, 4)
    zx = int(attrs.get("x_zero_point", 0))
    offset = staging_offset(xdt, intrin.a_dtype)
    x = te.placeholder((N, K), xdt, "x")
    wp = te.placeholder((O // 4, Kp // 4, 4, 4), "int8", "w_packed")
    beff = te.placeholder((O,), "int32", "bias_eff")
    epilogue = RequantEpilogue(attrs, out_type)
    xs = te.compute((N, Kp), lambda i, k: tirx.if_then_else(
        k < K, x[i, te.min(k, K - 1)].astype("int32") + offset, tirx.const(zx + offset, "int32")).astype("int8"),
        name="xs")
    rk = te.reduce_axis((0, Kp), "rk")
    acc = te.compute((N, O), lambda i, j: te.sum(
        xs[i, rk].astype("int32") * wp[j // 4, rk // 4, j % 4, rk % 4].astype("int32"), axis=rk), name="acc")
    y = te.compute((N, O), lambda i, j: epilogue(acc[i, j] + beff[j], j), name="out")
    sch = s_tir.Schedule(create([x, wp, beff] + epilogue.params + [y]))
    blk = sch.get_sblock("acc")
    i, j, k = sch.get_loops(blk)
    j0, j1 = sch.split(j, [None, 4])
    k0, k1 = sch.split(k, [None, 4])
    sch.reorder(i, j0, k0, j1, k1)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, j0)
    sch.reverse_compute_inline(sch.get_sblock("out"))
    init = sch.decompose_reduction(blk, k0)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.tensorize(j1, intrin.name)
    return sch.mod["main"]


qlinear_sdot = _lin_kernel(SDOT, "qlinear_int8_sdot", DOTPROD, 10)
qlinear_neon = _lin_kernel(NEON_DOT, "qlinear_int8_neon", NEON, 5)
