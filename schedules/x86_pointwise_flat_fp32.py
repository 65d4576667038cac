"""x86 fp32: 1x1 conv on maps whose rows do not tile into 16-pixel vectors (MobileNetV2's 14 x 14), as the NCHW GEMM
y[o, p] = sum_c w[o, c] x[c, p] over the flat pixel axis p < P = H * W.

* ``conv2d_f32_nchw_1x1_flat`` (requires avx512, priority 11): x f32 [N,C,H,W], w_packed f32 [O/ot, C, ot]
  (`x86_fp32.pack_channel_tiles`), b f32 [O] (zeros when the node has none), (residual shaped as y, with attrs
  ``fused_add``: fp32_packed_conv.conv_output_value) -> y [N,O,H,W]. Applies to 1x1 stride-1 unpadded group-1
  convs that conv2d_f32_nchw_1x1 does not take (no row tile) with fewer input than output channels (expand
  layers), P > 16 and at most `MAX_WASTE` of the computed pixels spare. Measured (Zen4, 1 thread, 14 x 14 maps)
  against conv2d_f32_nchw_tiled: 64 -> 384 102 vs 126 us, 96 -> 576 225 vs 246 us; projections (384 -> 64:
  110 vs 89 us, 576 -> 96: 215 vs 195) and 7 x 7 maps (49 pixels in 64 lanes: 160 -> 960 179 vs 156 us) slower.

Vectorised over 16 pixels like conv2d_f32_nchw_1x1 (no transposed write-back: conv2d_f32_nchw_tiled vectorises
over output channels and scatters every vector into 16 channel planes), a register tile of ot channels x nv
pixel vectors. P is no multiple of 16, so the last vector of a plane starts at P - 16 and overlaps the one
before it (both compute the same values for the shared pixels: the store is idempotent), and the tiles of nv
vectors past the last one repeat it: no masked or scalar tail, no read or write outside the plane. Written in
TVMScript: TE cannot express the overlapping stores.
"""
from __future__ import annotations

import numpy as np
from tvm.script import tirx as T

from .fp32_packed_conv import conv_output_value, packed_weight_prepare
from .node_attrs import has_bias
from .registry import register_kernel
from .x86_fp32 import channel_tile, is_plain_1x1, pack_channel_tiles, row_tile

NV_CHOICES = (8, 7, 6, 5, 4)   # pixel vectors per register tile (13 on 14 x 14 measured 1.4-1.6x slower than 7)
MAX_WASTE = 0.15   # share of the computed pixels that repeat others (196 pixels: 2 tiles x 7 x 16, 12.5%)


def flat_tile(attrs, in_types):
    """(nv, ot, tiles) of a node the kernel applies to, else None: tiles of nv pixel vectors (the last ones
    clamped to the plane's end) x ot output channels."""
    (N, C, H, W), _ = in_types[0]
    O = in_types[1][0][0]
    P = H * W
    if not is_plain_1x1(attrs, in_types) or P <= 16 or P % 16 == 0 or row_tile(H, W):
        return None
    if C >= O:   # projections: every channel group streams all of x (C x P) through L1 again; measured slower
        return None
    vectors = -(-P // 16)
    best = None
    for nv in NV_CHOICES:   # fewest spare vectors, then the widest tile (most FMAs per loaded x vector)
        tiles = -(-vectors // nv)
        spare = tiles * nv * 16 - P
        if best is None or spare < best[0]:
            best = (spare, nv, tiles)
    spare, nv, tiles = best
    ot = channel_tile(O, nv)
    if spare > MAX_WASTE * tiles * nv * 16 or ot == 1:
        return None
    return nv, ot, tiles


def pack_flat(w, attrs, in_types):
    return pack_channel_tiles(w, flat_tile(attrs, in_types)[1])


_packed = packed_weight_prepare("conv2d_f32_nchw_1x1_flat", pack_flat, per_node=True, fuses_add=True)


def _prepare(attrs, in_types, arrays):
    """x, w_packed, b (zeros without one: one kernel signature less), (residual)."""
    plan = _packed(attrs, in_types, arrays)
    if not has_bias(in_types):
        plan.insert(2, np.zeros(in_types[1][0][0], np.float32))
    return plan


@register_kernel("conv2d", "float32", requires={"avx512"}, priority=11,
                 applies=lambda a, i, o: flat_tile(a, i) is not None, prepare_constants=_prepare,
                 needs_constant=(1,), name="conv2d_f32_nchw_1x1_flat")
def conv2d_f32_1x1_flat(attrs, in_types, out_type, target):
    """1x1 conv over the flat pixel axis: ot channels x nv overlapping-at-the-end 16-pixel vectors per register
    tile, bias (+ residual) + activation at write-back."""
    nv, ot, tiles = flat_tile(attrs, in_types)
    (N, C, H, W), _ = in_types[0]
    O = in_types[1][0][0]
    P, G = H * W, O // ot
    fused = bool(attrs.get("fused_add"))
    i64 = T.int64   # buffer shapes in int64, as every kernel's (Relax passes int64 shapes)

    def pixel(t, vv, lane):   # flat pixel of lane `lane` of vector vv of tile t; the last vectors end at P
        return T.min((t * nv + vv) * 16, P - 16) + lane

    @T.macro
    def body(x, wp, b, r, y):
        xf = T.decl_buffer((i64(N * C * P),), "float32", data=x.data)
        yf = T.decl_buffer((i64(N * O * P),), "float32", data=y.data)
        rf = T.decl_buffer((i64(N * O * P),), "float32", data=r.data)
        for ng in T.parallel(N * G):
            for t in range(tiles):
                acc = T.alloc_buffer((ot, nv, 16), "float32", scope="local")
                for j in T.unroll(ot):
                    for vv in T.unroll(nv):
                        for lane in T.vectorized(16):
                            acc[j, vv, lane] = T.float32(0)
                for c in range(C):
                    for j in T.unroll(ot):
                        for vv in T.unroll(nv):
                            for lane in T.vectorized(16):
                                acc[j, vv, lane] = acc[j, vv, lane] + wp[ng % G, c, j] * xf[
                                    ((ng // G) * C + c) * P + pixel(t, vv, lane)]
                for j in T.unroll(ot):
                    for vv in T.unroll(nv):
                        for lane in T.vectorized(16):
                            yf[((ng // G) * O + ng % G * ot + j) * P + pixel(t, vv, lane)] = conv_output_value(
                                acc[j, vv, lane], b, ng % G * ot + j, attrs, rf if fused else None,
                                (((ng // G) * O + ng % G * ot + j) * P + pixel(t, vv, lane),))

    if fused:
        @T.prim_func(s_tir=True)
        def func(x: T.Buffer((i64(N), i64(C), i64(H), i64(W)), "float32"),
                 wp: T.Buffer((i64(G), i64(C), i64(ot)), "float32"), b: T.Buffer((i64(O),), "float32"),
                 r: T.Buffer((i64(N), i64(O), i64(H), i64(W)), "float32"),
                 y: T.Buffer((i64(N), i64(O), i64(H), i64(W)), "float32")):
            T.func_attr({"tirx.noalias": True})
            body(x, wp, b, r, y)
    else:
        @T.prim_func(s_tir=True)
        def func(x: T.Buffer((i64(N), i64(C), i64(H), i64(W)), "float32"),
                 wp: T.Buffer((i64(G), i64(C), i64(ot)), "float32"), b: T.Buffer((i64(O),), "float32"),
                 y: T.Buffer((i64(N), i64(O), i64(H), i64(W)), "float32")):
            T.func_attr({"tirx.noalias": True})
            body(x, wp, b, y, y)
    return func
