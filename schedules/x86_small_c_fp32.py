"""x86 fp32: convs with few input channels (the RGB stems), vectorised over output pixels.

* ``conv2d_f32_nchw_small_c`` (requires avx512, priority 12): group 1, C <= 4, a kernel larger than 1x1, stride
  <= 2, output rows with a whole-vector tile (rt rows, rt * OW % 16 == 0, rt * OW <= 112). Params: x f32
  [N,C,H,W], w_packed f32 [O/ot, C, KH, KW, ot], (b f32 [O]) -> y [N,O,OH,OW]. The input is zero-padded and
  split into its stride phases once ("xs" of x86_fp32.py's depthwise conv: C planes, cheap), so every tap reads
  unit-stride pixel vectors; a register tile of ot output channels x rt output rows (as 16-pixel vectors)
  accumulates over (c, rh, rw) with the weights broadcast, and writes NCHW rows directly, bias and activation
  at write-back. conv2d_f32_nchw_tiled vectorises over output channels instead, which with C = 3 leaves one
  weight vector per input broadcast and a transposed write-back: MobileNetV2's 224x224 stem (3 -> 32, 3x3/2)
  measured 0.51 ms there against ORT's 0.32 ms inside the model.
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te

from .compute import bias_placeholder
from .fp32_packed_conv import packed_weight_prepare
from .node_attrs import conv_attrs, conv_out_hw
from .registry import register_kernel
from .te_utils import bias_clip, create
from .x86_fp32 import channel_tile, phase_split_input, row_tile, schedule_phase_split, vectorise_pixel_tile

MAX_CHANNELS = 4


def small_c_tile(attrs, in_types, out_type):
    """(rt, ot) of the register tile, or None when the kernel does not apply (see the module docstring)."""
    s, p, d, g = conv_attrs(attrs)
    (N, C, H, W), _ = in_types[0]
    O, _, KH, KW = in_types[1][0]
    if g != 1 or C > MAX_CHANNELS or (KH, KW) == (1, 1) or max(s) > 2 or "fused_add" in attrs:
        return None
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    rt = row_tile(OH, OW)
    if rt is None:
        return None
    ot = channel_tile(O, rt * OW // 16)
    return None if ot == 1 else (rt, ot)


def pack_small_c(w, attrs, in_types):
    """f32 [O, C, KH, KW] -> [O/ot, C, KH, KW, ot]."""
    ot = small_c_tile(attrs, in_types, None)[1]
    O, C, KH, KW = w.shape
    return np.ascontiguousarray(w.reshape(O // ot, ot, C, KH, KW).transpose(0, 2, 3, 4, 1))


@register_kernel("conv2d", "float32", requires={"avx512"}, priority=12,
                 applies=lambda a, i, o: small_c_tile(a, i, o) is not None,
                 prepare_constants=packed_weight_prepare("conv2d_f32_nchw_small_c", pack_small_c, per_node=True),
                 needs_constant=(1,), name="conv2d_f32_nchw_small_c")
def conv2d_f32_small_c(attrs, in_types, out_type, target):
    """Phase-split padded input, ot channels x rt rows pixel-vector register tile over (c, rh, rw)."""
    rt, ot = small_c_tile(attrs, in_types, out_type)
    s, p, d, _ = conv_attrs(attrs)
    (N, C, H, W), _ = in_types[0]
    O, _, KH, KW = in_types[1][0]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    (sh, sw), (dh, dw) = s, d
    x = te.placeholder((N, C, H, W), "float32", "x")
    wp = te.placeholder((O // ot, C, KH, KW, ot), "float32", "w_packed")
    args = [x, wp]
    bias = bias_placeholder(in_types, args, "float32", "b")
    xs = phase_split_input(x, attrs, OH, OW, KH, KW)
    rc = te.reduce_axis((0, C), "rc")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    acc = te.compute((N, O, OH, OW), lambda n, o, h, w: te.sum(
        xs[n, rc, h * sh + rh * dh, (rw * dw) % sw, w + (rw * dw) // sw] * wp[o // ot, rc, rh, rw, o % ot],
        axis=[rc, rh, rw]), name="acc")
    y = te.compute((N, O, OH, OW), lambda n, o, h, w: bias_clip(acc[n, o, h, w], bias, o, attrs), name="out")
    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    ln, lo, lh, lw, lc, lrh, lrw = sch.get_loops(blk)
    o0, o1 = sch.split(lo, [None, ot])
    h0, h1 = sch.split(lh, [None, rt])
    sch.reorder(ln, h0, o0, lc, lrh, lrw, o1, h1, lw)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, o0)
    sch.reverse_compute_inline(sch.get_sblock("out"))
    sch.parallel(sch.fuse(ln, h0))
    sch.unroll(lrh)
    sch.unroll(lrw)
    vectorise_pixel_tile(sch, blk, lc, cw, cw_rows=rt > 1)   # reverse_compute_at drops a one-row loop
    xb = sch.get_sblock("xs")   # staged once, all planes, before the convolution
    outer = sch.fuse(*sch.get_loops(xb)[:2])
    sch.parallel(outer)
    if sw > 1:
        schedule_phase_split(sch, outer)
    return sch.mod["main"]
