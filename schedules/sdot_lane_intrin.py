"""The indexed-element ``sdot`` as a TensorIntrin: 16 input channels (one ``ldr q`` of the staged input) times
4 output channels, four ``sdot v.4s, w.16b, x.4b[j]`` (j < 4) that read their input word from a lane of the
one loaded register.

The plain sdot intrinsic (intrinsics.py) broadcasts each 4-channel word with its own ``ld1r``, which has no
immediate-offset addressing: every word costs an ``ld1r`` and an ``add``, as many as the sdots on a
4-group register tile. Here one ``ldr q`` (immediate offsets) feeds 4 x groups sdots.

C[i] += sum_{j, m} A[4j + m] * B[j, i, m] (i < 4 outputs, j < 4 words, m < 4 channels): B is 4 consecutive
[4 lanes, 4] blocks of the sdot weight packing [O/4, KH, KW, Cp/4, 4, 4], so the packing is unchanged.
"""
from __future__ import annotations

from tvm import s_tir
from tvm.script import tirx as T

_SDOT = "llvm.aarch64.neon.sdot.v4i32.v16i8"


@T.prim_func(s_tir=True)
def _desc(A: T.Buffer((16,), "int8", offset_factor=1), B: T.Buffer((4, 4, 4), "int8", offset_factor=1),
          C: T.Buffer((4,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:16], B[0:4, 0:4, 0:4])
        T.writes(C[0:4])
        for i, j, m in T.grid(4, 4, 4):
            with T.sblock("update"):
                vi, vj, vm = T.axis.remap("SRR", [i, j, m])
                C[vi] = C[vi] + T.cast(A[vj * 4 + vm], "int32") * T.cast(B[vj, vi, vm], "int32")


def _lane(A, j):
    """Word j of the 16 loaded input bytes in every lane (LLVM selects the indexed sdot for it)."""
    return T.reinterpret(T.Shuffle([T.reinterpret(A.vload([0], "int8x16"), dtype="int32x4")], [j, j, j, j]),
                         dtype="int8x16")


def _sdot(acc, B, A, j):
    return T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(_SDOT), acc, B.vload([j, 0, 0], dtype="int8x16"),
                                   _lane(A, j), dtype="int32x4")


@T.prim_func(s_tir=True)
def _impl(A: T.Buffer((16,), "int8", offset_factor=1), B: T.Buffer((4, 4, 4), "int8", offset_factor=1),
          C: T.Buffer((4,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:16], B[0:4, 0:4, 0:4])
        T.writes(C[0:4])
        # one expression: a binding would become a heap workspace buffer in TVM 0.27
        C[T.ramp(T.int32(0), 1, 4)] = _sdot(_sdot(_sdot(_sdot(
            C.vload([0], dtype="int32x4"), B, A, 0), B, A, 1), B, A, 2), B, A, 3)


SDOT_LANE_NAME = "yuan_dot_4x16_i8i8s32_sdot_lane"
s_tir.TensorIntrin.register(SDOT_LANE_NAME, _desc, _impl, override=True)
