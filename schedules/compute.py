"""The unscheduled TE computes of the ops, as PrimFuncs: the generic CPU kernels schedule them, the cuda
kernels leave them to DLight, so every backend computes the same thing from the same parameters.

PrimFunc params (output last); blocks "acc" (the reduction, where there is one) and "out":
  conv2d_f32  : x[N,C,H,W], w[O,C/g,KH,KW], (b[O])            -> y[N,O,OH,OW]   (+ block "pad")
  linear_f32  : x[N,K], w[O,K], (b[O])                        -> y[N,O]
  qconv2d     : x[N,C,H,W], w int8[O,C/g,KH,KW], (bias int32[O]), mult int32[Cm], shift int32[Cm] -> y
                (channels_last: x[N,H,W,C] -> y[N,OH,OW,O], no padded copy)
  qlinear     : x[N,K], w int8[O,K], (bias int32[O]), mult, shift -> y[N,O]
  requantize  : x[...], mult, shift -> y  (per-channel along attr "axis", default 1)
  qglobal_avg_pool2d: x, mult, shift -> y[N,C,1,1] (or [N,1,1,C])
  qavg_pool2d : x, multiplier_map int32[OH,OW], shift_map int32[OH,OW] -> y
  qadd        : a, b (NumPy broadcasting) -> y ; multipliers/shift baked in as constants
  lut         : x int8/uint8, table[256] (out dtype) -> y ; y = table[x - qmin(x.dtype)]
  resize      : x float[N,C,H,W] or [N,H,W,C] -> y ; ONNX Resize (linear / nearest), coordinate tables
Cm = 1 or the channel count; the mult/shift arrays come from kernel_inputs (constants.prep_requant).
"""
from __future__ import annotations

import numpy as np
from tvm import te, tirx

from .node_attrs import conv_attrs, conv_out_hw, has_bias, pool_attrs
from .requant import INT_RANGES, RequantEpilogue, output_params, qadd_value, qparams_list, requant, wrapping_add
from .te_utils import bias_clip, centred_value, create, pad_nchw


def bias_placeholder(in_types, args, dtype="int32", name="bias"):
    """The optional bias placeholder (appended to ``args``), or None."""
    if not has_bias(in_types):
        return None
    bias = te.placeholder(in_types[2][0], dtype, name)
    args.append(bias)
    return bias


def plus_bias(value, bias, c):
    return value if bias is None else value + bias[c]


def plus_int_bias(value, bias, c):
    """An int32 accumulator plus its bias (when there is one), as requant.wrapping_add."""
    return value if bias is None else wrapping_add(value, bias[c])


# ------------------------------------------------------------------------------------------ conv2d
def _conv_reduction(w, g):
    """The reduce axes (rc over C/g, rh, rw) of a direct conv with weight w [O, C/g, KH, KW], and the
    input channel output channel o reads at rc."""
    O, Cg, KH, KW = (int(v) for v in w.shape)
    rc = te.reduce_axis((0, Cg), "rc")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")

    def in_channel(o):
        return rc if g == 1 else (o // (O // g)) * Cg + rc

    return rc, rh, rw, in_channel


def conv2d_nchw(x, w, attrs, out_type, acc_dtype, pad_value, xin=None, name="acc"):
    """The direct NCHW conv reduction (groups, dilation, asymmetric pads) over a padded copy of x;
    ``xin`` maps each input value before the multiply (default: a cast to acc_dtype)."""
    s, p, d, g = conv_attrs(attrs)
    N, C, H, W = (int(v) for v in x.shape)
    O, _, KH, KW = (int(v) for v in w.shape)
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    assert tuple(out_type[0]) == (N, O, OH, OW), (out_type, (N, O, OH, OW))
    xp = pad_nchw(x, p, pad_value)
    rc, rh, rw, in_channel = _conv_reduction(w, g)

    def f(n, o, h, ww):
        xv = xp[n, in_channel(o), h * s[0] + rh * d[0], ww * s[1] + rw * d[1]]
        wv = w[o, rc, rh, rw]
        if xin is not None:
            return te.sum(xin(xv) * wv.astype(acc_dtype), axis=[rc, rh, rw])
        return te.sum(xv.astype(acc_dtype) * wv.astype(acc_dtype), axis=[rc, rh, rw])

    return te.compute((N, O, OH, OW), f, name=name)


def conv2d_f32(attrs, in_types, out_type):
    x = te.placeholder(in_types[0][0], "float32", "x")
    w = te.placeholder(in_types[1][0], "float32", "w")
    args = [x, w]
    acc = conv2d_nchw(x, w, attrs, out_type, "float32", 0.0)
    b = bias_placeholder(in_types, args, "float32", "b")
    y = te.compute(acc.shape, lambda n, o, h, ww: bias_clip(acc[n, o, h, ww], b, o, attrs), name="out")
    return create(args + [y])


def qconv2d(attrs, in_types, out_type, channels_last=False):
    """int32 accumulation of (x - zx) * w, then + bias and requantize."""
    x = te.placeholder(in_types[0][0], in_types[0][1], "x")
    w = te.placeholder(in_types[1][0], in_types[1][1], "w")
    zx = int(attrs.get("x_zero_point", 0))
    args = [x, w]
    if channels_last:
        acc = _qconv2d_nhwc_acc(x, w, attrs, zx)
    else:
        acc = conv2d_nchw(x, w, attrs, out_type, "int32", zx,
                          xin=lambda v: v.astype("int32") - tirx.const(zx, "int32"))
    bias = bias_placeholder(in_types, args)
    epilogue = RequantEpilogue(attrs, out_type)
    if channels_last:
        y = te.compute(acc.shape, lambda n, h, ww, o: epilogue(plus_int_bias(acc[n, h, ww, o], bias, o), o), name="out")
    else:
        y = te.compute(acc.shape, lambda n, o, h, ww: epilogue(plus_int_bias(acc[n, o, h, ww], bias, o), o), name="out")
    return create(args + epilogue.params + [y])


def _qconv2d_nhwc_acc(x, w, attrs, zx):
    """The NHWC qconv reduction; padding is a select around each read, not a padded copy."""
    s, p, d, g = conv_attrs(attrs)
    N, H, W, C = (int(v) for v in x.shape)
    O, _, KH, KW = (int(v) for v in w.shape)
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    rc, rh, rw, in_channel = _conv_reduction(w, g)

    def f(nn, h, ww, o):
        v = centred_value(x, nn, in_channel(o), h * s[0] + rh * d[0] - p[0], ww * s[1] + rw * d[1] - p[1], zx, True)
        return te.sum(v * w[o, rc, rh, rw].astype("int32"), axis=[rh, rw, rc])

    return te.compute((N, OH, OW, O), f, name="acc")


# ------------------------------------------------------------------------------------------ linear
def linear_f32(attrs, in_types, out_type):
    x = te.placeholder(in_types[0][0], "float32", "x")
    w = te.placeholder(in_types[1][0], "float32", "w")
    N, K = in_types[0][0]
    O = in_types[1][0][0]
    k = te.reduce_axis((0, K), "k")
    acc = te.compute((N, O), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="acc")
    args = [x, w]
    b = bias_placeholder(in_types, args, "float32", "b")
    y = te.compute((N, O), lambda i, j: plus_bias(acc[i, j], b, j), name="out")
    return create(args + [y])


def qlinear(attrs, in_types, out_type):
    x = te.placeholder(in_types[0][0], in_types[0][1], "x")
    w = te.placeholder(in_types[1][0], in_types[1][1], "w")
    N, K = in_types[0][0]
    O = in_types[1][0][0]
    zx = int(attrs.get("x_zero_point", 0))
    k = te.reduce_axis((0, K), "k")
    acc = te.compute((N, O), lambda i, j: te.sum(
        (x[i, k].astype("int32") - tirx.const(zx, "int32")) * w[j, k].astype("int32"), axis=k), name="acc")
    args = [x, w]
    bias = bias_placeholder(in_types, args)
    epilogue = RequantEpilogue(attrs, out_type)
    y = te.compute((N, O), lambda i, j: epilogue(plus_int_bias(acc[i, j], bias, j), j), name="out")
    return create(args + epilogue.params + [y])


# ------------------------------------------------------------------------------------------ light ops
def requantize(attrs, in_types, out_type):
    """y = requant(x - zx), per-channel along attr "axis" (default 1) when mult/shift are."""
    shape, xdt = in_types[0]
    x = te.placeholder(shape, xdt, "x")
    epilogue = RequantEpilogue(attrs, out_type)
    axis = int(attrs.get("axis", 1) if attrs.get("axis") is not None else 1)
    per_channel = int(epilogue.mult.shape[0]) > 1
    if per_channel:
        assert shape[axis] == int(epilogue.mult.shape[0])
    zx = int(attrs.get("x_zero_point", 0))

    def f(*idx):   # idx[axis] only when per-channel: a per-tensor requantize may have rank <= axis
        return epilogue(x[idx].astype("int64") - tirx.const(zx, "int64"), idx[axis] if per_channel else 0)

    y = te.compute(shape, f, name="out")
    return create([x] + epilogue.params + [y])


def qadd(attrs, in_types, out_type):
    """y = clamp(((A*m_a + B*m_b + 2^(n-1)) >> n) + zy), A = a - za, B = b - zb; constants baked in."""
    a = te.placeholder(in_types[0][0], in_types[0][1], "a")
    b = te.placeholder(in_types[1][0], in_types[1][1], "b")
    shape = tuple(np.broadcast_shapes(tuple(in_types[0][0]), tuple(in_types[1][0])))
    rank = len(shape)
    za, zb = int(attrs.get("a_zero_point", 0)), int(attrs.get("b_zero_point", 0))
    ma, mb = qparams_list(attrs["a_multiplier"])[0], qparams_list(attrs["b_multiplier"])[0]
    sh = qparams_list(attrs["shift"])[0]
    zy, odt, lo, hi = output_params(attrs, out_type)

    def idx_of(t, idx):
        ts = [int(s) for s in t.shape]
        off = rank - len(ts)
        return tuple(0 if ts[i] == 1 and shape[i + off] != 1 else idx[i + off] for i in range(len(ts)))

    code_range = (min(INT_RANGES[t[1]][0] for t in in_types[:2]), max(INT_RANGES[t[1]][1] for t in in_types[:2]))

    def f(*idx):
        return qadd_value(a[idx_of(a, idx)], b[idx_of(b, idx)], za, zb, code_range, ma, mb, sh, zy, lo, hi, odt)

    y = te.compute(shape, f, name="out")
    return create([a, b, y])


def qglobal_avg_pool2d(attrs, in_types, out_type, channels_last=False):
    """acc [N,C] = sum_{h,w} (x - zx) in int32, then requantize (mult/shift of length 1 or C)."""
    if channels_last:
        (N, H, W, C), xdt = in_types[0]
    else:
        (N, C, H, W), xdt = in_types[0]
    x = te.placeholder(tuple(in_types[0][0]), xdt, "x")
    epilogue = RequantEpilogue(attrs, out_type)
    zx = int(attrs.get("x_zero_point", 0))
    rh = te.reduce_axis((0, H), "rh")
    rw = te.reduce_axis((0, W), "rw")

    def window_sum(b, c):
        v = x[b, rh, rw, c] if channels_last else x[b, c, rh, rw]
        return te.sum(v.astype("int32") - tirx.const(zx, "int32"), axis=[rh, rw])

    acc = te.compute((N, C), window_sum, name="acc")
    if channels_last:
        y = te.compute((N, 1, 1, C), lambda b, i, j, c: epilogue(acc[b, c], c), name="out")
    else:
        y = te.compute((N, C, 1, 1), lambda b, c, i, j: epilogue(acc[b, c], c), name="out")
    return create([x] + epilogue.params + [y])


def qavg_pool2d(attrs, in_types, out_type, channels_last=False):
    """acc = sum_window (x - zx) (pads add 0); y = requant(acc, mm[oh,ow], sm[oh,ow]): the maps are per
    output cell (they hold each cell's divisor) in either layout."""
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
    zy, odt, lo, hi = output_params(attrs, out_type)
    rh = te.reduce_axis((0, k[0]), "rh")
    rw = te.reduce_axis((0, k[1]), "rw")

    def window_sum(b, c, i, j):
        return te.sum(centred_value(x, b, c, i * s[0] + rh - p[0], j * s[1] + rw - p[1], zx, channels_last),
                      axis=[rh, rw])

    def out(acc_value, i, j):
        return requant(acc_value, mm[i, j], sm[i, j], zy, lo, hi, odt)

    if channels_last:
        acc = te.compute((N, OH, OW, C), lambda b, i, j, c: window_sum(b, c, i, j), name="acc")
        y = te.compute((N, OH, OW, C), lambda b, i, j, c: out(acc[b, i, j, c], i, j), name="out")
    else:
        acc = te.compute((N, C, OH, OW), window_sum, name="acc")
        y = te.compute((N, C, OH, OW), lambda b, c, i, j: out(acc[b, c, i, j], i, j), name="out")
    return create([x, mm, sm, y])


def lut(attrs, in_types, out_type):
    """y = table[x - qmin(x.dtype)], table [256] of the output dtype."""
    shape, xdt = in_types[0]
    x = te.placeholder(shape, xdt, "x")
    table = te.placeholder((int(in_types[1][0][0]),), in_types[1][1], "table")
    qmin = INT_RANGES[xdt][0]
    y = te.compute(shape, lambda *i: table[x[i].astype("int32") - tirx.const(qmin, "int32")].astype(out_type[1]),
                   name="out")
    return create([x, table, y])


def _resize_source(out_size, in_size, scale, mode, name):
    """[out_size] float32 input coordinate of each output index: ONNX Resize's
    coordinate_transformation_mode in float32, the order of operations of compiler/ir/image_ops.py."""
    f32 = "float32"
    scale = tirx.const(float(np.float32(scale)), f32)

    def coord(i):
        x = i.astype(f32)
        if mode == "asymmetric":
            return x / scale
        if mode == "align_corners":
            if out_size == 1:
                return tirx.const(0.0, f32)
            return x * tirx.const(float(in_size - 1), f32) / tirx.const(float(out_size - 1), f32)
        if mode == "pytorch_half_pixel" and out_size == 1:
            return tirx.const(0.0, f32)
        half = tirx.const(0.5, f32)
        return (x + half) / scale - half
    return te.compute((out_size,), coord, name=name)


def _nearest_index(c, in_size, nearest_mode):
    lo = tirx.floor(c)
    frac = c - lo
    up = {"round_prefer_floor": frac > 0.5, "round_prefer_ceil": frac >= 0.5,
          "floor": None, "ceil": frac > 0}[nearest_mode]
    i = lo.astype("int64")
    if up is not None:
        i = i + tirx.Select(up, tirx.const(1, "int64"), tirx.const(0, "int64"))
    return te.max(te.min(i, tirx.const(in_size - 1, "int64")), tirx.const(0, "int64"))


def _linear_taps(coords, in_size, name):
    """(lo, hi, frac) tables: the two pixels each output row/column blends and hi's weight."""
    n = int(coords.shape[0])
    top = tirx.const(float(in_size - 1), "float32")

    def clamped(i):
        return te.max(te.min(coords[i], top), tirx.const(0.0, "float32"))
    lo = te.compute((n,), lambda i: tirx.floor(clamped(i)).astype("int64"), name=f"{name}_lo")
    hi = te.compute((n,), lambda i: te.min(lo[i] + 1, tirx.const(in_size - 1, "int64")), name=f"{name}_hi")
    frac = te.compute((n,), lambda i: clamped(i) - lo[i].astype("float32"), name=f"{name}_frac")
    return lo, hi, frac


def resize(attrs, in_types, out_type, fenced=True):
    """ONNX Resize of H, W (attr layout NCHW or NHWC): per-row / per-column coordinate tables (blocks
    "rows*", "cols*"), then block "out" gathers 1 (nearest) or 4 (linear) pixels per output.
    fenced: keep LLVM from contracting the linear blend into FMAs (LLVM targets only)."""
    shape, dt = in_types[0]
    nhwc = attrs.get("layout", "NCHW") == "NHWC"
    ah, aw = (1, 2) if nhwc else (2, 3)
    in_h, in_w = int(shape[ah]), int(shape[aw])
    oh, ow = (int(v) for v in attrs["size"])
    scales = attrs.get("scales") or [np.float32(oh) / np.float32(in_h), np.float32(ow) / np.float32(in_w)]
    mode = attrs.get("coordinate_mode", "half_pixel")
    x = te.placeholder(shape, dt, "x")
    ys = _resize_source(oh, in_h, scales[0], mode, "rows")
    xs = _resize_source(ow, in_w, scales[1], mode, "cols")

    def at(idx, r, c):
        idx = list(idx)
        idx[ah], idx[aw] = r, c
        return x[tuple(idx)]

    if attrs.get("mode", "linear") == "nearest":
        nm = attrs.get("nearest_mode", "round_prefer_floor")
        rows = te.compute((oh,), lambda i: _nearest_index(ys[i], in_h, nm), name="rows_index")
        cols = te.compute((ow,), lambda i: _nearest_index(xs[i], in_w, nm), name="cols_index")
        y = te.compute(out_type[0], lambda *i: at(i, rows[i[ah]], cols[i[aw]]), name="out")
        return create([x, y])
    y0, y1, fy = _linear_taps(ys, in_h, "rows")
    x0, x1, fx = _linear_taps(xs, in_w, "cols")
    one = tirx.const(1.0, dt)

    def blend(*i):
        r, c = i[ah], i[aw]
        wy0, wy1, wx0, wx1 = one - fy[r], fy[r], one - fx[c], fx[c]
        # ONNX Runtime's order: dx2*dy2*X11 + dx1*dy2*X21 + dx2*dy1*X12 + dx1*dy1*X22; each product
        # fenced so that LLVM does not contract it into an FMA: the sum is then NumPy's, bit for bit
        def term(w, rr, cc):
            v = w * at(i, rr, cc)
            return tirx.call_llvm_pure_intrin(dt, "llvm.arithmetic.fence", v) if fenced else v
        return (term(wx0 * wy0, y0[r], x0[c]) + term(wx1 * wy0, y0[r], x1[c])
                + term(wx0 * wy1, y1[r], x0[c]) + term(wx1 * wy1, y1[r], x1[c]))
    return create([x, te.compute(out_type[0], blend, name="out")])
