"""The CPU fp32 pieces shared by the ISA kernel files (x86_fp32.py, x86_avx2_fp32.py, aarch64_fp32.py): weights
packed to 16 output channels, their prepare_constants, the unscheduled packed-weight conv and its schedule steps
(write-back, padded staging), and the packed linear (TE and schedule, ISA-neutral).

The conv: x f32 [N,C,H,W] is padded once into block "pad" (zeros; no bounds checks in the reduction), the weight
is packed [Op/16, KH, KW, C, 16] (`pack_w_f32`: O zero-padded to Op, a multiple of 16), block "acc"
[N, OH, OW, Op] sums over (rh, rw, rc), block "out" [N, O, OH, OW] adds the optional bias and clips (and, for the
kernels that pass ``fuses_add``, the residual of a fused float add: `residual_input`, `conv_output_value`).
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from .compute import bias_placeholder, plus_bias
from .constants import constant_weight
from .cpu_schedules import first_divisor
from .node_attrs import conv_attrs, conv_out_hw, has_bias
from .te_utils import bias_clip, clip_epilogue, create, image_cell


def pad_rows16(w):
    """Zero rows up to the next multiple of 16 along axis 0 (extra output channels, never written out)."""
    extra = -w.shape[0] % 16
    return np.concatenate([w, np.zeros((extra,) + w.shape[1:], w.dtype)]) if extra else w


def pack_w_f32(w):
    """f32 [O, C, KH, KW] -> [Op/16, KH, KW, C, 16], O zero-padded to Op, a multiple of 16."""
    w = pad_rows16(w)
    O, C, KH, KW = w.shape
    return np.ascontiguousarray(w.reshape(O // 16, 16, C, KH, KW).transpose(0, 3, 4, 2, 1))


def pack_linear_f32(w):
    """f32 [O, K] -> [Op/16, K, 16], O zero-padded to Op, a multiple of 16."""
    w = pad_rows16(w)
    O, K = w.shape
    return np.ascontiguousarray(w.reshape(O // 16, 16, K).transpose(0, 2, 1))


def packed_weight_prepare(kernel, pack, per_node=False, fuses_add=False):
    """prepare_constants for a kernel with a pre-packed constant weight and an optional bias; with
    `per_node` the packing also depends on the node: pack(w, attrs, in_types). With `fuses_add` (the kernel
    builds `residual_input`) the residual of attrs ``fused_add``, node input 3, comes last."""
    def prepare(attrs, in_types, arrays):
        w = np.asarray(constant_weight(arrays, kernel), np.float32)
        res = [0, pack(w, attrs, in_types) if per_node else pack(w)]
        if has_bias(in_types):
            res.append(2)
        if fuses_add and attrs.get("fused_add"):
            res.append(3)
        return res
    return prepare


def residual_input(attrs, out_shape, args, fuses_add=False):
    """The residual placeholder of a float add fused into the conv's write-back (attrs ``fused_add``, set by
    compiler/relax/fuse_residual.py), appended to ``args``; None without. A kernel that does not pass
    ``fuses_add`` refuses such a node (selection moves on to the next kernel)."""
    if not attrs.get("fused_add"):
        return None
    if not fuses_add:
        raise NotImplementedError("this kernel does not fuse a residual add")
    residual = te.placeholder(tuple(out_shape), "float32", "residual")
    args.append(residual)
    return residual


def conv_output_value(value, bias, c, attrs, residual=None, index=None):
    """A float conv's write-back: bias + its activation (`bias_clip`, what the unfused conv stores), then with a
    fused add + residual[index] and the add's activation (fused_add clip_min / clip_max): the unfused graph's
    float operations in its order, so bit for bit its result."""
    value = bias_clip(value, bias, c, attrs)
    if residual is None:
        return value
    return clip_epilogue(value + residual[tuple(index)], attrs["fused_add"])


def ungrouped(attrs, in_types, out_type):
    """`applies` of the packed-weight convs: group == 1."""
    return conv_attrs(attrs)[3] == 1


def packed_conv2d_f32(attrs, in_types, fuses_add=False):
    """(params, y, Op): the placeholders x, w_packed (, b) (, residual: `residual_input`) in order, the output
    tensor, the padded O."""
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
    res = residual_input(attrs, (N, O, OH, OW), args, fuses_add)
    y = te.compute((N, O, OH, OW), lambda nn, o, h, ww: conv_output_value(acc[nn, h, ww, o], bb, o, attrs, res,
                                                                          (nn, o, h, ww)), name="out")
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


def schedule_pad(sch, attrs, in_types, vector_max=64):
    """Parallelise the staging copy "pad" over (n, c); vectorise its rows when they are at most `vector_max`
    wide (None: never)."""
    W = in_types[0][0][3]
    _, l, _, r = conv_attrs(attrs)[1]
    pl = sch.get_loops(sch.get_sblock("pad"))
    sch.parallel(sch.fuse(pl[0], pl[1]))
    if vector_max is not None and W + l + r <= vector_max:
        sch.vectorize(pl[-1])


def packed_linear_f32(attrs, in_types):
    """The scheduled packed-weight linear: x f32 [N,K], w_packed f32 [Op/16, K, 16] (`pack_linear_f32`), (b [O])
    -> y [N,O]; a register tile of mi rows x nj*16 output columns, FMA over 16 outputs with x[i, k] broadcast."""
    (N, K), _ = in_types[0]
    O = in_types[1][0][0]
    Op = (O + 15) // 16 * 16   # padded outputs have zero weights and are not written out
    x = te.placeholder((N, K), "float32", "x")
    wp = te.placeholder((Op // 16, K, 16), "float32", "w_packed")
    args = [x, wp]
    k = te.reduce_axis((0, K), "k")
    acc = te.compute((N, Op), lambda i, j: te.sum(x[i, k] * wp[j // 16, k, j % 16], axis=k), name="acc")
    bb = bias_placeholder(in_types, args, "float32", "b")
    y = te.compute((N, O), lambda i, j: plus_bias(acc[i, j], bb, j), name="out")
    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    i, j, kk = sch.get_loops(blk)
    mi = first_divisor(N, (4, 2, 1))
    nj = 2 if Op % 32 == 0 else 1   # output-column vectors per tile
    i0, i1 = sch.split(i, [None, mi])
    j0, j1, j2 = sch.split(j, [None, nj, 16])
    sch.reorder(i0, j0, kk, i1, j1, j2)
    cw = write_back(sch, blk, j0, (i0, j0), j2, kk, padded=Op != O)
    sch.unroll(j1)
    sch.unroll(i1)
    sch.vectorize(sch.get_loops(cw)[-1])
    return sch.mod["main"]
