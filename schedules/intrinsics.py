"""The int8 dot-product tensor intrinsics the fast convs tensorize with, registered by one factory.

Each computes C[i] += sum_k A[k] * B[i, k] (i < lanes, k < 4; k < 2 for int16 A): four input channels (A) times `lanes`
output channels' four weights (B, contiguous), one instruction.

* AVX-512 VNNI ``vpdpbusd``: 16 lanes, A uint8, B int8 ("yuan_dot_16x4_u8i8i32_vnni").
* Armv8.2 dot product ``sdot``: 4 lanes, A int8, B int8 ("yuan_dot_4x4_i8i8s32_sdot"; the same
  description as TVM's ``dot_4x4_i8i8s32_sdot``).
* AVX2 / AVX-512 without VNNI ``vpmovsxbw`` + ``vpmaddwd`` + ``vpaddd``: 8 or 16 lanes of k = 2 (not 4)
  channels, A int16 (the 8-bit codes widened at staging), B int8 (sign-extended on load: one vpmovsxbw per
  register tile step). Exact: |a*b + a'*b'| <= 2 * 255 * 128 < 2^31, where ``vpmaddubsw`` (u8 x s8 pairs
  summed into a *saturating* int16: 2 * 255 * 127 > 32767) is not.
* AVX-512 VNNI ``vpdpwssd``: 16 lanes of k = 2 channels, A and B int16 (the transformed input and weights of
  the F(4x4, 3x3) Winograd conv, x86_vnni_winograd_int8.py), summed into int32 without saturation (wrapping).

Why not TVM's own (tvm.s_tir.tensor_intrin): importing that package parses every intrinsic of every
target (~20 s), and its ``dot_16x4_vnni`` impl does not compile with the bundled LLVM 22, which
declares vpdpbusd as (<16 x i32>, <64 x i8>, <64 x i8>): the impl here passes byte vectors.
"""
from __future__ import annotations

from dataclasses import dataclass

from tvm import s_tir
from tvm.script import tirx as T


@dataclass(frozen=True)
class DotProductIntrin:
    name: str          # the registered TensorIntrin
    lanes: int         # int32 accumulators = output channels per instruction
    a_dtype: str       # the staged input (activation) dtype: "uint8", "int8" or "int16"
    k: int = 4         # input channels per lane per instruction; weights are int8


def _dot_desc(lanes, k, a_dtype, b_dtype="int8"):
    """C[0:lanes] += A[0:k] . B[0:lanes, 0:k] in plain TIR (what tensorize matches)."""
    @T.prim_func(s_tir=True)
    def desc(A: T.Buffer((k,), a_dtype, offset_factor=1), B: T.Buffer((lanes, k), b_dtype, offset_factor=1),
             C: T.Buffer((lanes,), "int32", offset_factor=1)) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:k], B[0:lanes, 0:k])
            T.writes(C[0:lanes])
            for i in T.serial(0, lanes):
                for kk in T.serial(0, k):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, kk])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")
    return desc


def register_dot_product_intrin(name, lanes, a_dtype, llvm_intrinsic, b_dtype="int8") -> DotProductIntrin:
    """Register C[0:lanes] += A[0:k] . B[0:lanes, 0:k] as TensorIntrin `name` (k: the A values of one 32-bit
    word, 4 bytes or 2 int16), implemented by the LLVM intrinsic (acc <lanes x i32>, A's word broadcast to
    <k*lanes x a>, B <k*lanes x b>) -> <lanes x i32>."""
    k = 32 // (16 if a_dtype == "int16" else 8)
    a_word = f"{a_dtype}x{k}"
    a_broadcast = f"{a_dtype}x{k * lanes}"
    b_vector = f"{b_dtype}x{k * lanes}"
    acc_vector = f"int32x{lanes}"

    @T.prim_func(s_tir=True)
    def impl(A: T.Buffer((k,), a_dtype, offset_factor=1), B: T.Buffer((lanes, k), b_dtype, offset_factor=1),
             C: T.Buffer((lanes,), "int32", offset_factor=1)) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:k], B[0:lanes, 0:k])
            T.writes(C[0:lanes])
            # one expression: an `x = ...` binding becomes a heap workspace buffer in TVM 0.27 (~15% slower)
            C[T.ramp(T.int32(0), 1, lanes)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(llvm_intrinsic),
                C.vload([0], dtype=acc_vector),
                T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], a_word), dtype="int32"), lanes),
                              dtype=a_broadcast),
                B.vload([0, 0], dtype=b_vector),
                dtype=acc_vector)

    s_tir.TensorIntrin.register(name, _dot_desc(lanes, k, a_dtype, b_dtype), impl, override=True)
    return DotProductIntrin(name, lanes, a_dtype, k=k)


def register_pmaddwd_intrin(name, lanes, llvm_intrinsic) -> DotProductIntrin:
    """Register C[0:lanes] += A[0:2] . B[0:lanes, 0:2] (int16 A, int8 B) as TensorIntrin `name`: C plus the
    LLVM intrinsic (A's int16 pair broadcast to <2*lanes x i16>, B sign-extended on load (vpmovsxbw) to
    <2*lanes x i16>) -> <lanes x i32>."""
    acc_vector = f"int32x{lanes}"
    pairs = f"int16x{2 * lanes}"

    @T.prim_func(s_tir=True)
    def impl(A: T.Buffer((2,), "int16", offset_factor=1), B: T.Buffer((lanes, 2), "int8", offset_factor=1),
             C: T.Buffer((lanes,), "int32", offset_factor=1)) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:2], B[0:lanes, 0:2])
            T.writes(C[0:lanes])
            C[T.ramp(T.int32(0), 1, lanes)] = C.vload([0], dtype=acc_vector) + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(llvm_intrinsic),
                T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int16x2"), dtype="int32"), lanes),
                              dtype=pairs),
                T.Cast(pairs, B.vload([0, 0], dtype=f"int8x{2 * lanes}")),
                dtype=acc_vector)

    s_tir.TensorIntrin.register(name, _dot_desc(lanes, 2, "int16"), impl, override=True)
    return DotProductIntrin(name, lanes, "int16", k=2)


VNNI = register_dot_product_intrin("yuan_dot_16x4_u8i8i32_vnni", 16, "uint8", "llvm.x86.avx512.vpdpbusd.512")
SDOT = register_dot_product_intrin("yuan_dot_4x4_i8i8s32_sdot", 4, "int8", "llvm.aarch64.neon.sdot.v4i32.v16i8")
PMADDWD_AVX2 = register_pmaddwd_intrin("yuan_dot_8x2_i16i8i32_avx2", 8, "llvm.x86.avx2.pmadd.wd")
PMADDWD_AVX512 = register_pmaddwd_intrin("yuan_dot_16x2_i16i8i32_avx512", 16, "llvm.x86.avx512.pmaddw.d.512")
VNNI_INT16 = register_dot_product_intrin("yuan_dot_16x2_i16i16i32_vnni", 16, "int16",
                                        "llvm.x86.avx512.vpdpwssd.512", b_dtype="int16")
