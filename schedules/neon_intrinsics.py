"""The int8 4x4 dot product for Armv8.0 NEON (no ``sdot``: Cortex-A53/A55/A72/A73), as a TensorIntrin with
the same description as the sdot one in intrinsics.py, so the dot-product conv (dot_product.py) uses either.

C[i] += sum_k A[k] * B[i, k] (i < 4 output channels, k < 4 input channels, A and B int8) as 8-bit widening
multiplies: ``smull`` / ``smull2`` .8h (16 exact int16 products: |-128 * -128| fits), ``saddlp`` .4s twice
(pairs of products into int32) and ``addp`` (the remaining pairs), added to C. The A word is broadcast to
both halves, so one ``ld1r`` feeds both multiplies. Written as one expression: an `x = ...` binding would
become a heap workspace buffer in TVM 0.27 (TVM's own ``dot_4x4_i8i8s32_neon`` has them).
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


# --- the pair-accumulator form: C[i, j] += A[2j] * B[i, 2j] + A[2j+1] * B[i, 2j+1] (i < 4, j < 2). Each output
# channel keeps two int32 partial sums (its even and odd input-channel pairs), so no horizontal add is needed
# per step: smull (channels 0-1) / smull (channels 2-3) and two ``sadalp`` straight into the accumulators,
# 4 instructions per 16 MACs. The conv adds the two partial sums once, in its epilogue (neon_int8_conv.py).
@T.prim_func(s_tir=True)
def _pairs_desc(A: T.Buffer((4,), "int8", offset_factor=1), B: T.Buffer((4, 4), "int8", offset_factor=1),
                C: T.Buffer((4, 2), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4, 0:2], A[0:4], B[0:4, 0:4])
        T.writes(C[0:4, 0:2])
        for i, j, k in T.grid(4, 2, 2):
            with T.sblock("update"):
                vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                C[vi, vj] = C[vi, vj] + T.cast(A[vj * 2 + vk], "int32") * T.cast(B[vi, vj * 2 + vk], "int32")


@T.prim_func(s_tir=True)
def _pairs_impl(A: T.Buffer((4,), "int8", offset_factor=1), B: T.Buffer((4, 4), "int8", offset_factor=1),
                C: T.Buffer((4, 2), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4, 0:2], A[0:4], B[0:4, 0:4])
        T.writes(C[0:4, 0:2])
        # acc + saddlp is selected as sadalp. Lane q adds product lanes 2q, 2q+1: channel q // 2, input pair
        # q % 2, i.e. C[q // 2, q % 2]; the ramps index the flat 4x2 buffer (C[r, 0:4] = rows r, r + 1).
        C[0, T.ramp(T.int32(0), 1, 4)] = C.vload([0, 0], dtype="int32x4") + T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(_SADDLP),
            T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(_SMULL), T.vectorlow(_a16(A), dtype="int8x8"),
                                    B.vload([0, 0], dtype="int8x8"), dtype="int16x8"), dtype="int32x4")
        C[2, T.ramp(T.int32(0), 1, 4)] = C.vload([2, 0], dtype="int32x4") + T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(_SADDLP),
            T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(_SMULL), T.vectorlow(_a16(A), dtype="int8x8"),
                                    B.vload([2, 0], dtype="int8x8"), dtype="int16x8"), dtype="int32x4")


NEON_PAIRS_NAME = "yuan_dot_4x2x2_i8i8s32_neon_sadalp"
s_tir.TensorIntrin.register(NEON_PAIRS_NAME, _pairs_desc, _pairs_impl, override=True)
