"""Shared TE helpers: attribute parsing, padding, the requantize epilogue, generic schedules."""
from __future__ import annotations

import numpy as np
from tvm import te, s_tir, tirx

INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-2 ** 31, 2 ** 31 - 1)}


def conv_attrs(attrs):
    s = list(attrs.get("strides", [1, 1]) or [1, 1])
    p = list(attrs.get("pads", [0, 0, 0, 0]) or [0, 0, 0, 0])
    d = list(attrs.get("dilations", [1, 1]) or [1, 1])
    if len(p) == 2:
        p = [p[0], p[1], p[0], p[1]]
    g = int(attrs.get("group", 1) or 1)
    return [int(v) for v in s], [int(v) for v in p], [int(v) for v in d], g


def pool_attrs(attrs):
    k = [int(v) for v in attrs["kernel"]]
    s = [int(v) for v in (attrs.get("strides") or k)]
    p = [int(v) for v in (attrs.get("pads") or [0, 0, 0, 0])]
    if len(p) == 2:
        p = [p[0], p[1], p[0], p[1]]
    return k, s, p


def conv_out_hw(h, w, kh, kw, s, p, d):
    oh = (h + p[0] + p[2] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (w + p[1] + p[3] - d[1] * (kw - 1) - 1) // s[1] + 1
    return oh, ow


def qparams_list(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        return [int(x) for x in np.asarray(v).reshape(-1)]
    return [int(v)]


def requant_arrays(attrs, key_m="multiplier", key_n="shift"):
    m = np.asarray(qparams_list(attrs[key_m]), np.int32)
    n = np.asarray(qparams_list(attrs[key_n]), np.int32)
    if len(m) != len(n):
        if len(m) == 1:
            m = np.repeat(m, len(n))
        elif len(n) == 1:
            n = np.repeat(n, len(m))
        else:
            raise ValueError("multiplier/shift lengths differ")
    return m, n


def out_bounds(attrs, out_dtype):
    lo, hi = INT_RANGES[out_dtype]
    lo = int(attrs.get("out_min", lo) if attrs.get("out_min") is not None else lo)
    hi = int(attrs.get("out_max", hi) if attrs.get("out_max") is not None else hi)
    return lo, hi


def requant(acc, m, n, zy, lo, hi, out_dtype):
    """clamp(((int64(acc) * m + (1 << (n - 1))) >> n) + zy, lo, hi) cast to out_dtype (all int64 math)."""
    a = acc.astype("int64")
    m = m.astype("int64")
    n = n.astype("int64")
    one = tirx.const(1, "int64")
    r = tirx.shift_right(a * m + tirx.shift_left(one, n - one), n) + tirx.const(int(zy), "int64")
    r = te.max(te.min(r, tirx.const(int(hi), "int64")), tirx.const(int(lo), "int64"))
    return r.astype(out_dtype)


def per_channel(buf, c):
    """Element c of a per-channel parameter buffer, or its only element when it is per-tensor."""
    return buf[c] if int(buf.shape[0]) > 1 else buf[0]


def requant_placeholders(attrs, out_type):
    """mult/shift placeholders (length 1 or C, from attrs) and the output zero point, dtype and bounds."""
    m_arr, _ = requant_arrays(attrs)
    m = te.placeholder((len(m_arr),), "int32", "mult")
    n = te.placeholder((len(m_arr),), "int32", "shift")
    odt = out_type[1]
    lo, hi = out_bounds(attrs, odt)
    return m, n, int(attrs.get("y_zero_point", 0)), odt, lo, hi


def prep_requant(attrs, in_types, arrays):
    """prepare_constants of a kernel taking its node inputs followed by the mult/shift arrays."""
    m, n = requant_arrays(attrs)
    return list(range(len(in_types))) + [m, n]


def constant_bias(in_types, arrays, count, kernel):
    """The node's constant int32 bias as int64 (zeros when the node has none); a bias computed at run
    time is an error, because `kernel` folds it into compile-time constants."""
    if len(arrays) > 2 and arrays[2] is not None:
        return np.asarray(arrays[2], np.int64)
    if len(in_types) > 2 and in_types[2] is not None:
        raise ValueError(f"{kernel} needs a constant bias")
    return np.zeros(count, np.int64)


def zero_point_folded_bias(bias, zero_point, w2d):
    """bias - zero_point * sum_k w[o, k] as int32: a kernel that feeds x without subtracting its zero
    point (or with an offset added) corrects the accumulator once, through the bias."""
    beff = np.asarray(bias, np.int64) - int(zero_point) * np.asarray(w2d, np.int64).sum(axis=1)
    if np.any(np.abs(beff) >= 2 ** 31):
        raise ValueError("bias correction overflows int32")
    return beff.astype(np.int32)


def bias_clip(value, bias, c, attrs):
    """A float conv's write-back: + bias[c] (when there is a bias), then the fused activation."""
    return clip_epilogue(value if bias is None else value + bias[c], attrs)


def clip_epilogue(value, attrs, dtype="float32"):
    """A float conv's fused activation: clamp to attrs clip_min / clip_max (None = unbounded),
    set by the lowering when a relu / clip is the conv's only consumer."""
    lo, hi = attrs.get("clip_min"), attrs.get("clip_max")
    if lo is not None:
        value = te.max(value, tirx.const(float(lo), dtype))
    if hi is not None:
        value = te.min(value, tirx.const(float(hi), dtype))
    return value


def pad_nchw(x, p, value, name="pad"):
    """Pad H/W of an NCHW tensor with `value` (a python number, cast to x.dtype)."""
    if not any(p):
        return x
    n, c, h, w = (int(v) for v in x.shape)
    t, l, b, r = p
    val = tirx.const(value, x.dtype)

    def f(nn, cc, hh, ww):
        cond = tirx.all(hh >= t, hh < h + t, ww >= l, ww < w + l)
        return tirx.if_then_else(cond, x[nn, cc, hh - t, ww - l], val)

    return te.compute((n, c, h + t + b, w + l + r), f, name=name)


def create(args):
    return te.create_prim_func(list(args), index_dtype_override="int64")


def _divisor(n, cands=(16, 8, 4, 2)):
    for c in cands:
        if n % c == 0:
            return c
    return None


def schedule_generic(func, main="acc", epilogue=None, inline=("pad",), vec_limit=64):
    """Modest generic CPU schedule: inline padding, parallel over the two outer spatial loops,
    reduction loops before the innermost spatial loop, innermost spatial loop vectorised."""
    sch = s_tir.Schedule(func)
    for name in inline:
        try:
            sch.compute_inline(sch.get_sblock(name))
        except Exception:
            pass
    blk = sch.get_sblock(main)
    loops = sch.get_loops(blk)
    iters = sch.get(blk).iter_vars
    spatial = [l for l, iv in zip(loops, iters) if iv.iter_type == 0]
    reduce_ = [l for l, iv in zip(loops, iters) if iv.iter_type != 0]
    if len(spatial) >= 2:
        if reduce_:
            sch.reorder(*spatial[:-1], *reduce_, spatial[-1])
        ext = int(sch.get(spatial[-1]).extent)
        inner = spatial[-1]
        if ext > vec_limit:
            d = _divisor(ext)
            if d:
                _, inner = sch.split(inner, [None, d])
                ext = d
            else:
                inner = None
        if inner is not None and ext > 1:
            sch.vectorize(inner)
        outer = spatial[:2] if len(spatial) > 2 else spatial[:1]
        sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
    elif len(spatial) == 1:
        sch.parallel(spatial[0])
    if epilogue is not None:
        _schedule_elementwise(sch, sch.get_sblock(epilogue), vec_limit)
    return sch.mod["main"]


def _schedule_elementwise(sch, blk, vec_limit=64):
    loops = sch.get_loops(blk)
    if len(loops) >= 3:
        sch.parallel(sch.fuse(*loops[:2]))
    elif len(loops) >= 1 and int(sch.get(loops[0]).extent) > 1 and len(loops) == 2:
        sch.parallel(loops[0])
    loops = sch.get_loops(blk)
    last = loops[-1]
    ext = int(sch.get(last).extent)
    if len(loops) > 1 and 1 < ext:
        if ext > vec_limit:
            d = _divisor(ext)
            if not d:
                return
            _, last = sch.split(last, [None, d])
        sch.vectorize(last)


def schedule_elementwise(func, names):
    sch = s_tir.Schedule(func)
    for nm in names:
        _schedule_elementwise(sch, sch.get_sblock(nm))
    return sch.mod["main"]
