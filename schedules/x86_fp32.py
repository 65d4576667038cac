"""x86 fp32 fast paths.

* ``conv2d_f32_nchw_tiled`` (requires avx512, priority 10): register-tiled direct conv (the TE of
  fp32_packed_conv.py), fp32 FMA on 16 output channels. Params: x f32 [N,C,H,W], w_packed f32
  [Op/16, KH, KW, C, 16], (b f32 [O]) -> y [N,O,OH,OW]. Applies when group == 1 (O is zero-padded to Op,
  a multiple of 16, in the packed weight). Needs constant w.
* ``linear_f32_tiled`` (requires avx512, priority 10): x f32 [N,K], w_packed f32 [Op/16, K, 16], (b [O])
  -> y [N,O].
* ``dwconv2d_f32_nchw_x86`` (requires x86, priority 5): depthwise conv2d (group == C, weight
  [C*mult, 1, KH, KW]). Params as the generic conv2d. Parallel over N*O; per output channel the padded
  input plane is staged once, split into ``stride_w`` column phases (staged[h, p, q] = padded[h, q*sw + p])
  so that the taps of a strided conv read unit-stride vectors too; a register tile of ht rows x vt output
  columns accumulates in registers (vectorised over the columns, taps unrolled), bias and activation are
  applied at write-back.
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from .compute import bias_placeholder, plus_bias
from .cpu_schedules import first_divisor
from .fp32_packed_conv import packed_conv2d_f32, packed_weight_prepare, pack_w_f32, pad_rows16, ungrouped, write_back
from .node_attrs import conv_attrs, conv_out_hw, is_2d_input
from .registry import register_kernel
from .te_utils import bias_clip, create, image_cell


# ------------------------------------------------------------------ tiled conv
@register_kernel("conv2d", "float32", requires={"avx512"}, priority=10, applies=ungrouped,
                 prepare_constants=packed_weight_prepare("conv2d_f32_nchw_tiled", pack_w_f32), needs_constant=(1,),
                 name="conv2d_f32_nchw_tiled")
def conv2d_f32_tiled(attrs, in_types, out_type, target):
    """Register tile (ow-tile x 16 out channels), fp32 FMA vectorised over output channels."""
    args, y, Op = packed_conv2d_f32(attrs, in_types)
    _, C, _, W = in_types[0][0]
    O, OW = int(y.shape[1]), int(y.shape[3])
    _, l, _, r = conv_attrs(attrs)[1]
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
    sch.reorder(ln, lh, o0, w0, lrh, lrw, lrc, w1, oo, o1)
    write_back(sch, blk, w0, (ln, lh), o1, lrh, padded=Op != O)
    sch.unroll(w1)
    sch.unroll(oo)
    pl = sch.get_loops(sch.get_sblock("pad"))
    sch.parallel(sch.fuse(pl[0], pl[1]))
    if W + l + r <= 64:
        sch.vectorize(pl[-1])
    return sch.mod["main"]


# ------------------------------------------------------------------ tiled linear
def pack_linear_f32(w):
    """f32 [O, K] -> [Op/16, K, 16], O zero-padded to Op, a multiple of 16."""
    w = pad_rows16(w)
    O, K = w.shape
    return np.ascontiguousarray(w.reshape(O // 16, 16, K).transpose(0, 2, 1))


@register_kernel("linear", "float32", requires={"avx512"}, priority=10, applies=is_2d_input,
                 prepare_constants=packed_weight_prepare("linear_f32_tiled", pack_linear_f32), needs_constant=(1,),
                 name="linear_f32_tiled")
def linear_f32_tiled(attrs, in_types, out_type, target):
    """mi rows x nj*16 output columns register tile, fp32 FMA over 16 outputs."""
    (N, K), _ = in_types[0]
    O = in_types[1][0][0]
    Op = (O + 15) // 16 * 16   # padded outputs have zero weights and are not written out
    x = te.placeholder((N, K), "float32", "x")
    wp = te.placeholder((Op // 16, K, 16), "float32", "w_packed")
    args = [x, wp]
    k = te.reduce_axis((0, K), "k")
    acc = te.compute((N, Op), lambda i, j: te.sum(x[i, k] * wp[j // 16, k, j % 16], axis=k), name="acc")
    bb = bias_placeholder(in_types, args, "float32", "b")
    y = te.compute((N, O), lambda i, j: plus_bias(acc[i, j], bb, j), name="out")
    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    i, j, kk = sch.get_loops(blk)
    mi = first_divisor(N, (4, 2, 1))
    nj = 2 if Op % 32 == 0 else 1   # output-column vectors per tile
    i0, i1 = sch.split(i, [None, mi])
    j0, j1, j2 = sch.split(j, [None, nj, 16])
    sch.reorder(i0, j0, kk, i1, j1, j2)
    cw = write_back(sch, blk, j0, (i0, j0), j2, kk, padded=Op != O)
    sch.unroll(j1)
    sch.unroll(i1)
    sch.vectorize(sch.get_loops(cw)[-1])
    return sch.mod["main"]


# ------------------------------------------------------------------ depthwise conv
def _dw_f32_applies(attrs, in_types, out_type):
    g = conv_attrs(attrs)[3]
    (n, c, h, w), xdt = in_types[0]
    (o, ipg, kh, kw), wdt = in_types[1]
    return g > 1 and g == c and ipg == 1 and o % c == 0 and xdt == wdt == "float32"


def _col_tile(ow):
    """Output columns per register tile: a divisor of OW that fills (most of) a 16-lane vector;
    a whole row up to 32 columns when OW has none (LLVM splits the wide vector)."""
    vt = first_divisor(ow, (16, 14, 8, 7, 12, 6, 10, 5, 4))
    if vt == 1:
        vt = ow if ow <= 32 else first_divisor(ow, (3, 2))
    return vt


@register_kernel("conv2d", "float32", requires={"x86"}, priority=5, applies=_dw_f32_applies,
                 name="dwconv2d_f32_nchw_x86")
def dwconv2d_f32_x86(attrs, in_types, out_type, target):
    """Depthwise fp32 conv: per-channel phase-split padded staging, ht x vt register tile vectorised
    over output columns, parallel over N*O, bias fused into the write-back."""
    s, p, d, g = conv_attrs(attrs)
    (N, C, H, W), _ = in_types[0]
    O, _, KH, KW = in_types[1][0]
    mult = O // C
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    assert tuple(out_type[0]) == (N, O, OH, OW), (out_type, (N, O, OH, OW))
    sh, sw = s
    dh, dw = d
    t, l = p[0], p[1]
    x = te.placeholder((N, C, H, W), "float32", "x")
    w = te.placeholder((O, 1, KH, KW), "float32", "w")
    args = [x, w]
    bias = bias_placeholder(in_types, args, "float32", "b")
    # Only the rows/columns the taps touch are staged (the bottom/right pads may be partly unused).
    Hs = (OH - 1) * sh + (KH - 1) * dh + 1
    Ws = (OW - 1) * sw + (KW - 1) * dw + 1
    Wq = (Ws + sw - 1) // sw

    def pad(nn, cc, hh, ww):
        inside, ih, iw = image_cell(hh, ww, t, l, H, W)
        return tirx.if_then_else(inside, x[nn, cc, ih, iw], tirx.const(0.0, "float32"))

    if sw == 1:
        xs = te.compute((N, C, Hs, 1, Wq), lambda nn, cc, hh, ph, q: pad(nn, cc, hh, q), name="xs")
    else:
        # pad first, then split the columns into phases with the phase loop innermost and unrolled
        # (an interleaved load): phases taken straight from x were one gather per element, and
        # strided taps without phases cost more still (MobileNetV2's 112x112/2 layer: 0.44 ms
        # phase-split, 0.69 ms strided, 0.57 ms generic)
        xp = te.compute((N, C, Hs, Wq * sw), pad, name="xp")
        xs = te.compute((N, C, Hs, sw, Wq), lambda nn, cc, hh, ph, q: xp[nn, cc, hh, q * sw + ph],
                        name="xs")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    # column w*sw + rw*dw of the padded plane = phase (rw*dw) % sw, index w + (rw*dw) // sw
    acc = te.compute((N, O, OH, OW), lambda nn, o, h, ww: te.sum(
        xs[nn, o // mult, h * sh + rh * dh, (rw * dw) % sw, ww + (rw * dw) // sw] * w[o, 0, rh, rw],
        axis=[rh, rw]), name="acc")
    y = te.compute((N, O, OH, OW), lambda nn, o, h, ww: bias_clip(acc[nn, o, h, ww], bias, o, attrs), name="out")

    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    ln, lo, lh, lw, lrh, lrw = sch.get_loops(blk)
    vt = _col_tile(OW)
    ht = first_divisor(OH, (4, 2, 7, 3, 5)) if vt <= 16 else 1
    h0, h1 = sch.split(lh, [None, ht])
    w0, w1 = sch.split(lw, [None, vt])
    sch.reorder(ln, lo, h0, w0, lrh, lrw, h1, w1)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, w0)
    sch.reverse_compute_inline(sch.get_sblock("out"))
    no = sch.fuse(ln, lo)
    sch.parallel(no)
    # vectorise the columns of the accumulator tile (before decompose_reduction, which would make
    # the update block neither complete nor a reduction), unroll its rows and the taps
    sch.vectorize(w1)
    sch.unroll(h1)
    sch.unroll(lrw)
    sch.unroll(lrh)
    init = sch.decompose_reduction(blk, lrh)
    for b in (init, cw):   # loops under (n*o, h0, w0); unit loops may have been dropped
        tile = sch.get_loops(b)[3:]
        if vt > 1 and tile:
            sch.vectorize(tile[-1])
            tile = tile[:-1]
        for lp in tile:
            sch.unroll(lp)
    # stage this channel's plane right before its output channel is computed
    xb = sch.get_sblock("xs")
    sch.compute_at(xb, no)
    if sw > 1:
        sch.compute_at(sch.get_sblock("xp"), no)
        _, lhh, lph, lq = sch.get_loops(xb)
        sch.reorder(lhh, lq, lph)
        sch.unroll(lph)
    return sch.mod["main"]
