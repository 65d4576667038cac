"""The CUDA-core implicit-GEMM conv shared by the dp4a int8 kernels (cuda_dp4a.py) and the fp32 kernels
(cuda_fp32.py): the tile rule, the conv geometry (a linear is a 1x1 conv of a 1x1 map), the weight packing
and the schedule.

Schedule (block "xs": the padded channels-last input, inlined into its shared-memory copy; block "acc":
the accumulator [N, OH, OW, Op]; block "out": the epilogue writing y):
* grid: blockIdx.x = output pixel tiles (n, row tile, column tile), blockIdx.y = output channel tiles;
  each thread owns `wi` consecutive output columns x `oi` consecutive output channels in registers;
  the staged tiles' rows (a column of x, an output channel of w: kc * lanes values) are padded to an odd
  number of 32-bit words, so that the up to 8 column (channel) threads of a warp, wi (oi) rows apart,
  read 32-bit words in different shared-memory banks;
* per (tap rh, rw, group of kc * lanes input channels) step, the block stages the activation window
  (padding and the NCHW -> channels-last transpose done on the way) and the weight tile in shared
  memory, then every thread runs its wi x oi x kc x lanes multiply-adds (the innermost `lanes` loop is
  what a dot-product intrinsic replaces: 4 for dp4a, 1 for fp32 FMA);
* the epilogue is computed from the registers; padded output channels are computed, never written out.
`gpu=False` leaves the block/thread loops serial (same order): the TIR then runs on a CPU (the tests).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cpu_schedules import first_divisor
from .dot_product import round_up
from .node_attrs import conv_attrs, conv_out_hw

MAX_THREADS = 256


@dataclass(frozen=True)
class GemmTiles:
    """Threads per block = nt * ht * wt * ot; each thread computes wi columns x oi channels."""
    nt: int      # images (linear: rows) per block, one per thread
    ht: int      # output rows per block, one per thread
    wt: int      # column threads
    wi: int      # columns per thread
    ot: int      # channel threads
    oi: int      # channels per thread
    kc: int      # groups of `lanes` input channels staged per step

    @property
    def channels(self):                   # output channels per block (Op is a multiple)
        return self.ot * self.oi

    @property
    def threads(self):
        return self.nt * self.ht * self.wt * self.ot


def channel_tile(O, oi=4):
    """Output channels per block: oi per thread, up to 16 channel threads (a power of 2 covering O / oi)."""
    return oi * min(16, 1 << max(0, (round_up(O, oi) // oi - 1).bit_length()))


def gemm_tiles(N, OH, OW, O, k_groups, wi_choices=(2, 1), kc_choices=(4, 2, 1)):
    """The tile rule: 4 channels per thread and up to 16 channel threads (fewer when O is small; O is
    padded to the block's channel tile); wi columns per thread (the first of `wi_choices` dividing OW),
    up to 8 column threads dividing the rest; then as many row threads (dividing OH) and, when the map is
    1x1 (linear, global pooled features), image threads (dividing N) as fit in 256 threads per block;
    kc groups of input channels per shared-memory step (the first of `kc_choices` dividing k_groups).
    Tiles divide the map exactly, so only the padded output channels need a guard."""
    oi = 4
    ot = channel_tile(O, oi) // oi
    wi = first_divisor(OW, wi_choices)
    wt = first_divisor(OW // wi, (8, 7, 6, 5, 4, 3, 2, 1))
    fits = [c for c in (8, 7, 4, 2, 1) if c * wt * ot <= MAX_THREADS]
    ht = first_divisor(OH, fits)
    fits = [c for c in (8, 4, 2, 1) if c * ht * wt * ot <= MAX_THREADS]
    nt = first_divisor(N, fits) if OH * OW == 1 else 1
    kc = first_divisor(k_groups, kc_choices)
    return GemmTiles(nt, ht, wt, wi, ot, oi, kc)


def geometry(attrs, in_types, out_type):
    """(N, C, H, W, O, KH, KW, OH, OW, strides, pads, dilations) of a conv, or of a linear as a 1x1 conv
    of a 1x1 map."""
    if len(in_types[0][0]) == 2:
        (N, C), (O, _) = in_types[0][0], in_types[1][0]
        return N, C, 1, 1, O, 1, 1, 1, 1, [1, 1], [0, 0, 0, 0], [1, 1]
    s, p, d, _ = conv_attrs(attrs)
    N, C, H, W = in_types[0][0]
    O, _, KH, KW = in_types[1][0]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    return N, C, H, W, O, KH, KW, OH, OW, s, p, d


def pack_gpu_weight(w, channels, c_multiple=4):
    """[O, C, KH, KW] (or [O, K]) -> [Op, KH, KW, Cp] of the same dtype: input channels innermost, C padded
    to a multiple of `c_multiple` and O to a multiple of `channels` (the block's channel tile) with zeros."""
    if w.ndim == 2:
        w = w[:, :, None, None]
    O, C, KH, KW = w.shape
    packed = np.zeros((round_up(O, channels), KH, KW, round_up(C, c_multiple)), w.dtype)
    packed[:O, :, :, :C] = w.transpose(0, 2, 3, 1)
    return packed


def schedule_implicit_gemm(sch, tl: GemmTiles, lanes, dtype_bytes, gpu=True):
    """Schedule blocks "xs", "acc", "out" of `sch` as the module docstring says. Returns the loops
    (c1, c2, w2, o2): the kc groups and the `lanes` input channels of one staged step, the thread's
    columns and channels."""
    blk = sch.get_sblock("acc")
    ln, lh, lw, lo, lrh, lrw, lrc = sch.get_loops(blk)
    n0, n1 = sch.split(ln, [None, tl.nt])
    h0, h1 = sch.split(lh, [None, tl.ht])
    w0, w1, w2 = sch.split(lw, [None, tl.wt, tl.wi])
    o0, o1, o2 = sch.split(lo, [None, tl.ot, tl.oi])
    c0, c1, c2 = sch.split(lrc, [None, tl.kc, lanes])
    sch.reorder(n0, h0, w0, o0, o1, n1, h1, w1, lrh, lrw, c0, c1, w2, o2, c2)
    bind = sch.bind if gpu else (lambda loop, thread: None)
    bind(sch.fuse(n0, h0, w0), "blockIdx.x")
    bind(o0, "blockIdx.y")
    tx = sch.fuse(o1, n1, h1, w1)        # column threads fastest: coalesced NCHW output rows
    bind(tx, "threadIdx.x")
    sch.set_scope(blk, 0, "local")       # the accumulators live in registers (compacted per thread)
    sch.reverse_compute_at(sch.get_sblock("out"), tx)
    # words per staged row (one column of x, one output channel of w): kc * lanes elements of `dtype_bytes`
    row_words = max(1, tl.kc * lanes * dtype_bytes // 4)
    for idx in (0, 1):                   # activation window, weight tile -> shared, one step at a time
        sh = sch.cache_read(blk, idx, "shared")
        sch.compute_at(sh, c0)
        if row_words % 2 == 0:           # pad rows to an odd number of words (see the module docstring)
            sch.storage_align(sh, 0, axis=2, factor=tl.kc * lanes + 4 // dtype_bytes, offset=0)
        loops = sch.get_loops(sh)[6:]    # under blockIdx.x, blockIdx.y, threadIdx.x, rh, rw, c0
        if not loops:                    # one value per step (serial twin of a 1-thread-wide tile)
            continue
        if idx == 0:                     # channels outermost: threads read consecutive NCHW columns
            sch.reorder(loops[-1], *loops[:-1])
            loops = sch.get_loops(sh)[6:]
        f = sch.fuse(*loops)
        _, ft = sch.split(f, [None, tl.threads])
        bind(ft, "threadIdx.x")
    sch.compute_inline(sch.get_sblock("xs"))   # the staging happens on the way into shared memory
    sch.decompose_reduction(blk, lrh)
    return c1, c2, w2, o2
