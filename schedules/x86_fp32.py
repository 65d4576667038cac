"""x86 fp32 fast paths.

* ``conv2d_f32_nchw_tiled`` (requires avx512, priority 10): register-tiled direct conv (the TE of
  fp32_packed_conv.py), fp32 FMA on 16 output channels. Params: x f32 [N,C,H,W], w_packed f32
  [Op/16, KH, KW, C, 16], (b f32 [O]), (residual f32 shaped as y, with attrs ``fused_add``) -> y [N,O,OH,OW].
  Applies when group == 1 (O is zero-padded to Op, a multiple of 16, in the packed weight). Needs constant w. An
  unpadded conv reads x in place (no staging copy). With ``fused_add`` (compiler/relax/fuse_residual.py) the float
  add consuming the conv (and its relu / clip) is computed in the write-back: fp32_packed_conv.conv_output_value.
  A 1x1 conv on a narrow map writes its tile back one output row per channel (`rowwise_write_back`).
* ``linear_f32_tiled`` (requires avx512, priority 10): x f32 [N,K], w_packed f32 [Op/16, K, 16], (b [O])
  -> y [N,O].
* ``conv2d_f32_nchw_1x1`` (requires avx512, priority 11): 1x1 stride-1 unpadded group-1 conv as the NCHW GEMM
  y[o, pixels] = sum_c w[o, c] x[c, pixels], vectorised over 16 pixels (no padded copy, no transposition):
  register tile ot output channels x rt whole rows (`pointwise_tile`), bias + activation at write-back.
  Params: x, w_packed f32 [O/ot, C, ot], (b), (residual, with ``fused_add`` as the tiled kernel) -> y.
  MobileNetV2's expand/project layers on 112/56/28 maps measured 1.4-3.2x the tiled kernel (Zen4, 1 thread);
  14x14 / 7x7 maps have no row tile: x86_pointwise_flat_fp32.py takes 14x14 expand layers, the rest stay tiled.
* ``dwconv2d_f32_nchw_x86`` (requires x86, priority 5): depthwise conv2d (group == C, weight
  [C*mult, 1, KH, KW]). Params as the generic conv2d. Parallel over N*O; per output channel the padded
  input plane is staged once, split into ``stride_w`` column phases (staged[h, p, q] = padded[h, q*sw + p])
  so that the taps of a strided conv read unit-stride vectors too; a register tile of ht rows x vt output
  columns accumulates in registers (vectorised over the columns, taps unrolled), bias and activation are
  applied at write-back. Narrow stride-1 maps (7, 14 columns: `dw_narrow_width`) accumulate a whole 8 / 16-lane
  row and stage all planes before the convolution. Strided maps of more than 8 staged columns per phase stage
  their plane partitioned (depthwise_f32_tile.stage_plane, as on NEON): no per-value pad test where it copies,
  8-column groups de-interleaved from contiguous loads (MobileNetV2's stride-2 layers 0.46-0.72x the time).
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from .compute import bias_placeholder
from .cpu_schedules import first_divisor, weights_outweigh_map
from .fp32_packed_conv import (conv_output_value, pack_linear_f32, pack_w_f32, packed_conv2d_f32, packed_linear_f32,
                               packed_weight_prepare, residual_input, schedule_pad, ungrouped, write_back)
from .depthwise_f32_tile import (phase_split_dw_f32, phase_split_extent, phase_split_staging, stage_plane,
                                 tile_depthwise_f32)
from .node_attrs import conv_attrs, conv_out_hw, is_2d_input, is_depthwise_f32
from .registry import register_kernel
from .te_utils import create, image_cell


# ------------------------------------------------------------------ tiled conv
@register_kernel("conv2d", "float32", requires={"avx512"}, priority=10, applies=ungrouped,
                 prepare_constants=packed_weight_prepare("conv2d_f32_nchw_tiled", pack_w_f32, fuses_add=True),
                 needs_constant=(1,), name="conv2d_f32_nchw_tiled")
def conv2d_f32_tiled(attrs, in_types, out_type, target):
    """Register tile (ow-tile x 16 out channels), fp32 FMA vectorised over output channels."""
    args, y, Op = packed_conv2d_f32(attrs, in_types, fuses_add=True)
    (_, C, H, W), (KH, KW) = in_types[0][0], in_types[1][0][2:]
    O, OW = int(y.shape[1]), int(y.shape[3])
    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    ln, lh, lw, lo_, lrh, lrw, lrc = sch.get_loops(blk)
    # Register tile: wt output columns x oj*16 output channels (up to 28 of the 32 zmm registers as
    # accumulators). Two channel vectors per tile measured 15-40% faster on 3x3 layers with C >= 16;
    # the RGB stem (C = 3) is faster with one.
    oj = 2 if C >= 16 and Op % 32 == 0 else 1
    o0, oo, o1 = sch.split(lo_, [None, oj, 16])
    wt = first_divisor(OW, (14, 7, 6, 4, 3, 2, 1) if oj == 2 else (8, 7, 6, 4, 5, 3, 2, 1))
    w0, w1 = sch.split(lw, [None, wt])
    if weights_outweigh_map(H, W, Op, KH, KW):   # each channel block's weights once, over every row
        sch.reorder(ln, o0, lh, w0, lrh, lrw, lrc, w1, oo, o1)
        outer = (ln, o0, lh)
    else:                                        # each input row once, reused by every channel block
        sch.reorder(ln, lh, o0, w0, lrh, lrw, lrc, w1, oo, o1)
        outer = (ln, lh, o0)
    cw = write_back(sch, blk, w0, outer, o1, lrh, padded=Op != O)   # 7x7 maps: 7 x Op/32 chunks, not 7
    sch.unroll(w1)
    sch.unroll(oo)
    if rowwise_write_back(in_types, OW, wt, Op != O):
        pixel, channel = sch.get_loops(cw)[-2:]
        sch.reorder(channel, pixel)
        sch.vectorize(pixel)
    if any(conv_attrs(attrs)[1]):
        schedule_pad(sch, attrs, in_types)
    else:   # unpadded: read x in place (the staging copy cost 5% on MobileNetV2's 7x7 / 14x14 1x1 convs)
        sch.compute_inline(sch.get_sblock("pad"))
    return sch.mod["main"]


def rowwise_write_back(in_types, OW, wt, padded):
    """Whether the tiled conv writes its register tile back channel by channel, one whole output row (wt == OW
    pixels, a short vector) per channel, instead of one 16-channel vector per pixel scattered over 16 planes: a
    1x1 conv on a narrow map (7 x 7, 14 x 14) whose output lines are cold, as inside a model. MobileNetV2's
    160 -> 960 on 7 x 7 (Zen4, 1 thread, a fresh output buffer per call): 179 -> 151 us; in the model the 7 x 7
    and 14 x 14 1x1 layers 5-10% faster. Unpadded channels only (a padded tile writes through its own block)."""
    return tuple(in_types[1][0][2:]) == (1, 1) and wt == OW < 16 and not padded


# ------------------------------------------------------------------ tiled linear
@register_kernel("linear", "float32", requires={"avx512"}, priority=10, applies=is_2d_input,
                 prepare_constants=packed_weight_prepare("linear_f32_tiled", pack_linear_f32), needs_constant=(1,),
                 name="linear_f32_tiled")
def linear_f32_tiled(attrs, in_types, out_type, target):
    """mi rows x nj*16 output columns register tile, fp32 FMA over 16 outputs."""
    return packed_linear_f32(attrs, in_types)


# ------------------------------------------------------------------ depthwise conv
# Columns per group of the partitioned staging (stage_plane: image rows x groups inside copied as vectors, pad
# rows zero fills, edge groups unrolled with constant pad tests; stride 2 de-interleaved from contiguous loads),
# used for strided convs whose phase-split rows have more than one group. MobileNetV2's layers (Zen4, 1 thread;
# before: a padded copy tested value by value, then phase-split): 112 -> 56 0.33 -> 0.24 ms, 56 -> 28 131 -> 86
# us, 28 -> 14 45 -> 32 us alone (48 -> 35 us in the model); 14 -> 7 (one group per row) measured 26 -> 35 us,
# so it keeps the padded copy, as do stride-1 maps (no faster alone, 56 x 56 3% slower in the model);
# 16-column groups: 112 -> 56 0.28 ms.
DW_STAGE_LANES = 8


def dw_narrow_width(strides, ow):
    """Accumulator width of the depthwise tile on a narrow stride-1 map (7 or 14 columns): one whole 8 / 16-lane
    vector, so that taps and FMAs are not split into 4+2+1-lane pieces; None (unpadded tiles) otherwise.
    (Stride 2 measured no better padded: MobileNetV2's 14x14/2 layer 34 -> 59 us.)"""
    if strides != [1, 1] or ow % 8 == 0 or ow > 16:
        return None
    return 8 if ow <= 8 else 16


@register_kernel("conv2d", "float32", requires={"x86"}, priority=5, applies=is_depthwise_f32,
                 name="dwconv2d_f32_nchw_x86")
def dwconv2d_f32_x86(attrs, in_types, out_type, target):
    """Depthwise fp32 conv: per-channel phase-split padded staging, ht x vt register tile vectorised
    over output columns, parallel over N*O, bias fused into the write-back."""
    s, p, d, g = conv_attrs(attrs)
    (N, C, H, W), _ = in_types[0]
    O, _, KH, KW = in_types[1][0]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    assert tuple(out_type[0]) == (N, O, OH, OW), (out_type, (N, O, OH, OW))
    x = te.placeholder((N, C, H, W), "float32", "x")
    w = te.placeholder((O, 1, KH, KW), "float32", "w")
    args = [x, w]
    bias = bias_placeholder(in_types, args, "float32", "b")
    acc_w = dw_narrow_width(s, OW)
    Hs, Wq = phase_split_extent(s, d, OH, OW, KH, KW)
    partitioned = s[1] > 1 and Wq > DW_STAGE_LANES
    if partitioned:
        xs = phase_split_staging(x, p[:2], s[1], Hs, Wq)
    else:
        xs = phase_split_input(x, attrs, OH, acc_w or OW, KH, KW)
    y = phase_split_dw_f32(xs, w, bias, attrs, (N, O, OH, OW), acc_w)
    sch = s_tir.Schedule(create(args + [y]))
    no = tile_depthwise_f32(sch, OH, OW, acc_w, dw_column_tile(s, OW))
    if partitioned:   # this channel's plane staged right before its output channel is computed
        stage_plane(sch, no, p[:2], (H, W), s[1], DW_STAGE_LANES)
        return sch.mod["main"]
    xb = sch.get_sblock("xs")
    if acc_w:
        # narrow maps: stage all planes first (own parallel loop). A plane staged right before its channel
        # is read back by wide loads straddling the staging's small stores (store-forwarding stalls):
        # MobileNetV2's 7x7 layer 58 -> 22 us, 14x14 53 -> 44 us (Zen4, 1 thread, with acc_w)
        sch.parallel(sch.fuse(*sch.get_loops(xb)[:2]))
    else:
        sch.compute_at(xb, no)
    if s[1] > 1:
        schedule_phase_split(sch, no)
    return sch.mod["main"]


def phase_split_input(x, attrs, OH, OW, KH, KW, pad_value=0.0):
    """Block "xs" [N, C, Hs, sw, Wq]: x padded with `pad_value`, its columns split into the stride phases
    (xs[h, p, q] = padded[h, q*sw + p]), only the rows / columns that the taps of OH x OW outputs touch; with
    stride > 1 through block "xp", the padded plane (see `schedule_phase_split`)."""
    s, p, d, _ = conv_attrs(attrs)
    N, C, H, W = (int(v) for v in x.shape)
    sw, (t, l) = s[1], p[:2]
    Hs, Wq = phase_split_extent(s, d, OH, OW, KH, KW)

    def pad(nn, cc, hh, ww):
        inside, ih, iw = image_cell(hh, ww, t, l, H, W)
        return tirx.if_then_else(inside, x[nn, cc, ih, iw], tirx.const(pad_value, "float32"))

    if sw == 1:
        return te.compute((N, C, Hs, 1, Wq), lambda nn, cc, hh, ph, q: pad(nn, cc, hh, q), name="xs")
    # pad first, then split the columns into phases with the phase loop innermost and unrolled
    # (an interleaved load): phases taken straight from x were one gather per element, and
    # strided taps without phases cost more still (MobileNetV2's 112x112/2 layer: 0.44 ms
    # phase-split, 0.69 ms strided, 0.57 ms generic)
    xp = te.compute((N, C, Hs, Wq * sw), pad, name="xp")
    return te.compute((N, C, Hs, sw, Wq), lambda nn, cc, hh, ph, q: xp[nn, cc, hh, q * sw + ph], name="xs")


def schedule_phase_split(sch, at):
    """Stride > 1: "xp" computed at loop `at` (the loop "xs" is under), "xs" with its phase loop innermost, unrolled."""
    sch.compute_at(sch.get_sblock("xp"), at)
    lhh, lph, lq = sch.get_loops(sch.get_sblock("xs"))[-3:]
    sch.reorder(lhh, lq, lph)
    sch.unroll(lph)


def dw_column_tile(strides, ow):
    """The depthwise tile's output columns (None: column_tile's choice). Stride 1: whole 16 / 8-lane column tiles
    where they divide OW (56 columns: 8 measured 1.5x column_tile's 14, whose 14-lane loads split into 8+4+2; the
    112/2 layer measured 14 better, so strided convs keep it)."""
    return first_divisor(ow, (16, 8), None) if strides == [1, 1] else None


# ------------------------------------------------------------------ 1x1 conv as an NCHW GEMM
def is_plain_1x1(attrs, in_types):
    """A 1x1 stride-1 unpadded group-1 conv: a GEMM over the pixels."""
    s, p, _, g = conv_attrs(attrs)
    return tuple(in_types[1][0][2:]) == (1, 1) and s == [1, 1] and not any(p) and g == 1


def pointwise_tile(attrs, in_types, out_type):
    """(rt, ot) of the 1x1 GEMM conv: rt whole image rows (rt * W pixels, a multiple of 16 up to 112, so a
    tile is a rectangle of the map) x ot output channels (ot | O, accumulators and operands in 32 zmm);
    None when the node is no 1x1 stride-1 unpadded group-1 conv or no rt fits (7 x 7, 14 x 14 maps stay on
    conv2d_f32_nchw_tiled, which vectorises over output channels instead)."""
    (N, C, H, W), _ = in_types[0]
    O = in_types[1][0][0]
    if not is_plain_1x1(attrs, in_types):
        return None
    rt = row_tile(H, W)
    if rt is None:
        return None
    nv = rt * W // 16
    return rt, channel_tile(O, nv)


def row_tile(H, W):
    """Rows per tile of a map computed as whole rows: rt | H, rt * W whole 16-lane vectors, at most 7 of
    them (112 pixels, the accumulators beside the channel tile); None when no row count fits."""
    return next((r for r in range(1, H + 1) if H % r == 0 and r * W % 16 == 0 and r * W <= 112), None)


def channel_tile(O, nv):
    """Output channels of a 1x1 GEMM register tile of nv pixel vectors: nv * ot accumulators + ot broadcasts
    + 1 x vector <= 32 zmm, ot | O."""
    return first_divisor(O, tuple(t for t in (6, 4, 3, 2) if t * (nv + 1) + 1 <= 32))


def pointwise_gemm(x, wp, name):
    """acc[n, o, h, w] = sum_c x[n, c, h, w] w[o, c], the weight packed [O/ot, C, ot] by `pack_pointwise`."""
    N, C, H, W = (int(v) for v in x.shape)
    groups, _, ot = (int(v) for v in wp.shape)
    rc = te.reduce_axis((0, C), "rc")
    return te.compute((N, groups * ot, H, W),
                      lambda n, o, h, w: te.sum(x[n, rc, h, w] * wp[o // ot, rc, o % ot], axis=rc), name=name)


def vectorise_pixel_tile(sch, blk, lc, cw, rows=True, cw_rows=True):
    """The register tile of the 1x1 GEMM (block `blk`, reduction loop `lc`, write-back `cw` at the tile): channels
    unrolled, its pixels (rows x columns loops, or one pixel loop where `rows` / `cw_rows` is False) as unrolled
    16-pixel vectors, in the update, its init and `cw`."""
    def vector_tile(b, rows):   # (channels, rows, columns) or (channels, pixels) loops last
        tile = sch.get_loops(b)[-3 if rows else -2:]
        q0, q1 = sch.split(sch.fuse(*tile[1:]) if rows else tile[1], [None, 16])
        sch.unroll(tile[0])
        sch.unroll(q0)
        sch.vectorize(q1)

    vector_tile(blk, rows)   # before decompose_reduction, which leaves the update no complete/reduction block
    vector_tile(sch.decompose_reduction(blk, lc), rows)
    vector_tile(cw, cw_rows)


def pack_pointwise(w, attrs, in_types):
    """f32 [O, C, 1, 1] -> [O/ot, C, ot] (ot of `pointwise_tile`)."""
    return pack_channel_tiles(w, pointwise_tile(attrs, in_types, None)[1])


def pack_channel_tiles(w, ot):
    """f32 [O, C, 1, 1] -> [O/ot, C, ot]: the 1x1 weight as `pointwise_gemm` reads it."""
    O, C = w.shape[:2]
    return np.ascontiguousarray(w.reshape(O // ot, ot, C).transpose(0, 2, 1))


@register_kernel("conv2d", "float32", requires={"avx512"}, priority=11,
                 applies=lambda a, i, o: pointwise_tile(a, i, o) is not None,
                 prepare_constants=packed_weight_prepare("conv2d_f32_nchw_1x1", pack_pointwise, per_node=True,
                                                         fuses_add=True),
                 needs_constant=(1,), name="conv2d_f32_nchw_1x1")
def conv2d_f32_1x1(attrs, in_types, out_type, target):
    """1x1 conv as the GEMM y[o, pixels] = w[o, c] x[c, pixels] in NCHW: vectorised over pixels (no
    padded copy, no transposition), register tile ot channels x rt rows, bias + activation at write-back."""
    rt, ot = pointwise_tile(attrs, in_types, out_type)
    (N, C, H, W), _ = in_types[0]
    O = in_types[1][0][0]
    x = te.placeholder((N, C, H, W), "float32", "x")
    wp = te.placeholder((O // ot, C, ot), "float32", "w_packed")
    args = [x, wp]
    bias = bias_placeholder(in_types, args, "float32", "b")
    res = residual_input(attrs, (N, O, H, W), args, fuses_add=True)
    acc = pointwise_gemm(x, wp, "acc")
    y = te.compute((N, O, H, W), lambda n, o, h, w: conv_output_value(acc[n, o, h, w], bias, o, attrs, res,
                                                                      (n, o, h, w)), name="out")
    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    ln, lo, lh, lw, lc = sch.get_loops(blk)
    o0, o1 = sch.split(lo, [None, ot])
    h0, h1 = sch.split(lh, [None, rt])
    sch.reorder(ln, h0, o0, lc, o1, h1, lw)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, o0)
    sch.reverse_compute_inline(sch.get_sblock("out"))
    sch.parallel(sch.fuse(ln, h0))
    vectorise_pixel_tile(sch, blk, lc, cw, cw_rows=rt > 1)   # reverse_compute_at drops a one-row loop
    return sch.mod["main"]
