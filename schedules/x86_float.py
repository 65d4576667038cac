"""x86 fp32 kernels beyond the tiled conv/linear in x86.py.

* ``dwconv2d_f32_nchw_x86`` (requires x86, priority 5): depthwise conv2d (group == C, weight
  [C*mult, 1, KH, KW]). Params as the generic conv2d: x f32 [N,C,H,W], w f32 [O,1,KH,KW], (b f32 [O])
  -> y [N,O,OH,OW]. Parallel over N*O; per output channel the padded input plane is staged once,
  split into ``stride_w`` column phases (staged[h, p, q] = padded[h, q*sw + p]) so that the taps of a
  strided conv read unit-stride vectors too; a register tile of ht rows x vt output columns accumulates
  in registers (vectorised over the columns, taps unrolled) and the bias is added at write-back.
"""
from __future__ import annotations

from tvm import s_tir, te, tirx

from .common import bias_clip, conv_attrs, conv_out_hw, create
from .registry import register_kernel


def _dw_f32_applies(attrs, in_types, out_type):
    g = conv_attrs(attrs)[3]
    (n, c, h, w), xdt = in_types[0]
    (o, ipg, kh, kw), wdt = in_types[1]
    return g > 1 and g == c and ipg == 1 and o % c == 0 and xdt == wdt == "float32"


def _pick(n, cands):
    return next((c for c in cands if n % c == 0), 1)


def _col_tile(ow):
    """Output columns per register tile: a divisor of OW that fills (most of) a 16-lane vector;
    a whole row up to 32 columns when OW has none (LLVM splits the wide vector)."""
    vt = _pick(ow, (16, 14, 8, 7, 12, 6, 10, 5, 4))
    if vt == 1:
        vt = ow if ow <= 32 else _pick(ow, (3, 2))
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
    has_b = len(in_types) > 2 and in_types[2] is not None
    bias = te.placeholder((O,), "float32", "b") if has_b else None
    args += [bias] if has_b else []
    # Only the rows/columns the taps touch are staged (the bottom/right pads may be partly unused).
    Hs = (OH - 1) * sh + (KH - 1) * dh + 1
    Ws = (OW - 1) * sw + (KW - 1) * dw + 1
    Wq = (Ws + sw - 1) // sw

    def pad(nn, cc, hh, ww):
        inside = tirx.all(hh >= t, hh < H + t, ww >= l, ww < W + l)
        v = x[nn, cc, te.max(te.min(hh - t, H - 1), 0), te.max(te.min(ww - l, W - 1), 0)]
        return tirx.if_then_else(inside, v, tirx.const(0.0, "float32"))

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
    ht = _pick(OH, (4, 2, 7, 3, 5)) if vt <= 16 else 1
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
