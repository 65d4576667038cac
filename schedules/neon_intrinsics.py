"""The int8 TensorIntrins for Armv8.0 NEON without ``sdot`` (Cortex-A53/A55/A72/A73):

* NEON_DOT, the 4x4 dot product of the qlinear kernel, with the same description as the sdot one in
  intrinsics.py: C[i] += sum_k A[k] * B[i, k] (i < 4 output channels, k < 4 input channels) as ``smull`` /
  ``smull2`` .8h (16 exact int16 products: |-128 * -128| fits), ``saddlp`` .4s twice and ``addp``, added to C.
  The A word is broadcast to both halves, so one ``ld1r`` feeds both multiplies.
* NEON_CHUNK_NAME, the direct conv's step (neon_int8_conv.py): 16 reduction bytes x 4 output channels into 4
  int32x4 accumulators, smull / smlsl2 / sadalp (the comment above it has the int16 bound);
* NEON_LANE_SUM_NAME: the 4 lanes of 4 such accumulators summed into one vector (3 ``addp``).
Implementations are written as one expression: an `x = ...` binding would become a heap workspace buffer in
TVM 0.27 (TVM's own ``dot_4x4_i8i8s32_neon`` has them).
"""
from __future__ import annotations

from tvm import s_tir
from tvm.script import tirx as T

from .intrinsics import SDOT, DotProductIntrin

_SMULL = "llvm.aarch64.neon.smull.v8i16"
_SADDLP = "llvm.aarch64.neon.saddlp.v4i32.v8i16"
_ADDP = "llvm.aarch64.neon.addp.v4i32"


def _a16(A):
    """The 4 bytes of A broadcast to 16 (one ld1r .4s)."""
    return T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"), 4), dtype="int8x16")


@T.prim_func(s_tir=True)
def _impl(A: T.Buffer((4,), "int8", offset_factor=1), B: T.Buffer((4, 4), "int8", offset_factor=1),
          C: T.Buffer((4,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4, 0:4])
        T.writes(C[0:4])
        C[T.ramp(T.int32(0), 1, 4)] = C.vload([0], dtype="int32x4") + T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(_ADDP),
            T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(_SADDLP), T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(_SMULL),
                T.vectorlow(_a16(A), dtype="int8x8"), T.vectorlow(B.vload([0, 0], dtype="int8x16"), dtype="int8x8"),
                dtype="int16x8"), dtype="int32x4"),
            T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(_SADDLP), T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(_SMULL),
                T.vectorhigh(_a16(A), dtype="int8x8"), T.vectorhigh(B.vload([0, 0], dtype="int8x16"), dtype="int8x8"),
                dtype="int16x8"), dtype="int32x4"),
            dtype="int32x4")


NEON_DOT_NAME = "yuan_dot_4x4_i8i8s32_neon_smull"
# the description is the sdot one (same buffers, same C[i] += A[k] * B[i, k]); only the implementation differs
s_tir.TensorIntrin.register(NEON_DOT_NAME, s_tir.TensorIntrin.get(SDOT.name).desc, _impl, override=True)
NEON_DOT = DotProductIntrin(NEON_DOT_NAME, 4, "int8")


# --- the chunk form of the direct conv (neon_int8_conv.py): one output pixel x 4 output channels x 16 reduction
# bytes, each (pixel, channel) accumulating in its own int32x4 (lane l: bytes 2l, 2l + 1, 2l + 8, 2l + 9), summed
# across lanes once per output (the lane-sum intrinsic below). smull (bytes 0-7) then smlsl2 (bytes 8-15) into one
# int16x8, then sadalp: 3 instructions per 16 MACs. Two int8 x int8 products can sum to 2 * (-128)^2 = 32768, one
# past int16; so bytes 8-15 of the input are stored bitwise NOT (~v = -v - 1, always an int8) and subtracted:
# v0 w0 - (~v1) w1 = v0 w0 + v1 w1 + w1, in [-32640, 32640], exact in int16; the constant w1 is taken out of the
# bias at compile time.
@T.prim_func(s_tir=True)
def _chunk_desc(A: T.Buffer((16,), "int8", offset_factor=1), B: T.Buffer((4, 16), "int8", offset_factor=1),
                C: T.Buffer((4, 4), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4, 0:4], A[0:16], B[0:4, 0:16])
        T.writes(C[0:4, 0:4])
        for i, l, b, k in T.grid(4, 4, 2, 2):
            with T.sblock("update"):
                vi, vl, vb, vk = T.axis.remap("SSRR", [i, l, b, k])
                C[vi, vl] = C[vi, vl] + T.cast(A[vb * 8 + vl * 2 + vk], "int32") * T.cast(
                    B[vi, vb * 8 + vl * 2 + vk], "int32")


def _smull(a, b):
    return T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(_SMULL), a, b, dtype="int16x8")


def _chunk_row(A, B, C, i):
    """C[i, 0:4] after the chunk for output channel i (acc + saddlp: LLVM selects sadalp; one expression)."""
    a, b = A.vload([0], dtype="int8x16"), B.vload([i, 0], dtype="int8x16")
    return C.vload([i, 0], dtype="int32x4") + T.call_llvm_pure_intrin(
        T.llvm_lookup_intrinsic_id(_SADDLP),
        _smull(T.vectorlow(a, dtype="int8x8"), T.vectorlow(b, dtype="int8x8"))
        - _smull(T.vectorhigh(a, dtype="int8x8"), T.vectorhigh(b, dtype="int8x8")), dtype="int32x4")


@T.prim_func(s_tir=True)
def _chunk_impl(A: T.Buffer((16,), "int8", offset_factor=1), B: T.Buffer((4, 16), "int8", offset_factor=1),
                C: T.Buffer((4, 4), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4, 0:4], A[0:16], B[0:4, 0:16])
        T.writes(C[0:4, 0:4])
        C[0, T.ramp(T.int32(0), 1, 4)] = _chunk_row(A, B, C, 0)
        C[1, T.ramp(T.int32(0), 1, 4)] = _chunk_row(A, B, C, 1)
        C[2, T.ramp(T.int32(0), 1, 4)] = _chunk_row(A, B, C, 2)
        C[3, T.ramp(T.int32(0), 1, 4)] = _chunk_row(A, B, C, 3)


NEON_CHUNK_NAME = "yuan_dot_4x16_i8i8s32_neon_smlsl"
s_tir.TensorIntrin.register(NEON_CHUNK_NAME, _chunk_desc, _chunk_impl, override=True)


@T.prim_func(s_tir=True)
def _lanes_desc(A: T.Buffer((4, 4), "int32", offset_factor=1), C: T.Buffer((4,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4, 0:4])
        T.writes(C[0:4])
        for i, l in T.grid(4, 4):
            with T.sblock("update"):
                vi, vl = T.axis.remap("SR", [i, l])
                C[vi] = C[vi] + A[vi, vl]


def _addp(a, b):
    return T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(_ADDP), a, b, dtype="int32x4")


@T.prim_func(s_tir=True)
def _lanes_impl(A: T.Buffer((4, 4), "int32", offset_factor=1), C: T.Buffer((4,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4, 0:4])
        T.writes(C[0:4])
        C[T.ramp(T.int32(0), 1, 4)] = C.vload([0], dtype="int32x4") + _addp(
            _addp(A.vload([0, 0], dtype="int32x4"), A.vload([1, 0], dtype="int32x4")),
            _addp(A.vload([2, 0], dtype="int32x4"), A.vload([3, 0], dtype="int32x4")))


# C[i] += sum of row i of the 4 x 4 accumulators (3 addp for 4 outputs; LLVM folds the zero init)
NEON_LANE_SUM_NAME = "yuan_lane_sum_4x4_i32_neon_addp"
s_tir.TensorIntrin.register(NEON_LANE_SUM_NAME, _lanes_desc, _lanes_impl, override=True)
