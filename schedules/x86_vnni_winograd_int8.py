"""x86 int8 Winograd F(4x4, 3x3) on AVX-512 VNNI's int16 dot product, exact: ``qconv2d_int8_nhwc_winograd_vnni``
(requires avx512_vnni, priority 11 where `vnni_winograd_wins`).

Why: the direct VNNI conv (x86_int8.py) runs ResNet-18's 3x3 layers at 440-457 of the 460 GOPS one Zen 4 core
peaks at (one 512-bit `vpdpbusd`, 64 MACs, per cycle). F(4x4, 3x3) needs 36 multiplies per 4x4 outputs
instead of 144; its transformed values leave int8 but fit int16, and `vpdpwssd` does 32 int16 MACs per
instruction: half the rate for a quarter of the multiplies, 2x fewer GEMM instructions before transforms.

Algorithm (stride 1, dilation 1, group 1; AT, G, BT of winograd_matrices(4, 3), points 0, +-1, +-2, inf):
* input d' = x - m (m = 0 for int8, 128 for uint8; zx - m in the padding: |d'| <= D = 128, winograd_int8's
  `input_offset` / `input_bound`), read in place by the input transform (a padded staging copy cost ResNet-18
  int8 1.5 % end to end, an int16 one 3 %); V = BT d' BT^T per 6x6 tile, int16: the rows of
  BT have absolute sums (10, 10, 10, 6, 6, 10), so |V| <= 100 D = 12800 < 2^15, and so is every partial sum
  of the rows as `winograd_common.transform_rows` factors them (tests/schedules/test_x86_vnni_winograd_int8.py);
* weights at compile time: the rows of G are (1, p, p^2) / N_j; with S = diag(N_j) (4, 6, 6, 24, 24, 1 up to
  sign) U' = (S G) w (S G)^T is integral, |U'[a, b]| <= s_a s_b 128 with s = (1, 3, 3, 7, 7, 1): <= 6272 < 2^15,
  and the true U = G w G^T is U' / (N_a N_b);
* 36 batched GEMMs M'[e, tile, o] = sum_c V[e, tile, c] U'[e, o, c] on vpdpwssd: int32 sums that wrap
  (modulo 2^32, the instruction does not saturate);
* output: with L = 576 = 24^2, L Y = AT (M' * R) AT^T, R[a, b] = L / (N_a N_b) = r_a r_b integral
  (r = 24 / N = 6, -4, -4, 1, 1, 24), i.e. L Y = ATr M' ATr^T with ATr = AT * r (small coefficients), computed
  modulo 2^32 (uint32). L = 2^6 * 9, so (L Y mod 2^32) * 9^-1 = 2^6 Y mod 2^32, and an arithmetic shift
  right by 6 recovers Y exactly when |Y| < 2^25. Y is the direct conv of d': |Y| <= 9 * C * D * 128, so the
  kernel applies when C <= 2^25 / (9 * 128 * D) (227 channels at D = 128: `max_channels`);
* Y - (zx - m) * sum(w) (zero_point_corr) + bias, then the shared requantize epilogue (and a fused qadd).
So the output equals the direct kernel's bit for bit (tests/schedules/test_x86_vnni_winograd_int8.py, at the
int8 extremes and at the channel bound).

Params: x [N,H,W,C], **u_packed int16 [36, Op/16, Cv/2, 16, 2]**, (bias), **zero_point_corr int32 [O]**, mult,
shift, (residual) -> y [N,OH,OW,O].
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import lcm

import numpy as np
from tvm import s_tir, te, tirx

from .compute import bias_placeholder, plus_int_bias
from .constants import constant_weight, zero_point_folded_bias
from .cpu_schedules import first_divisor
from .dot_product import round_up
from .intrinsics import VNNI_INT16
from .node_attrs import conv_attrs, conv_out_hw, has_bias
from .registry import register_kernel
from .requant import RequantEpilogue, requant_arrays, wrapping_add
from .te_utils import create, image_cell
from .winograd_common import gemm_tile, schedule_input_transform, transform_rows, unroll_then_vectorize
from .winograd_int8 import I8, W_BOUND, input_bound, input_offset
from .winograd_matrices import winograd_matrices

M_OUT, A_IN = 4, 6            # F(4x4, 3x3): 4x4 outputs from 6x6 inputs
ELEMENTS = A_IN * A_IN
LANES = 16                    # output channels per vpdpwssd
CHANNEL_VECTOR = 32           # int16 lanes of a zmm: the input transform's channels per vector
RECOVERY_BOUND = 2 ** 25      # |Y| below this comes back from 2^6 Y mod 2^32
# Blocks of tiles run in parallel: 7 blocks on 2 threads gave 4 + 3 (ResNet-18 int8 at 2 threads 1.55x of one
# thread, minima; 14 blocks: see the README's thread figures)
MIN_BLOCKS = 8
TILES = (7, 6, 5, 4)          # GEMM register tile heights (tiles x 2 x 16 output channels: under 1 KiB of int32)


def int_matrices():
    """(AT, SG, BT, S) as int64 / Python ints: SG = S G integral, S the row scales N_j (signed)."""
    AT, G, BT = winograd_matrices(M_OUT, 3)
    scales = []
    for row in G:
        fr = [Fraction(float(v)).limit_denominator(1000) for v in row]
        denom = lcm(*(f.denominator for f in fr))
        first = next(f for f in fr if f != 0)
        scales.append(denom if first > 0 else -denom)   # (1, p, p^2) with a positive leading entry
    SG = np.rint(G * np.array(scales, np.float64)[:, None])
    assert np.allclose(SG, G * np.array(scales)[:, None]) and np.allclose(BT, np.rint(BT))
    return AT.astype(np.int64), SG.astype(np.int64), np.rint(BT).astype(np.int64), scales


def output_scales():
    """(L, r [6]): L Y = AT (M' * R) AT^T with R[a, b] = L / (N_a N_b) = r_a r_b, r_a = sqrt(L) / N_a (module
    docstring), so both passes of the output transform use ATr = AT * r (columns scaled: 6, -4, -4, 1, 1, 24)."""
    *_, S = int_matrices()
    root = lcm(*(abs(a) for a in S))
    return root * root, np.array([root // a for a in S], np.int64)


def recovery_constants():
    """(inverse, shift): L = 2^shift * odd; (L Y mod 2^32) * inverse = 2^shift Y mod 2^32."""
    L, _ = output_scales()
    shift = (L & -L).bit_length() - 1
    return pow(L >> shift, -1, 2 ** 32), shift


def max_channels(D):
    """The largest C for which the direct conv of d' stays below RECOVERY_BOUND."""
    return (RECOVERY_BOUND - 1) // (9 * W_BOUND * D)


def channel_groups(C, D):
    """(groups, Cg): C split into groups of Cg channels (a multiple of CHANNEL_VECTOR, within max_channels), each
    summed and recovered on its own; the recovered parts add up in int32 (|Y| <= 9 * 128 * D * C < 2^31)."""
    limit = max_channels(D) // CHANNEL_VECTOR * CHANNEL_VECTOR
    groups = -(-C // limit)
    return groups, round_up(-(-C // groups), CHANNEL_VECTOR)


def vnni_winograd_wins(attrs, in_types, out_type):
    """Where it beat the direct VNNI conv: C, O >= 32, C * O <= 128 * 128 (36 transformed weight matrices of
    int16 within ~1.2 MB) and at least 28 x 28 outputs.

    `python bench/winograd_int8.py --x86 --target x86 --shapes all` (Zen 4, 1 thread, kernels alone, 11
    interleaved rounds; Winograd / direct, C = O @ map): 64@56 0.74, 128@28 0.62, 64@28 0.73, 32@56 0.94,
    32@28 0.95 (all picked); 256@14 1.00 in two channel groups (0.73 in one, as a bound from the weights' actual
    sums would allow, yet ResNet-18 int8 then ran x1.06: 3 x 4.7 MB of transformed weights, 8x the int8 ones,
    push the model's weights out of L3), 128@14 1.00,
    64@14 1.03, 512@7 2.48, 16@56 1.47; 128@7 0.81 and 256@7 0.82 alone, not measured in a model. Inside
    ResNet-18 int8 (bench/ab_modules.py, old / new modules interleaved): x0.91-0.92."""
    C, O = in_types[1][0][1], in_types[1][0][0]
    OH, OW = out_type[0][1:3]
    return 32 <= C and 32 <= O and OH * OW >= 28 * 28 and C * O <= 128 * 128


@dataclass
class Switch:
    """Benches turn the kernel off (or on for every shape) to compare it with the direct conv on the same graph."""
    enabled: bool = True
    wins: object = vnni_winograd_wins


VNNI_WINOGRAD = Switch()


def applies(attrs, in_types, out_type):
    s, _, d, g = conv_attrs(attrs)
    if len(in_types[0][0]) != 4 or in_types[1][1] != "int8" or tuple(in_types[1][0][2:]) != (3, 3):
        return False
    C = in_types[1][0][1]
    D = input_bound(in_types[0][1], attrs.get("x_zero_point", 0))
    O = in_types[1][0][0]   # whole 16-lane groups: the per-block GEMM covers exactly the O channels "out" reads
    groups, Cg = channel_groups(C, D)
    OH, OW = out_type[0][1:3]
    P = in_types[0][0][0] * -(-OH // M_OUT) * -(-OW // M_OUT)
    # the channel blocks (weights past L2) need one channel group and whole register tiles over every tile
    schedulable = not weights_outgrow_l2(round_up(O, LANES), groups * Cg) or (groups == 1 and P % register_tiles(P) == 0)
    v_bound = int(np.abs(int_matrices()[2]).sum(axis=1).max()) ** 2 * D   # |V|: int16 (D = 128 gives 12800)
    return s == [1, 1] and d == [1, 1] and g == 1 and 9 * W_BOUND * D * C < 2 ** 31 and O % LANES == 0 \
        and v_bound < 2 ** 15 \
        and schedulable and attrs.get("layout") == "NHWC" and VNNI_WINOGRAD.enabled \
        and bool(VNNI_WINOGRAD.wins(attrs, in_types, out_type))


def pack_weight(w, Cv):
    """int8 [O, C, 3, 3] -> U' = SG w SG^T packed int16 [36, Op/16, Cv/2, 16, 2] (O, C zero-padded)."""
    _, SG, _, _ = int_matrices()
    w = np.asarray(w, np.int64)
    O, C = w.shape[:2]
    Op = round_up(O, LANES)
    u = np.zeros((A_IN, A_IN, Op, Cv), np.int64)
    u[:, :, :O, :C] = np.einsum("ik,ockl,jl->ijoc", SG, w, SG)
    assert np.abs(u).max() < 2 ** 15
    u = u.reshape(ELEMENTS, Op // LANES, LANES, Cv // 2, 2).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(u.astype(np.int16))


def prepare(attrs, in_types, arrays):
    """x, U' packed, (bias), -(zx - m) * sum(w), mult, shift, (residual)."""
    w = constant_weight(arrays, "qconv2d_int8_nhwc_winograd_vnni")
    O, C = w.shape[:2]
    zx = int(attrs.get("x_zero_point", 0)) - input_offset(in_types[0][1])
    corr = zero_point_folded_bias(np.zeros(O, np.int64), zx, w.reshape(O, -1))
    groups, Cg = channel_groups(C, input_bound(in_types[0][1], attrs.get("x_zero_point", 0)))
    return [0, pack_weight(w, groups * Cg)] + ([2] if has_bias(in_types) else []) + [corr] \
        + list(requant_arrays(attrs)) + ([3] if attrs.get("fused_add") else [])


def compute(attrs, in_types, out_type):
    """(params, y, pt, bt): the unscheduled TE, its GEMM register tile height and tiles per block."""
    _, p, _, _ = conv_attrs(attrs)
    (N, H, W, C), xdt = in_types[0]
    O = in_types[1][0][0]
    groups, Cg = channel_groups(C, input_bound(xdt, attrs.get("x_zero_point", 0)))
    Op, Cv = round_up(O, LANES), groups * Cg
    OH, OW = conv_out_hw(H, W, 3, 3, [1, 1], p, [1, 1])
    AT, _, BT, _ = int_matrices()
    ATr = AT * output_scales()[1][None, :]
    inverse, shift = recovery_constants()
    nH, nW = -(-OH // M_OUT), -(-OW // M_OUT)
    P = N * nH * nW
    pt = register_tiles(P)
    bt = block_tiles(P, pt, Op, Cv, groups)
    Pp = round_up(P, bt)   # tiles past P repeat the last one; their results are never read
    t, l = p[0], p[1]
    m = input_offset(xdt)
    pad_value = int(attrs.get("x_zero_point", 0)) - m
    x = te.placeholder((N, H, W, C), xdt, "x")
    u = te.placeholder((ELEMENTS, Op // LANES, Cv // 2, LANES, 2), "int16", "u_packed")
    args = [x, u]
    bias = bias_placeholder(in_types, args)
    corr = te.placeholder((O,), "int32", "zero_point_corr")
    args.append(corr)
    epilogue = RequantEpilogue(attrs, out_type, fuses_add=True)

    def d_prime(nn, hh, ww, c):   # x - m read in place, zx - m in the padding, 0 in the padded channels
        inside, ih, iw = image_cell(hh, ww, t, l, H, W)
        v = (x[nn, ih, iw, te.min(c, C - 1)].astype("int32") - m).astype("int16")
        return tirx.if_then_else(c < C, tirx.if_then_else(inside, v, tirx.const(pad_value, "int16")),
                                 tirx.const(0, "int16"))

    def tile(q):
        q = te.min(q, P - 1) if Pp != P else q
        return q // (nH * nW), q // nW % nH, q % nW

    def tin_f(q, e1, r2, c):
        nn, th, tw = tile(q)
        return transform_rows(BT, e1, lambda r1: d_prime(nn, th * M_OUT + r1, tw * M_OUT + r2, c), "int16")

    tin = te.compute((Pp, A_IN, A_IN, Cv), tin_f, name="tin")
    vin = te.compute((ELEMENTS, Pp, Cv), lambda e, q, c: transform_rows(
        BT, e % A_IN, lambda r2: tin[q, e // A_IN, r2, c], "int16"), name="vin")
    rc = te.reduce_axis((0, Cg), "rc")
    mg = te.compute((groups, ELEMENTS, Pp, Op), lambda gi, e, q, o: te.sum(
        vin[e, q, gi * Cg + rc].astype("int32")
        * u[e, o // LANES, (gi * Cg + rc) // 2, o % LANES, rc % 2].astype("int32"), axis=rc), name="mg")
    # L Y = ATr M' ATr^T, in uint32 (wraps): zt = M' ATr^T per row e1, then ATr zt
    zt = te.compute((groups, P, A_IN, M_OUT, Op), lambda gi, q, e1, j, o: transform_rows(
        ATr, j, lambda e2: mg[gi, e1 * A_IN + e2, q, o].astype("uint32"), "uint32"), name="zt")

    def result(nn, o, h, w, index):
        q = (nn * nH + h // M_OUT) * nW + w // M_OUT
        y = None
        for gi in range(groups):   # each group's L Y mod 2^32, recovered, then summed
            ly = transform_rows(ATr, h % M_OUT, lambda e1: zt[gi, q, e1, w % M_OUT, o], "uint32")
            part = tirx.shift_right((ly * tirx.const(inverse, "uint32")).astype("int32"), tirx.const(shift, "int32"))
            y = part if y is None else wrapping_add(y, part)
        return epilogue(plus_int_bias(wrapping_add(y, corr[o]), bias, o), o, index)

    y = te.compute((N, OH, OW, O), lambda nn, h, w, o: result(nn, o, h, w, (nn, h, w, o)), name="out")
    return args + epilogue.params, y, pt, bt


def schedule_gemm(sch, pt, Op, staged_sums):
    """"mg" (computed per block of tiles): register tiles of pt tiles x (groups x 16) output channels, vpdpwssd over
    channel pairs; per (element, channel group) the block's register tiles take turns, so each slice of the
    transformed weights is read from memory once per block. staged_sums: each register tile's sums written to
    a tile-sized buffer, then copied to "mg". Per block of tiles (64 -> 64 @ 56: 32 channel pairs per sum) the
    copy cost 5 % of the kernel; over the channel blocks' larger "mg" (128 -> 128 @ 28) leaving it out cost 4 %."""
    mb = sch.get_sblock("mg")
    gi, e, q, o, rc = sch.get_loops(mb)[-5:]
    groups = first_divisor(Op // LANES, (2, 1))
    qr, q1 = sch.split(q, [None, pt])
    o0, og, o1 = sch.split(o, [None, groups, LANES])
    rc0, rc1 = sch.split(rc, [None, 2])
    sch.reorder(e, o0, qr, rc0, q1, og, o1, rc1)
    if staged_sums:
        cw = sch.cache_write(mb, 0, "global")
        sch.reverse_compute_at(cw, qr)
    init = sch.decompose_reduction(mb, rc0)
    unroll_then_vectorize(sch, sch.get_loops(init)[-3:])
    sch.tensorize(o1, VNNI_INT16.name)
    sch.unroll(q1)
    sch.unroll(og)
    if staged_sums:
        unroll_then_vectorize(sch, sch.get_loops(cw)[-3:])


def register_tiles(P):
    """The GEMM register tile height: one of TILES that divides the P tiles (a block over every tile, the channel
    blocks' GEMM, then splits evenly: TVM cannot tensorize a ragged one), else gemm_tile's (padding P)."""
    return first_divisor(P, TILES, None) or gemm_tile(P, TILES)


def block_tiles(P, pt, Op, Cv, groups):
    """Tiles per block: pt times the most register tiles (4 at most) whose GEMM sums and transformed input stay
    within 512 KiB, dividing P (no padded tiles beyond pt's) and leaving at least MIN_BLOCKS blocks where P allows."""
    for nr in (4, 3, 2, 1):
        fits = ELEMENTS * pt * nr * (4 * Op * groups + 2 * Cv) <= 512 * 1024 and P % (pt * nr) == 0
        if fits and (-(-P // (pt * nr)) >= MIN_BLOCKS or nr == 1):
            return pt * nr
    return pt


def output_tiles(sch, o_factors):
    """The loops of "out" as (n, tile row, tile column, channel loops split by o_factors, i, j): 4 x 4 tiles."""
    n_, h, w, o = sch.get_loops(sch.get_sblock("out"))
    th, i = sch.split(h, [None, M_OUT])
    tw, j = sch.split(w, [None, M_OUT])
    return n_, th, tw, sch.split(o, o_factors), i, j


def output_transform_at(sch, o0, i, j, o1):
    """One tile's outputs per channel vector o1 (under o0), its "zt" computed there: unrolled, vectorised."""
    unroll_then_vectorize(sch, [i, j, o1])
    zb = sch.get_sblock("zt")
    sch.compute_at(zb, o0)
    unroll_then_vectorize(sch, sch.get_loops(zb)[-3:])


def schedule_blocks(sch, bt, O):
    """Per block of bt tiles, in parallel: the input transform, the 36 GEMMs and the output transform, so the
    transformed input and the GEMM sums stay in L2 (36 x 196 tiles x 64 channels of int32 sums is 1.8 MB)."""
    n_, th, tw, (o0, o1), i, j = output_tiles(sch, [None, first_divisor(O, (LANES, 8, 4))])
    sch.reorder(n_, th, tw, o0, i, j, o1)
    qb, _ = sch.split(sch.fuse(n_, th, tw), [None, bt])
    sch.parallel(qb)
    output_transform_at(sch, o0, i, j, o1)
    sch.compute_at(sch.get_sblock("mg"), qb)
    vb = sch.get_sblock("vin")
    sch.compute_at(vb, qb)
    e, q, c = sch.get_loops(vb)[-3:]   # as winograd_common.schedule_input_transform, inside the block
    c0, c1 = sch.split(c, [None, CHANNEL_VECTOR])
    sch.reorder(q, c0, e, c1)
    unroll_then_vectorize(sch, [e, c1])
    tb = sch.get_sblock("tin")
    sch.compute_at(tb, c0)
    unroll_then_vectorize(sch, sch.get_loops(tb)[-3:])


def schedule_channel_blocks(sch, O, Op):
    """Per block of 32 output channels (every tile), in parallel: the 36 GEMMs and the output transform; the input
    transform runs once before, over all tiles. Where the transformed weights outgrow L2 (128 -> 128: 1.2 MB),
    each block then reads only its slice of them, once, instead of all of them once per block of tiles."""
    ov = first_divisor(O, (LANES, 8, 4))
    width = LANES * first_divisor(Op // LANES, (2, 1))
    n_, th, tw, (ob, o0, o1), i, j = output_tiles(sch, [None, width // ov, ov])
    sch.reorder(ob, n_, th, tw, o0, i, j, o1)
    sch.parallel(ob)
    output_transform_at(sch, o0, i, j, o1)
    sch.compute_at(sch.get_sblock("mg"), ob)
    schedule_input_transform(sch, CHANNEL_VECTOR)


def weights_outgrow_l2(Op, Cv):
    return ELEMENTS * Op * Cv * 2 > 512 * 1024


@register_kernel("qconv2d", I8, name="qconv2d_int8_nhwc_winograd_vnni", layouts=("NHWC",),
                 requires={"avx512_vnni"}, priority=11, applies=applies, prepare_constants=prepare,
                 needs_constant=(1,))
def qconv2d_winograd_vnni(attrs, in_types, out_type, target):
    """Exact int8 Winograd F(4x4, 3x3) with int16 vpdpwssd GEMMs and a modular output transform (module
    docstring); NHWC."""
    args, y, pt, bt = compute(attrs, in_types, out_type)
    sch = s_tir.Schedule(create(args + [y]))
    O = int(y.shape[3])
    Op, Cv = round_up(O, LANES), int(args[1].shape[2]) * 2
    channel_blocks = weights_outgrow_l2(Op, Cv)
    if channel_blocks:
        schedule_channel_blocks(sch, O, Op)
    else:
        schedule_blocks(sch, bt, O)
    schedule_gemm(sch, pt, Op, staged_sums=channel_blocks)
    return sch.mod["main"]
