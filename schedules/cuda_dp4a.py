"""CUDA int8 kernels on the dp4a instruction (``__dp4a``: four int8 x int8 products added to an int32,
SASS ``IDP.4A``; every GPU since sm_61): qconv2d (NCHW, group 1) and qlinear.

Algorithm (the dot-product conv of dot_product.py, laid out for a GPU):
* the weight is packed at compile time to int8 [Op, KH, KW, Cp] (input channels innermost, C zero-padded
  to Cp, a multiple of 4; O zero-padded to Op, a multiple of the block's channel tile);
* the activation is read as int8 x + offset (offset -128 for uint8 input: dp4a has no u8 x s8 form),
  padded with zx + offset, and the difference to x - zx is folded into bias_eff (dot_product.folded_constants);
* the implicit-GEMM schedule of cuda_implicit_gemm.py (shared with the fp32 kernels): a thread owns `wi`
  output columns x `oi` output channels in int32 registers; per (tap, KC*4 input channels) step the block
  stages the activation window (offset applied on the way) and the weight tile in shared memory, then
  every thread runs wi x oi x KC dp4a;
* the requantize epilogue (RequantEpilogue: + bias_eff, fixed-point multiply, zero point, clamp) is fused
  into the register write-back: int8 goes out. Integer math: bit-exact with the NumPy spec.

The tile rule (dp4a_tiles) is written down below: the tiles follow from the shape alone; the sidecar's
kernel list names the kernel picked per layer (dp4a, IMMA: cuda_imma.py, or DLight: cuda.py). PrimFunc params:
x (unchanged), w_packed int8[Op,KH,KW,Cp], bias_eff int32[O], mult, shift -> y.

`build(..., intrin=DP4A_REF, gpu=False)` gives the same schedule with the dot product written as plain TIR
instead of the __dp4a call and the block/thread loops left serial: it runs on a CPU (tests compare it bit
for bit with NumPy).
"""
from __future__ import annotations

from tvm import s_tir, te, tirx
from tvm.script import tirx as T

from .cuda_implicit_gemm import gemm_tiles, geometry, pack_gpu_weight, schedule_implicit_gemm
from .dot_product import folded_constants, round_up, staging_offset
from .intrinsics import DotProductIntrin
from .node_attrs import is_2d_input, is_dense_int8_conv
from .registry import register_kernel
from .requant import RequantEpilogue
from .te_utils import create, image_cell

I8 = ("int8", "uint8")


# ------------------------------------------------------------------------------ the intrinsic
def _dp4a_call(A, B, C):
    return T.call_pure_extern("int32", "__dp4a", T.reinterpret(A.vload([0], "int8x4"), dtype="int32"),
                              T.reinterpret(B.vload([0], "int8x4"), dtype="int32"), C[0])


def _plain_dot(A, B, C):
    return C[0] + sum(T.Cast("int32", A[k]) * T.Cast("int32", B[k]) for k in range(4))


def _register_dp4a(name, dot):
    """C[0] += sum_k A[k] * B[k] (k < 4, int8 -> int32), A and B in shared memory, C in registers,
    implemented by `dot`: one __dp4a, or the same sum in plain TIR (the CPU twin used by the tests)."""

    @T.prim_func(s_tir=True)
    def desc(A: T.Buffer((4,), "int8", offset_factor=1, scope="shared"),
             B: T.Buffer((4,), "int8", offset_factor=1, scope="shared"),
             C: T.Buffer((1,), "int32", offset_factor=1, scope="local")) -> None:
        with T.sblock("root"):
            T.reads(C[0], A[0:4], B[0:4])
            T.writes(C[0])
            for k in T.serial(0, 4):
                with T.sblock("update"):
                    vk = T.axis.remap("R", [k])
                    C[0] = C[0] + T.cast(A[vk], "int32") * T.cast(B[vk], "int32")

    @T.prim_func(s_tir=True)
    def impl(A: T.Buffer((4,), "int8", offset_factor=1, scope="shared"),
             B: T.Buffer((4,), "int8", offset_factor=1, scope="shared"),
             C: T.Buffer((1,), "int32", offset_factor=1, scope="local")) -> None:
        with T.sblock("root"):
            T.reads(C[0], A[0:4], B[0:4])
            T.writes(C[0])
            C[0] = dot(A, B, C)

    s_tir.TensorIntrin.register(name, desc, impl, override=True)
    return DotProductIntrin(name, 1, "int8")


DP4A = _register_dp4a("yuan_dp4a_s8s8s32", _dp4a_call)
DP4A_REF = _register_dp4a("yuan_dp4a_s8s8s32_ref", _plain_dot)   # same description, plain TIR (CPU checks)


# ------------------------------------------------------------------------------ the tile rule
def dp4a_tiles(N, OH, OW, O, Cp):
    """The tile rule (cuda_implicit_gemm.gemm_tiles): 4 channels x 2 columns per thread (1 column when OW
    is odd), up to 16 channel and 8 column threads, row / image threads up to 256 per block; 4 groups of 4
    input channels per shared-memory step (fewer when Cp/4 is not a multiple)."""
    return gemm_tiles(N, OH, OW, O, Cp // 4)


# ------------------------------------------------------------------------------ constants
def gpu_constants(attrs, in_types, arrays, channels, c_multiple, kernel):
    """kernel_inputs of the cuda int8 kernels: x, the packed weight, bias_eff (zero point and the uint8
    offset folded in), mult, shift."""
    return folded_constants(attrs, in_types, arrays, DP4A,
                            lambda w, _lanes: pack_gpu_weight(w, channels, c_multiple), kernel)


def tiles_of(attrs, in_types, out_type):
    N, C, _, _, O, _, _, OH, OW, *_ = geometry(attrs, in_types, out_type)
    return dp4a_tiles(N, OH, OW, O, round_up(C, 4))


def prepare(attrs, in_types, arrays):
    return gpu_constants(attrs, in_types, arrays, tiles_of(attrs, in_types, None).channels, 4, "the dp4a kernel")


def staged_input(attrs, in_types, Cp):
    """(x placeholder, stage(n, hh, ww, c)): the int8 value x + offset at cell (hh, ww) of the padded
    channels-last image, zx + offset in the padding and in the channels >= C (which meet zero weights);
    x is NCHW, or [N, K] for a linear (a 1x1 image)."""
    N, C, H, W, *_, p, _ = geometry(attrs, in_types, None)
    linear = len(in_types[0][0]) == 2
    zx = int(attrs.get("x_zero_point", 0))
    offset = staging_offset(in_types[0][1], "int8")
    x = te.placeholder(tuple(in_types[0][0]), in_types[0][1], "x")
    t, l = p[0], p[1]

    def stage(nn, hh, ww, cc):
        inside, ih, iw = image_cell(hh, ww, t, l, H, W)
        if Cp != C:
            inside = tirx.all(inside, cc < C)
            cc = te.min(cc, C - 1)
        v = (x[nn, cc] if linear else x[nn, cc, ih, iw]).astype("int32")
        return tirx.if_then_else(inside, v + offset, tirx.const(zx + offset, "int32")).astype("int8")

    return x, stage


def requantized_output(attrs, in_types, out_type, acc, beff):
    """(epilogue, y): y = requant(acc + bias_eff) as NCHW [N, O, OH, OW] (linear: [N, O]) from the
    channels-last accumulator acc [N, OH, OW, Op]."""
    epilogue = RequantEpilogue(attrs, out_type)
    N, _, _, _, O, _, _, OH, OW, *_ = geometry(attrs, in_types, out_type)
    if len(in_types[0][0]) == 2:
        return epilogue, te.compute((N, O), lambda nn, o: epilogue(acc[nn, 0, 0, o] + beff[o], o), name="out")
    return epilogue, te.compute((N, O, OH, OW), lambda nn, o, h, ww: epilogue(acc[nn, h, ww, o] + beff[o], o),
                                name="out")


# ------------------------------------------------------------------------------ the kernel
def build(attrs, in_types, out_type, intrin=DP4A, gpu=True):
    """The scheduled, thread-bound dp4a qconv2d (x NCHW) or qlinear (x [N, K]) PrimFunc; gpu=False leaves
    the block/thread loops serial (their order is the same) so that the TIR runs on a CPU."""
    N, C, H, W, O, KH, KW, OH, OW, s, p, d = geometry(attrs, in_types, out_type)
    Cp = round_up(C, 4)
    tl = dp4a_tiles(N, OH, OW, O, Cp)
    Op = round_up(O, tl.channels)
    x, stage = staged_input(attrs, in_types, Cp)
    wp = te.placeholder((Op, KH, KW, Cp), "int8", "w_packed")
    beff = te.placeholder((O,), "int32", "bias_eff")
    xs = te.compute((N, H + p[0] + p[2], W + p[1] + p[3], Cp), stage, name="xs")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    rc = te.reduce_axis((0, Cp), "rc")
    acc = te.compute((N, OH, OW, Op), lambda nn, h, ww, o: te.sum(
        xs[nn, h * s[0] + rh * d[0], ww * s[1] + rw * d[1], rc].astype("int32")
        * wp[o, rh, rw, rc].astype("int32"), axis=[rh, rw, rc]), name="acc")
    epilogue, y = requantized_output(attrs, in_types, out_type, acc, beff)

    sch = s_tir.Schedule(create([x, wp, beff] + epilogue.params + [y]))
    _, c2, w2, o2 = schedule_implicit_gemm(sch, tl, 4, 1, gpu)
    sch.tensorize(c2, intrin.name)
    sch.unroll(w2)
    sch.unroll(o2)
    return sch.mod["main"]


_APPLIES = dict(requires={"cuda", "dp4a"}, priority=60, prepare_constants=prepare, needs_constant=(1, 2))


@register_kernel("qconv2d", I8, applies=is_dense_int8_conv, name="qconv2d_int8_nchw_dp4a", **_APPLIES)
def qconv2d_dp4a(attrs, in_types, out_type, target):
    """Group-1 int8 conv on __dp4a: implicit GEMM, shared-memory staged window and weights, fused requantize."""
    return build(attrs, in_types, out_type)


def _linear_applies(attrs, in_types, out_type):
    return is_2d_input(attrs, in_types, out_type) and in_types[1][1] == "int8"


@register_kernel("qlinear", I8, applies=_linear_applies, name="qlinear_int8_dp4a", **_APPLIES)
def qlinear_dp4a(attrs, in_types, out_type, target):
    """int8 linear on __dp4a: the conv kernel on a 1x1 map, rows of x tiled over threads."""
    return build(attrs, in_types, out_type)
