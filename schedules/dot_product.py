"""The int8 dot-product conv shared by the x86 VNNI, AVX2 and the Arm sdot kernels: one algorithm, with the
intrinsic's lane count (16, 8 or 4 output channels) and k (4 input channels each, 2 for vpmaddwd) as
parameters.

* The input is staged as a padded NHWC copy in the intrinsic's input dtype: x + 128 (int8 input, uint8
  vpdpbusd) or x - 128 (uint8 input, int8 sdot) or x widened to int16 (vpmaddwd), padded with the zero
  point in the same domain, C padded to a multiple of 4 (those channels meet zero weights). From NHWC the
  staging is a contiguous copy.
* The weight is packed at compile time to [Op/lanes, KH, KW, Cp/k, lanes, k] (Op = O rounded up to a
  multiple of lanes when the ISA pads output channels; the padded accumulators are never written out).
* Feeding x + offset instead of x - zx is corrected once, in the bias:
  bias_eff[o] = bias[o] - (zx + offset) * sum_k w[o, k]  (constants computed by kernel_inputs).
* Register tile: (column tile) output columns x (lane groups x lanes) output channels, int32
  accumulators, requantize fused into the write-back. Integer math: bit-exact.
* wide_intrin (sdot): a second intrinsic taking k_steps groups of k channels per call (same packing), used
  where Cp % (k * k_steps) == 0; the reduction is then split rc, rj (< k_steps), rm (< k).
PrimFunc params: x (NCHW or NHWC, unchanged), w_packed int8, bias_eff int32[O], mult, shift (, residual) -> y;
residual (shaped as y) when attrs fused_add asks for the consuming qadd in the epilogue (requant.ResidualAdd).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from tvm import s_tir, te, tirx

from .constants import constant_bias, constant_weight, zero_point_folded_bias
from .column_fold import column_folded_input, fold_columns_weight, folds_columns
from .cpu_schedules import first_divisor, weights_outweigh_map
from .intrinsics import DotProductIntrin
from .node_attrs import conv_attrs, conv_out_hw, is_dense_int8_conv
from .requant import RequantEpilogue, requant_arrays, wrapping_add
from .te_utils import create, image_cell


def round_up(n, multiple):
    return (n + multiple - 1) // multiple * multiple


def staging_offset(x_dtype, a_dtype):
    """What the staging adds to x so that it fits the intrinsic's input dtype a_dtype."""
    if x_dtype == a_dtype or a_dtype == "int16":   # int16 holds either 8-bit dtype as it is
        return 0
    return 128 if a_dtype == "uint8" else -128


def activation_dims(in_types, channels_last):
    """(N, C, H, W) of the activation input, stored NCHW or NHWC (channels_last)."""
    if channels_last:
        N, H, W, C = in_types[0][0]
    else:
        N, C, H, W = in_types[0][0]
    return N, C, H, W


def staged_input(attrs, in_types, a_dtype, channels_last, channel_multiple=4):
    """(x, xs): the input placeholder and block "xs", its padded NHWC copy [N, H+t+b, W+l+r, Cp] in a_dtype
    (x + offset, the zero point + offset in the pads; C rounded up to Cp, a multiple of channel_multiple),
    read by the dot-product conv and the NEON smull conv (neon_int8_conv.py)."""
    N, C, H, W = activation_dims(in_types, channels_last)
    t, l, b_, r = conv_attrs(attrs)[1]
    Cp = round_up(C, channel_multiple)
    xdt = in_types[0][1]
    zx = int(attrs.get("x_zero_point", 0))
    offset = staging_offset(xdt, a_dtype)
    x = te.placeholder(tuple(in_types[0][0]), xdt, "x")

    def stage(nn, hh, ww, cc):
        inside, ih, iw = image_cell(hh, ww, t, l, H, W)
        if Cp != C:   # channels >= C meet zero weights: any value works, use the pad value
            inside = tirx.all(inside, cc < C)
            cc = te.min(cc, C - 1)
        v = (x[nn, ih, iw, cc] if channels_last else x[nn, cc, ih, iw]).astype("int32")
        return tirx.if_then_else(inside, v + offset, tirx.const(zx + offset, "int32")).astype(a_dtype)

    return x, te.compute((N, H + t + b_, W + l + r, Cp), stage, name="xs")


def pack_conv_weight(w, lanes, k=4, channel_multiple=4):
    """int8 [O, C, KH, KW] -> [Op/lanes, KH, KW, Cp/k, lanes, k], C and O zero-padded to Cp (a multiple of
    channel_multiple, as the staging pads it) and Op (a multiple of lanes)."""
    O, C, KH, KW = w.shape
    Op, Cp = round_up(O, lanes), round_up(C, channel_multiple)
    wp = np.zeros((Op, Cp, KH, KW), w.dtype)
    wp[:O, :C] = w
    return np.ascontiguousarray(wp.reshape(Op // lanes, lanes, Cp // k, k, KH, KW).transpose(0, 4, 5, 2, 1, 3))


def pack_linear_weight(w, lanes):
    """int8 [O, K] -> [Op/lanes, Kp/4, lanes, 4]: the conv packing of a 1x1 kernel."""
    packed = pack_conv_weight(w[:, :, None, None], lanes)
    return packed.reshape(packed.shape[0], packed.shape[3], lanes, 4)


def folded_constants(attrs, in_types, arrays, intrin: DotProductIntrin, pack, kernel):
    """prepare_constants of a dot-product kernel: [x, pack(w, lanes), bias_eff, mult, shift]."""
    w = constant_weight(arrays, kernel)
    O = w.shape[0]
    bias = constant_bias(in_types, arrays, O, kernel)
    offset = staging_offset(in_types[0][1], intrin.a_dtype)
    beff = zero_point_folded_bias(bias, int(attrs.get("x_zero_point", 0)) + offset, w.reshape(O, -1))
    m, n = requant_arrays(attrs)
    return [0, pack(w, intrin.lanes), beff, m, n]


def vector_channels(sch, loop, channels):
    """Vectorise a write-back's channel loop in the widest whole vectors (16, 8 or 4 lanes) that divide it.
    MobileNetV2's 1x1 int8 convs to 24 channels at 56x56 (Zen 4, 1 thread): 144 -> 24 96 -> 84 us, 96 -> 24
    71 -> 59 us."""
    lanes = first_divisor(channels, (16, 8, 4, 1))
    if lanes > 1:
        sch.vectorize(sch.split(loop, [None, lanes])[1])


@dataclass(frozen=True)
class DotProductConv:
    """One ISA's instance of the conv: its intrinsic and the register-tile choices measured for it."""
    intrin: DotProductIntrin
    label: str                    # names the kernel in error messages
    column_tiles: tuple           # output columns per register tile: the first that divides OW
    lane_groups: tuple = ()       # groups of `lanes` output channels per tile: the first that divides Op/lanes
                                  # (empty: one group, and no group loop)
    groups_below_columns: int = 0  # lane_groups only where the column tile is narrower than this (0: always)
    pads_output_channels: bool = True     # else the kernel applies only when O % lanes == 0
    vectorize_nhwc_staging: bool = False  # vectorise the contiguous NHWC staging copy (C % 4 == 0)
    wide_intrin: str = ""         # a TensorIntrin over k_steps groups of k channels (the same packing),
    k_steps: int = 1              # used where Cp % (k * k_steps) == 0 (sdot_lane_intrin.py)
    folds_columns: bool = False   # fold the kernel columns into the reduction where C is small (column_fold.py)

    def applies(self, attrs, in_types, out_type):
        return is_dense_int8_conv(attrs, in_types, out_type) and (
            self.pads_output_channels or in_types[1][0][0] % self.intrin.lanes == 0)

    def channel_multiple(self, C):
        """What C is padded to: 4, or the wide intrinsic's k * k_steps channels where that at most doubles the
        MACs (the 4-channel sdot step costs ~3x the wide one per MAC: 0.26 vs 0.085 instructions,
        bench/arm_nchw44.py on C = 24 / 116 / 232)."""
        wide = self.intrin.k * self.k_steps
        return wide if self.wide_intrin and C % wide and round_up(C, wide) <= 2 * C else 4

    def prepare(self, attrs, in_types, arrays):
        _, C, _, KW = in_types[1][0]
        pack = partial(pack_conv_weight, k=self.intrin.k, channel_multiple=self.channel_multiple(C))
        if self.folds_columns and folds_columns(C, KW, conv_attrs(attrs)[2][1]):
            pack = lambda w, lanes: pack_conv_weight(fold_columns_weight(w), lanes, self.intrin.k)  # noqa: E731
        consts = folded_constants(attrs, in_types, arrays, self.intrin, pack, self.label)
        return consts + ([3] if attrs.get("fused_add") else [])   # the residual of a fused qadd: input 3

    def build(self, attrs, in_types, out_type, channels_last):
        """The scheduled conv for NCHW (channels_last=False) or NHWC activations (input and output)."""
        lanes, k = self.intrin.lanes, self.intrin.k
        s, p, d, _ = conv_attrs(attrs)
        N, C, H, W = activation_dims(in_types, channels_last)
        O, _, KH, KW = in_types[1][0]
        OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
        Cp, Op = round_up(C, self.channel_multiple(C)), round_up(O, lanes)
        if self.folds_columns and folds_columns(C, KW, d[1]):   # a KH x 1 conv over the flat rows' KW * C values
            x, xs, Cp = column_folded_input(attrs, in_types, (N, C, H, W), self.intrin.a_dtype,
                                            staging_offset(in_types[0][1], self.intrin.a_dtype), channels_last)
            KW, tap = 1, lambda nn, hh, ww, rw, c: xs[nn, hh, ww * s[1] * C + c]   # noqa: E731
        else:
            x, xs = staged_input(attrs, in_types, self.intrin.a_dtype, channels_last, self.channel_multiple(C))
            tap = lambda nn, hh, ww, rw, c: xs[nn, hh, ww * s[1] + rw * d[1], c]   # noqa: E731
        wp = te.placeholder((Op // lanes, KH, KW, Cp // k, lanes, k), "int8", "w_packed")
        beff = te.placeholder((O,), "int32", "bias_eff")
        epilogue = RequantEpilogue(attrs, out_type, fuses_add=True)
        rh = te.reduce_axis((0, KH), "rh")
        rw = te.reduce_axis((0, KW), "rw")
        steps = self.k_steps if self.wide_intrin and Cp % (k * self.k_steps) == 0 else 1
        if steps == 1:
            rc = te.reduce_axis((0, Cp), "rc")
            inner = [rc]
            channel, group, within = rc, rc // k, rc % k
        else:   # channel = (rc * steps + rj) * k + rm: the wide intrinsic takes rj, rm
            rc = te.reduce_axis((0, Cp // (k * steps)), "rc")
            rj = te.reduce_axis((0, steps), "rj")
            rm = te.reduce_axis((0, k), "rm")
            inner = [rc, rj, rm]
            channel, group, within = (rc * steps + rj) * k + rm, rc * steps + rj, rm
        acc = te.compute((N, OH, OW, Op), lambda nn, h, ww, o: te.sum(
            tap(nn, h * s[0] + rh * d[0], ww, rw, channel).astype("int32")
            * wp[o // lanes, rh, rw, group, o % lanes, within].astype("int32"), axis=[rh, rw] + inner), name="acc")
        if channels_last:
            y = te.compute((N, OH, OW, O), lambda nn, h, ww, o: epilogue(
                wrapping_add(acc[nn, h, ww, o], beff[o]), o, (nn, h, ww, o)), name="out")
        else:
            y = te.compute((N, O, OH, OW), lambda nn, o, h, ww: epilogue(
                wrapping_add(acc[nn, h, ww, o], beff[o]), o, (nn, o, h, ww)), name="out")
        # schedule: tile (columns x channel groups x lanes), reduction over taps and groups of k channels
        # with the intrinsic innermost, accumulators cached per tile, staging parallel over rows
        sch = s_tir.Schedule(create([x, wp, beff] + epilogue.params + [y]))
        blk = sch.get_sblock("acc")
        ln, lh, lw, lo, lrh, lrw, lrc, *lrk = sch.get_loops(blk)
        cols = first_divisor(OW, self.column_tiles)
        if self.lane_groups and (not self.groups_below_columns or cols < self.groups_below_columns):
            # a loop over groups of `lanes` output channels inside the register tile
            o0, og, ol = sch.split(lo, [None, first_divisor(Op // lanes, self.lane_groups), lanes])
            groups = [og]
        else:
            o0, ol = sch.split(lo, [None, lanes])
            groups = []
        w0, w1 = sch.split(lw, [None, cols])
        c0, *c1 = (lrc, *lrk) if lrk else sch.split(lrc, [None, k])
        # the staged map against the weights (measured with VNNI; sdot and vpmaddwd share the rule, the latter's
        # int16 staging weighing twice its count); folded, Wp is the flat row's length, read by Kp weights a row
        Hp, Wp = (int(v) for v in xs.shape[1:3])
        row_taps = Cp if len(xs.shape) == 3 else KW
        rows = [o0, lh] if weights_outweigh_map(Hp, Wp, Op, KH, row_taps) else [lh, o0]
        sch.reorder(ln, *rows, w0, lrh, lrw, c0, w1, *groups, ol, *c1)
        cw = sch.cache_write(blk, 0, "global")
        sch.reverse_compute_at(cw, w0)
        if Op == O:
            sch.reverse_compute_inline(sch.get_sblock("out"))
            if channels_last:   # one vector of `lanes` channels per column (LLVM may not vectorise it alone)
                sch.vectorize(sch.get_loops(cw)[-1])
        else:   # the padded channels are computed but never written out
            sch.reverse_compute_at(sch.get_sblock("out"), w0)
            if channels_last:   # whole vectors of the O channels (24: 3 x 8 lanes), not element by element
                vector_channels(sch, sch.get_loops(sch.get_sblock("out"))[-1], O)
        # parallel over (image, row, channel block): a 7x7 map has 7 rows but 7 x Op/(lanes x groups) chunks
        # (ResNet-18's last layers: 112, enough for 16 threads)
        sch.parallel(sch.fuse(ln, *rows))
        init = sch.decompose_reduction(blk, lrh)
        sch.vectorize(sch.get_loops(init)[-1])
        sch.tensorize(ol, self.wide_intrin if steps > 1 else self.intrin.name)
        for loop in groups + [w1]:
            sch.unroll(loop)
        xl = sch.get_loops(sch.get_sblock("xs"))
        sch.parallel(sch.fuse(*xl[:-1]))   # over pixels (or flat rows): a 7x7 map's 9 padded rows are too few
        if self.vectorize_nhwc_staging and channels_last and Cp == C and Cp <= 256:
            sch.vectorize(xl[-1])   # a contiguous row copy (+ offset, border fill)
        return sch.mod["main"]
