"""x86 fast paths.

* ``qconv2d_int8_nchw_vnni``   (requires avx512_vnni): direct conv, AVX-512 VNNI ``vpdpbusd`` (u8 x s8 -> s32).
  PrimFunc params: x int8/uint8 [N,C,H,W] (NCHW, unchanged), w_packed int8 [O/16, KH, KW, C/4, 16, 4],
  bias_eff int32 [O], mult int32 [Cm], shift int32 [Cm] -> y [N,O,OH,OW] (out_dtype).
  ``kernel_inputs`` builds w_packed and bias_eff = bias - (zx + 128) * sum_k w[o, k] (int8 input; the
  kernel feeds x + 128 as uint8) or bias - zx * sum_k w[o, k] (uint8 input).  Needs constant w (and b).
  Applies when group == 1 (O not a multiple of 16: zero weight rows up to the next multiple, the extra
  accumulators are dropped at write-back; C not a multiple of 4, e.g. an RGB stem: channels zero-padded
  to the next multiple of 4 in both the staging buffer and the packed weight).
* ``qconv2d_int8_nhwc_vnni``: the same conv for layout NHWC (x [N,H,W,C] -> y [N,OH,OW,O]), chosen
  when compiler/passes/layout_plan.py keeps activations channels-last (registry.preferred_layouts).
* ``qconv2d_dw_int8_nchw_x86`` (requires x86): depthwise qconv2d (group == C, weight [C, 1, KH, KW]),
  padded (x - zx) staged per channel as int16, int32 accumulation vectorised over output columns,
  parallel over N*C, requantize fused.  Params as the generic qconv2d.
* ``conv2d_f32_nchw_tiled`` (requires avx512): register-tiled direct conv, fp32 FMA on 16 output channels.
  params: x f32 [N,C,H,W], w_packed f32 [Op/16, KH, KW, C, 16], (b f32 [O]) -> y [N,O,OH,OW].
  Applies when group == 1 (O is zero-padded to Op, a multiple of 16, in the packed weight).  Needs constant w.
* ``linear_f32_tiled`` (requires avx512): params x f32 [N,K], w_packed f32 [Op/16, K, 16], (b [O]) -> y [N,O].
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx
from tvm.script import tirx as T

from .common import (bias_clip, constant_bias, conv_attrs, conv_out_hw, create, out_bounds, per_channel, requant,
                     requant_arrays, requant_placeholders, zero_point_folded_bias)
from .registry import register_kernel

VNNI_INTRIN = "yuan_dot_16x4_u8i8i32_vnni"


# ------------------------------------------------------------------ VNNI tensor intrinsic (LLVM-22 signature)
@T.prim_func(s_tir=True)
def _vnni_desc(A: T.Buffer((4,), "uint8", offset_factor=1), B: T.Buffer((16, 4), "int8", offset_factor=1),
               C: T.Buffer((16,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")


@T.prim_func(s_tir=True)
def _vnni_impl(A: T.Buffer((4,), "uint8", offset_factor=1), B: T.Buffer((16, 4), "int8", offset_factor=1),
               C: T.Buffer((16,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
            C.vload([0], dtype="int32x16"),
            T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "uint8x4"), dtype="int32"), 16), dtype="uint8x64"),
            B.vload([0, 0], dtype="int8x64"),
            dtype="int32x16")


s_tir.TensorIntrin.register(VNNI_INTRIN, _vnni_desc, _vnni_impl, override=True)


def _w_tile(ow, cands=(8, 7, 6, 4, 5, 3, 2, 1)):
    for c in cands:
        if ow % c == 0:
            return c
    return 1


def _packed_f32_prepare(kernel, pack):
    """prepare_constants for an fp32 kernel with a pre-packed constant weight and an optional bias."""
    def prepare(attrs, in_types, arrays):
        if arrays[1] is None:
            raise ValueError(f"{kernel} needs a constant weight")
        res = [0, pack(np.asarray(arrays[1], np.float32))]
        if len(in_types) > 2 and in_types[2] is not None:
            res.append(2)
        return res
    return prepare


def _f32_write_back(sch, blk, at, outer, vec, reduce_at, padded=False):
    """Cache the accumulator and write it back at loop ``at`` with "out" inlined into it (or, when the
    accumulator has ``padded`` extra output channels, computed next to it), parallelise the fused
    ``outer`` loops, vectorise ``vec`` and the reduction init. Returns the write-back block."""
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, at)
    if padded:   # the padded channels are computed but never written out
        sch.reverse_compute_at(sch.get_sblock("out"), at)
    else:
        sch.reverse_compute_inline(sch.get_sblock("out"))
    sch.parallel(sch.fuse(*outer))
    sch.vectorize(vec)
    init = sch.decompose_reduction(blk, reduce_at)
    sch.vectorize(sch.get_loops(init)[-1])
    return cw


# ------------------------------------------------------------------ int8 VNNI conv
def _vnni_applies(attrs, in_types, out_type):
    s, p, d, g = conv_attrs(attrs)
    return g == 1 and in_types[1][1] == "int8"


def pack_w_vnni(w):
    """int8 [O, C, KH, KW] -> [O/16, KH, KW, Cp/4, 16, 4]; C is zero-padded to Cp = ceil(C/4)*4."""
    O, C, KH, KW = w.shape
    if C % 4:
        w = np.concatenate([w, np.zeros((O, 4 - C % 4, KH, KW), w.dtype)], axis=1)
        C = w.shape[1]
    if O % 16:
        w = np.concatenate([w, np.zeros((16 - O % 16, C, KH, KW), w.dtype)], axis=0)
        O = w.shape[0]
    return np.ascontiguousarray(w.reshape(O // 16, 16, C // 4, 4, KH, KW).transpose(0, 4, 5, 2, 1, 3))


def _vnni_prepare(attrs, in_types, arrays):
    if arrays[1] is None:
        raise ValueError("the VNNI conv needs a constant weight")
    w = np.asarray(arrays[1])
    O = w.shape[0]
    shift = 128 if in_types[0][1] == "int8" else 0   # the kernel feeds x + 128 as uint8
    bias = constant_bias(in_types, arrays, O, "the VNNI conv")
    beff = zero_point_folded_bias(bias, int(attrs.get("x_zero_point", 0)) + shift, w.reshape(O, -1))
    m, n = requant_arrays(attrs)
    return [0, pack_w_vnni(w), beff, m, n]


@register_kernel("qconv2d", ("int8", "uint8"), requires={"avx512_vnni"}, priority=10, applies=_vnni_applies,
                 prepare_constants=_vnni_prepare, needs_constant=(1, 2), name="qconv2d_int8_nchw_vnni")
def qconv2d_vnni(attrs, in_types, out_type, target):
    """Direct conv, NHWC uint8 staging + vpdpbusd over 16 output channels x 4 input channels."""
    return vnni_conv(attrs, in_types, out_type, channels_last=False)


@register_kernel("qconv2d", ("int8", "uint8"), requires={"avx512_vnni"}, priority=10, applies=_vnni_applies,
                 prepare_constants=_vnni_prepare, needs_constant=(1, 2), name="qconv2d_int8_nhwc_vnni",
                 layouts=("NHWC",))
def qconv2d_vnni_nhwc(attrs, in_types, out_type, target):
    """The VNNI conv for channels-last activations (layout planning): staging the padded uint8 input is
    a contiguous copy and the requantized output is written 16 channels at a time."""
    return vnni_conv(attrs, in_types, out_type, channels_last=True)


def vnni_conv(attrs, in_types, out_type, channels_last):
    """The VNNI conv for NCHW (channels_last=False) or NHWC activations (input and output). The
    input is staged as padded uint8 NHWC either way; from NHWC that is a contiguous copy."""
    s, p, d, g = conv_attrs(attrs)
    xdt = in_types[0][1]
    if channels_last:
        N, H, W, C = in_types[0][0]
    else:
        N, C, H, W = in_types[0][0]
    O, _, KH, KW = in_types[1][0]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    zx = int(attrs.get("x_zero_point", 0))
    off = 128 if xdt == "int8" else 0
    m_arr, _ = requant_arrays(attrs)
    Cm = len(m_arr)
    x = te.placeholder(tuple(in_types[0][0]), xdt, "x")
    Cp = (C + 3) // 4 * 4   # input channels padded to the vpdpbusd group of 4 (zero weights there)
    Op = (O + 15) // 16 * 16  # output channels padded to the 16 lanes of vpdpbusd (zero weights there)
    wp = te.placeholder((Op // 16, KH, KW, Cp // 4, 16, 4), "int8", "w_packed")
    beff = te.placeholder((O,), "int32", "bias_eff")
    m = te.placeholder((Cm,), "int32", "mult")
    n = te.placeholder((Cm,), "int32", "shift")
    t, l, b_, r = p
    Hp, Wp = H + t + b_, W + l + r

    def stage(nn, hh, ww, cc):
        inside = tirx.all(hh >= t, hh < H + t, ww >= l, ww < W + l)
        if Cp != C:
            inside = tirx.all(inside, cc < C)
            cc = te.min(cc, C - 1)
        ih, iw = te.max(te.min(hh - t, H - 1), 0), te.max(te.min(ww - l, W - 1), 0)
        v = (x[nn, ih, iw, cc] if channels_last else x[nn, cc, ih, iw]).astype("int32")
        return tirx.if_then_else(inside, v + off, tirx.const(zx + off, "int32")).astype("uint8")

    xu = te.compute((N, Hp, Wp, Cp), stage, name="xu")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    rc = te.reduce_axis((0, Cp), "rc")
    acc = te.compute((N, OH, OW, Op), lambda nn, h, ww, o: te.sum(
        xu[nn, h * s[0] + rh * d[0], ww * s[1] + rw * d[1], rc].astype("int32")
        * wp[o // 16, rh, rw, rc // 4, o % 16, rc % 4].astype("int32"), axis=[rh, rw, rc]), name="acc")
    odt = out_type[1]
    lo, hi = out_bounds(attrs, odt)
    zy = int(attrs.get("y_zero_point", 0))

    def epilogue(nn, o, h, ww):
        return requant(acc[nn, h, ww, o] + beff[o], per_channel(m, o), per_channel(n, o), zy, lo, hi, odt)

    if channels_last:
        y = te.compute((N, OH, OW, O), lambda nn, h, ww, o: epilogue(nn, o, h, ww), name="out")
    else:
        y = te.compute((N, O, OH, OW), epilogue, name="out")
    f = create([x, wp, beff, m, n, y])
    sch = s_tir.Schedule(f)
    blk = sch.get_sblock("acc")
    ln, lh, lw, lo_, lrh, lrw, lrc = sch.get_loops(blk)
    o0, o1 = sch.split(lo_, [None, 16])
    wt = _w_tile(OW)
    w0, w1 = sch.split(lw, [None, wt])
    c0, c1 = sch.split(lrc, [None, 4])
    sch.reorder(ln, lh, o0, w0, lrh, lrw, c0, w1, o1, c1)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, w0)
    if Op == O:
        sch.reverse_compute_inline(sch.get_sblock("out"))
    else:   # the padded channels are computed but never written out
        sch.reverse_compute_at(sch.get_sblock("out"), w0)
    sch.parallel(sch.fuse(ln, lh))
    init = sch.decompose_reduction(blk, lrh)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.tensorize(o1, VNNI_INTRIN)
    sch.unroll(w1)
    xb = sch.get_sblock("xu")
    xl = sch.get_loops(xb)
    sch.parallel(sch.fuse(xl[0], xl[1]))
    if channels_last and Cp == C and Cp <= 256:
        sch.vectorize(xl[-1])   # a contiguous row copy (+128, border fill)
    return sch.mod["main"]


# ------------------------------------------------------------------ fp32 tiled conv
def _f32conv_applies(attrs, in_types, out_type):
    return conv_attrs(attrs)[3] == 1


def _pad_rows16(w):
    """Zero rows up to the next multiple of 16 along axis 0 (extra output channels, never written out)."""
    extra = -w.shape[0] % 16
    return np.concatenate([w, np.zeros((extra,) + w.shape[1:], w.dtype)]) if extra else w


def pack_w_f32(w):
    """f32 [O, C, KH, KW] -> [Op/16, KH, KW, C, 16], O zero-padded to Op, a multiple of 16."""
    w = _pad_rows16(w)
    O, C, KH, KW = w.shape
    return np.ascontiguousarray(w.reshape(O // 16, 16, C, KH, KW).transpose(0, 3, 4, 2, 1))


_f32conv_prepare = _packed_f32_prepare("conv2d_f32_nchw_tiled", pack_w_f32)


@register_kernel("conv2d", "float32", requires={"avx512"}, priority=10, applies=_f32conv_applies,
                 prepare_constants=_f32conv_prepare, needs_constant=(1,), name="conv2d_f32_nchw_tiled")
def conv2d_f32_tiled(attrs, in_types, out_type, target):
    """Register tile (ow-tile x 16 out channels), fp32 FMA vectorised over output channels."""
    s, p, d, g = conv_attrs(attrs)
    (N, C, H, W), _ = in_types[0]
    O, _, KH, KW = in_types[1][0]
    Op = (O + 15) // 16 * 16   # FMA lanes: 16 output channels; padded ones have zero weights
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    x = te.placeholder((N, C, H, W), "float32", "x")
    wp = te.placeholder((Op // 16, KH, KW, C, 16), "float32", "w_packed")
    args = [x, wp]
    has_b = len(in_types) > 2 and in_types[2] is not None
    t, l, b_, r = p
    xp = te.compute((N, C, H + t + b_, W + l + r), lambda nn, cc, hh, ww: tirx.if_then_else(
        tirx.all(hh >= t, hh < H + t, ww >= l, ww < W + l),
        x[nn, cc, te.max(te.min(hh - t, H - 1), 0), te.max(te.min(ww - l, W - 1), 0)], tirx.const(0.0, "float32")),
        name="pad")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    rc = te.reduce_axis((0, C), "rc")
    acc = te.compute((N, OH, OW, Op), lambda nn, h, ww, o: te.sum(
        xp[nn, rc, h * s[0] + rh * d[0], ww * s[1] + rw * d[1]] * wp[o // 16, rh, rw, rc, o % 16],
        axis=[rh, rw, rc]), name="acc")
    bb = te.placeholder((O,), "float32", "b") if has_b else None
    args += [bb] if has_b else []
    y = te.compute((N, O, OH, OW), lambda nn, o, h, ww: bias_clip(acc[nn, h, ww, o], bb, o, attrs), name="out")
    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    ln, lh, lw, lo_, lrh, lrw, lrc = sch.get_loops(blk)
    # Register tile: wt output columns x oj*16 output channels (up to 28 of the 32 zmm registers as
    # accumulators). Two channel vectors per tile measured 15-40% faster on 3x3 layers with C >= 16;
    # the RGB stem (C = 3) is faster with one.
    oj = 2 if C >= 16 and Op % 32 == 0 else 1
    o0, oo, o1 = sch.split(lo_, [None, oj, 16])
    wt = _w_tile(OW, (14, 7, 6, 4, 3, 2, 1) if oj == 2 else (8, 7, 6, 4, 5, 3, 2, 1))
    w0, w1 = sch.split(lw, [None, wt])
    sch.reorder(ln, lh, o0, w0, lrh, lrw, lrc, w1, oo, o1)
    _f32_write_back(sch, blk, w0, (ln, lh), o1, lrh, padded=Op != O)
    sch.unroll(w1)
    sch.unroll(oo)
    pb = sch.get_sblock("pad")
    pl = sch.get_loops(pb)
    sch.parallel(sch.fuse(pl[0], pl[1]))
    sch.vectorize(pl[-1]) if (W + l + r) <= 64 else None
    return sch.mod["main"]


# ------------------------------------------------------------------ fp32 tiled linear
def pack_linear_f32(w):
    w = _pad_rows16(w)
    O, K = w.shape
    return np.ascontiguousarray(w.reshape(O // 16, 16, K).transpose(0, 2, 1))


_lin_prepare = _packed_f32_prepare("linear_f32_tiled", pack_linear_f32)


@register_kernel("linear", "float32", requires={"avx512"}, priority=10,
                 applies=lambda a, it, ot: len(it[0][0]) == 2,
                 prepare_constants=_lin_prepare, needs_constant=(1,), name="linear_f32_tiled")
def linear_f32_tiled(attrs, in_types, out_type, target):
    (N, K), _ = in_types[0]
    O = in_types[1][0][0]
    Op = (O + 15) // 16 * 16   # padded outputs have zero weights and are not written out
    x = te.placeholder((N, K), "float32", "x")
    wp = te.placeholder((Op // 16, K, 16), "float32", "w_packed")
    args = [x, wp]
    k = te.reduce_axis((0, K), "k")
    acc = te.compute((N, Op), lambda i, j: te.sum(x[i, k] * wp[j // 16, k, j % 16], axis=k), name="acc")
    if len(in_types) > 2 and in_types[2] is not None:
        bb = te.placeholder((O,), "float32", "b")
        args.append(bb)
        y = te.compute((N, O), lambda i, j: acc[i, j] + bb[j], name="out")
    else:
        y = te.compute((N, O), lambda i, j: acc[i, j], name="out")
    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    i, j, kk = sch.get_loops(blk)
    mi = next(c for c in (4, 2, 1) if N % c == 0)
    nj = next(c for c in (2, 1) if Op % (16 * c) == 0)
    i0, i1 = sch.split(i, [None, mi])
    j0, j1, j2 = sch.split(j, [None, nj, 16])
    sch.reorder(i0, j0, kk, i1, j1, j2)
    cw = _f32_write_back(sch, blk, j0, (i0, j0), j2, kk, padded=Op != O)
    sch.unroll(j1)
    sch.unroll(i1)
    sch.vectorize(sch.get_loops(cw)[-1])
    return sch.mod["main"]


# ------------------------------------------------------------------ int8 depthwise conv
def _dw_int8_applies(attrs, in_types, out_type):
    g = conv_attrs(attrs)[3]
    C = in_types[0][0][1]
    O = in_types[1][0][0]
    return g > 1 and g == C and in_types[1][0][1] == 1 and O % C == 0 and in_types[1][1] == "int8"


def _dw_prepare(attrs, in_types, arrays):
    m, n = requant_arrays(attrs)
    return list(range(len(in_types))) + [m, n]


@register_kernel("qconv2d", ("int8", "uint8"), requires={"x86"}, priority=5, applies=_dw_int8_applies,
                 prepare_constants=_dw_prepare, name="qconv2d_dw_int8_nchw_x86")
def dwconv2d_int8(attrs, in_types, out_type, target):
    """Depthwise qconv2d: per-channel int16 staging of (x - zx) (0 in the padding), int32 accumulation
    vectorised over output columns, parallel over N*O, requantize fused into the write-back."""
    s, p, d, g = conv_attrs(attrs)
    (N, C, H, W), xdt = in_types[0]
    O, _, KH, KW = in_types[1][0]
    mult = O // C
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    zx = int(attrs.get("x_zero_point", 0))
    x = te.placeholder((N, C, H, W), xdt, "x")
    w = te.placeholder((O, 1, KH, KW), "int8", "w")
    args = [x, w]
    has_b = len(in_types) > 2 and in_types[2] is not None
    if has_b:
        bias = te.placeholder((O,), "int32", "bias")
        args.append(bias)
    m, n, zy, odt, lo, hi = requant_placeholders(attrs, out_type)
    args += [m, n]
    t, l, b_, r = p
    Hp, Wp = H + t + b_, W + l + r

    def stage(nn, cc, hh, ww):
        inside = tirx.all(hh >= t, hh < H + t, ww >= l, ww < W + l)
        v = x[nn, cc, te.max(te.min(hh - t, H - 1), 0), te.max(te.min(ww - l, W - 1), 0)].astype("int16")
        return tirx.if_then_else(inside, v - tirx.const(zx, "int16"), tirx.const(0, "int16"))

    xs = te.compute((N, C, Hp, Wp), stage, name="xs")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    acc = te.compute((N, O, OH, OW), lambda nn, o, h, ww: te.sum(
        xs[nn, o // mult, h * s[0] + rh * d[0], ww * s[1] + rw * d[1]].astype("int32")
        * w[o, 0, rh, rw].astype("int32"), axis=[rh, rw]), name="acc")

    def epi(nn, o, h, ww):
        a = acc[nn, o, h, ww]
        if has_b:
            a = a + bias[o]
        return requant(a, per_channel(m, o), per_channel(n, o), zy, lo, hi, odt)

    y = te.compute((N, O, OH, OW), epi, name="out")
    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    ln, lo_, lh, lw, lrh, lrw = sch.get_loops(blk)
    vt = next((c for c in (16, 14, 8, 7, 12, 6, 4, 5, 3, 2) if OW % c == 0), 1)
    w0, w1 = sch.split(lw, [None, vt])
    sch.reorder(ln, lo_, lh, w0, lrh, lrw, w1)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, w0)
    sch.reverse_compute_inline(sch.get_sblock("out"))
    no = sch.fuse(ln, lo_)
    sch.parallel(no)
    if vt > 1:
        sch.vectorize(w1)
    init = sch.decompose_reduction(blk, lrh)
    if vt > 1:
        sch.vectorize(sch.get_loops(init)[-1])
        sch.vectorize(sch.get_loops(cw)[-1])
    sch.unroll(lrw)
    xb = sch.get_sblock("xs")
    sch.compute_at(xb, no)
    xl = sch.get_loops(xb)
    if Wp <= 64:
        sch.vectorize(xl[-1])
    return sch.mod["main"]
