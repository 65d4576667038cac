"""Float-intermediate Winograd F(2x2, 3x3) for int8 convs, exact: the int8 conv for CPUs without int8 dot
products (AVX2 / AVX-512 without VNNI, Armv8.0 NEON without dotprod), where one fp32 FMA lane does the work
of 36/16 = 2.25 direct multiply-accumulates. The per-ISA kernels (x86_avx2_winograd_int8.py,
aarch64_winograd_int8.py) are instances of ``WinogradInt8Conv``; this file holds the algorithm, its bounds
and its schedule.

Algorithm (3x3, stride 1, dilation 1, group 1; matrices AT, G, BT from winograd_matrices.py):

* filter transform at compile time, in integers: G has halves, so the kernel uses G2 = 2 G (integral) and
  U = G2 w G2^T = 4 G w G^T, packed f32 [16, Op/16, Cp, 16] (O zero-padded to Op, C to Cp), the 16
  transform elements in flush-class order (below);
* input, recentred: d' = x - m with m = 0 for int8, 128 for uint8 (`input_offset`), and zx - m in the
  padding, i.e. d' = (x - zx) + (zx - m) everywhere, so conv(x - zx) = conv(d') - (zx - m) * sum(w): the
  second term is a compile-time constant per output channel (zero_point_corr, from
  constants.zero_point_folded_bias) and |d'| <= D = 128 instead of 255. Staged as fp32 channels-last,
  V = BT d' BT^T per 4x4 tile (integers, exact in fp32), V f32 [16, Pp, Cv] (P = N * ceil(OH/2) *
  ceil(OW/2) tiles, rounded up to Pp, a multiple of the GEMM register tile height: `gemm_tile`);
* 16 batched GEMMs M[e, p, o] = sum_c V[e, p, c] U[e, o, c] in fp32 FMA (vectorised over 16 output
  channels), **flushed into integer accumulators every K_e input channels**: the elements fall into flush
  classes ("mf{i}" sums K channels of one class in fp32, "mi{i}" converts each block sum to int32 and adds
  them up);
* output transform Y4 = AT M AT^T in integers: Y4 = 4 * conv(d') exactly, so Y4 >> 2 is an exact division;
  then + zero_point_corr + bias and the shared requantize epilogue (requant.RequantEpilogue).

Exactness (why the result equals the direct integer conv bit for bit):
  D = max |d'| (128 for int8 / uint8 with an in-range zero point: `input_bound`), |w| <= 128. Row j of BT
  has absolute sum b_j, row i of G2 absolute sum g_i (BT: 2, 2, 2, 2; G2: 2, 3, 3, 2), so |V[a, b]| <=
  b_a b_b D, |U[a, b]| <= g_a g_b 128 and one product of element e = 4 a + b is at most
  B_e = (b_a g_a)(b_b g_b) * 128 D (`element_bounds`: 589 824 in the centre, 393 216 on the edges,
  262 144 at the corners for D = 128). Rows 0 and 3 of G2 are even, so U[e] and every product and partial
  sum of element e is a multiple of g_e = 4 (corners), 2 (edges), 1 (centre) (`element_grains`); fp32
  holds every multiple of g_e up to g_e 2^24 exactly, so every partial sum of at most
  K_e = floor(g_e 2^24 / B_e) products is exact (an FMA rounds once, to the exact value): K = 28 (centre),
  85 (edges), 256 (corners). `flush_classes` groups the elements by K_e and splits C into blocks of at most
  K_e channels (a multiple of the GEMM's channel step). The block sums are converted to int32 exactly. The
  integer accumulation and the output transform run in wrapping 32-bit arithmetic (uint32): exact modulo
  2^32, and |Y4| <= 4 * 9 * 128 * D * C < 2^31 (required by ``applies``: C <= 3640 for D = 128), so Y4 is
  the true value and Y4 >> 2 the exact quotient; zero_point_corr and the bias are added modulo 2^32 as well.
  A variant without flushing (K = C) really differs: tests/schedules/test_winograd_int8.py builds one and
  shows a worst-case input where its fp32 sums pass 2^24 and round; another runs the corners at their
  bound (256 channels in one block, sums up to 2^26).

Cost: per 2x2 output tile and (input, output) channel pair, 16 FMAs instead of 36 MACs; the transforms are
O(C * P) and O(O * P), the flush one convert + add (+ load / store of the int32 sum) per accumulator
vector every K_e channels: for C <= 256 the corners never flush, for C <= 85 the edges neither.

PrimFunc params: x (NCHW or NHWC, unchanged), **u_packed f32 [16, Op/16, Cp, 16]**, (bias int32 [O]),
**zero_point_corr int32 [O]**, mult, shift, (residual shaped as y, with attrs ``fused_add``: the consuming
qadd computed in the write-back) -> y (same layout as x).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import s_tir, te, tirx

from .compute import bias_placeholder, plus_int_bias
from .constants import constant_weight, zero_point_folded_bias
from .cpu_schedules import first_divisor
from .dot_product import activation_dims, round_up, staging_offset
from .node_attrs import conv_attrs, conv_out_hw, has_bias
from .registry import register_kernel
from .requant import INT_RANGES, RequantEpilogue, requant_arrays, wrapping_add
from .te_utils import create, image_cell
from .winograd_common import gemm_tile, lincomb, schedule_input_transform, schedule_output_transform, unroll_then_vectorize
from .winograd_matrices import MAX_MULTIPLY_RATIO, multiply_ratio, winograd_matrices

FP32_EXACT = 2 ** 24      # every integer of at most this magnitude is exact in fp32
W_BOUND = 128             # |w| for int8 weights
LANES = 16                # output channels per packed weight row (the GEMM's vector)
FLUSH_COST = 3            # a flush per accumulator vector (convert, add, load / store of the int32 sum), in
                          # channels of fmla: what flush_class trades against padded channels
# GEMM steps per loop body (step > 1): a block of 16 steps (K = 64) left to LLVM is unrolled by 4 with the
# by-element V vectors scattered through stack slots (mov / reloads); a loop of explicitly unrolled 4-step
# bodies keeps them in registers (64@56 NEON, 5-tile GEMM: 22.1 -> 21.7 M instructions).
INNER_STEPS = 4
I8 = ("int8", "uint8")


def int_matrices():
    """(AT, G2, BT) of F(2x2, 3x3) as int64: G2 = 2 G, integral (G itself has halves)."""
    AT, G, BT = winograd_matrices(2, 3)
    G2 = 2 * G
    for M in (AT, G2, BT):
        assert np.array_equal(M, np.round(M)), "F(2,3) transforms must be integral after scaling G by 2"
    return AT.astype(np.int64), G2.astype(np.int64), BT.astype(np.int64)


def input_offset(x_dtype):
    """m: the staged d' = x - m is centred on 0 (0 for int8, 128 for uint8)."""
    return -staging_offset(x_dtype, "int8")


def input_bound(x_dtype, zx):
    """D = max |d'| over the codes of x_dtype and the padding value zx - m (module docstring)."""
    lo, hi = INT_RANGES[x_dtype]
    m = input_offset(x_dtype)
    return max(abs(lo - m), abs(hi - m), abs(int(zx) - m))


def element_bounds(D):
    """[16]: the largest |V[e] * U[e]| of one input channel for each transform element e = 4 a + b."""
    _, G2, BT = int_matrices()
    rows = np.abs(BT).sum(axis=1) * np.abs(G2).sum(axis=1)
    return (np.outer(rows, rows) * W_BOUND * D).reshape(16)


def element_grains():
    """[16]: the power of 2 that divides every U[e] (rows 0 and 3 of G2 are even: 4 at the corners, 2 on the
    edges, 1 in the centre), so every product and partial sum of element e is a multiple of it."""
    _, G2, _ = int_matrices()
    row = np.array([np.gcd.reduce(r) & -np.gcd.reduce(r) for r in G2])   # the largest power of 2 dividing the row
    return np.outer(row, row).reshape(16)


def per_channel_bound(D):
    """The largest |V[e] * U[e]| over all elements (the centre ones)."""
    return int(element_bounds(D).max())


@dataclass(frozen=True)
class FlushClass:
    """Transform elements summed over `K` input channels in fp32 between two flushes, in `blocks` blocks."""
    elements: tuple
    K: int
    blocks: int

    @property
    def channels(self):
        return self.K * self.blocks


def flush_blocks(C, k_max, step=1):
    """(K, blocks): C split into blocks of K <= k_max channels, K a multiple of `step` (the GEMM's channel
    unroll), the fewest fmla + flushes (FLUSH_COST per block) counting the padded channels."""
    first = -(-C // k_max)
    options = [(round_up(-(-C // nb), step), nb) for nb in range(first, first + 4)]
    options = [(K, nb) for K, nb in options if K <= k_max]
    if not options:
        raise ValueError(f"winograd_int8: no flush block of a multiple of {step} channels within {k_max}")
    return min(options, key=lambda kn: kn[0] * kn[1] + FLUSH_COST * kn[1])


def flush_classes(C, D, step=1, limit=None):
    """The elements grouped by their flush block (module docstring: at most 28 channels in the centre, 85 on
    the edges, 256 at the corners for D = 128), smallest first; this order is the packed one of u_packed and
    "vin". `limit` overrides every bound (tests build an unflushed variant with limit = C)."""
    groups = {}
    for e, (bound, grain) in enumerate(zip(element_bounds(D), element_grains())):
        groups.setdefault(limit or FP32_EXACT * int(grain) // int(bound), []).append(e)
    merged = {}   # classes that end up with the same blocks share one GEMM (e.g. all of them for C <= 28)
    for k, es in sorted(groups.items()):
        merged.setdefault(flush_blocks(C, k, step), []).extend(es)
    return tuple(FlushClass(tuple(es), K, nb) for (K, nb), es in merged.items())


def element_order(classes):
    """The packed order of the 16 elements: class after class."""
    return [e for fc in classes for e in fc.elements]


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


def pack_winograd_int8_weight(w, Cp, order=range(16)):
    """int8 [O, C, 3, 3] -> U = G2 w G2^T (integers, |U| <= 9 * 128) packed f32 [16, Op/16, Cp, 16], the
    elements in `order`."""
    _, G2, _ = int_matrices()
    w = np.asarray(w, np.int64)
    O, C = w.shape[:2]
    Op = round_up(O, LANES)
    u = np.zeros((4, 4, Op, Cp), np.int64)
    u[:, :, :O, :C] = np.einsum("ik,ockl,jl->ijoc", G2, w, G2)
    u = u.reshape(16, Op // LANES, LANES, Cp)[list(order)].transpose(0, 1, 3, 2)
    return np.ascontiguousarray(u.astype(np.float32))


def pick(values, i):
    """values[i] for a symbolic i that the schedule unrolls to a constant (a Select chain)."""
    expr = tirx.const(values[-1], "int32")
    for j in range(len(values) - 2, -1, -1):
        expr = tirx.Select(i == j, tirx.const(values[j], "int32"), expr)
    return expr


def class_gemm(vin, u, fc, first, Op, name):
    """mi{name} [n, Pp, Op] (uint32, wrapping): the batched GEMMs of one flush class (packed elements first ..
    first + n), summed in fp32 over blocks of K channels ("mf{name}") and flushed block by block."""
    n, K, Pp = len(fc.elements), fc.K, vin.shape[1]
    rc = te.reduce_axis((0, K), "rc")
    mf = te.compute((n, fc.blocks, Pp, Op), lambda j, kb, q, o: te.sum(
        vin[first + j, q, kb * K + rc] * u[first + j, o // LANES, kb * K + rc, o % LANES], axis=rc),
        name=f"mf{name}")
    rkb = te.reduce_axis((0, fc.blocks), "rkb")
    return te.compute((n, Pp, Op), lambda j, q, o: te.sum(mf[j, rkb, q, o].astype("int32").astype("uint32"),
                                                           axis=rkb), name=f"mi{name}")


class WinogradInt8Conv:
    """One ISA's instance: `tiles` are the GEMM register tile heights (tiles x 16 output channels, see
    gemm_tile), `wins(attrs, in_types, out_type)` the measured rule saying where it beats the direct
    kernel, `tile_rule(P, tiles)` picks the height for P tiles (gemm_tile); `step` input channels per GEMM
    step (4: one V vector per tile feeds fmla by element, NEON; 1: a broadcast per channel, x86),
    `transform_lanes` the channels per vector of the input transform, `out_lanes` the output-channel vectors
    the output transform tries in order; `block_limit` overrides the flush blocks (tests only)."""

    enabled = True   # benches switch an instance off to compare with the direct kernel on the same graph

    def __init__(self, name, tiles, wins, step=1, transform_lanes=LANES, out_lanes=(LANES, 8, 4),
                 block_limit=None, tile_rule=gemm_tile):
        self.name, self.tiles, self.wins, self.block_limit = name, tuple(tiles), wins, block_limit
        self.tile_rule = tile_rule
        self.step, self.transform_lanes, self.out_lanes = step, transform_lanes, tuple(out_lanes)

    def applies(self, attrs, in_types, out_type):
        return self.enabled and is_winograd_shape(attrs, in_types, out_type) \
            and bool(self.wins(attrs, in_types, out_type))

    def classes(self, attrs, in_types):
        C = in_types[1][0][1]
        D = input_bound(in_types[0][1], attrs.get("x_zero_point", 0))
        return flush_classes(C, D, self.step, self.block_limit)

    def prepare(self, attrs, in_types, arrays):
        """x, U packed, (bias), the recentring's correction -(zx - m) * sum(w) (module docstring), mult,
        shift, (residual)."""
        classes = self.classes(attrs, in_types)
        w = constant_weight(arrays, self.name)
        O = w.shape[0]
        u = pack_winograd_int8_weight(w, max(fc.channels for fc in classes), element_order(classes))
        zx = int(attrs.get("x_zero_point", 0)) - input_offset(in_types[0][1])
        corr = zero_point_folded_bias(np.zeros(O, np.int64), zx, w.reshape(O, -1))
        # the residual of a fused qadd (requant.ResidualAdd): node input 3
        return [0, u] + ([2] if has_bias(in_types) else []) + [corr] + list(requant_arrays(attrs)) \
            + ([3] if attrs.get("fused_add") else [])

    def compute(self, attrs, in_types, out_type, channels_last):
        """(params, y, pt, classes): the unscheduled TE, its GEMM tile height and flush classes."""
        _, p, _, _ = conv_attrs(attrs)
        N, C, H, W = activation_dims(in_types, channels_last)
        xdt = in_types[0][1]
        O = in_types[1][0][0]
        Op = round_up(O, LANES)
        OH, OW = conv_out_hw(H, W, 3, 3, [1, 1], p, [1, 1])
        classes = self.classes(attrs, in_types)
        Cp = max(fc.channels for fc in classes)
        Cv = round_up(Cp, LANES)   # vin's channels: whole vectors (the GEMMs read the first Cp)
        AT, _, BT = int_matrices()
        nH, nW = -(-OH // 2), -(-OW // 2)
        P = N * nH * nW
        pt = self.tile_rule(P, self.tiles)
        Pp = round_up(P, pt)   # tiles past P repeat the last one (in bounds); their results are never read
        t, l = p[0], p[1]
        m = input_offset(xdt)
        pad_value = float(int(attrs.get("x_zero_point", 0)) - m)
        x = te.placeholder(tuple(in_types[0][0]), xdt, "x")
        u = te.placeholder((16, Op // LANES, Cp, LANES), "float32", "u_packed")
        args = [x, u]
        bias = bias_placeholder(in_types, args)
        corr = te.placeholder((O,), "int32", "zero_point_corr")
        args.append(corr)
        epilogue = RequantEpilogue(attrs, out_type, fuses_add=True)

        def staged(nn, hh, ww, c):   # d' = x - m, zx - m in the padding (module docstring), 0 in padded channels
            inside, ih, iw = image_cell(hh, ww, t, l, H, W)
            cc = te.min(c, C - 1)
            v = x[nn, ih, iw, cc] if channels_last else x[nn, cc, ih, iw]
            return tirx.if_then_else(c < C, tirx.if_then_else(inside, (v.astype("int32") - m).astype("float32"),
                                                               tirx.const(pad_value, "float32")),
                                     tirx.const(0.0, "float32"))

        xh = te.compute((N, nH * 2 + 2, nW * 2 + 2, Cv), staged, name="xh")

        def tile(q):
            q = te.min(q, P - 1) if Pp != P else q
            return q // (nH * nW), q // nW % nH, q % nW

        def tin_f(q, e1, r2, c):
            nn, th, tw = tile(q)
            return lincomb(BT, e1, lambda r1: xh[nn, th * 2 + r1, tw * 2 + r2, c], "float32")

        tin = te.compute((Pp, 4, 4, Cv), tin_f, name="tin")
        order = element_order(classes)   # vin and u_packed hold the elements class after class

        def vin_f(k, q, c):
            e = pick(order, k)
            return lincomb(BT, e % 4, lambda r2: tin[q, e // 4, r2, c], "float32")

        vin = te.compute((16, Pp, Cv), vin_f, name="vin")
        sums, where, first = [], {}, 0
        for i, fc in enumerate(classes):   # per class: fp32 sums over K channels ("mf"), flushed into "mi"
            sums.append(class_gemm(vin, u, fc, first, Op, i))
            where.update({e: (i, j) for j, e in enumerate(fc.elements)})
            first += len(fc.elements)

        def mi(e, q, o):   # element e's sums (e is a constant once "zt" is unrolled)
            expr = None
            for k in range(15, -1, -1):
                i, j = where[k]
                expr = sums[i][j, q, o] if expr is None else tirx.Select(e == k, sums[i][j, q, o], expr)
            return expr

        zt = te.compute((P, 4, 2, Op), lambda q, e1, j, o: lincomb(AT, j, lambda e2: mi(e1 * 4 + e2, q, o),
                                                                     "uint32"), name="zt")

        def result(nn, o, h, w, index):
            q = (nn * nH + h // 2) * nW + w // 2
            y4 = lincomb(AT, h % 2, lambda e1: zt[q, e1, w % 2, o], "uint32").astype("int32")
            acc = tirx.shift_right(y4, tirx.const(2, "int32"))   # exact: y4 = 4 * the direct conv
            return epilogue(plus_int_bias(wrapping_add(acc, corr[o]), bias, o), o, index)

        if channels_last:
            y = te.compute((N, OH, OW, O), lambda nn, h, w, o: result(nn, o, h, w, (nn, h, w, o)), name="out")
        else:
            y = te.compute((N, O, OH, OW), lambda nn, o, h, w: result(nn, o, h, w, (nn, o, h, w)), name="out")
        return args + epilogue.params, y, pt, classes

    def schedule_gemm(self, sch, name, pt):
        """One class's batched GEMM "mf{name}" / "mi{name}": a pt x 16 register tile, fp32 over K channels
        (`step` at a time), flushed into the int32 sums."""
        mb = sch.get_sblock(f"mi{name}")
        ge, gq, go, gkb = sch.get_loops(mb)
        q0, q1 = sch.split(gq, [None, pt])
        o0, o1 = sch.split(go, [None, LANES])
        sch.reorder(ge, q0, o0, gkb, q1, o1)
        cw = sch.cache_write(mb, 0, "global")
        sch.reverse_compute_at(cw, o0)
        sch.parallel(sch.fuse(ge, q0))
        fb = sch.get_sblock(f"mf{name}")
        sch.compute_at(fb, gkb)
        fq, fo, frc = sch.get_loops(fb)[-3:]
        steps = sch.get(frc).extent.value // self.step
        if self.step > 1 and steps > INNER_STEPS and steps % INNER_STEPS == 0:   # see INNER_STEPS
            rc0, rcm, rc1 = sch.split(frc, [None, INNER_STEPS, self.step])
            sch.unroll(rcm)
        else:
            rc0, rc1 = sch.split(frc, [None, self.step])
            rcm = rc0
        sch.reorder(*dict.fromkeys([rc0, rcm, rc1]), fq, fo)
        # vectorise before decompose_reduction (its update block is no longer a reduction)
        unroll_then_vectorize(sch, [fq, fo])
        unroll_then_vectorize(sch, [q1, o1])
        if self.step > 1:   # one V vector per tile and step: fmla by element (aarch64_winograd_fp32.py)
            sch.unroll(rc1)
            # "global", not "local": TVM 0.27 puts a small "global" buffer on the stack, where LLVM keeps it in
            # registers, but a "local" one in heap workspace, stored and reloaded lane by lane (64@56: -5 %)
            vr = sch.cache_read(fb, 0, "global", consumer_blocks=[fb])   # "vin" feeds every class
            sch.compute_at(vr, rcm)
            unroll_then_vectorize(sch, sch.get_loops(vr)[-2:])
        finit = sch.decompose_reduction(fb, rc0)
        minit = sch.decompose_reduction(mb, gkb)
        for b in (finit, minit, cw):
            unroll_then_vectorize(sch, sch.get_loops(b)[-2:])

    def build(self, attrs, in_types, out_type, channels_last):
        """The scheduled PrimFunc."""
        args, y, pt, classes = self.compute(attrs, in_types, out_type, channels_last)
        sch = s_tir.Schedule(create(args + [y]))

        # padded channels-last fp32 staging of d'
        n_, hh, _, xc = sch.get_loops(sch.get_sblock("xh"))
        sch.parallel(sch.fuse(n_, hh))
        sch.vectorize(sch.split(xc, [None, LANES])[1])

        # input transform per (tile, transform_lanes channels): tin then vin, vectorised over the channels
        schedule_input_transform(sch, self.transform_lanes)
        for i in range(len(classes)):
            self.schedule_gemm(sch, i, pt)

        # output transform per (image, output-channel vector, tile): zt, then the 2 x 2 outputs + requantize
        O = int(y.shape[3] if channels_last else y.shape[1])
        ov = first_divisor(O, self.out_lanes)
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
