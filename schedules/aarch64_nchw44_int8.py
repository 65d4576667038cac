"""int8 conv on Arm dotprod in the NCHW44 layout (MegEngine's NCHW44_DOT): activations [N, C/4, H, W, 4],
the 4 channels of one pixel in one 32-bit word, C zero-padded to a multiple of 4 (the padding channels hold
the zero point; they meet zero weights, so any value works).

``qconv2d_int8_nchw44_sdot`` (requires aarch64 + dotprod, priority 10, layout "NCHW44"): x int8/uint8
[N, C4, H, W, 4] -> y [N, O4, OH, OW, 4] (O4 = ceil(O / 4); output channels >= O hold the output zero point,
as the next NCHW44 layer expects). No planner produces layout NCHW44 yet, so no model compiles to it: the
kernel exists to measure the layout against the NHWC sdot conv (bench/arm_nchw44.py).

* Staging: a padded copy [N, C4, Hp, s, Wq, 4] in int8 (x - 128 for uint8 input, the zero point in the
  pads), its columns split by phase of the column stride s, so that the words of consecutive output columns
  are consecutive for every stride; Wq covers the output columns rounded up to the register tile. A 1-tap
  direction (1x1 convs) stages only the rows / columns its stride reads.
* The same weight packing, folded bias (bias_eff, zero-padded to 4 * O4) and requantize as the NHWC sdot
  conv (dot_product.py, requant.py): params x, w_packed int8 [O4, KH, KW, C4, 4, 4], bias_eff int32 [4 * O4],
  mult, shift -> y. No fused residual add.
* Inner step (aarch64_nchw44_intrin.py): one ``ldr q`` = 4 columns' words, one weight register = 4 output x
  4 input channels, 4 indexed ``sdot``. Register tile: `blocks` x 4 columns x `groups` x 4 output channels,
  4 * blocks * groups accumulators + blocks input + groups weight registers (`nchw44_tile`). The write-back
  requantizes the registers, 4 columns x 4 channels per vector, where the tile divides the map and O % 4 == 0;
  else a separate unrolled write-back skips the padded columns / sets the padded channels.
Integer arithmetic is exact: bit-identical to the NumPy reference.
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from .aarch64_nchw44_intrin import NCHW44_SDOT
from .depthwise_f32_tile import phase_split_extent
from .dot_product import folded_constants, pack_conv_weight, round_up, staging_offset
from .intrinsics import SDOT
from .node_attrs import conv_attrs, conv_out_hw, is_dense_int8_conv
from .registry import register_kernel
from .requant import RequantEpilogue, wrapping_add
from .te_utils import create, image_cell

LAYOUT = "NCHW44"
NAME = "qconv2d_int8_nchw44_sdot"
# (column blocks of 4, groups of 4 output channels): at most 31 of the 32 vector registers
TILES = ((3, 2), (2, 3), (2, 2), (1, 6), (6, 1), (1, 4), (4, 1), (1, 3), (3, 1), (1, 2), (2, 1), (1, 1))


def to_nchw44(x, fill):
    """An NCHW array in NCHW44, the padding channels set to `fill` (the zero point)."""
    n, c, h, w = x.shape
    padded = np.full((n, round_up(c, 4), h, w), fill, x.dtype)
    padded[:, :c] = x
    return np.ascontiguousarray(padded.reshape(n, -1, 4, h, w).transpose(0, 1, 3, 4, 2))


def nchw44_tile(out_width, o4):
    """(blocks, groups) of the register tile: the fewest instructions per useful MAC, counting the columns
    computed past the map's width and one load per input block and per weight group per sdot step."""
    width_blocks = (out_width + 3) // 4

    def cost(tile):
        blocks, groups = tile
        padded = round_up(width_blocks, blocks) * 4 / out_width
        return padded * (4 * blocks * groups + blocks + groups) / (4 * blocks * groups)
    return min((t for t in TILES if o4 % t[1] == 0), key=cost)


def _applies(attrs, in_types, out_type):
    return len(in_types[0][0]) == 5 and in_types[0][0][4] == 4 and not attrs.get("fused_add") \
        and is_dense_int8_conv(attrs, in_types, out_type)


def _prepare(attrs, in_types, arrays):
    """The NHWC sdot conv's constants, bias_eff zero-padded to 4 * O4 (padded channels requantize 0)."""
    consts = folded_constants(attrs, in_types, arrays, SDOT, pack_conv_weight, NAME)
    consts[2] = np.pad(consts[2], (0, -len(consts[2]) % 4))
    return consts


@register_kernel("qconv2d", ("int8", "uint8"), requires={"aarch64", "dotprod"}, priority=10, applies=_applies,
                 prepare_constants=_prepare, needs_constant=(1, 2), name=NAME, layouts=(LAYOUT,))
def qconv2d_nchw44_sdot(attrs, in_types, out_type, target):
    """Direct conv on NCHW44 activations: phase-split padded staging, 4 columns x 4 channels indexed sdot."""
    return build(attrs, in_types, out_type)


def build(attrs, in_types, out_type):
    s, (t, l, b_, r), d, _ = conv_attrs(attrs)
    (N, C4, H, W, _), xdt = in_types[0]
    O, C, KH, KW = in_types[1][0]
    if (C + 3) // 4 != C4:
        raise ValueError(f"{NAME}: input {list(in_types[0][0])} does not hold the weight's {C} channels")
    OH, OW = conv_out_hw(H, W, KH, KW, s, (t, l, b_, r), d)
    O4 = (O + 3) // 4
    blocks, groups = nchw44_tile(OW, O4)
    OWp = round_up(OW, 4 * blocks)
    _, Wq = phase_split_extent(s, d, OH, OWp, KH, KW)
    zx = int(attrs.get("x_zero_point", 0))
    offset = staging_offset(xdt, "int8")
    x = te.placeholder((N, C4, H, W, 4), xdt, "x")
    # a 1-tap direction stages only the rows / columns its stride reads
    rows, row_step = (OH, s[0]) if KH == 1 else (H + t + b_, 1)
    phases = s[1] if KW > 1 else 1

    def stage(nn, c4, hh, ph, wq, cc):
        inside, ih, iw = image_cell(hh * row_step, wq * s[1] + ph, t, l, H, W)
        v = x[nn, c4, ih, iw, cc].astype("int32") + offset
        return tirx.if_then_else(inside, v, tirx.const(zx + offset, "int32")).astype("int8")
    xs = te.compute((N, C4, rows, phases, Wq, 4), stage, name="xs")
    wp = te.placeholder((O4, KH, KW, C4, 4, 4), "int8", "w_packed")
    beff = te.placeholder((4 * O4,), "int32", "bias_eff")
    epilogue = RequantEpilogue(attrs, out_type)
    rc = te.reduce_axis((0, C4), "rc")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    rm = te.reduce_axis((0, 4), "rm")
    acc = te.compute((N, O4, OH, OWp, 4), lambda nn, o4, h, w, i: te.sum(
        xs[nn, rc, h * (s[0] // row_step) + rh * d[0], rw * d[1] % s[1], w + rw * d[1] // s[1], rm].astype("int32")
        * wp[o4, rh, rw, rc, i, rm].astype("int32"), axis=[rc, rh, rw, rm]), name="acc")

    def out(nn, o4, h, w, i):
        y = epilogue(wrapping_add(acc[nn, o4, h, w, i], beff[o4 * 4 + i]), te.min(o4 * 4 + i, O - 1))
        zero = tirx.const(epilogue.zero_point, epilogue.dtype)   # channels past O: the next layer's padding
        return y if O % 4 == 0 else tirx.if_then_else(o4 * 4 + i < O, y, zero)
    y = te.compute((N, O4, OH, OW, 4), out, name="out")

    sch = s_tir.Schedule(create([x, wp, beff] + epilogue.params + [y]))
    blk = sch.get_sblock("acc")
    ln, lo, lh, lw, li, lrc, lrh, lrw, lrm = sch.get_loops(blk)
    o0, og = sch.split(lo, [None, groups])
    w0, wb, wj = sch.split(lw, [None, blocks, 4])
    sch.reorder(ln, lh, o0, w0, lrc, lrh, lrw, og, wb, wj, li, lrm)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, w0)
    if OWp == OW and O % 4 == 0:   # the write-back requantizes the tile's registers, 4 columns per vector
        sch.reverse_compute_inline(sch.get_sblock("out"))
        *_, lg, lc, li = sch.get_loops(cw)
        lv0, lv = sch.split(sch.fuse(lc, li), [None, 16])
        sch.unroll(lg)
        sch.unroll(lv0)
        sch.vectorize(lv)
    else:   # columns or channels past the map: a separate, unrolled write-back (LLVM keeps the tile in registers)
        wb_blk = sch.get_sblock("out")
        sch.reverse_compute_at(wb_blk, w0)
        sch.vectorize(sch.get_loops(cw)[-1])
        sch.vectorize(sch.get_loops(wb_blk)[-1])   # 4 channels of one column
        for loop in sch.get_loops(wb_blk)[-3:-1]:
            sch.unroll(loop)
    sch.parallel(sch.fuse(ln, lh, o0))   # (image, row, channel block): a 7x7 map has only 7 rows
    init = sch.decompose_reduction(blk, lrc)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.tensorize(wj, NCHW44_SDOT)
    sch.unroll(og)
    sch.unroll(wb)
    xl = sch.get_loops(sch.get_sblock("xs"))
    sch.parallel(sch.fuse(xl[0], xl[1]))
    sch.vectorize(xl[-1])
    return sch.mod["main"]
