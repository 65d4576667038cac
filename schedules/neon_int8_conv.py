"""The int8 direct conv for Armv8.0 NEON without dot product (Cortex-A53/A55/A72/A73): 8-bit widening
multiplies (``smull`` .8h from .8b) accumulated pairwise into int32 (``sadalp``), 4 instructions per 16 MACs.

Same staging, weight packing and folded bias as the dot-product conv (dot_product.py): the input is staged
as a padded NHWC int8 copy (x - 128 for uint8 input), the weight packed to [O/4, KH, KW, Cp/4, 4, 4]. What
differs is the accumulator: every output channel keeps two int32 partial sums (input channels 4c + {0,1}
and 4c + {2,3}), acc[n, h, w, o, j], so the 4x4 step needs no horizontal add (the pairs intrinsic of
neon_intrinsics.py); the epilogue adds the two sums, the bias and requantizes. Register tile: 4 output
columns x 2 groups of 4 channels (16 int32x4 accumulators; 4 x 4 spills), or 5-7 columns x 4 channels.
Integer math: bit-exact. The staging is dot_product.staged_input, as in DotProductConv.build.
PrimFunc params: x (NCHW or NHWC, unchanged), w_packed int8, bias_eff int32[O], mult, shift -> y.
"""
from __future__ import annotations

from tvm import s_tir, te

from .cpu_schedules import first_divisor
from .dot_product import activation_dims, round_up, staged_input
from .neon_intrinsics import NEON_PAIRS_NAME
from .node_attrs import conv_attrs, conv_out_hw
from .requant import RequantEpilogue, wrapping_add
from .te_utils import create

COLUMN_TILES = (4, 7, 6, 5, 3, 2, 1)   # output columns per tile: the first that divides OW
LANE_GROUPS = (2, 1)                   # groups of 4 output channels per tile (1 when the columns are > 4)


def build_neon_conv(attrs, in_types, out_type, channels_last):
    """The scheduled conv for NCHW (channels_last=False) or NHWC activations (input and output). O % 4 == 0."""
    s, p, d, _ = conv_attrs(attrs)
    N, C, H, W = activation_dims(in_types, channels_last)
    O, _, KH, KW = in_types[1][0]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    Cp = round_up(C, 4)
    x, xs = staged_input(attrs, in_types, "int8", channels_last)
    wp = te.placeholder((O // 4, KH, KW, Cp // 4, 4, 4), "int8", "w_packed")
    beff = te.placeholder((O,), "int32", "bias_eff")
    epilogue = RequantEpilogue(attrs, out_type)
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    rc = te.reduce_axis((0, Cp // 4), "rc")
    rk = te.reduce_axis((0, 2), "rk")
    acc = te.compute((N, OH, OW, O, 2), lambda nn, h, ww, o, j: te.sum(
        xs[nn, h * s[0] + rh * d[0], ww * s[1] + rw * d[1], rc * 4 + j * 2 + rk].astype("int32")
        * wp[o // 4, rh, rw, rc, o % 4, j * 2 + rk].astype("int32"), axis=[rh, rw, rc, rk]), name="acc")

    rj = te.reduce_axis((0, 2), "rj")
    pairs = te.compute((N, OH, OW, O), lambda nn, h, ww, o: te.sum(acc[nn, h, ww, o, rj], axis=rj), name="pairs")

    def result(nn, h, ww, o):
        return epilogue(wrapping_add(pairs[nn, h, ww, o], beff[o]), o)
    if channels_last:
        y = te.compute((N, OH, OW, O), result, name="out")
    else:
        y = te.compute((N, O, OH, OW), lambda nn, o, h, ww: result(nn, h, ww, o), name="out")
    # tile: columns x channel groups, reduction over taps and groups of 4 input channels, the intrinsic
    # innermost; the sum of the pairs and the epilogue per tile (the accumulators are a tile-sized buffer)
    columns = first_divisor(OW, COLUMN_TILES)
    groups = first_divisor(O // 4, LANE_GROUPS if columns <= 4 else (1,))
    sch = s_tir.Schedule(create([x, wp, beff] + epilogue.params + [y]))
    blk = sch.get_sblock("acc")
    ln, lh, lw, lo, lj, lrh, lrw, lrc, lrk = sch.get_loops(blk)
    o0, og, ol = sch.split(lo, [None, groups, 4])
    w0, w1 = sch.split(lw, [None, columns])
    sch.reorder(ln, lh, o0, w0, lrh, lrw, lrc, w1, og, ol, lj, lrk)
    sch.reverse_compute_at(sch.get_sblock("pairs"), w0)
    sch.reverse_compute_at(sch.get_sblock("out"), w0)
    sch.parallel(sch.fuse(ln, lh))
    init = sch.decompose_reduction(blk, lrh)
    sch.vectorize(sch.fuse(*sch.get_loops(init)[-3:]))
    sch.tensorize(ol, NEON_PAIRS_NAME)
    sch.unroll(og)
    sch.unroll(w1)
    xl = sch.get_loops(sch.get_sblock("xs"))
    sch.parallel(sch.fuse(xl[0], xl[1]))
    return sch.mod["main"]
