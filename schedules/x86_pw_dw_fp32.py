"""x86 fp32: a 1x1 conv and the depthwise conv that consumes it as one kernel (MobileNetV2's expand + depthwise).

* ``pwdw_f32_nchw_x86`` (op ``conv2d_pw_dw``, requires avx512, priority 10): node inputs x f32 [N,C,H,W],
  w_pw [M,C,1,1], b_pw [M], w_dw [M,1,KH,KW], b_dw [M] (the lowering passes zeros for an absent bias); attrs:
  the depthwise conv's (strides, pads, dilations, group = M, its activation) and ``pointwise``, the 1x1 conv's
  (its activation). Params: x, w_pw packed [M/ot, C, ot] (`pack_channel_tiles`), b_pw, w_dw, b_dw,
  column_mask uint8 [H * sw * Wq] (`column_mask`) -> y.

  The expanded tensor, the largest of the block, never goes through memory (MobileNetV2's first expand,
  96 x 112 x 112 = 4.8 MB, measured ~2x its standalone time inside the model, and so did the depthwise conv
  reading it). Steps: (1) "xq", the small input x with its columns zero-padded and split into the depthwise
  conv's stride phases, on one flat pixel axis (xq[c, h * sw * Wq + ph * Wq + q] = padded x[c, h, q * sw + ph];
  once, on the C input channels, not the M expanded ones, by depthwise_f32_tile.stage_plane: vector
  de-interleave of contiguous loads where no column is padding, as the plain depthwise kernel; the scalar
  guarded form (LLVM made it gathers) took ~100 of 680 us at 16 -> 96 x 112 x 112, now ~40, block 678 -> 639
  us, 24 -> 144 x 56 x 56 315 -> 300 us in the model); parallel over groups of ot expanded channels:
  (2) "pw", the group's 1x1 output on that layout (the pixel-vector register tile of conv2d_f32_nchw_1x1 over
  the flat axis), written back as "pwo" into an L2-sized scratch with the 1x1's bias + activation and zeros on
  the pad columns (a vector select on `column_mask`: the padded layout came from step 1, so no guarded loads),
  then per channel (3) the depthwise register tile of depthwise_f32_tile.py, reading "pwo" in place (its pad
  rows: a scalar select). A per-channel staging copy of "pwo" in between, which applied bias, activation and
  padding there, cost 644 -> 575 us at 16 -> 96 x 112 x 112 and 299 -> 271 us at 24 -> 144 x 56 x 56 (Zen 4,
  1 thread, kernels alone): the copy itself, not its arithmetic, was the cost.
  Applies when the 1x1 is stride 1, unpadded, group 1, the depthwise conv is strided (stride 1 measured slower
  fused: its own staging is cheap) with one output channel per input channel, and the H * sw * Wq staged
  pixels are whole 16-pixel vectors.

compiler/relax/fuse_conv_pairs.py forms these nodes (only when this kernel accepts them).
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from .cpu_schedules import first_divisor
from .depthwise_f32_tile import phase_split_dw_f32, phase_split_extent, stage_plane, tile_depthwise_f32
from .node_attrs import conv_attrs, conv_out_hw
from .registry import register_kernel
from .te_utils import bias_clip, create, image_cell
from .x86_fp32 import (DW_STAGE_LANES, channel_tile, dw_column_tile, is_plain_1x1, pack_channel_tiles,
                       pointwise_gemm, vectorise_pixel_tile)


def fused_geometry(attrs, in_types):
    """(nv, ot, Hs, Wq) of a node the kernel applies to, else None: the 1x1 register tile (nv pixel vectors x ot
    channels) over the staged input's P = H * sw * Wq pixels (whole vectors: P % 16 == 0), the depthwise conv's
    staged rows and its columns per stride phase."""
    pw = attrs.get("pointwise")
    if pw is None or len(in_types) != 5 or any(t is None or t[1] != "float32" for t in in_types):
        return None
    (_, C, H, W), (M, Cw, _, _) = in_types[0][0], in_types[1][0]
    O, ipg, KH, KW = in_types[3][0]
    s, p, d, g = conv_attrs(attrs)
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    if not is_plain_1x1(pw, in_types) or Cw != C or not g == M == O or ipg != 1:
        return None
    if s == [1, 1]:   # stride 1 measured slower fused (56 x 56 x 144: 0.58 vs 0.52 ms): its own staging is cheap
        return None
    sw = s[1]
    Hs, Wq = phase_split_extent(s, d, OH, OW, KH, KW)
    P = H * sw * Wq
    if P % 16:
        return None
    nv = first_divisor(P // 16, (8, 7, 6, 5, 4), None)
    ot = nv and channel_tile(M, nv)
    return None if not ot or ot == 1 else (nv, ot, Hs, Wq)


def column_mask(attrs, in_types):
    """uint8 [H * sw * Wq]: 1 where a staged pixel (`fused_geometry`'s layout) is an image column, 0 on the pad
    columns, which the depthwise conv must read as zeros (the 1x1's write-back would store bias + activation)."""
    _, _, Hs, Wq = fused_geometry(attrs, in_types)
    (_, _, H, W), _ = in_types[0]
    s, p, _, _ = conv_attrs(attrs)
    sw, l = s[1], p[1]
    col = np.arange(Wq)[None, :] * sw + np.arange(sw)[:, None]   # [phase, q] -> padded column
    row = ((col >= l) & (col < W + l)).astype(np.uint8).reshape(-1)
    return np.tile(row, H)


def fusable(attrs, in_types, out_type):
    """`applies`: see the module docstring."""
    return fused_geometry(attrs, in_types) is not None


def _prepare(attrs, in_types, arrays):
    ot = fused_geometry(attrs, in_types)[1]
    return [0, pack_channel_tiles(arrays[1], ot), 2, 3, 4, column_mask(attrs, in_types)]


@register_kernel("conv2d_pw_dw", "float32", requires={"avx512"}, priority=10, applies=fusable,
                 prepare_constants=_prepare, needs_constant=(1, 3), name="pwdw_f32_nchw_x86")
def pwdw_f32_x86(attrs, in_types, out_type, target):
    """1x1 conv + depthwise conv per group of ot channels: phase-split padded input, the group's 1x1 planes in
    an L2 scratch (pixel-vector GEMM tile; bias, activation and pad columns at its write-back), the depthwise
    register tile reading them in place."""
    nv, ot, Hs, Wq = fused_geometry(attrs, in_types)
    s, p, d, _ = conv_attrs(attrs)
    sw, t, l = s[1], p[0], p[1]
    (N, C, H, W), _ = in_types[0]
    M = in_types[1][0][0]
    KH, KW = in_types[3][0][2:]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    row = sw * Wq   # staged pixels per input row: the stride phases of the padded row, side by side
    x = te.placeholder((N, C, H, W), "float32", "x")
    wp = te.placeholder((M // ot, C, ot), "float32", "w_pw_packed")
    b_pw = te.placeholder((M,), "float32", "b_pw")
    w_dw = te.placeholder((M, 1, KH, KW), "float32", "w_dw")
    b_dw = te.placeholder((M,), "float32", "b_dw")

    def xq_cell(n, c, _, j):   # j = h * row + ph * Wq + q <- padded column q * sw + ph of row h
        inside, ih, iw = image_cell(j // row, (j % Wq) * sw + j % row // Wq, 0, l, H, W)
        return tirx.if_then_else(inside, x[n, c, ih, iw], tirx.const(0.0, "float32"))

    xq = te.compute((N, C, 1, H * row), xq_cell, name="xq")   # one flat pixel axis: whole vectors
    pw = pointwise_gemm(xq, wp, "pw")

    # the 1x1's write-back: bias + activation, zero on the pad columns (`column_mask`: a vector select)
    mask = te.placeholder((H * row,), "uint8", "column_mask")
    pwo = te.compute((N, M, 1, H * row), lambda n, m, z, j: tirx.Select(
        mask[j] != tirx.const(0, "uint8"), bias_clip(pw[n, m, z, j], b_pw, m, attrs["pointwise"]),
        tirx.const(0.0, "float32")), name="pwo")

    def xs_cell(n, m, hh, ph, q):   # the depthwise conv's taps read "pwo" in place; pad rows: a scalar select
        row_in, ih, _ = image_cell(hh, 0, t, 0, H, 1)
        return tirx.Select(row_in, pwo[n, m, 0, ih * row + ph * Wq + q], tirx.const(0.0, "float32"))

    xs = te.compute((N, M, Hs, sw, Wq), xs_cell, name="xs")
    y = phase_split_dw_f32(xs, w_dw, b_dw, attrs, (N, M, OH, OW))
    sch = s_tir.Schedule(create([x, wp, b_pw, w_dw, b_dw, mask, y]))
    sch.compute_inline(sch.get_sblock("xs"))
    tile_depthwise_f32(sch, OH, OW, None, dw_column_tile(s, OW), group=ot)
    group = sch.get_loops(sch.get_sblock("acc_global"))[0]
    # the group's 1x1 output: nv pixel vectors x ot channels register tile, as conv2d_f32_nchw_1x1, its write-back
    # "pwo" (bias, activation, mask) straight from the registers
    blk = sch.get_sblock("pw")
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_inline(sch.get_sblock("pwo"))
    sch.compute_at(cw, group)
    sch.compute_at(blk, group)
    lo, lp, lc = sch.get_loops(blk)[-3:]
    p0, p1 = sch.split(lp, [None, nv * 16])
    sch.reorder(p0, lc, lo, p1)
    sch.reverse_compute_at(cw, p0)
    vectorise_pixel_tile(sch, blk, lc, cw, rows=False, cw_rows=False)
    xqb = sch.get_sblock("xq")   # once per image on the C input channels
    sch.split(sch.get_loops(xqb)[-1], [H, sw, Wq])   # row, phase, column: no divisions in the index arithmetic
    sch.parallel(sch.fuse(*sch.get_loops(xqb)[:2]))
    stage_plane(sch, None, (0, l), (H, W), sw, DW_STAGE_LANES, "xq")
    return sch.mod["main"]
