"""Generic kernels: correct on every llvm target, modestly scheduled (parallel + vectorise).

Input conventions (PrimFunc params, output last) -- see README.md in this package:
  conv2d   f32 : x[N,C,H,W], w[O,C/g,KH,KW], (b[O])            -> y[N,O,OH,OW]
  linear   f32 : x[N,K], w[O,K], (b[O])                        -> y[N,O]
  qconv2d  i8/u8: x[N,C,H,W], w int8[O,C/g,KH,KW], (bias int32[O]), mult int32[Cm], shift int32[Cm] -> y
  qlinear  i8/u8: x[N,K], w int8[O,K], (bias int32[O]), mult int32[Cm], shift int32[Cm] -> y[N,O]
  requantize    : x[...], mult int32[Cm], shift int32[Cm] -> y  (Cm = 1 or shape[1])
  qglobal_avg_pool2d: x[N,C,H,W], mult int32[Cm], shift int32[Cm] -> y[N,C,1,1]  (Cm = 1 or C)
  qavg_pool2d   : x[N,C,H,W], multiplier_map int32[OH,OW], shift_map int32[OH,OW] -> y[N,C,OH,OW]
  qadd          : a, b (NumPy broadcasting) -> y ; multipliers/shift baked in as constants
  lut           : x int8/uint8, table[256] (out dtype) -> y ; y = table[x - qmin(x.dtype)]
mult/shift arrays come from ``kernel_inputs`` (built from attrs multiplier/shift).
"""
from __future__ import annotations

import numpy as np
from tvm import te, tirx

from .common import (INT_RANGES, bias_clip, conv_attrs, conv_out_hw, create, out_bounds, pad_nchw, per_channel,
                     pool_attrs, prep_requant, qparams_list, requant, requant_arrays, requant_placeholders,
                     schedule_elementwise, schedule_generic)
from .registry import register_kernel

I8 = ("int8", "uint8")


def _has_bias(in_types):
    return len(in_types) > 2 and in_types[2] is not None


def _int32_bias(in_types, args):
    """The optional int32 bias placeholder (appended to ``args``), or None."""
    bias = None
    if _has_bias(in_types):
        bias = te.placeholder(in_types[2][0], "int32", "bias")
        args.append(bias)
    return bias


def _schedule_linear(func):
    """Parallel over the fused rows*cols of the "acc" and "out" blocks."""
    from tvm import s_tir
    sch = s_tir.Schedule(func)
    blk = sch.get_sblock("acc")
    i, j, k = sch.get_loops(blk)
    sch.parallel(sch.fuse(i, j))
    ob = sch.get_sblock("out")
    sch.parallel(sch.fuse(*sch.get_loops(ob)))
    return sch.mod["main"]


# ------------------------------------------------------------------------------------------ conv2d
def conv2d_te(x, w, bias, attrs, out_type, acc_dtype, pad_value, xin=None, name="acc"):
    s, p, d, g = conv_attrs(attrs)
    N, C, H, W = (int(v) for v in x.shape)
    O, Cg, KH, KW = (int(v) for v in w.shape)
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    assert tuple(out_type[0]) == (N, O, OH, OW), (out_type, (N, O, OH, OW))
    xp = pad_nchw(x, p, pad_value)
    rc = te.reduce_axis((0, Cg), "rc")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    Og = O // g

    def f(n, o, h, ww):
        cin = rc if g == 1 else (o // Og) * Cg + rc
        xv = xp[n, cin, h * s[0] + rh * d[0], ww * s[1] + rw * d[1]]
        wv = w[o, rc, rh, rw]
        if xin is not None:
            return te.sum(xin(xv) * wv.astype(acc_dtype), axis=[rc, rh, rw])
        return te.sum(xv.astype(acc_dtype) * wv.astype(acc_dtype), axis=[rc, rh, rw])

    return te.compute((N, O, OH, OW), f, name=name)


def _conv2d_f32_func(attrs, in_types, out_type):
    x = te.placeholder(in_types[0][0], "float32", "x")
    w = te.placeholder(in_types[1][0], "float32", "w")
    args = [x, w]
    acc = conv2d_te(x, w, None, attrs, out_type, "float32", 0.0)
    if _has_bias(in_types):
        b = te.placeholder(in_types[2][0], "float32", "b")
        args.append(b)
    else:
        b = None
    y = te.compute(acc.shape, lambda n, o, h, ww: bias_clip(acc[n, o, h, ww], b, o, attrs), name="out")
    return create(args + [y])


@register_kernel("conv2d", "float32", priority=0, name="conv2d_f32_nchw_generic")
def conv2d_f32_generic(attrs, in_types, out_type, target):
    """Direct NCHW conv (groups, dilation, asymmetric pads), bias fused in a second block."""
    return schedule_generic(_conv2d_f32_func(attrs, in_types, out_type), "acc", "out")


def _is_depthwise(attrs, in_types, out_type):
    g = conv_attrs(attrs)[3]
    return g > 1 and g == in_types[0][0][1] and in_types[1][0][1] == 1


@register_kernel("conv2d", "float32", priority=1, applies=_is_depthwise, name="dwconv2d_f32_nchw_generic")
def dwconv2d_f32(attrs, in_types, out_type, target):
    """Depthwise conv (group == C, weight [C*mult, 1, KH, KW])."""
    return schedule_generic(_conv2d_f32_func(attrs, in_types, out_type), "acc", "out")


# ------------------------------------------------------------------------------------------ linear
def _linear_f32_func(attrs, in_types, out_type):
    x = te.placeholder(in_types[0][0], "float32", "x")
    w = te.placeholder(in_types[1][0], "float32", "w")
    N, K = in_types[0][0]
    O = in_types[1][0][0]
    k = te.reduce_axis((0, K), "k")
    acc = te.compute((N, O), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="acc")
    args = [x, w]
    if _has_bias(in_types):
        b = te.placeholder(in_types[2][0], "float32", "b")
        args.append(b)
        y = te.compute((N, O), lambda i, j: acc[i, j] + b[j], name="out")
    else:
        y = te.compute((N, O), lambda i, j: acc[i, j], name="out")
    return create(args + [y])


@register_kernel("linear", "float32", priority=0, applies=lambda a, it, ot: len(it[0][0]) == 2,
                 name="linear_f32_generic")
def linear_f32_generic(attrs, in_types, out_type, target):
    """y = x @ w.T + b; parallel over rows*cols."""
    return _schedule_linear(_linear_f32_func(attrs, in_types, out_type))


# ------------------------------------------------------------------------------------------ qconv2d
def _qconv_func(attrs, in_types, out_type):
    xdt = in_types[0][1]
    x = te.placeholder(in_types[0][0], xdt, "x")
    w = te.placeholder(in_types[1][0], in_types[1][1], "w")
    zx = int(attrs.get("x_zero_point", 0))
    args = [x, w]
    acc = conv2d_te(x, w, None, attrs, out_type, "int32", zx,
                    xin=lambda v: v.astype("int32") - tirx.const(zx, "int32"))
    bias = _int32_bias(in_types, args)
    m, n, zy, odt, lo, hi = requant_placeholders(attrs, out_type)
    args += [m, n]

    def f(b_, o, h, ww):
        a = acc[b_, o, h, ww]
        if bias is not None:
            a = a + bias[o]
        return requant(a, per_channel(m, o), per_channel(n, o), zy, lo, hi, odt)

    y = te.compute(acc.shape, f, name="out")
    return create(args + [y])


@register_kernel("qconv2d", I8, priority=0, prepare_constants=prep_requant, name="qconv2d_nchw_generic")
def qconv2d_generic(attrs, in_types, out_type, target):
    """int32 accumulation of (x - zx) * w, requantize epilogue fused (second block)."""
    return schedule_generic(_qconv_func(attrs, in_types, out_type), "acc", "out")


# ------------------------------------------------------------------------------------------ qlinear
def _qlinear_func(attrs, in_types, out_type):
    xdt = in_types[0][1]
    x = te.placeholder(in_types[0][0], xdt, "x")
    w = te.placeholder(in_types[1][0], in_types[1][1], "w")
    N, K = in_types[0][0]
    O = in_types[1][0][0]
    zx = int(attrs.get("x_zero_point", 0))
    k = te.reduce_axis((0, K), "k")
    acc = te.compute((N, O), lambda i, j: te.sum(
        (x[i, k].astype("int32") - tirx.const(zx, "int32")) * w[j, k].astype("int32"), axis=k), name="acc")
    args = [x, w]
    bias = _int32_bias(in_types, args)
    m, n, zy, odt, lo, hi = requant_placeholders(attrs, out_type)
    args += [m, n]

    def f(i, j):
        a = acc[i, j]
        if bias is not None:
            a = a + bias[j]
        return requant(a, per_channel(m, j), per_channel(n, j), zy, lo, hi, odt)

    y = te.compute((N, O), f, name="out")
    return create(args + [y])


@register_kernel("qlinear", I8, priority=0, prepare_constants=prep_requant, name="qlinear_generic")
def qlinear_generic(attrs, in_types, out_type, target):
    return _schedule_linear(_qlinear_func(attrs, in_types, out_type))


# ------------------------------------------------------------------------------------------ requantize
def _prep_requant_only(attrs, in_types, arrays):
    m, n = requant_arrays(attrs)
    return [0, m, n]


def _requantize_func(attrs, in_types, out_type):
    """Unscheduled requantize compute (block "out"); shared by the CPU and the cuda kernel."""
    shape, xdt = in_types[0]
    x = te.placeholder(shape, xdt, "x")
    m, n, zy, odt, lo, hi = requant_placeholders(attrs, out_type)
    Cm = int(m.shape[0])
    axis = int(attrs.get("axis", 1) if attrs.get("axis") is not None else 1)
    if Cm > 1:
        assert shape[axis] == Cm
    zx = int(attrs.get("x_zero_point", 0))

    def f(*idx):
        a = x[idx].astype("int64") - tirx.const(zx, "int64")
        c = idx[axis] if Cm > 1 else 0
        return requant(a, m[c], n[c], zy, lo, hi, odt)

    y = te.compute(shape, f, name="out")
    return create([x, m, n, y])


@register_kernel("requantize", ("int8", "uint8", "int32", "int16"), prepare_constants=_prep_requant_only,
                 name="requantize_generic")
def requantize_generic(attrs, in_types, out_type, target):
    """y = clamp(requant(x - zx) + zy); per-channel mult/shift along axis 1 (attr "axis", default 1)."""
    return schedule_elementwise(_requantize_func(attrs, in_types, out_type), ["out"])


# ------------------------------------------------------------------------------------------ qadd
def _bshape(a, b):
    return tuple(np.broadcast_shapes(tuple(a), tuple(b)))


def _qadd_func(attrs, in_types, out_type):
    """Unscheduled qadd compute (block "out"); multipliers/shift baked in as constants."""
    a = te.placeholder(in_types[0][0], in_types[0][1], "a")
    b = te.placeholder(in_types[1][0], in_types[1][1], "b")
    shape = _bshape(in_types[0][0], in_types[1][0])
    rank = len(shape)
    za, zb = int(attrs.get("a_zero_point", 0)), int(attrs.get("b_zero_point", 0))
    ma, mb = qparams_list(attrs["a_multiplier"])[0], qparams_list(attrs["b_multiplier"])[0]
    sh = qparams_list(attrs["shift"])[0]
    zy = int(attrs.get("y_zero_point", 0))
    odt = out_type[1]
    lo, hi = out_bounds(attrs, odt)
    I64 = lambda v: tirx.const(int(v), "int64")

    def idx_of(t, idx):
        ts = [int(s) for s in t.shape]
        off = rank - len(ts)
        return tuple(0 if ts[i] == 1 and shape[i + off] != 1 else idx[i + off] for i in range(len(ts)))

    def f(*idx):
        A = a[idx_of(a, idx)].astype("int64") - I64(za)
        B = b[idx_of(b, idx)].astype("int64") - I64(zb)
        r = tirx.shift_right(A * I64(ma) + B * I64(mb) + I64(1 << (sh - 1)), I64(sh)) + I64(zy)
        return te.max(te.min(r, I64(hi)), I64(lo)).astype(odt)

    y = te.compute(shape, f, name="out")
    return create([a, b, y])


@register_kernel("qadd", I8, name="qadd_generic")
def qadd_generic(attrs, in_types, out_type, target):
    """y = clamp(((A*m_a + B*m_b + 2^(n-1)) >> n) + zy); constants baked in."""
    return schedule_elementwise(_qadd_func(attrs, in_types, out_type), ["out"])


# ------------------------------------------------------------------------------------------ pools
def _prep_gap(attrs, in_types, arrays):
    m, n = requant_arrays(attrs)
    return [0, m, n]


def _qgap_func(attrs, in_types, out_type, channels_last=False):
    """Unscheduled qglobal_avg_pool2d compute: reduction block "acc" [N,C], requantize block "out".
    NCHW, or NHWC with channels_last."""
    if channels_last:
        (N, H, W, C), xdt = in_types[0]
    else:
        (N, C, H, W), xdt = in_types[0]
    x = te.placeholder(tuple(in_types[0][0]), xdt, "x")
    m, n, zy, odt, lo, hi = requant_placeholders(attrs, out_type)
    zx = int(attrs.get("x_zero_point", 0))
    rh = te.reduce_axis((0, H), "rh")
    rw = te.reduce_axis((0, W), "rw")

    def window_sum(b, c):
        v = x[b, rh, rw, c] if channels_last else x[b, c, rh, rw]
        return te.sum(v.astype("int32") - tirx.const(zx, "int32"), axis=[rh, rw])

    acc = te.compute((N, C), window_sum, name="acc")

    def out(b, c):
        return requant(acc[b, c], per_channel(m, c), per_channel(n, c), zy, lo, hi, odt)

    if channels_last:
        y = te.compute((N, 1, 1, C), lambda b, i, j, c: out(b, c), name="out")
    else:
        y = te.compute((N, C, 1, 1), lambda b, c, i, j: out(b, c), name="out")
    return create([x, m, n, y])


@register_kernel("qglobal_avg_pool2d", I8, prepare_constants=_prep_gap, name="qglobal_avg_pool2d_generic")
def qgap_generic(attrs, in_types, out_type, target):
    """acc = sum_{h,w} (x - zx) int32, then requantize (mult/shift of length 1 or C)."""
    from tvm import s_tir
    sch = s_tir.Schedule(_qgap_func(attrs, in_types, out_type))
    blk = sch.get_sblock("acc")
    loops = sch.get_loops(blk)
    sch.parallel(sch.fuse(loops[0], loops[1]))
    return sch.mod["main"]


def _qavg_pool2d_func(attrs, in_types, out_type, channels_last=False):
    """Unscheduled qavg_pool2d compute: window-sum block "acc", requantize block "out". NCHW, or NHWC
    with channels_last (the maps are per output cell either way)."""
    if channels_last:
        (N, H, W, C), xdt = in_types[0]
        OH, OW = int(out_type[0][1]), int(out_type[0][2])
    else:
        (N, C, H, W), xdt = in_types[0]
        OH, OW = int(out_type[0][2]), int(out_type[0][3])
    (k, s, p) = pool_attrs(attrs)
    x = te.placeholder(tuple(in_types[0][0]), xdt, "x")
    mm = te.placeholder((OH, OW), "int32", "multiplier_map")
    sm = te.placeholder((OH, OW), "int32", "shift_map")
    zx = int(attrs.get("x_zero_point", 0))
    zy = int(attrs.get("y_zero_point", 0))
    odt = out_type[1]
    lo, hi = out_bounds(attrs, odt)
    rh = te.reduce_axis((0, k[0]), "rh")
    rw = te.reduce_axis((0, k[1]), "rw")

    def window_sum(b, c, i, j):
        hh = i * s[0] + rh - p[0]
        ww = j * s[1] + rw - p[1]
        inside = tirx.all(hh >= 0, hh < H, ww >= 0, ww < W)
        ih, iw = te.max(te.min(hh, H - 1), 0), te.max(te.min(ww, W - 1), 0)
        v = (x[b, ih, iw, c] if channels_last else x[b, c, ih, iw]).astype("int32")
        return te.sum(tirx.if_then_else(inside, v - tirx.const(zx, "int32"), tirx.const(0, "int32")), axis=[rh, rw])

    def out(acc_value, i, j):
        return requant(acc_value, mm[i, j], sm[i, j], zy, lo, hi, odt)

    if channels_last:
        acc = te.compute((N, OH, OW, C), lambda b, i, j, c: window_sum(b, c, i, j), name="acc")
        y = te.compute((N, OH, OW, C), lambda b, i, j, c: out(acc[b, i, j, c], i, j), name="out")
    else:
        acc = te.compute((N, C, OH, OW), window_sum, name="acc")
        y = te.compute((N, C, OH, OW), lambda b, c, i, j: out(acc[b, c, i, j], i, j), name="out")
    return create([x, mm, sm, y])


@register_kernel("qavg_pool2d", I8, name="qavg_pool2d_generic")
def qavg_pool2d_generic(attrs, in_types, out_type, target):
    """acc = sum_window (x - zx) (pads/out-of-range add 0); y = clamp(requant(acc, mm[oh,ow], sm[oh,ow]) + zy)."""
    return schedule_generic(_qavg_pool2d_func(attrs, in_types, out_type), "acc", "out", inline=())


# ------------------------------------------------------------------------------------------ lut
def _lut_func(attrs, in_types, out_type):
    """Unscheduled lut compute (block "out")."""
    shape, xdt = in_types[0]
    x = te.placeholder(shape, xdt, "x")
    tdt = in_types[1][1]
    table = te.placeholder((int(in_types[1][0][0]),), tdt, "table")
    qmin = INT_RANGES[xdt][0]
    y = te.compute(shape, lambda *i: table[x[i].astype("int32") - tirx.const(qmin, "int32")].astype(out_type[1]),
                   name="out")
    return create([x, table, y])


@register_kernel("lut", I8, name="lut_generic")
def lut_generic(attrs, in_types, out_type, target):
    """y = table[x - qmin(x.dtype)], table [256] of the output dtype."""
    return schedule_elementwise(_lut_func(attrs, in_types, out_type), ["out"])
