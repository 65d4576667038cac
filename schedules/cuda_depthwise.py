"""CUDA depthwise convs on the CUDA cores: int8 qconv2d (requantize fused) and fp32 conv2d (bias +
activation fused), NCHW, group == C, weight [C * mult, 1, KH, KW]; scheduled here instead of left to
DLight (cuda.py), which keeps the other grouped convs.

Schedule: one block per (image, ct output channels, tile of ht output rows x wt output columns), one thread
per output of the tile. The block first copies the input window its tile reads (all taps: rows
(ht - 1) * stride + (KH - 1) * dilation + 1, likewise columns) into shared memory, with the padding done
on the way (int8: x - zx as int16, 0 in the padding, so that padded taps add nothing; fp32: x, 0 in the
padding); every thread keeps the channel's KH x KW weights in registers and accumulates its pixel (int32
or fp32) over the unrolled taps, then writes it out through the epilogue. Integer math: bit-exact with
the NumPy spec. Tile rule (dw_tiles): wt = the first of 32, 28, 16, 14, 8, 7, 6, 5, 4, 3, 2, 1
dividing OW, ht = the first of 16, 14, 8, 7, 4, 2, 1 dividing OH with ht * wt <= 256 threads, ct = the first
of 64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1 dividing O with ct * ht * wt <= 128 (several channels per block
only on small maps).

PrimFunc params: as the generic kernels (x, w OIHW unchanged, (bias), int8: mult, shift) -> y.
`build(..., gpu=False)` leaves the block/thread loops serial: the TIR runs on a CPU (the tests).
"""
from __future__ import annotations

from tvm import s_tir, te, tirx

from .compute import bias_placeholder, plus_int_bias
from .constants import prep_requant
from .cpu_schedules import first_divisor
from .cuda_implicit_gemm import MAX_THREADS
from .node_attrs import conv_attrs, conv_out_hw
from .registry import register_kernel
from .requant import RequantEpilogue
from .te_utils import bias_clip, create, image_cell


def dw_tiles(O, OH, OW):
    """(ct, ht, wt): output channels, rows and columns of a block, one thread per output (see the module
    docstring)."""
    wt = first_divisor(OW, (32, 28, 16, 14, 8, 7, 6, 5, 4, 3, 2, 1))
    ht = first_divisor(OH, [c for c in (16, 14, 8, 7, 4, 2, 1) if c * wt <= MAX_THREADS])
    ct = first_divisor(O, [c for c in (64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if c * ht * wt <= 128])   # small maps: more channels
    return ct, ht, wt


def is_depthwise(attrs, in_types, out_type):
    """`applies`: group == C > 1, weight [C * mult, 1, KH, KW]."""
    g = conv_attrs(attrs)[3]
    C, O = in_types[0][0][1], in_types[1][0][0]
    return len(in_types[0][0]) == 4 and g > 1 and g == C and in_types[1][0][1] == 1 and O % C == 0


def _int8_applies(attrs, in_types, out_type):
    return is_depthwise(attrs, in_types, out_type) and in_types[1][1] == "int8"


def build(attrs, in_types, out_type, gpu=True):
    """The scheduled depthwise conv: int8 qconv2d when x is int8 / uint8, else fp32 conv2d."""
    s, p, d, _ = conv_attrs(attrs)
    (N, C, H, W), xdt = in_types[0]
    O, _, KH, KW = in_types[1][0]
    mult = O // C
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    quantized = xdt != "float32"
    x = te.placeholder((N, C, H, W), xdt, "x")
    w = te.placeholder((O, 1, KH, KW), in_types[1][1], "w")
    args = [x, w]
    bias = bias_placeholder(in_types, args, "int32" if quantized else "float32")
    if quantized:   # x - zx fits int16 for every int8 / uint8 code and zero point
        sdt, acc_dt, zero, zx = "int16", "int32", tirx.const(0, "int16"), int(attrs.get("x_zero_point", 0))
        epilogue = RequantEpilogue(attrs, out_type)
        params = epilogue.params
        write = lambda value, o: epilogue(plus_int_bias(value, bias, o), o)   # noqa: E731
    else:
        sdt, acc_dt, zero, zx = "float32", "float32", tirx.const(0.0, "float32"), 0
        params = []
        write = lambda value, o: bias_clip(value, bias, o, attrs)            # noqa: E731

    def stage(nn, cc, hh, ww):
        inside, ih, iw = image_cell(hh, ww, p[0], p[1], H, W)
        v = x[nn, cc, ih, iw].astype(sdt)
        return tirx.if_then_else(inside, v - tirx.const(zx, sdt) if quantized else v, zero)

    xs = te.compute((N, C, H + p[0] + p[2], W + p[1] + p[3]), stage, name="xs")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    acc = te.compute((N, O, OH, OW), lambda nn, o, h, ww: te.sum(
        xs[nn, o // mult, h * s[0] + rh * d[0], ww * s[1] + rw * d[1]].astype(acc_dt)
        * w[o, 0, rh, rw].astype(acc_dt), axis=[rh, rw]), name="acc")
    y = te.compute((N, O, OH, OW), lambda nn, o, h, ww: write(acc[nn, o, h, ww], o), name="out")

    ct, ht, wt = dw_tiles(O, OH, OW)
    sch = s_tir.Schedule(create(args + params + [y]))
    bind = sch.bind if gpu else (lambda loop, thread: None)
    blk = sch.get_sblock("acc")
    ln, lo, lh, lw, lrh, lrw = sch.get_loops(blk)
    o0, o1 = sch.split(lo, [None, ct])
    h0, h1 = sch.split(lh, [None, ht])
    w0, w1 = sch.split(lw, [None, wt])
    sch.reorder(ln, o0, h0, w0, o1, h1, w1, lrh, lrw)
    bx = sch.fuse(ln, o0, h0, w0)
    bind(bx, "blockIdx.x")
    tx = sch.fuse(o1, h1, w1)
    bind(tx, "threadIdx.x")
    sch.set_scope(blk, 0, "local")             # the accumulator: a register per thread
    sch.reverse_compute_at(sch.get_sblock("out"), tx)
    sh = sch.cache_read(blk, 0, "shared")      # the tile's input window, all taps, once per block
    sch.compute_at(sh, bx)
    _, ft = sch.split(sch.fuse(*sch.get_loops(sh)[1:]), [None, ct * ht * wt])
    bind(ft, "threadIdx.x")
    sch.compute_inline(sch.get_sblock("xs"))  # padding and zero point on the way into shared memory
    wl = sch.cache_read(blk, 1, "local")       # the channel's taps in registers
    sch.compute_at(wl, tx)
    sch.decompose_reduction(blk, lrh)
    sch.unroll(lrh)
    sch.unroll(lrw)
    return sch.mod["main"]


_KERNEL = dict(requires={"cuda"}, priority=55)


@register_kernel("qconv2d", ("int8", "uint8"), applies=_int8_applies, prepare_constants=prep_requant,
                 name="qconv2d_dw_int8_nchw_cuda", **_KERNEL)
def qconv2d_dw_cuda(attrs, in_types, out_type, target):
    """Depthwise int8 conv: shared-memory input window (int16 x - zx), taps in registers, fused requantize."""
    return build(attrs, in_types, out_type)


@register_kernel("conv2d", "float32", applies=is_depthwise, name="dwconv2d_f32_nchw_cuda", **_KERNEL)
def dwconv2d_f32_cuda(attrs, in_types, out_type, target):
    """Depthwise fp32 conv: shared-memory input window, taps in registers, fused bias + activation."""
    return build(attrs, in_types, out_type)
