"""CUDA fp32 conv2d (group 1) as a classic SGEMM-style implicit GEMM on the CUDA cores (FFMA, no TF32).

GEMM view: rows m = (n, oh, ow) flattened over the whole batch (M = N*OH*OW, so 7x7 maps at batch 16 still
give full tiles), columns = output channels O, reduction k = (c, rh, rw) (K = C*KH*KW, the weight's natural
order). Unlike cuda_implicit_gemm.py (one tap and kc channels per step, tiles dividing the map), the block
tile is BM rows x BN channels, padded: M -> Mp, O -> Op, K -> Kp (multiples of the tiles; padded rows
and reduction steps read zeros, padded outputs are never written).
* per BK-deep k step the block stages the im2col tile A[BK, BM] (gathered from NCHW x with 32-bit index
  math: consecutive threads read consecutive output columns, zero padding on the way) and the weight tile
  W[BK, BN] (float4 loads of the packed [Kp, Op] weight) in shared memory; with `prefetch` step k+1's
  global loads go to registers before step k is computed and to shared memory after it (TVM's software
  pipeline), so the load latency overlaps the FFMA;
* each thread owns TM consecutive rows x TN consecutive channels in registers; per k it reads them as
  float4 from shared memory and runs TM*TN FFMA (outer product, unrolled over the BK steps);
* the epilogue (bias, fused clip_min / clip_max) runs on the registers and writes y NCHW (16 row threads
  of a warp: 64 consecutive floats of an output row).
Tile rule (gemm_tiles_f32) and where the kernel applies (worth_it): from H200 measurements, see there.

PrimFunc params: x f32 [N,C,H,W], w_packed f32 [Kp, Op], (b f32 [O]) -> y f32 [N,O,OH,OW].
`build(..., gpu=False)` leaves the block/thread loops serial: the TIR runs on a CPU (the tests).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import s_tir, te, tirx

from .compute import bias_placeholder
from .cuda_implicit_gemm import geometry
from .dot_product import round_up
from .fp32_packed_conv import packed_weight_prepare, ungrouped
from .registry import register_kernel
from .te_utils import bias_clip, create

@dataclass(frozen=True)
class SgemmTiles:
    bm: int        # rows (output pixels of the batch) per block
    bn: int        # output channels per block
    tm: int        # rows per thread (two groups of tm / 2, bm / 2 apart)
    tn: int        # channels per thread (two groups of tn / 2, bn / 2 apart)
    bk: int = 8    # reduction depth staged per shared-memory step
    prefetch: bool = True   # step k+1's tiles go through registers while step k is computed

    @property
    def threads(self):
        return (self.bm // self.tm) * (self.bn // self.tn)


# (tile, note) the tiles bench/cuda_fp32_tiles.py times; the rule uses the one that measured best
CANDIDATES = ((SgemmTiles(128, 128, 8, 8), "8x8 per thread, 128 registers: 2 blocks / SM"),
              (SgemmTiles(128, 64, 8, 4), ""), (SgemmTiles(64, 64, 4, 4), "the rule's tile"),
              (SgemmTiles(64, 32, 4, 4), "128 threads"))
MIN_BLOCKS = 16         # fewer 64x64 blocks than this: the K loop of too few blocks (no split-K yet)
MIN_BLOCKS_STRIDE1 = 64  # stride-1 3x3 convs: the per-tap kernel's window reuse wins below this


def gemm_tiles_f32(M, O):
    """The block tile: 64x64, 4x4 per thread, register prefetch. Measured on an H200 (ResNet-18 convs,
    batch 1 and 16, bench/cuda_fp32_tiles.py) it was the fastest tile on 17 of 20 layers and within 15 %
    on the rest; 128x128 (8x8 per thread) was 1.3-3x slower everywhere (only 16 warps per SM to hide the
    im2col gather's latency). M and O are the GEMM's shape, unused while one tile wins everywhere."""
    return CANDIDATES[2][0]


def worth_it(attrs, in_types, out_type):
    """`applies`: group 1, and where the SGEMM beat the per-tap kernel of cuda_fp32.py on the H200: strided
    or 1x1 convs with at least MIN_BLOCKS blocks, stride-1 convs with C >= 128 and MIN_BLOCKS_STRIDE1
    blocks (the per-tap kernel stages each input window once for all taps: on 56x56 maps with C = 64, or
    on few blocks, that reuse wins)."""
    if not ungrouped(attrs, in_types, out_type):
        return False
    N, C, H, W, O, KH, KW, OH, OW, s, *_ = geometry(attrs, in_types, out_type)
    t = gemm_tiles_f32(N * OH * OW, O)
    blocks = -(-N * OH * OW // t.bm) * -(-O // t.bn)
    if max(s) > 1 or KH * KW == 1:
        return blocks >= MIN_BLOCKS
    return C >= 128 and blocks >= MIN_BLOCKS_STRIDE1


def padded_sizes(K, O):
    """(Kp, Op): K a multiple of 8 (any candidate's bk), O of 128 (any candidate's bn); the weight does not
    depend on the tile, the schedule only needs Op % bn == 0."""
    return round_up(K, 8), round_up(O, 128)


def pack_weight(w):
    """f32 [O, C, KH, KW] -> [Kp, Op]: k = (c, rh, rw), zero rows / columns up to Kp, Op."""
    O = w.shape[0]
    flat = np.asarray(w, np.float32).reshape(O, -1)
    Kp, Op = padded_sizes(flat.shape[1], O)
    packed = np.zeros((Kp, Op), np.float32)
    packed[:flat.shape[1], :O] = flat.T
    return packed


prepare = packed_weight_prepare("the CUDA fp32 SGEMM conv", pack_weight)    # x, w_packed, (b)


def _compute(attrs, in_types, tl):
    """(args, y): TE blocks "im2col" [Kp, Mp], "acc" [Mp, Op], "out" [N, O, OH, OW]."""
    N, C, H, W, O, KH, KW, OH, OW, s, p, d = geometry(attrs, in_types, None)
    M, K, P = N * OH * OW, C * KH * KW, OH * OW
    Kp, Op = padded_sizes(K, O)
    Mp = round_up(M, tl.bm)
    x = te.placeholder((N, C, H, W), "float32", "x")
    wp = te.placeholder((Kp, Op), "float32", "w_packed")
    args = [x, wp]
    b = bias_placeholder(in_types, args, "float32", "b")

    def gather(k, m):                    # im2col: zero outside the image and in the padded rows / steps
        k, m = k.astype("int32"), m.astype("int32")    # 32-bit index math: int64 div / mod is slow on GPUs
        n, oh, ow = m // P, m % P // OW, m % OW
        c, rh, rw = k // (KH * KW), k % (KH * KW) // KW, k % KW
        ih = oh * s[0] + rh * d[0] - p[0]
        iw = ow * s[1] + rw * d[1] - p[1]
        inside = tirx.all(k < K, m < M, ih >= 0, ih < H, iw >= 0, iw < W)
        clamp = lambda v, hi: te.max(te.min(v, hi - 1), 0)   # the dropped read stays in bounds
        cell = [v.astype("int64") for v in (te.min(n, N - 1), te.min(c, C - 1), clamp(ih, H), clamp(iw, W))]
        return tirx.if_then_else(inside, x[tuple(cell)],
                                 tirx.const(0.0, "float32"))

    a = te.compute((Kp, Mp), gather, name="im2col")
    rk = te.reduce_axis((0, Kp), "rk")
    acc = te.compute((Mp, Op), lambda m, o: te.sum(a[rk, m] * wp[rk, o], axis=rk), name="acc")
    y = te.compute((N, O, OH, OW), lambda n, o, h, w: bias_clip(acc[n * P + h * OW + w, o], b, o, attrs),
                   name="out")
    return args, y, (N, OH, OW)


def build(attrs, in_types, out_type, gpu=True, tiles=None):
    """The scheduled fp32 SGEMM conv PrimFunc; gpu=False leaves the block/thread loops serial."""
    N, C, H, W, O, KH, KW, OH, OW, *_ = geometry(attrs, in_types, out_type)
    tl = tiles or gemm_tiles_f32(N * OH * OW, O)
    args, y, _ = _compute(attrs, in_types, tl)
    sch = s_tir.Schedule(create(args + [y]))
    bind = sch.bind if gpu else (lambda loop, thread: None)
    # the epilogue iterates (m, o) like the accumulator, so that it can follow each thread's tile
    out = sch.get_sblock("out")
    P = OH * OW
    sch.transform_block_layout(out, lambda n, o, h, w: (n * P + h * OW + w, o))

    blk = sch.get_sblock("acc")
    lm, lo, lk = sch.get_loops(blk)
    mb, mt, mi = sch.split(lm, [None, tl.bm // tl.tm, tl.tm])
    ob, ot, oi = sch.split(lo, [None, tl.bn // tl.tn, tl.tn])
    k0, k1 = sch.split(lk, [None, tl.bk])
    sch.reorder(mb, ob, ot, mt, k0, k1, mi, oi)
    bind(mb, "blockIdx.x")
    bind(ob, "blockIdx.y")
    tx = sch.fuse(ot, mt)                # row threads fastest: a warp writes consecutive output columns
    bind(tx, "threadIdx.x")
    sch.set_scope(blk, 0, "local")       # the accumulators live in registers
    sch.reverse_compute_at(out, tx)

    for idx, vec in ((0, 1), (1, 4)):    # im2col tile (gathered), weight tile (float4) -> registers -> shared
        sh = sch.cache_read(blk, idx, "shared")
        stages = (sh, sch.cache_read(sh, 0, "local")) if tl.prefetch else (sh,)
        for stage in stages:             # the consumer first: compute_at needs it under k0
            sch.compute_at(stage, k0)
            f = sch.fuse(*sch.get_loops(stage)[4:])    # under blockIdx.x, blockIdx.y, threadIdx.x, k0
            parts = sch.split(f, [None, tl.threads, vec])
            bind(parts[1], "threadIdx.x")
            if gpu:
                sch.vectorize(parts[2])
    for idx in (0, 1):                   # per k: the thread's rows / channels -> registers (float4 reads)
        loc = sch.cache_read(blk, idx, "local")
        sch.compute_at(loc, k1)
        if gpu:
            sch.vectorize(sch.get_loops(loc)[-1])
    sch.compute_inline(sch.get_sblock("im2col"))
    sch.decompose_reduction(blk, k0)
    for loop in (k1, mi, oi):           # a straight run of FFMA per staged step
        sch.unroll(loop)
    if gpu and tl.prefetch:              # load k+1 into registers, compute k, store k+1 to shared
        sch.annotate(k0, "software_pipeline_stage", [0, 0, 0, 0, 1])
        sch.annotate(k0, "software_pipeline_order", [0, 3, 1, 4, 2])
    elif gpu:                            # stage k+1's loads while computing k: two shared buffers
        sch.annotate(k0, "software_pipeline_stage", [0, 0, 1])
        sch.annotate(k0, "software_pipeline_order", [0, 1, 2])
    return sch.mod["main"]


@register_kernel("conv2d", "float32", applies=worth_it, name="conv2d_f32_nchw_cuda_sgemm",
                 requires={"cuda"}, priority=56, prepare_constants=prepare, needs_constant=(1,))
def conv2d_f32_cuda_sgemm(attrs, in_types, out_type, target):
    """Group-1 fp32 conv: SGEMM-style implicit GEMM over the whole batch, 64x64 blocks with 4x4 register tiles
    per thread, fused bias + activation."""
    return build(attrs, in_types, out_type)
