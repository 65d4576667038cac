"""Generic kernels for channels-last (NHWC, attr layout="NHWC") integer ops on CPU targets (x86,
aarch64), so a planned graph never lacks a kernel (compiler/passes/layout_plan.py). They carry CPU
schedules (parallel loops), hence requires={"cpu"}: layout planning is never done for GPU targets.

  qconv2d            : x[N,H,W,C], w int8[O,C/g,KH,KW], (bias int32[O]), mult, shift -> y[N,OH,OW,O]
  qglobal_avg_pool2d : x[N,H,W,C], mult, shift -> y[N,1,1,C]
  qavg_pool2d        : x[N,H,W,C], multiplier_map int32[OH,OW], shift_map int32[OH,OW] -> y[N,OH,OW,C]
  qconv2d, depthwise (``qconv2d_dw_int8_nhwc``, priority 5, group == C == O): x[N,H,W,C],
      w_packed int16[KH,KW,C], bias int32[C], mult, shift. int32 accumulators vectorised over channels
      (contiguous in NHWC) for a tile of output columns; each tap's weights are one vector load;
      padding is a select (no staged copy: 1.5-2.5x faster than staging a padded int16 copy).
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from .common import (constant_bias, conv_attrs, conv_out_hw, create, per_channel, prep_requant, requant,
                     requant_arrays, requant_placeholders, schedule_generic)
from .generic import _prep_gap, _qavg_pool2d_func, _qgap_func
from .registry import register_kernel

I8 = ("int8", "uint8")
NHWC = ("NHWC",)


def _window_value(x, nn, hh, ww, c, H, W, zx):
    """x[nn, hh, ww, c] - zx inside the image, 0 in the padding (int32)."""
    inside = tirx.all(hh >= 0, hh < H, ww >= 0, ww < W)
    v = x[nn, te.max(te.min(hh, H - 1), 0), te.max(te.min(ww, W - 1), 0), c].astype("int32")
    return tirx.if_then_else(inside, v - tirx.const(zx, "int32"), tirx.const(0, "int32"))


@register_kernel("qconv2d", I8, requires={"cpu"}, priority=0, prepare_constants=prep_requant,
                 name="qconv2d_nhwc_generic", layouts=NHWC)
def qconv2d_nhwc_generic(attrs, in_types, out_type, target):
    """Any group; int32 accumulation of (x - zx) * w, requantize epilogue fused."""
    s, p, d, g = conv_attrs(attrs)
    (N, H, W, C), xdt = in_types[0]
    O, Cg, KH, KW = in_types[1][0]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    zx = int(attrs.get("x_zero_point", 0))
    x = te.placeholder((N, H, W, C), xdt, "x")
    w = te.placeholder((O, Cg, KH, KW), "int8", "w")
    args = [x, w]
    has_bias = len(in_types) > 2 and in_types[2] is not None
    if has_bias:
        bias = te.placeholder((O,), "int32", "bias")
        args.append(bias)
    m, n, zy, odt, lo, hi = requant_placeholders(attrs, out_type)
    rc = te.reduce_axis((0, Cg), "rc")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    Og = O // g

    def conv(nn, h, ww, o):
        cin = rc if g == 1 else (o // Og) * Cg + rc
        v = _window_value(x, nn, h * s[0] + rh * d[0] - p[0], ww * s[1] + rw * d[1] - p[1], cin, H, W, zx)
        return te.sum(v * w[o, rc, rh, rw].astype("int32"), axis=[rh, rw, rc])

    acc = te.compute((N, OH, OW, O), conv, name="acc")

    def epilogue(nn, h, ww, o):
        a = acc[nn, h, ww, o] + bias[o] if has_bias else acc[nn, h, ww, o]
        return requant(a, per_channel(m, o), per_channel(n, o), zy, lo, hi, odt)

    y = te.compute((N, OH, OW, O), epilogue, name="out")
    return schedule_generic(create(args + [m, n, y]), "acc", "out", inline=())


@register_kernel("qglobal_avg_pool2d", I8, requires={"cpu"},
                 prepare_constants=_prep_gap,
                 name="qglobal_avg_pool2d_nhwc_generic", layouts=NHWC)
def qgap_nhwc_generic(attrs, in_types, out_type, target):
    """acc = sum_{h,w} (x - zx) int32 with channels innermost (contiguous loads), then requantize."""
    sch = s_tir.Schedule(_qgap_func(attrs, in_types, out_type, channels_last=True))
    blk = sch.get_sblock("acc")
    lb, lc, lrh, lrw = sch.get_loops(blk)
    sch.reorder(lb, lrh, lrw, lc)   # channels innermost: contiguous loads
    sch.parallel(lb)
    return sch.mod["main"]


@register_kernel("qavg_pool2d", I8, requires={"cpu"}, name="qavg_pool2d_nhwc_generic", layouts=NHWC)
def qavg_pool2d_nhwc_generic(attrs, in_types, out_type, target):
    """acc = sum_window (x - zx) (padding adds 0); y = clamp(requant(acc, mm[oh,ow], sm[oh,ow]) + zy)."""
    return schedule_generic(_qavg_pool2d_func(attrs, in_types, out_type, channels_last=True), "acc", "out",
                            inline=())


# ------------------------------------------------------------------ depthwise
def _dw_applies(attrs, in_types, out_type):
    g = conv_attrs(attrs)[3]
    C = in_types[0][0][3]
    O, per_group = in_types[1][0][:2]
    return g == C and O == C and per_group == 1 and in_types[1][1] == "int8"


def _dw_prepare(attrs, in_types, arrays):
    if arrays[1] is None:
        raise ValueError("qconv2d_dw_int8_nhwc needs a constant weight")
    w = np.asarray(arrays[1])
    C = w.shape[0]
    packed = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0).astype(np.int16))   # [KH, KW, C]
    bias = constant_bias(in_types, arrays, C, "qconv2d_dw_int8_nhwc").astype(np.int32)
    m, n = requant_arrays(attrs)
    return [0, packed, bias, m, n]


def _lanes(c):
    return next((v for v in (16, 8, 4, 2) if c % v == 0), 1)


@register_kernel("qconv2d", ("int8", "uint8"), requires={"cpu"}, priority=5, applies=_dw_applies,
                 prepare_constants=_dw_prepare, needs_constant=(1, 2), name="qconv2d_dw_int8_nhwc",
                 layouts=NHWC)
def dwconv2d_int8_nhwc(attrs, in_types, out_type, target):
    s, p, d, _ = conv_attrs(attrs)
    (N, H, W, C), xdt = in_types[0]
    KH, KW = in_types[1][0][2:]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    zx = int(attrs.get("x_zero_point", 0))
    x = te.placeholder((N, H, W, C), xdt, "x")
    wp = te.placeholder((KH, KW, C), "int16", "w_packed")
    bias = te.placeholder((C,), "int32", "bias")
    m, n, zy, odt, lo, hi = requant_placeholders(attrs, out_type)
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    # No staged copy: the border test depends on (h, w) only, so it stays a scalar select around the
    # channel vector (measured 1.5-2.5x faster than staging a padded int16 copy).
    acc = te.compute((N, OH, OW, C), lambda nn, h, ww, c: te.sum(
        _window_value(x, nn, h * s[0] + rh * d[0] - p[0], ww * s[1] + rw * d[1] - p[1], c, H, W, zx)
        * wp[rh, rw, c].astype("int32"), axis=[rh, rw]), name="acc")
    y = te.compute((N, OH, OW, C), lambda nn, h, ww, c: requant(
        acc[nn, h, ww, c] + bias[c], per_channel(m, c), per_channel(n, c), zy, lo, hi, odt), name="out")
    sch = s_tir.Schedule(create([x, wp, bias, m, n, y]))
    blk = sch.get_sblock("acc")
    ln, lh, lw, lc, lrh, lrw = sch.get_loops(blk)
    vl = _lanes(C)
    c0, c1 = sch.split(lc, [None, vl])
    wt = next(v for v in (8, 7, 6, 4, 5, 3, 2, 1) if OW % v == 0)   # output columns sharing each weight load
    w0, w1 = sch.split(lw, [None, wt])
    sch.reorder(ln, lh, w0, c0, lrh, lrw, w1, c1)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, c0)
    sch.reverse_compute_inline(sch.get_sblock("out"))
    sch.parallel(sch.fuse(ln, lh))
    if vl > 1:
        sch.vectorize(c1)   # before decompose_reduction (TVM rejects it afterwards)
    init = sch.decompose_reduction(blk, lrh)
    if vl > 1:
        sch.vectorize(sch.get_loops(init)[-1])
        sch.vectorize(sch.get_loops(cw)[-1])
    sch.unroll(lrw)
    sch.unroll(w1)
    return sch.mod["main"]
