"""CUDA int8 tensor-core conv, tiled (WMMA 16x16x16 s8 x s8 -> s32; SASS ``IMMA``; target feature ``imma``):
qconv2d (NCHW, group 1) and qlinear for batches that are a multiple of 16. The successor of cuda_imma.py
(which stays registered below it as the A/B baseline, bench/gpu_check.py precision "int8-imma-v1").

Why a second kernel: cuda_imma.py runs one block per (16 images, one output pixel) and one 16x16 accumulator
per warp, K stepped 16 at a time: every fragment loaded feeds one MMA and every shared-memory step one MMA
per warp, so it is bound by loads and barriers (~1 % of the int8 tensor peak on an H200). Here:
* block tile M x N = (16 images x PT output pixels of one row) x (16 * wn * fn output channels); 4 warps
  (wm x wn = 2 x 2), each holding fm x fn accumulator fragments (up to 4 x 2): one A fragment feeds fn MMAs,
  one B fragment fm MMAs;
* per shared-memory step one tap and kc * 16 input channels (kc up to 4: K chunk 64);
* shared layouts [kc, rows, 16]: every 16x16 fragment is 256 contiguous bytes (ldm 16, 256-bit aligned;
  its load touches every bank once: no conflicts, no padding);
* the activation gather (NCHW int8 x + offset, padding and channel padding on the way, as cuda_imma.py):
  consecutive threads take consecutive output pixels of a row (consecutive input columns at stride 1) and
  each thread 4 consecutive channels, stored as one 32-bit word; the weight tile [Op,KH,KW,Cp] -> shared
  with 16-byte (or the widest dividing) vector loads;
* output columns padded to a multiple of PT (the padded pixels read a clamped valid column, computed,
  never written); O padded to the block's channel tile;
* epilogue as cuda_imma.py: fragments -> shared -> RequantEpilogue (+ bias_eff) by the warp's lanes, int8 out.
The tile rule (imma_tiles) shrinks fm, then fn, while the grid has fewer blocks than a big GPU has SMs.
Measured on an H200 (bench/gpu_check.py, ResNet-18 int8 batch 16, median): 1.55 ms vs 4.91 ms with
cuda_imma.py, bit-exact; costliest left: the 7x7 512-channel layers (fm 1: 2 pixels per block, no double
buffering: latency-bound) and the 3-channel first conv (C padded to 16 per tap: 5 of 16 K lanes useful).

`build(..., gpu=False)`: the same schedule with serial thread loops, local scopes and no tensorize (the TIR
the intrinsics replace): the tests run it on a CPU bit-exact against NumPy.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import cuda_wmma_intrinsics as wmma
from .cpu_schedules import first_divisor
from .cuda_dp4a import gpu_constants
from .cuda_imma import gemm_schedule, register_imma_kernels, warp_epilogue
from .cuda_implicit_gemm import geometry
from .dot_product import round_up

# one block per SM of a 132-SM H200: below it, smaller tiles (more blocks) win. Measured (H200, ResNet-18 int8
# b16, bench/gpu_check.py): 132 -> 1.55 ms, 256 -> 1.99 ms, 0 (largest tiles always) -> 1.73 ms
MIN_BLOCKS = 132


@dataclass(frozen=True)
class ImmaTiles:
    wm: int     # warps along M (pixels)
    fm: int     # fragments (pixels of 16 images) per warp along M
    wn: int     # warps along N (output channels)
    fn: int     # fragments (16 channels) per warp along N
    kc: int     # 16-channel slices per shared-memory step

    @property
    def pixels(self):          # output pixels (of one row) per block
        return self.wm * self.fm

    @property
    def channels(self):        # output channels per block (Op is a multiple)
        return 16 * self.wn * self.fn

    @property
    def warps(self):
        return self.wm * self.wn


def imma_tiles(N, OH, OW, O, Cp, min_blocks=MIN_BLOCKS):
    """2 x 2 warps of 4 x 2 fragments; fewer channel fragments / warps when O is small, fewer pixel
    fragments / warps when OW is; then fm, fn halved while the grid has < min_blocks blocks."""
    wm, fm, wn, fn = 2, 4, 2, 2
    while 16 * wn * fn > round_up(O, 16) and fn * wn > 1:
        fn, wn = (fn // 2, wn) if fn > 1 else (fn, wn // 2)
    while wm * fm > OW and wm * fm > 1:
        fm, wm = (fm // 2, wm) if fm > 1 else (fm, wm // 2)

    def blocks():
        return N // 16 * OH * -(-OW // (wm * fm)) * -(-O // (16 * wn * fn))
    while blocks() < min_blocks and (fm > 1 or fn > 1):
        fm, fn = (fm // 2, fn) if fm > 1 else (fm, fn // 2)
    return ImmaTiles(wm, fm, wn, fn, first_divisor(Cp // 16, (4, 2, 1)))


def tiles_of(attrs, in_types, out_type, min_blocks=MIN_BLOCKS):
    N, C, _, _, O, _, _, OH, OW, *_ = geometry(attrs, in_types, out_type)
    return imma_tiles(N, OH, OW, O, round_up(C, 16), min_blocks)


def prepare(attrs, in_types, arrays, min_blocks=MIN_BLOCKS):
    return gpu_constants(attrs, in_types, arrays, tiles_of(attrs, in_types, None, min_blocks).channels, 16,
                         "the tiled IMMA kernel")


def _vector_width(total, threads):
    """Bytes per thread per copy instruction: the widest of 16, 8, 4, 2, 1 that splits the copy evenly."""
    return first_divisor(total // threads, (16, 8, 4, 2, 1)) if total % threads == 0 else 1


def build(attrs, in_types, out_type, gpu=True, min_blocks=MIN_BLOCKS):
    """The scheduled PrimFunc; min_blocks=0 keeps the largest tiles (the tests' small shapes)."""
    N, C, H, W, O, KH, KW, OH, OW, s, p, d = geometry(attrs, in_types, out_type)
    Cp = round_up(C, 16)
    tl = imma_tiles(N, OH, OW, O, Cp, min_blocks)
    Op, OWp = round_up(O, tl.channels), round_up(OW, tl.pixels)
    sch, frag, bind, blk, (n0, nf, lh, lw, lo, lrh, lrw, lrc) = gemm_schedule(attrs, in_types, out_type, Cp, Op,
                                                                               OWp, gpu)
    w0, w1, w2 = sch.split(lw, [None, tl.wm, tl.fm])
    o0, o1, o2, of = sch.split(lo, [None, tl.wn, tl.fn, 16])
    c0, c1, cf = sch.split(lrc, [None, tl.kc, 16])
    sch.reorder(n0, lh, w0, o0, w1, o1, lrh, lrw, c0, c1, w2, o2, nf, of, cf)
    bind(sch.fuse(n0, lh, w0), "blockIdx.x")
    bind(o0, "blockIdx.y")
    warp = sch.fuse(w1, o1)
    bind(warp, "threadIdx.y")
    store = warp_epilogue(sch, blk, warp, frag, bind)
    # per step: the gathered activation tile and the weight tile in shared memory
    threads = 32 * tl.warps
    a_sh = sch.cache_read(blk, 0, "shared")
    sch.compute_at(a_sh, c0)
    *nw, c_ = sch.get_loops(a_sh)[6:]        # (images, pixels: unit loops dropped), channels
    cg, cv = sch.split(c_, [None, 4])
    sch.reorder(cg, *nw, cv)                  # pixels fastest across threads, 4 channels per thread
    _, ty, tx = sch.split(sch.fuse(*sch.get_loops(a_sh)[6:-1]), [None, tl.warps, 32])
    bind(ty, "threadIdx.y")
    bind(tx, "threadIdx.x")
    b_sh = sch.cache_read(blk, 1, "shared")
    sch.compute_at(b_sh, c0)
    vec = _vector_width(tl.channels * tl.kc * 16, threads)
    _, ty, tx, v = sch.split(sch.fuse(*sch.get_loops(b_sh)[6:]), [None, tl.warps, 32, vec])
    bind(ty, "threadIdx.y")
    bind(tx, "threadIdx.x")
    sch.compute_inline(sch.get_sblock("cols"))
    load_a = sch.cache_read(blk, 0, frag("wmma.matrix_a"))
    load_b = sch.cache_read(blk, 1, frag("wmma.matrix_b"))
    sch.compute_at(load_a, c1)
    sch.compute_at(load_b, c1)
    # [k / 16, row, k % 16] layouts: a 16x16 fragment is 256 contiguous bytes; row = (image group, pixel, image)
    row = lambda n, h, w: ((n // 16 * OH + h) * OWp + w) * 16 + n % 16                       # noqa: E731
    kk = lambda r, q, c: (r * KW + q) * (Cp // 16) + c // 16                                # noqa: E731
    rows_a = lambda n, h, w, r, q, c: (kk(r, q, c), row(n, h, w), c % 16)                   # noqa: E731
    rows_b = lambda o, r, q, c: (kk(r, q, c), o, c % 16)                                    # noqa: E731
    rows_c = lambda n, h, w, o: (row(n, h, w), o)                                           # noqa: E731
    for block, layout in ((a_sh, rows_a), (load_a, rows_a), (b_sh, rows_b), (load_b, rows_b),
                          (blk, rows_c), (store, rows_c)):
        sch.transform_layout(block, ("write", 0), layout)
    init = sch.decompose_reduction(blk, lrh)
    # fragment copies: one loop of 16 rows (unit loops fused away) over 16 columns
    for load, outer in ((load_a, 7), (load_b, 7), (store, 3)):
        *rows, cols = sch.get_loops(load)[outer:]     # A, store: (images, [pixels when fm > 1]), B: channels
        if len(rows) == 2:
            sch.reorder(rows[1], rows[0])             # pixel-major rows: 16 images, then the next pixel
        r0, r1 = sch.split(sch.fuse(*sch.get_loops(load)[outer:-1]), [None, 16])
        sch.reorder(r0, sch.split(cols, [None, 16])[0], r1)
    if gpu:
        sch.vectorize(cv)
        sch.vectorize(v)
        sch.tensorize(sch.get_loops(init)[-2], wmma.FILL)
        sch.tensorize(sch.get_loops(load_a)[-2], wmma.LOAD_A)
        sch.tensorize(sch.get_loops(load_b)[-2], wmma.LOAD_B)
        sch.tensorize(nf, wmma.SYNC)
        name = sch.get(store).name_hint
        sch.tensorize(sch.get_loops(store)[-2], wmma.STORE)
        store = sch.get_sblock(name + "_o")          # the tensorized block (tensorize drops annotations)
    # accumulator rows padded to 4 (mod 32) words: conflict-free epilogue reads, and strictly larger than
    # the int8 stage buffers, which TVM's storage rewrite would otherwise reuse for it, breaking the int32
    # access_ptr of the fragment store (tvm_access_ptr element type must match the source buffer)
    sch.storage_align(store, 0, axis=0, factor=32, offset=4)
    return sch.mod["main"]


register_imma_kernels("imma_tiled", build, prepare, 75, "16 images x PT pixels x up to 64 channels per block")
