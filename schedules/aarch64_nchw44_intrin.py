"""The NCHW44 sdot step as a TensorIntrin: 4 output columns x 4 output channels x 4 input channels.

In NCHW44 ([N, C/4, H, W, 4]) the 4-channel words of consecutive columns are consecutive, so one ``ldr q``
loads 4 columns' words and each feeds an indexed ``sdot v.4s, w.16b, x.4b[j]`` (j = the column) against
one weight register (4 output channels x the same 4 input channels, 16 bytes). The NHWC sdot conv's
indexed form (sdot_lane_intrin.py) instead takes 4 words of *channels* of one column from a ``ldr q``.

C[j, i] += sum_m A[j, m] * B[i, m]  (j < 4 columns, i < 4 output channels, m < 4 input channels).
"""
from __future__ import annotations

from tvm import s_tir
from tvm.script import tirx as T

_SDOT = "llvm.aarch64.neon.sdot.v4i32.v16i8"
NCHW44_SDOT = "yuan_nchw44_dot_4x4x4_i8i8s32_sdot"


@T.prim_func(s_tir=True)
def _desc(A: T.Buffer((4, 4), "int8", offset_factor=1), B: T.Buffer((4, 4), "int8", offset_factor=1),
          C: T.Buffer((4, 4), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4, 0:4], A[0:4, 0:4], B[0:4, 0:4])
        T.writes(C[0:4, 0:4])
        for j, i, m in T.grid(4, 4, 4):
            with T.sblock("update"):
                vj, vi, vm = T.axis.remap("SSR", [j, i, m])
                C[vj, vi] = C[vj, vi] + T.cast(A[vj, vm], "int32") * T.cast(B[vi, vm], "int32")


def _column(A, j):
    """Column j's 4-channel word in every lane (LLVM selects the indexed sdot for it)."""
    return T.reinterpret(T.Shuffle([T.reinterpret(A.vload([0, 0], "int8x16"), dtype="int32x4")], [j, j, j, j]),
                         dtype="int8x16")


def _sdot(C, A, B, j):
    return T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(_SDOT), C.vload([j, 0], dtype="int32x4"),
                                   B.vload([0, 0], dtype="int8x16"), _column(A, j), dtype="int32x4")


@T.prim_func(s_tir=True)
def _impl(A: T.Buffer((4, 4), "int8", offset_factor=1), B: T.Buffer((4, 4), "int8", offset_factor=1),
          C: T.Buffer((4, 4), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:4, 0:4], A[0:4, 0:4], B[0:4, 0:4])
        T.writes(C[0:4, 0:4])
        # no bindings: a binding would become a heap workspace buffer in TVM 0.27
        C[0, T.ramp(T.int32(0), 1, 4)] = _sdot(C, A, B, 0)
        C[1, T.ramp(T.int32(0), 1, 4)] = _sdot(C, A, B, 1)
        C[2, T.ramp(T.int32(0), 1, 4)] = _sdot(C, A, B, 2)
        C[3, T.ramp(T.int32(0), 1, 4)] = _sdot(C, A, B, 3)


s_tir.TensorIntrin.register(NCHW44_SDOT, _desc, _impl, override=True)
