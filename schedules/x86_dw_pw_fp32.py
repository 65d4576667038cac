"""x86 fp32: a stride-1 depthwise conv and the 1x1 conv that consumes it as one kernel (MobileNetV2's first block,
depthwise 3x3 32 @ 112 x 112 + ReLU6 -> 1x1 32 -> 16).

* ``dwpw_f32_nchw_x86`` (op ``conv2d_dw_pw``, requires avx512, priority 10): node inputs x f32 [N,C,H,W],
  w_dw [C,1,KH,KW], b_dw [C], w_pw [O,C,1,1], b_pw [O] (the lowering passes zeros for an absent bias); attrs: the
  1x1 conv's (its activation, or ``fused_add``: the float add consuming the 1x1, its residual the node's input 5,
  as conv2d_f32_nchw_1x1 takes it) and ``depthwise``, the depthwise conv's (pads, its activation). Params: x, w_dw,
  b_dw, w_pw packed [O/ot, C, ot] (`pack_channel_tiles`), b_pw, (residual) -> y [N,O,OH,OW].

Why: the depthwise output is as large as its input (MobileNetV2: 1.6 MB, past L2); standalone, the depthwise conv
writes it and the 1x1 reads it back from L3 (240 + 192 us in the model against 115 + 125 us alone, Zen 4, 1
thread; fused: 252 us in the model, 221 alone). Here it stays in cache: parallel over blocks of `rows` output
rows (its C x rows x OW floats: L1 / L2); per block, (1) "xs": each channel's KH - 1 +
rows input rows copied into a scratch row of whole vectors (a plain vector copy; the pad columns beside it and
pad rows zero), (2) the depthwise rows of every channel (taps unrolled, vectorised over the columns, bias +
activation) into "dwo" [C, rows * OW], (3) the 1x1 as the pixel-vector GEMM of conv2d_f32_nchw_1x1 (ot channels x
nv vectors register tile over the block's flat pixels), bias + activation at the write-back. The sums run in the
unfused kernels' order (taps, then channels), so the output is theirs bit for bit.

Applies when the depthwise conv is stride 1, dilation 1, one output channel per input channel, the 1x1 is
stride 1, unpadded, group 1, W and OW are at least one depthwise vector (16 columns; 8 on rows under 16), and a
block of rows (`ROWS`, dividing OH) makes whole 16-pixel vectors within MAX_BLOCK_PIXELS and C x its pixels within
MAX_BLOCK_FLOATS. compiler/relax/fuse_conv_pairs.py forms these nodes (only when this kernel accepts them).
"""
from __future__ import annotations

from tvm.script import tirx as T

from .cpu_schedules import first_divisor
from .fp32_packed_conv import conv_output_value
from .node_attrs import conv_attrs, conv_out_hw
from .registry import register_kernel
from .te_utils import bias_clip
from .x86_fp32 import channel_tile, is_plain_1x1, pack_channel_tiles

LANES = 16
MAX_BLOCK_PIXELS = 1024     # output pixels per block (the 1x1's pixel tiles)
MAX_BLOCK_FLOATS = 1 << 17   # a block's depthwise output, C x its pixels (512 KiB: within L2)
# Output rows per block, the most first: an input row is loaded once for KH output rows. 8 rows of 112 columns
# measured 0.96x 4 rows (MobileNetV2's 32 @ 112, Zen 4, 1 thread), but 8 of 56 (7 blocks) 1.1x 4 (14 blocks) on
# one thread and 1.15x on two: blocks of fewer rows are taken while 8 rows would leave fewer than MIN_BLOCKS.
ROWS = (8, 4, 2, 1)
MIN_BLOCKS = 8


def fused_geometry(attrs, in_types):
    """(rows, nv, ot) of a node the kernel applies to, else None: blocks of `rows` output rows, the 1x1 register
    tile of nv pixel vectors x ot output channels over a block's rows * OW pixels."""
    dw = attrs.get("depthwise")
    if dw is None or len(in_types) != 5 + bool(attrs.get("fused_add")) \
            or any(t is None or t[1] != "float32" for t in in_types):
        return None
    (N, C, H, W), (Cw, ipg, KH, KW) = in_types[0][0], in_types[1][0]
    O, Cp = in_types[3][0][:2]
    s, p, d, g = conv_attrs(dw)
    if s != [1, 1] or d != [1, 1] or not g == C == Cw == Cp or ipg != 1 or not is_plain_1x1(attrs, [None, in_types[3]]):
        return None
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    fits = [r for r in ROWS if OH % r == 0 and r * OW % LANES == 0 and r * OW <= MAX_BLOCK_PIXELS
            and C * r * OW <= MAX_BLOCK_FLOATS]
    if not fits or min(OW, W) < (LANES if OW >= LANES else LANES // 2):
        return None
    rows = next((r for r in fits if N * OH // r >= MIN_BLOCKS), fits[-1])   # else the most blocks
    nv = first_divisor(rows * OW // LANES, (4, 8, 7, 6, 5, 3, 2, 1))
    return rows, nv, channel_tile(O, nv)


def fusable(attrs, in_types, out_type):
    """`applies`: see the module docstring."""
    return fused_geometry(attrs, in_types) is not None


def _prepare(attrs, in_types, arrays):
    ot = fused_geometry(attrs, in_types)[2]
    return [0, 1, 2, pack_channel_tiles(arrays[3], ot), 4] + ([5] if attrs.get("fused_add") else [])


@register_kernel("conv2d_dw_pw", "float32", requires={"avx512"}, priority=10, applies=fusable,
                 prepare_constants=_prepare, needs_constant=(1, 3), name="dwpw_f32_nchw_x86")
def dwpw_f32_x86(attrs, in_types, out_type, target):
    """Per block of output rows: staged input rows, the depthwise rows of every channel in L1, the 1x1 GEMM."""
    rows, nv, ot = fused_geometry(attrs, in_types)
    dw = attrs["depthwise"]
    _, p, _, _ = conv_attrs(dw)
    pt, pl, pr = p[0], p[1], p[3]
    (N, C, H, W), _ = in_types[0]
    KH, KW = in_types[1][0][2:]
    O = in_types[3][0][0]
    OH, OW = conv_out_hw(H, W, KH, KW, [1, 1], p, [1, 1])
    G, HB, B = O // ot, OH // rows, rows * OW
    # the depthwise rows' vectors: 16 (8 on rows under 16) columns, the last one ending at the row's end
    # (overlapping the one before it where VL does not divide OW: both store the same values)
    VL = LANES if OW >= LANES else LANES // 2
    NVEC = -(-OW // VL)
    SR = rows + KH - 1                               # staged input rows per block
    X0 = max(1, -(-pl // LANES)) * LANES             # the image's first column in a staged row: vector aligned
    WS = -(-(X0 + W + pr + 1) // LANES) * LANES      # staged row length, whole vectors, a pad column at least
    i64 = T.int64

    fused = bool(attrs.get("fused_add"))

    @T.macro
    def body(x, w_dw, b_dw, wp, b_pw, r, y):
        yf = T.decl_buffer((i64(N * O * OH * OW),), "float32", data=y.data)
        rf = T.decl_buffer((i64(N * O * OH * OW),), "float32", data=r.data)
        for nb in T.parallel(N * HB):
            xs = T.alloc_buffer((SR, WS), "float32")
            dwo = T.alloc_buffer((C, B), "float32")
            for r_ in range(SR):   # the pad columns beside the image: zero for every channel (whole vectors)
                for v in T.vectorized(X0):
                    xs[r_, v] = T.float32(0)
                for v in T.vectorized(WS - X0 - W):
                    xs[r_, X0 + W + v] = T.float32(0)
            for c in range(C):
                for r_ in range(SR):   # this channel's rows: pad rows zeros, image rows a vector copy
                    if 0 <= nb % HB * rows + r_ - pt and nb % HB * rows + r_ - pt < H:
                        for v0 in range(-(-W // VL)):   # the last vector ends at the row's end
                            for v in T.vectorized(VL):
                                xs[r_, X0 + T.min(v0 * VL, W - VL) + v] = x[nb // HB, c, nb % HB * rows + r_ - pt,
                                                                             T.min(v0 * VL, W - VL) + v]
                    else:
                        for v0 in range(-(-W // VL)):
                            for v in T.vectorized(VL):
                                xs[r_, X0 + T.min(v0 * VL, W - VL) + v] = T.float32(0)
                for v0 in range(NVEC):   # register tile: the block's rows x one vector of columns
                    acc = T.alloc_buffer((rows, VL), "float32", scope="local")
                    for r_ in T.unroll(rows):
                        for v in T.vectorized(VL):
                            acc[r_, v] = T.float32(0)
                    for rh in T.unroll(KH):   # an input row serves up to KH output rows: LLVM loads it once
                        for rw in T.unroll(KW):
                            for r_ in T.unroll(rows):
                                for v in T.vectorized(VL):
                                    acc[r_, v] = acc[r_, v] + xs[r_ + rh, X0 - pl + T.min(v0 * VL, OW - VL) + v + rw] \
                                        * w_dw[c, 0, rh, rw]
                    for r_ in T.unroll(rows):
                        for v in T.vectorized(VL):
                            dwo[c, r_ * OW + T.min(v0 * VL, OW - VL) + v] = bias_clip(acc[r_, v], b_dw, c, dw)
            for t in range(B // (nv * LANES)):   # the 1x1 per pixel tile: its C x nv vectors stay in L1
                for g in range(G):   # ot channels x nv vectors register tile
                    acc = T.alloc_buffer((ot, nv, LANES), "float32", scope="local")
                    for j in T.unroll(ot):
                        for vv in T.unroll(nv):
                            for lane in T.vectorized(LANES):
                                acc[j, vv, lane] = T.float32(0)
                    for c in range(C):
                        for j in T.unroll(ot):
                            for vv in T.unroll(nv):
                                for lane in T.vectorized(LANES):
                                    acc[j, vv, lane] = acc[j, vv, lane] + wp[g, c, j] * dwo[
                                        c, (t * nv + vv) * LANES + lane]
                    for j in T.unroll(ot):
                        for vv in T.unroll(nv):
                            for lane in T.vectorized(LANES):
                                yf[((nb // HB * O + g * ot + j) * OH + nb % HB * rows) * OW
                                   + (t * nv + vv) * LANES + lane] = conv_output_value(
                                    acc[j, vv, lane], b_pw, g * ot + j, attrs, rf if fused else None,
                                    (((nb // HB * O + g * ot + j) * OH + nb % HB * rows) * OW
                                     + (t * nv + vv) * LANES + lane,))

    x_t = (i64(N), i64(C), i64(H), i64(W))
    y_t = (i64(N), i64(O), i64(OH), i64(OW))
    if fused:
        @T.prim_func(s_tir=True)
        def func(x: T.Buffer(x_t, "float32"), w_dw: T.Buffer((i64(C), i64(1), i64(KH), i64(KW)), "float32"),
                 b_dw: T.Buffer((i64(C),), "float32"), wp: T.Buffer((i64(G), i64(C), i64(ot)), "float32"),
                 b_pw: T.Buffer((i64(O),), "float32"), r: T.Buffer(y_t, "float32"), y: T.Buffer(y_t, "float32")):
            T.func_attr({"tirx.noalias": True})
            body(x, w_dw, b_dw, wp, b_pw, r, y)
    else:
        @T.prim_func(s_tir=True)
        def func(x: T.Buffer(x_t, "float32"), w_dw: T.Buffer((i64(C), i64(1), i64(KH), i64(KW)), "float32"),
                 b_dw: T.Buffer((i64(C),), "float32"), wp: T.Buffer((i64(G), i64(C), i64(ot)), "float32"),
                 b_pw: T.Buffer((i64(O),), "float32"), y: T.Buffer(y_t, "float32")):
            T.func_attr({"tirx.noalias": True})
            body(x, w_dw, b_dw, wp, b_pw, y, y)
    return func
