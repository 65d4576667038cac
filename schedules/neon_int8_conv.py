"""The int8 direct conv for Armv8.0 NEON without dot product (Cortex-A53/A55/A72/A73): 8-bit widening
multiplies with the reduction along the vector lanes, 3 instructions per 16 MACs (smull, smlsl2, sadalp: the
chunk intrinsic of neon_intrinsics.py, whose comment has the int16 bound and why the second 8 bytes of every
16 are staged bitwise NOT).

The reduction is cut into rows of 16-byte chunks (``depth_layout``):
* taps (C % 16 == 0, or 1x1 with C padded to 16): one row per kernel row kh, its KW * C bytes (kw, c) read
  straight from the padded NHWC staging (any stride is an address offset), chunks of 16 channels;
* im2col (the rest, e.g. the 3-channel 7x7 stem): one row per output pixel, "xcol" [N, OH, OW, KH * KW * C
  rounded up to 16], one vector copy of KW * C staged bytes per kernel row: the stem reduces 160 bytes
  (147 used) per output instead of 49 taps of 4 channels.
Accumulators: every (output pixel, output channel) keeps an int32x4 (lane l sums reduction bytes 2l, 2l + 1
of every 8); the write-back sums the lanes (addp, 3 per 4 channels), adds the bias and requantizes 4
channels per vector (and computes a fused residual qadd). Register tile (``register_tile``): 4 columns x 4
channels (16 accumulators, 4 + 4 input / weight vectors), or 2 x 8, ..., OW rounded up to the tile (the
padded columns read staged pad columns and are never stored).

Constants: w packed to [O/4, rows, row bytes / 16, 4, 16] over reduction byte (kh * KW + kw) * C + c, zeros
in the padding; bias_eff = bias - (zx + offset) * sum w - the weights at NOT positions (input x - 128
for uint8, as the dot-product convs). Integer math: bit-exact.
PrimFunc params: x (NCHW or NHWC, unchanged), w_packed int8, bias_eff int32[O], mult, shift (, residual) -> y.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import s_tir, te, tirx

from .constants import constant_bias, constant_weight, zero_point_folded_bias
from .dot_product import activation_dims, round_up, staged_input, staging_offset
from .neon_intrinsics import NEON_CHUNK_NAME, NEON_LANE_SUM_NAME
from .node_attrs import conv_attrs, conv_out_hw
from .requant import RequantEpilogue, requant_arrays, wrapping_add
from .te_utils import create

# (output columns, groups of 4 output channels) per register tile, and the instructions per 16 MACs of one
# chunk (12 P G multiply-accumulates, P input and 4 G weight loads, per P G outputs): the cheapest after
# rounding OW up to a multiple of P wins (7 columns: 4 x 1 over 8). 1 x 4 needs 16 weight registers next to
# 16 accumulators and spills: left out.
TILES = ((4, 1), (2, 2), (2, 1), (1, 2), (1, 1))


def register_tile(OW, O):
    """(columns, groups, padded OW): the tile with the fewest instructions per output."""
    def cost(tile):
        c, g = tile
        return (12 * c * g + c + 4 * g) / (c * g) * round_up(OW, c) / OW
    c, g = min((t for t in TILES if (O // 4) % t[1] == 0), key=cost)
    return c, g, round_up(OW, c)


@dataclass(frozen=True)
class DepthLayout:
    """How the reduction is cut: `rows` rows of `row_bytes` bytes, in chunks of 16; im2col: one row per output
    pixel (copied), else one row per kernel row (read in place from the staging, C padded to `channels`)."""
    im2col: bool
    channels: int
    rows: int
    row_bytes: int


def depth_layout(C, KH, KW):
    """Taps where C % 16 == 0 or the kernel is 1x1 (C padded to 16: 1x1 rows are the channels either way),
    else im2col (the 7x7 stem: 160 bytes for 147 MACs, where taps of 16 channels would take 784)."""
    if C % 16 == 0 or KH * KW == 1:
        return DepthLayout(False, round_up(C, 16), KH, KW * round_up(C, 16))
    return DepthLayout(True, C, 1, round_up(KH * KW * C, 16))


def _stage(v, j):
    """The staged int8 value v at reduction byte j: bitwise NOT in the second 8 bytes of every 16."""
    return tirx.Select(tirx.floormod(j, 16) >= 8, ~v, v)


def pack_weight(w, layout):
    """int8 [O, C, KH, KW] -> [O/4, rows, row_bytes / 16, 4, 16] over reduction byte (kh * KW + kw) * Cp + c
    (C zero-padded to Cp = layout.channels; zeros past the end)."""
    O, C, KH, KW = w.shape
    padded = np.zeros((O, layout.channels, KH, KW), w.dtype)
    padded[:, :C] = w
    rows = np.zeros((O, layout.rows * layout.row_bytes), w.dtype)
    rows[:, :padded[0].size] = padded.transpose(0, 2, 3, 1).reshape(O, -1)
    return np.ascontiguousarray(rows.reshape(O // 4, 4, layout.rows, layout.row_bytes // 16, 16)
                                .transpose(0, 2, 3, 1, 4))


def prepare(attrs, in_types, arrays):
    """[x, w_packed, bias_eff, mult, shift (, residual)]."""
    w = constant_weight(arrays, "the NEON smull conv")
    O, C, KH, KW = w.shape
    bias = constant_bias(in_types, arrays, O, "the NEON smull conv")
    zx = int(attrs.get("x_zero_point", 0)) + staging_offset(in_types[0][1], "int8")
    packed = pack_weight(w, depth_layout(C, KH, KW))
    # the NOT bytes add their weight once each (neon_intrinsics.py): take it out of the bias
    at_not = packed[..., 8:].astype(np.int64).sum(axis=(1, 2, 4)).reshape(O)
    beff = zero_point_folded_bias(bias - at_not, zx, w.reshape(O, -1))
    m, n = requant_arrays(attrs)
    return [0, packed, beff, m, n] + ([3] if attrs.get("fused_add") else [])


def build_neon_conv(attrs, in_types, out_type, channels_last):
    """The scheduled conv for NCHW (channels_last=False) or NHWC activations (input and output). O % 4 == 0."""
    s, p, d, _ = conv_attrs(attrs)
    N, C, H, W = activation_dims(in_types, channels_last)
    O, _, KH, KW = in_types[1][0]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    lay = depth_layout(C, KH, KW)
    columns, groups, OWp = register_tile(OW, O)
    wp = te.placeholder((O // 4, lay.rows, lay.row_bytes // 16, 4, 16), "int8", "w_packed")
    beff = te.placeholder((O,), "int32", "bias_eff")
    epilogue = RequantEpilogue(attrs, out_type, fuses_add=True)
    rb = te.reduce_axis((0, 2), "rb")
    rk = te.reduce_axis((0, 2), "rk")

    def within(l):   # byte of the chunk that lane l sums (the chunk intrinsic's order)
        return rb * 8 + l * 2 + rk
    # columns the padded tile (OWp) reads past the right pad
    extra = max(0, (OWp - 1) * s[1] + (KW - 1) * d[1] + 1 - (W + p[1] + p[3]))
    x, xs = staged_input(dict(attrs, pads=[p[0], p[1], p[2], p[3] + extra]), in_types, "int8", channels_last,
                         channel_multiple=1 if lay.im2col else 16)
    tap = KW * C
    if lay.im2col:   # xcol[n, oh, ow, kh * KW * C + j] = staged[n, oh * s + kh * d, ow * s + (j // C) * d, j % C]
        def im2col(nn, h, ww, t):   # (kh clamped: the zero-weight tail past KH * KW * C reads the last row)
            kh, j = te.min(tirx.floordiv(t, tap), KH - 1), tirx.floormod(t, tap)
            return _stage(xs[nn, h * s[0] + kh * d[0], ww * s[1] + tirx.floordiv(j, C) * d[1], tirx.floormod(j, C)], t)
        src = te.compute((N, OH, OWp, round_up(lay.row_bytes, tap)), im2col, name="xcol")
        rd = te.reduce_axis((0, lay.row_bytes // 16), "rd")
        outer = [rd]

        def a(nn, h, ww, l):
            return src[nn, h, ww, rd * 16 + within(l)]
        row, chunk = 0, rd
    else:   # chunk rc of tap (rh, rw): channels rc * 16 + within, straight from the staged input
        src = te.compute(xs.shape, lambda nn, hh, ww, c: _stage(xs[nn, hh, ww, c], c), name="xk")
        rh = te.reduce_axis((0, KH), "rh")
        rw = te.reduce_axis((0, KW), "rw")
        rc = te.reduce_axis((0, lay.channels // 16), "rc")
        outer = [rh, rw, rc]

        def a(nn, h, ww, l):
            return src[nn, h * s[0] + rh * d[0], ww * s[1] + rw * d[1], rc * 16 + within(l)]
        row, chunk = rh, rw * (lay.channels // 16) + rc
    acc = te.compute((N, OH, OWp, O, 4), lambda nn, h, ww, o, l: te.sum(
        a(nn, h, ww, l).astype("int32") * wp[o // 4, row, chunk, o % 4, within(l)].astype("int32"),
        axis=outer + [rb, rk]), name="acc")
    rl = te.reduce_axis((0, 4), "rl")
    total = te.compute((N, OH, OWp, O), lambda nn, h, ww, o: te.sum(acc[nn, h, ww, o, rl], axis=rl), name="total")
    if channels_last:
        y = te.compute((N, OH, OW, O), lambda nn, h, ww, o: epilogue(
            wrapping_add(total[nn, h, ww, o], beff[o]), o, (nn, h, ww, o)), name="out")
    else:
        y = te.compute((N, O, OH, OW), lambda nn, o, h, ww: epilogue(
            wrapping_add(total[nn, h, ww, o], beff[o]), o, (nn, o, h, ww)), name="out")
    return _schedule(create([x, wp, beff] + epilogue.params + [y]), lay.im2col, len(outer), columns, groups,
                     channels_last, tap)


def _schedule(func, im2col, n_outer, columns, groups, channels_last, tap_bytes):
    """Tile (columns x channel groups x 4) with the chunk reduction innermost, lane sums and the write-back
    per tile, staging parallel over rows and vectorised along its bytes."""
    sch = s_tir.Schedule(func)
    blk = sch.get_sblock("acc")
    ln, lh, lw, lo, ll, *red = sch.get_loops(blk)
    o0, og, ol = sch.split(lo, [None, groups, 4])
    w0, w1 = sch.split(lw, [None, columns])
    sch.reorder(ln, lh, o0, w0, *red[:n_outer], w1, og, ol, ll, *red[n_outer:])
    total, out = sch.get_sblock("total"), sch.get_sblock("out")
    sch.reverse_compute_at(total, w0)
    sch.reverse_compute_at(out, w0)
    sch.parallel(sch.fuse(ln, lh))
    init = sch.decompose_reduction(blk, red[0])
    sch.vectorize(sch.fuse(*sch.get_loops(init)[-2:]))
    sch.tensorize(ol, NEON_CHUNK_NAME)
    sch.unroll(og)
    sch.unroll(w1)
    tw, to, _ = sch.get_loops(total)[-3:]
    tg, t4 = sch.split(to, [None, 4])
    sch.vectorize(sch.get_loops(sch.decompose_reduction(total, tg))[-1])
    sch.tensorize(t4, NEON_LANE_SUM_NAME)
    sch.unroll(tg)
    sch.unroll(tw)
    if channels_last:   # 4 channels per vector: bias, requantize, store
        yw, yo = sch.get_loops(out)[-2:]
        yg, y4 = sch.split(yo, [None, 4])
        sch.vectorize(y4)
        sch.unroll(yg)
        sch.unroll(yw)
    xs = sch.get_sblock("xs")
    if im2col:   # one vector copy per kernel row and pixel (KW * C contiguous staged bytes when d == 1)
        loops = sch.get_loops(xs)
        sch.parallel(sch.fuse(loops[0], loops[1]))
        stage = sch.get_sblock("xcol")
        loops = sch.get_loops(stage)
        sch.parallel(sch.fuse(loops[0], loops[1]))
        _vectorize_bytes(sch, sch.split(loops[-1], [None, tap_bytes])[-1])
    else:   # the staging copy (+ offset, NOT, border) vectorised along the channels
        sch.compute_inline(xs)
        loops = sch.get_loops(sch.get_sblock("xk"))
        sch.parallel(sch.fuse(loops[0], loops[1]))
        _vectorize_bytes(sch, loops[-1])
    return sch.mod["main"]


def _vectorize_bytes(sch, loop):
    """Vectorise a byte loop: whole up to 64 bytes, else its inner 16 or 8 (left scalar when neither divides)."""
    extent = int(sch.get(loop).extent)
    lanes = extent if extent <= 64 else next((v for v in (16, 8) if extent % v == 0), 0)
    if lanes:
        sch.vectorize(loop if lanes == extent else sch.split(loop, [None, lanes])[-1])
