"""The CPU fp32 pieces shared by the ISA kernel files (x86_fp32.py, aarch64_fp32.py): weights packed to 16
output channels, their prepare_constants, the unscheduled packed-weight conv and the write-back schedule step.

The conv: x f32 [N,C,H,W] is padded once into block "pad" (zeros; no bounds checks in the reduction), the weight
is packed [Op/16, KH, KW, C, 16] (`pack_w_f32`: O zero-padded to Op, a multiple of 16), block "acc"
[N, OH, OW, Op] sums over (rh, rw, rc), block "out" [N, O, OH, OW] adds the optional bias and clips.
"""
from __future__ import annotations

import numpy as np
from tvm import te, tirx

from .compute import bias_placeholder
from .constants import constant_weight
from .node_attrs import conv_attrs, conv_out_hw, has_bias
from .te_utils import bias_clip, image_cell


def pad_rows16(w):
    """Zero rows up to the next multiple of 16 along axis 0 (extra output channels, never written out)."""
    extra = -w.shape[0] % 16
    return np.concatenate([w, np.zeros((extra,) + w.shape[1:], w.dtype)]) if extra else w


def pack_w_f32(w):
    """f32 [O, C, KH, KW] -> [Op/16, KH, KW, C, 16], O zero-padded to Op, a multiple of 16."""
    w = pad_rows16(w)
    O, C, KH, KW = w.shape
    return np.ascontiguousarray(w.reshape(O // 16, 16, C, KH, KW).transpose(0, 3, 4, 2, 1))


def packed_weight_prepare(kernel, pack):
    """prepare_constants for a kernel with a pre-packed constant weight and an optional bias."""
    def prepare(attrs, in_types, arrays):
        res = [0, pack(np.asarray(constant_weight(arrays, kernel), np.float32))]
        if has_bias(in_types):
            res.append(2)
        return res
    return prepare


def ungrouped(attrs, in_types, out_type):
    """`applies` of the packed-weight convs: group == 1."""
    return conv_attrs(attrs)[3] == 1


def packed_conv2d_f32(attrs, in_types):
    """(params, y, Op): the placeholders x, w_packed (, b) in order, the output tensor, the padded O."""
    s, p, d, _ = conv_attrs(attrs)
    (N, C, H, W), _ = in_types[0]
    O, _, KH, KW = in_types[1][0]
    Op = (O + 15) // 16 * 16   # vector lanes over output channels; padded ones have zero weights
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    x = te.placeholder((N, C, H, W), "float32", "x")
    wp = te.placeholder((Op // 16, KH, KW, C, 16), "float32", "w_packed")
    args = [x, wp]
    t, l, b_, r = p

    def pad(nn, cc, hh, ww):
        inside, ih, iw = image_cell(hh, ww, t, l, H, W)
        return tirx.if_then_else(inside, x[nn, cc, ih, iw], tirx.const(0.0, "float32"))

    xp = te.compute((N, C, H + t + b_, W + l + r), pad, name="pad")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    rc = te.reduce_axis((0, C), "rc")
    acc = te.compute((N, OH, OW, Op), lambda nn, h, ww, o: te.sum(
        xp[nn, rc, h * s[0] + rh * d[0], ww * s[1] + rw * d[1]] * wp[o // 16, rh, rw, rc, o % 16],
        axis=[rh, rw, rc]), name="acc")
    bb = bias_placeholder(in_types, args, "float32", "b")
    y = te.compute((N, O, OH, OW), lambda nn, o, h, ww: bias_clip(acc[nn, h, ww, o], bb, o, attrs), name="out")
    return args, y, Op


def write_back(sch, blk, at, outer, vec, reduce_at, padded=False):
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
