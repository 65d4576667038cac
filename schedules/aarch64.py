"""aarch64 fast paths (Armv8.2 dot product: SDOT).

* ``qconv2d_int8_nchw_sdot``  (requires aarch64 + dotprod): direct conv, ``sdot`` (s8 x s8 -> s32, 4 lanes x 4).
  PrimFunc params: x int8/uint8 [N,C,H,W] (NCHW, unchanged), w_packed int8 [O/4, KH, KW, C4/4, 4, 4]
  (C4 = C rounded up to a multiple of 4, the extra channels hold zero weights), bias_eff int32 [O],
  mult int32 [Cm], shift int32 [Cm] -> y [N,O,OH,OW] (out_dtype).
  The kernel stages x as int8 NHWC: ``x`` for int8 input, ``x - 128`` for uint8 input, padded with the
  zero point (in the same domain), so ``bias_eff[o] = bias[o] - (zx - off) * sum_k w[o, k]`` (off = 0 for
  int8, 128 for uint8).  Applies when group == 1 and O % 4 == 0; needs constant w (and b).
* ``qconv2d_int8_nhwc_sdot``: the same conv for layout NHWC (x [N,H,W,C] -> y [N,OH,OW,O]); the
  staging copy is contiguous and the write-back needs no transpose.
* ``qlinear_int8_sdot`` (requires aarch64 + dotprod): same idea for qlinear: x [N,K] -> int8 staging
  (K padded to a multiple of 4), w_packed int8 [O/4, K4/4, 4, 4], bias_eff, mult, shift.  O % 4 == 0.

The sdot tensor intrinsic is registered here as ``yuan_dot_4x4_i8i8s32_sdot`` (same description as TVM's
``dot_4x4_i8i8s32_sdot``) so that ``tvm.s_tir.tensor_intrin`` (~20 s to import) is never imported.
Integer arithmetic is exact, so results are bit-identical to the generic kernels / the NumPy reference.
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx
from tvm.script import tirx as T

from .common import (constant_bias, conv_attrs, conv_out_hw, create, out_bounds, per_channel, requant, requant_arrays,
                     zero_point_folded_bias)
from .registry import register_kernel

SDOT_INTRIN = "yuan_dot_4x4_i8i8s32_sdot"


# ------------------------------------------------------------------ SDOT tensor intrinsic
# C[i] += sum_k A[k] * B[i, k]   (i, k < 4): one `sdot vC.4s, vB.16b, vA.16b` with A broadcast to 4 lanes.
@T.prim_func(s_tir=True)
def _sdot_desc(A: T.Buffer((4,), "int8", offset_factor=1), B: T.Buffer((4, 4), "int8", offset_factor=1),
               C: T.Buffer((4,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4, 0:4])
        T.writes(C[0:4])
        for i in T.serial(0, 4):
            for k in T.serial(0, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")


@T.prim_func(s_tir=True)
def _sdot_impl(A: T.Buffer((4,), "int8", offset_factor=1), B: T.Buffer((4, 4), "int8", offset_factor=1),
               C: T.Buffer((4,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4, 0:4])
        T.writes(C[0:4])
        # one expression (no `x = ...` bindings: those become heap workspace in 0.27)
        C[T.ramp(T.int32(0), 1, 4)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.sdot.v4i32.v16i8"),
            C.vload([0], dtype="int32x4"),
            T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"), 4), dtype="int8x16"),
            B.vload([0, 0], dtype="int8x16"),
            dtype="int32x4")


s_tir.TensorIntrin.register(SDOT_INTRIN, _sdot_desc, _sdot_impl, override=True)


def _ceil4(n):
    return (n + 3) // 4 * 4


def _offset(xdt):
    return 128 if xdt == "uint8" else 0


def _bias_eff(attrs, in_types, arrays, w2d, name):
    """The kernel feeds x - off as int8: fold (zx - off) * sum_k w into the bias."""
    bias = constant_bias(in_types, arrays, w2d.shape[0], name)
    return zero_point_folded_bias(bias, int(attrs.get("x_zero_point", 0)) - _offset(in_types[0][1]), w2d)


# ------------------------------------------------------------------ int8 SDOT conv
def _conv_applies(attrs, in_types, out_type):
    g = conv_attrs(attrs)[3]
    return g == 1 and in_types[1][0][0] % 4 == 0 and in_types[1][1] == "int8"


def pack_w_sdot(w):
    """int8 [O, C, KH, KW] -> [O/4, KH, KW, C4/4, 4, 4] (C zero-padded to C4)."""
    O, C, KH, KW = w.shape
    C4 = _ceil4(C)
    wp = np.zeros((O, C4, KH, KW), np.int8)
    wp[:, :C] = w
    return np.ascontiguousarray(wp.reshape(O // 4, 4, C4 // 4, 4, KH, KW).transpose(0, 4, 5, 2, 1, 3))


def _conv_prepare(attrs, in_types, arrays):
    if arrays[1] is None:
        raise ValueError("the sdot conv needs a constant weight")
    w = np.asarray(arrays[1])
    m, n = requant_arrays(attrs)
    return [0, pack_w_sdot(w), _bias_eff(attrs, in_types, arrays, w.reshape(w.shape[0], -1),
                                         "the sdot conv"), m, n]


def _w_tile(ow, cands=(8, 6, 4, 7, 5, 3, 2, 1)):
    for c in cands:
        if ow % c == 0:
            return c
    return 1


@register_kernel("qconv2d", ("int8", "uint8"), requires={"aarch64", "dotprod"}, priority=10,
                 applies=_conv_applies, prepare_constants=_conv_prepare, needs_constant=(1, 2),
                 name="qconv2d_int8_nchw_sdot")
def qconv2d_sdot(attrs, in_types, out_type, target):
    """Direct conv, NHWC int8 staging + sdot over 4 output channels x 4 input channels."""
    return sdot_conv(attrs, in_types, out_type, channels_last=False)


@register_kernel("qconv2d", ("int8", "uint8"), requires={"aarch64", "dotprod"}, priority=10,
                 applies=_conv_applies, prepare_constants=_conv_prepare, needs_constant=(1, 2),
                 name="qconv2d_int8_nhwc_sdot", layouts=("NHWC",))
def qconv2d_sdot_nhwc(attrs, in_types, out_type, target):
    """The sdot conv reading and writing NHWC (layout planning): staging is a contiguous copy."""
    return sdot_conv(attrs, in_types, out_type, channels_last=True)


def sdot_conv(attrs, in_types, out_type, channels_last):
    s, p, d, g = conv_attrs(attrs)
    xdt = in_types[0][1]
    if channels_last:
        N, H, W, C = in_types[0][0]
    else:
        N, C, H, W = in_types[0][0]
    O, _, KH, KW = in_types[1][0]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    C4 = _ceil4(C)
    zx = int(attrs.get("x_zero_point", 0))
    off = _offset(xdt)
    m_arr, _ = requant_arrays(attrs)
    Cm = len(m_arr)
    x = te.placeholder(tuple(in_types[0][0]), xdt, "x")
    wp = te.placeholder((O // 4, KH, KW, C4 // 4, 4, 4), "int8", "w_packed")
    beff = te.placeholder((O,), "int32", "bias_eff")
    m = te.placeholder((Cm,), "int32", "mult")
    n = te.placeholder((Cm,), "int32", "shift")
    t, l, b_, r = p
    Hp, Wp = H + t + b_, W + l + r

    def stage(nn, hh, ww, cc):
        inside = tirx.all(hh >= t, hh < H + t, ww >= l, ww < W + l, cc < C)
        c, ih, iw = te.min(cc, C - 1), te.max(te.min(hh - t, H - 1), 0), te.max(te.min(ww - l, W - 1), 0)
        v = (x[nn, ih, iw, c] if channels_last else x[nn, c, ih, iw]).astype("int32")
        # channels >= C meet zero weights: any value works, use the pad value
        return tirx.if_then_else(inside, v - off, tirx.const(zx - off, "int32")).astype("int8")

    xs = te.compute((N, Hp, Wp, C4), stage, name="xs")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    rc = te.reduce_axis((0, C4), "rc")
    acc = te.compute((N, OH, OW, O), lambda nn, h, ww, o: te.sum(
        xs[nn, h * s[0] + rh * d[0], ww * s[1] + rw * d[1], rc].astype("int32")
        * wp[o // 4, rh, rw, rc // 4, o % 4, rc % 4].astype("int32"), axis=[rh, rw, rc]), name="acc")
    odt = out_type[1]
    lo, hi = out_bounds(attrs, odt)
    zy = int(attrs.get("y_zero_point", 0))

    def epilogue(nn, o, h, ww):
        return requant(acc[nn, h, ww, o] + beff[o], per_channel(m, o), per_channel(n, o), zy, lo, hi, odt)

    if channels_last:
        y = te.compute((N, OH, OW, O), lambda nn, h, ww, o: epilogue(nn, o, h, ww), name="out")
    else:
        y = te.compute((N, O, OH, OW), epilogue, name="out")
    sch = s_tir.Schedule(create([x, wp, beff, m, n, y]))
    blk = sch.get_sblock("acc")
    ln, lh, lw, lo_, lrh, lrw, lrc = sch.get_loops(blk)
    nj = 4 if O % 16 == 0 else (2 if O % 8 == 0 else 1)
    o0, o1, o2 = sch.split(lo_, [None, nj, 4])
    wt = _w_tile(OW)
    w0, w1 = sch.split(lw, [None, wt])
    c0, c1 = sch.split(lrc, [None, 4])
    sch.reorder(ln, lh, o0, w0, lrh, lrw, c0, w1, o1, o2, c1)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, w0)
    sch.reverse_compute_inline(sch.get_sblock("out"))
    sch.parallel(sch.fuse(ln, lh))
    init = sch.decompose_reduction(blk, lrh)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.tensorize(o2, SDOT_INTRIN)
    sch.unroll(o1)
    sch.unroll(w1)
    xl = sch.get_loops(sch.get_sblock("xs"))
    sch.parallel(sch.fuse(xl[0], xl[1]))
    return sch.mod["main"]


# ------------------------------------------------------------------ int8 SDOT linear
def _lin_applies(attrs, in_types, out_type):
    return len(in_types[0][0]) == 2 and in_types[1][0][0] % 4 == 0 and in_types[1][1] == "int8"


def pack_linear_sdot(w):
    """int8 [O, K] -> [O/4, K4/4, 4, 4] (K zero-padded to K4)."""
    O, K = w.shape
    K4 = _ceil4(K)
    wp = np.zeros((O, K4), np.int8)
    wp[:, :K] = w
    return np.ascontiguousarray(wp.reshape(O // 4, 4, K4 // 4, 4).transpose(0, 2, 1, 3))


def _lin_prepare(attrs, in_types, arrays):
    if arrays[1] is None:
        raise ValueError("qlinear_int8_sdot needs a constant weight")
    w = np.asarray(arrays[1])
    m, n = requant_arrays(attrs)
    return [0, pack_linear_sdot(w), _bias_eff(attrs, in_types, arrays, w, "qlinear_int8_sdot"), m, n]


@register_kernel("qlinear", ("int8", "uint8"), requires={"aarch64", "dotprod"}, priority=10,
                 applies=_lin_applies, prepare_constants=_lin_prepare, needs_constant=(1, 2),
                 name="qlinear_int8_sdot")
def qlinear_sdot(attrs, in_types, out_type, target):
    """x [N,K] staged to int8 [N,K4]; sdot over 4 outputs x 4 k."""
    (N, K), xdt = in_types[0]
    O = in_types[1][0][0]
    K4 = _ceil4(K)
    zx = int(attrs.get("x_zero_point", 0))
    off = _offset(xdt)
    m_arr, _ = requant_arrays(attrs)
    Cm = len(m_arr)
    x = te.placeholder((N, K), xdt, "x")
    wp = te.placeholder((O // 4, K4 // 4, 4, 4), "int8", "w_packed")
    beff = te.placeholder((O,), "int32", "bias_eff")
    m = te.placeholder((Cm,), "int32", "mult")
    n = te.placeholder((Cm,), "int32", "shift")
    xs = te.compute((N, K4), lambda i, k: tirx.if_then_else(
        k < K, x[i, te.min(k, K - 1)].astype("int32") - off, tirx.const(zx - off, "int32")).astype("int8"),
        name="xs")
    rk = te.reduce_axis((0, K4), "rk")
    acc = te.compute((N, O), lambda i, j: te.sum(
        xs[i, rk].astype("int32") * wp[j // 4, rk // 4, j % 4, rk % 4].astype("int32"), axis=rk), name="acc")
    odt = out_type[1]
    lo, hi = out_bounds(attrs, odt)
    zy = int(attrs.get("y_zero_point", 0))
    y = te.compute((N, O), lambda i, j: requant(acc[i, j] + beff[j], per_channel(m, j), per_channel(n, j), zy, lo, hi, odt),
                   name="out")
    sch = s_tir.Schedule(create([x, wp, beff, m, n, y]))
    blk = sch.get_sblock("acc")
    i, j, k = sch.get_loops(blk)
    j0, j1 = sch.split(j, [None, 4])
    k0, k1 = sch.split(k, [None, 4])
    sch.reorder(i, j0, k0, j1, k1)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, j0)
    sch.reverse_compute_inline(sch.get_sblock("out"))
    init = sch.decompose_reduction(blk, k0)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.tensorize(j1, SDOT_INTRIN)
    return sch.mod["main"]
