"""CUDA int8 kernels on the tensor cores (WMMA 16x16x16 s8 x s8 -> s32; SASS ``IMMA``; target feature
``imma``, sm_75+):
qconv2d (NCHW, group 1) and qlinear, for batches that are a multiple of 16.

Shape rule (why batch): the 16 rows of an MMA fragment are 16 images at the same output pixel. Their
window reads form a rectangular region for every conv geometry (stride, dilation, 7x7 or 1x1 maps),
while 16 pixels of one image only do when OW is a multiple of 16, which ResNet's 56/28/14/7 maps are not.
So: group 1, int8 weights, N % 16 == 0, and a shape the tensor cores win on (`imma_applies`: convs with a
window and C >= 8, 1x1 convs and linears with O >= 320) -> this kernel (priority 70) or its tiled successor
(cuda_imma_tiled.py, 75); other shapes -> dp4a (cuda_dp4a.py);
depthwise / grouped -> the DLight kernel (cuda.py). The sidecar's kernel list names the pick per layer.

Implicit GEMM, M = images, N = output channels, K = (tap, input channel):
* weights packed at compile time to int8 [Op, KH, KW, Cp] (C padded to 16, O to the block's 16 * warps);
* activation: x + offset (uint8: -128) gathered per (tap, 16 channels) step straight from NCHW into
  shared memory as a [16 images, 16 channels] tile (padding, offset, transpose on the way), the weight
  tile [16 * warps, 16] beside it; bias_eff absorbs zero point and offset (as the dp4a kernel);
* grid: blockIdx.x = (16-image group, output pixel), blockIdx.y = channel tiles; one warp per 16 output
  channels (threadIdx.y), its int32 fragment stored to shared memory, then requantized (RequantEpilogue,
  + bias_eff) by the warp's 32 lanes and written out as int8.
PrimFunc params: x, w_packed int8[Op,KH,KW,Cp], bias_eff int32[O], mult, shift -> y (as the dp4a kernel).

`build(..., gpu=False)` is the same schedule (the same loops, layouts and index maps) with serial thread
loops, local scopes for the fragments and no tensorize: the TIR the tensor intrinsics replace, run on a CPU
by the tests. Tensorize itself checks that each replaced block equals the intrinsic's description.
"""
from __future__ import annotations

from tvm import s_tir, te

from . import cuda_wmma_intrinsics as wmma
from .cuda_dp4a import I8, gpu_constants, requantized_output, staged_input
from .cuda_implicit_gemm import geometry
from .dot_product import round_up
from .node_attrs import is_2d_input, is_dense_int8_conv
from .registry import register_kernel
from .te_utils import create

def warps_of(O):
    """Warps per block along the output channels (16 each): up to 4, fewer for small O."""
    return min(4, 1 << max(0, (round_up(O, 16) // 16 - 1).bit_length()))


# Which shapes the tensor cores take from dp4a, measured per layer on an H200 (bench/gpu_check.py run
# --kernels, int8 against int8-dp4a at batch 16, ResNet-18 / MobileNetV2 / ShuffleNetV2): convs with a window
# (3x3, 7x7) ran in 0.26-0.96x dp4a's time, 1x1 convs and linears with O >= 320 in 0.49-0.95x, while 1x1
# convs with O <= 256 were 1.05-2.9x slower than dp4a (too little work per block to pay for the fragment
# staging), and so were 3-channel stems (13 of every 16 fragment channels are padding).
IMMA_MIN_WINDOW_CHANNELS = 8
IMMA_MIN_POINTWISE_OUT = 320


def imma_applies(attrs, in_types, out_type):
    """Batch a multiple of 16 (the fragment's rows), int8 weights; convs of group 1 and linears, on the
    shapes where the tensor cores beat dp4a (above)."""
    if in_types[0][0][0] % 16 or in_types[1][1] != "int8":
        return False
    O = in_types[1][0][0]
    if is_2d_input(attrs, in_types, out_type):
        return O >= IMMA_MIN_POINTWISE_OUT
    if not (len(in_types[0][0]) == 4 and is_dense_int8_conv(attrs, in_types, out_type)):
        return False
    C, KH, KW = in_types[1][0][1:4]
    return O >= IMMA_MIN_POINTWISE_OUT if KH * KW == 1 else C >= IMMA_MIN_WINDOW_CHANNELS


def prepare(attrs, in_types, arrays):
    return gpu_constants(attrs, in_types, arrays, 16 * warps_of(in_types[1][0][0]), 16, "the IMMA kernel")


def implicit_gemm(attrs, in_types, out_type, Cp, Op, OWp):
    """The unscheduled PrimFunc of both IMMA kernels: block "cols" (the implicit im2col [N,OH,OWp,KH,KW,Cp],
    inlined into the shared-memory gather; output columns >= OW, the tiled kernel's padding, read column
    OW - 1), block "acc" (int32 [N,OH,OWp,Op]) and block "out" (requantized y)."""
    N, C, H, W, O, KH, KW, OH, OW, s, p, d = geometry(attrs, in_types, out_type)
    x, stage = staged_input(attrs, in_types, Cp)
    wp = te.placeholder((Op, KH, KW, Cp), "int8", "w_packed")
    beff = te.placeholder((O,), "int32", "bias_eff")
    col = (lambda w: w) if OWp == OW else (lambda w: te.min(w, OW - 1))
    cols = te.compute((N, OH, OWp, KH, KW, Cp), lambda n, h, w, r, q, c: stage(
        n, h * s[0] + r * d[0], col(w) * s[1] + q * d[1], c), name="cols")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    rc = te.reduce_axis((0, Cp), "rc")
    acc = te.compute((N, OH, OWp, Op), lambda n, h, w, o: te.sum(
        cols[n, h, w, rh, rw, rc].astype("int32") * wp[o, rh, rw, rc].astype("int32"), axis=[rh, rw, rc]),
        name="acc")
    epilogue, y = requantized_output(attrs, in_types, out_type, acc, beff)
    return create([x, wp, beff] + epilogue.params + [y])


def warp_epilogue(sch, blk, warp, frag, bind):
    """Accumulator fragments -> shared memory -> requantized (block "out") by the warp's 32 lanes, under
    the warp's loop. Returns the fragment store block (the STORE intrinsic's)."""
    store = sch.cache_write(blk, 0, frag("wmma.accumulator"))
    sch.reverse_compute_at(store, warp)
    sch.set_scope(store, 0, "shared")
    out = sch.get_sblock("out")
    sch.reverse_compute_at(out, warp)
    _, lane = sch.split(sch.fuse(*sch.get_loops(out)[3:]), [None, 32])
    bind(lane, "threadIdx.x")
    return store


def gemm_schedule(attrs, in_types, out_type, Cp, Op, OWp, gpu):
    """The schedule of implicit_gemm both IMMA kernels start from: (sch, frag, bind, blk, loops), the image
    loop split into 16-image fragment rows. Without `gpu` (the CPU twin of the tests) fragments are local
    buffers and thread bindings are skipped."""
    frag = (lambda scope: scope) if gpu else (lambda scope: "local")
    sch = s_tir.Schedule(implicit_gemm(attrs, in_types, out_type, Cp, Op, OWp))
    bind = sch.bind if gpu else (lambda loop, thread: None)
    blk = sch.get_sblock("acc")
    ln, lh, lw, lo, lrh, lrw, lrc = sch.get_loops(blk)
    n0, nf = sch.split(ln, [None, 16])
    return sch, frag, bind, blk, (n0, nf, lh, lw, lo, lrh, lrw, lrc)


def build(attrs, in_types, out_type, gpu=True):
    N, C, H, W, O, KH, KW, OH, OW, s, p, d = geometry(attrs, in_types, out_type)
    Cp, warps = round_up(C, 16), warps_of(O)
    Op = round_up(O, 16 * warps)
    sch, frag, bind, blk, (n0, nf, lh, lw, lo, lrh, lrw, lrc) = gemm_schedule(attrs, in_types, out_type, Cp, Op,
                                                                               OW, gpu)
    o0, o1, of = sch.split(lo, [None, warps, 16])
    c0, cf = sch.split(lrc, [None, 16])
    sch.reorder(n0, lh, lw, o0, o1, lrh, lrw, c0, nf, of, cf)
    bind(sch.fuse(n0, lh, lw), "blockIdx.x")
    bind(o0, "blockIdx.y")
    bind(o1, "threadIdx.y")
    store = warp_epilogue(sch, blk, o1, frag, bind)
    # per step: the gathered activation tile and the weight tile in shared memory, then fragments
    for idx in (0, 1):
        sh = sch.cache_read(blk, idx, "shared")
        sch.compute_at(sh, c0)
        _, ty, tx = sch.split(sch.fuse(*sch.get_loops(sh)[6:]), [None, warps, 32])
        bind(ty, "threadIdx.y")
        bind(tx, "threadIdx.x")
    sch.compute_inline(sch.get_sblock("cols"))
    load_a = sch.cache_read(blk, 0, frag("wmma.matrix_a"))
    load_b = sch.cache_read(blk, 1, frag("wmma.matrix_b"))
    # 2-D (GEMM) layouts, rows = (pixel, image): a fragment is 16 consecutive rows x 16 columns
    rows_a = lambda n, h, w, r, q, c: ((h * OW + w) * N + n, (r * KW + q) * Cp + c)  # noqa: E731
    rows_b = lambda o, r, q, c: (o, (r * KW + q) * Cp + c)                           # noqa: E731
    rows_c = lambda n, h, w, o: ((h * OW + w) * N + n, o)                            # noqa: E731
    for block, layout in ((sch.get_sblock("cols_shared"), rows_a), (load_a, rows_a),
                          (sch.get_sblock("w_packed_shared"), rows_b), (load_b, rows_b),
                          (blk, rows_c), (store, rows_c)):
        sch.transform_layout(block, ("write", 0), layout)
    init = sch.decompose_reduction(blk, lrh)
    # fragment copies: one loop of 16 rows (unit loops fused away) over 16 columns
    sch.fuse(*sch.get_loops(load_a)[6:-1])
    sch.split(sch.fuse(*sch.get_loops(load_b)[6:-1]), [None, 16])
    if gpu:
        sch.tensorize(sch.get_loops(init)[-2], wmma.FILL)
        sch.tensorize(sch.get_loops(load_a)[-2], wmma.LOAD_A)
        sch.tensorize(sch.get_loops(load_b)[-2], wmma.LOAD_B)
        sch.tensorize(nf, wmma.SYNC)
        sch.tensorize(sch.get_loops(store)[-2], wmma.STORE)
    return sch.mod["main"]


def register_imma_kernels(suffix, builder, prepare_constants, priority, what):
    """Register `builder` (attrs, in_types, out_type) as qconv2d_int8_nchw_<suffix> and qlinear_int8_<suffix>:
    the linear is the conv on a 1x1 map, both only where imma_applies."""
    common = dict(requires={"cuda", "imma"}, priority=priority, applies=imma_applies,
                  prepare_constants=prepare_constants, needs_constant=(1, 2))

    def conv(attrs, in_types, out_type, target):
        return builder(attrs, in_types, out_type)

    def linear(attrs, in_types, out_type, target):
        return builder(attrs, in_types, out_type)

    conv.__module__ = linear.__module__ = builder.__module__     # the kernel table names the builder's file
    conv.__doc__ = f"Group-1 int8 conv, batch % 16 == 0, on the tensor cores ({what})."
    linear.__doc__ = f"int8 linear, batch % 16 == 0, on the tensor cores (the conv kernel on a 1x1 map; {what})."
    register_kernel("qconv2d", I8, name=f"qconv2d_int8_nchw_{suffix}", **common)(conv)
    register_kernel("qlinear", I8, name=f"qlinear_int8_{suffix}", **common)(linear)


register_imma_kernels("imma", build, prepare, 70, "WMMA s8, 16 images x 16 channels x 16")
