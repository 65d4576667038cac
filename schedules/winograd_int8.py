"""Float-intermediate Winograd F(2x2, 3x3) for int8 convs, exact: the int8 conv for CPUs without int8 dot
products (AVX2 / AVX-512 without VNNI, Armv8.0 NEON without dotprod), where one fp32 FMA lane does the work
of 36/16 = 2.25 direct multiply-accumulates. The per-ISA kernels (x86_avx2_winograd_int8.py,
aarch64_winograd_int8.py) are instances of ``WinogradInt8Conv``; this file holds the algorithm, its bounds
and its schedule.

Algorithm (3x3, stride 1, dilation 1, group 1; matrices AT, G, BT from winograd_matrices.py):

* filter transform at compile time, in integers: G has halves, so the kernel uses G2 = 2 G (integral) and
  U = G2 w G2^T = 4 G w G^T, packed f32 [16, Op/16, Cp, 16] (O zero-padded to Op, C to Cp);
* input: d = x - x_zero_point (0 in the padding) staged as fp32 channels-last, V = BT d BT^T per 4x4 tile
  (integers, exact in fp32), V f32 [16, Pp, Cv] (P = N * ceil(OH/2) * ceil(OW/2) tiles, rounded up to Pp,
  a multiple of the GEMM register tile height: `gemm_tile`);
* 16 batched GEMMs M[e, p, o] = sum_c V[e, p, c] U[e, o, c] in fp32 FMA (vectorised over 16 output
  channels), **flushed into integer accumulators every K input channels** (the "mf" block sums K channels in
  fp32, "mi" converts each block sum to int32 and adds it up);
* output transform Y4 = AT M AT^T in integers: Y4 = 4 * (direct conv) exactly, so Y = Y4 >> 2 is an exact
  division; then + bias and the shared requantize epilogue (requant.RequantEpilogue).

Exactness (why the result equals the direct integer conv bit for bit):
  Let D = max |x - zx| over the input dtype's codes (255 for int8 / uint8 with an in-range zero point), and
  |w| <= 128. Row j of BT has absolute sum b_j, row i of G2 absolute sum g_i (BT: 2, 2, 2, 2; G2: 2, 3, 3, 2),
  so |V[a, b]| <= b_a b_b D and |U[a, b]| <= g_a g_b 128, and one product is at most
  PER_CHANNEL = max_{a,b} (b_a g_a)(b_b g_b) * 128 D  (= 36 * 128 * 255 = 1 175 040 < 2^21 for D = 255).
  Every V, U and product is an integer of magnitude < 2^24, hence exact in fp32, and so is every partial sum
  of at most K = floor(2^24 / PER_CHANNEL) products (an FMA rounds once, to the exact integer): K = 14 for
  D = 255, 28 for D = 128. The block sums are converted to int32 exactly. The integer accumulation and the
  output transform run in wrapping 32-bit arithmetic (uint32): exact modulo 2^32, and the final
  Y4 = 4 * sum_{c, taps} d w satisfies |Y4| <= 4 * 9 * 128 * D * C < 2^31 (required by ``applies``:
  C <= 1827 for D = 255), so Y4 is the true value and Y4 >> 2 the exact quotient.
  A variant without flushing (K = C) really differs: tests/schedules/test_winograd_int8.py builds one and
  shows a worst-case input where its fp32 sums pass 2^24 and round.

Cost: per 2x2 output tile and (input, output) channel pair, 16 FMAs instead of 36 MACs; the transforms are
O(C * P) and O(O * P), the flush one convert + add per accumulator every K channels.

PrimFunc params: x (NCHW or NHWC, unchanged), **u_packed f32 [16, Op/16, Cp, 16]**, (bias int32 [O]),
mult, shift, (residual shaped as y, with attrs ``fused_add``: the consuming qadd computed in the write-back)
-> y (same layout as x).
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from .compute import bias_placeholder, plus_int_bias
from .constants import constant_weight
from .cpu_schedules import first_divisor
from .dot_product import activation_dims, round_up
from .node_attrs import conv_attrs, conv_out_hw, has_bias
from .registry import register_kernel
from .requant import INT_RANGES, RequantEpilogue, requant_arrays
from .te_utils import create, image_cell
from .winograd_common import gemm_tile, lincomb, schedule_input_transform, schedule_output_transform, unroll_then_vectorize
from .winograd_matrices import MAX_MULTIPLY_RATIO, multiply_ratio, winograd_matrices

FP32_EXACT = 2 ** 24      # every integer of at most this magnitude is exact in fp32
W_BOUND = 128             # |w| for int8 weights
LANES = 16                # output channels per packed weight row (the GEMM's vector)
I8 = ("int8", "uint8")


def int_matrices():
    """(AT, G2, BT) of F(2x2, 3x3) as int64: G2 = 2 G, integral (G itself has halves)."""
    AT, G, BT = winograd_matrices(2, 3)
    G2 = 2 * G
    for M in (AT, G2, BT):
        assert np.array_equal(M, np.round(M)), "F(2,3) transforms must be integral after scaling G by 2"
    return AT.astype(np.int64), G2.astype(np.int64), BT.astype(np.int64)


def input_bound(x_dtype, zx):
    """D = max |x - zx| over the codes of x_dtype."""
    lo, hi = INT_RANGES[x_dtype]
    return max(abs(lo - int(zx)), abs(hi - int(zx)))


def per_channel_bound(D):
    """The largest |V[e] * U[e]| of one input channel (module docstring)."""
    _, G2, BT = int_matrices()
    rows = np.abs(BT).sum(axis=1) * np.abs(G2).sum(axis=1)
    return int(rows.max()) ** 2 * W_BOUND * D


def flush_block(C, D, limit=None):
    """(K, Cp): input channels per fp32 block (every partial sum <= K * per_channel_bound(D) <= 2^24, module
    docstring) and C rounded up to a multiple of K, spread evenly so the padding is small. `limit` overrides
    the bound (tests build an unflushed variant with limit = C)."""
    k_max = limit or FP32_EXACT // per_channel_bound(D)
    blocks = -(-C // k_max)
    K = -(-C // blocks)
    return K, K * blocks


def max_channels(D):
    """The largest C for which 4 * |direct conv| < 2^31 (the int32 result of the output transform)."""
    return (2 ** 31 - 1) // (4 * 9 * W_BOUND * D)


def is_winograd_shape(attrs, in_types, out_type):
    """3x3, stride 1, dilation 1, group 1, int8 weights, C within max_channels, an output map large
    enough for the 2x2 tiles to save multiplies."""
    s, _, d, g = conv_attrs(attrs)
    if len(in_types[0][0]) != 4 or in_types[1][1] != "int8" or tuple(in_types[1][0][2:]) != (3, 3):
        return False
    C = in_types[1][0][1]
    D = input_bound(in_types[0][1], attrs.get("x_zero_point", 0))
    OH, OW = out_type[0][1:3] if attrs.get("layout") == "NHWC" else out_type[0][2:4]
    return s == [1, 1] and d == [1, 1] and g == 1 and C <= max_channels(D) \
        and multiply_ratio(2, OH, OW) <= MAX_MULTIPLY_RATIO


def pack_winograd_int8_weight(w, Cp):
    """int8 [O, C, 3, 3] -> U = G2 w G2^T (integers, |U| <= 9 * 128) packed f32 [16, Op/16, Cp, 16]."""
    _, G2, _ = int_matrices()
    w = np.asarray(w, np.int64)
    O, C = w.shape[:2]
    Op = round_up(O, LANES)
    u = np.zeros((4, 4, Op, Cp), np.int64)
    u[:, :, :O, :C] = np.einsum("ik,ockl,jl->ijoc", G2, w, G2)
    u = u.reshape(16, Op // LANES, LANES, Cp).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(u.astype(np.float32))


class WinogradInt8Conv:
    """One ISA's instance: `tiles` are the GEMM register tile heights (tiles x 16 output channels, see
    gemm_tile), `wins(attrs, in_types, out_type)` the measured rule saying where it beats the
    direct kernel, `block_limit` overrides the flush block (tests only)."""

    enabled = True   # benches switch an instance off to compare with the direct kernel on the same graph

    def __init__(self, name, tiles, wins, block_limit=None):
        self.name, self.tiles, self.wins, self.block_limit = name, tuple(tiles), wins, block_limit

    def applies(self, attrs, in_types, out_type):
        return self.enabled and is_winograd_shape(attrs, in_types, out_type) \
            and bool(self.wins(attrs, in_types, out_type))

    def block(self, attrs, in_types):
        C = in_types[1][0][1]
        return flush_block(C, input_bound(in_types[0][1], attrs.get("x_zero_point", 0)), self.block_limit)

    def prepare(self, attrs, in_types, arrays):
        """x, U packed, (bias), mult, shift, (residual)."""
        _, Cp = self.block(attrs, in_types)
        res = [0, pack_winograd_int8_weight(constant_weight(arrays, self.name), Cp)]
        if has_bias(in_types):
            res.append(2)
        # the residual of a fused qadd (requant.ResidualAdd): node input 3
        return res + list(requant_arrays(attrs)) + ([3] if attrs.get("fused_add") else [])

    def compute(self, attrs, in_types, out_type, channels_last):
        """(params, y, pt): the unscheduled TE and its GEMM tile height."""
        _, p, _, _ = conv_attrs(attrs)
        N, C, H, W = activation_dims(in_types, channels_last)
        xdt = in_types[0][1]
        O = in_types[1][0][0]
        Op = round_up(O, LANES)
        OH, OW = conv_out_hw(H, W, 3, 3, [1, 1], p, [1, 1])
        K, Cp = self.block(attrs, in_types)
        Cv = round_up(Cp, LANES)   # vin's channels: whole vectors (the GEMM reads the first Cp)
        AT, _, BT = int_matrices()
        nH, nW = -(-OH // 2), -(-OW // 2)
        P = N * nH * nW
        pt = gemm_tile(P, self.tiles)
        Pp = round_up(P, pt)   # tiles past P repeat the last one (in bounds); their results are never read
        t, l = p[0], p[1]
        zx = int(attrs.get("x_zero_point", 0))
        x = te.placeholder(tuple(in_types[0][0]), xdt, "x")
        u = te.placeholder((16, Op // LANES, Cp, LANES), "float32", "u_packed")
        args = [x, u]
        bias = bias_placeholder(in_types, args)
        epilogue = RequantEpilogue(attrs, out_type, fuses_add=True)

        def staged(nn, hh, ww, c):   # d = x - zx, 0 in the padding and the padded channels
            inside, ih, iw = image_cell(hh, ww, t, l, H, W)
            cc = te.min(c, C - 1)
            v = x[nn, ih, iw, cc] if channels_last else x[nn, cc, ih, iw]
            return tirx.if_then_else(tirx.all(inside, c < C), (v.astype("int32") - zx).astype("float32"),
                                     tirx.const(0.0, "float32"))

        xh = te.compute((N, nH * 2 + 2, nW * 2 + 2, Cv), staged, name="xh")

        def tile(q):
            q = te.min(q, P - 1) if Pp != P else q
            return q // (nH * nW), q // nW % nH, q % nW

        def tin_f(q, e1, r2, c):
            nn, th, tw = tile(q)
            return lincomb(BT, e1, lambda r1: xh[nn, th * 2 + r1, tw * 2 + r2, c], "float32")

        tin = te.compute((Pp, 4, 4, Cv), tin_f, name="tin")
        vin = te.compute((16, Pp, Cv), lambda e, q, c: lincomb(BT, e % 4, lambda r2: tin[q, e // 4, r2, c],
                                                              "float32"), name="vin")
        rc = te.reduce_axis((0, K), "rc")
        mf = te.compute((16, Cp // K, Pp, Op), lambda e, kb, q, o: te.sum(
            vin[e, q, kb * K + rc] * u[e, o // LANES, kb * K + rc, o % LANES], axis=rc), name="mf")
        rkb = te.reduce_axis((0, Cp // K), "rkb")
        mi = te.compute((16, Pp, Op), lambda e, q, o: te.sum(
            mf[e, rkb, q, o].astype("int32").astype("uint32"), axis=rkb), name="mi")
        zt = te.compute((P, 4, 2, Op), lambda q, e1, j, o: lincomb(AT, j, lambda e2: mi[e1 * 4 + e2, q, o],
                                                                     "uint32"), name="zt")

        def result(nn, o, h, w, index):
            q = (nn * nH + h // 2) * nW + w // 2
            y4 = lincomb(AT, h % 2, lambda e1: zt[q, e1, w % 2, o], "uint32").astype("int32")
            acc = tirx.shift_right(y4, tirx.const(2, "int32"))   # exact: y4 = 4 * the direct conv
            return epilogue(plus_int_bias(acc, bias, o), o, index)

        if channels_last:
            y = te.compute((N, OH, OW, O), lambda nn, h, w, o: result(nn, o, h, w, (nn, h, w, o)), name="out")
        else:
            y = te.compute((N, O, OH, OW), lambda nn, o, h, w: result(nn, o, h, w, (nn, o, h, w)), name="out")
        return args + epilogue.params, y, pt

    def build(self, attrs, in_types, out_type, channels_last):
        """The scheduled PrimFunc."""
        args, y, pt = self.compute(attrs, in_types, out_type, channels_last)
        sch = s_tir.Schedule(create(args + [y]))

        # padded channels-last fp32 staging of x - zx
        n_, hh, _, xc = sch.get_loops(sch.get_sblock("xh"))
        sch.parallel(sch.fuse(n_, hh))
        sch.vectorize(sch.split(xc, [None, LANES])[1])

        # input transform per (tile, 16 channels): tin then vin, vectorised over the channels
        schedule_input_transform(sch, LANES)

        # batched GEMM: a pt x 16 register tile, fp32 over K channels ("mf"), then flushed into "mi"
        mb = sch.get_sblock("mi")
        ge, gq, go, gkb = sch.get_loops(mb)
        q0, q1 = sch.split(gq, [None, pt])
        o0, o1 = sch.split(go, [None, LANES])
        sch.reorder(ge, q0, o0, gkb, q1, o1)
        cw = sch.cache_write(mb, 0, "global")
        sch.reverse_compute_at(cw, o0)
        sch.parallel(sch.fuse(ge, q0))
        fb = sch.get_sblock("mf")
        sch.compute_at(fb, gkb)
        fq, fo, frc = sch.get_loops(fb)[-3:]
        sch.reorder(frc, fq, fo)
        # vectorise before decompose_reduction (its update block is no longer a reduction)
        unroll_then_vectorize(sch, [fq, fo])
        unroll_then_vectorize(sch, [q1, o1])
        finit = sch.decompose_reduction(fb, frc)
        minit = sch.decompose_reduction(mb, gkb)
        for b in (finit, minit, cw):
            unroll_then_vectorize(sch, sch.get_loops(b)[-2:])

        # output transform per (image, output-channel vector, tile): zt, then the 2 x 2 outputs + requantize
        O = int(y.shape[3] if channels_last else y.shape[1])
        ov = first_divisor(O, (LANES, 8, 4))
        ob = sch.get_sblock("out")
        if channels_last:
            n_, h, w, o = sch.get_loops(ob)
        else:
            n_, o, h, w = sch.get_loops(ob)
        schedule_output_transform(sch, (n_, o, h, w), 2, ov)
        return sch.mod["main"]


def register_winograd_int8(conv, isa, requires, priority):
    """Register the NCHW and NHWC qconv2d kernels of one ISA's instance (qconv2d_int8_{layout}_winograd_{isa})."""
    common = dict(requires=requires, priority=priority, applies=conv.applies, prepare_constants=conv.prepare,
                  needs_constant=(1,))

    def nchw(attrs, in_types, out_type, target):
        return conv.build(attrs, in_types, out_type, channels_last=False)

    def nhwc(attrs, in_types, out_type, target):
        return conv.build(attrs, in_types, out_type, channels_last=True)

    nchw.__doc__ = (f"Exact int8 Winograd F(2x2, 3x3) with fp32 FMA GEMMs flushed to int32 every K channels "
                    f"(winograd_int8.py); {isa}, applies where {conv.wins.__name__} says it wins.")
    nhwc.__doc__ = "The int8 Winograd conv reading and writing NHWC (layout planning)."
    register_kernel("qconv2d", I8, name=f"qconv2d_int8_nchw_winograd_{isa}", **common)(nchw)
    register_kernel("qconv2d", I8, name=f"qconv2d_int8_nhwc_winograd_{isa}", layouts=("NHWC",), **common)(nhwc)
