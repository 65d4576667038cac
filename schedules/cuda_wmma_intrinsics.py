"""The int8 tensor-core (WMMA 16x16x16, s8 x s8 -> s32; SASS IMMA) TensorIntrins of cuda_imma.py: fill the
accumulator, load A (row major) and B (stored [n][k], col major) from shared memory into fragments, multiply-
accumulate, store the accumulator to shared memory. Registered here (the same calls as TVM's
tvm.s_tir.tensor_intrin.cuda, whose import registers every GPU intrinsic of every dtype: ~15 s per process)."""
from __future__ import annotations

from tvm import s_tir
from tvm.script import tirx as T

M = N = K = 16
FILL = "yuan_wmma_fill_16x16x16_s32"
LOAD_A = "yuan_wmma_load_16x16x16_s8_a_shared"
LOAD_B = "yuan_wmma_load_16x16x16_s8_b_trans_shared"
SYNC = "yuan_wmma_sync_16x16x16_s8s8s32_trans"
STORE = "yuan_wmma_store_16x16x16_s32_shared"


def _fragment(buf, stride):
    """The index of a 16x16 fragment inside a fragment buffer (row-major grid of fragments)."""
    return buf.elem_offset // stride // 16 * (stride // 16) + buf.elem_offset % stride // 16


def _register_copy(name, dtype, src_scope, dst_scope, call):
    """A 16x16 copy between shared memory and a fragment, implemented by call(A, C, a_stride, c_stride)
    (tvm_load_matrix_sync / tvm_store_matrix_sync)."""
    @T.prim_func(s_tir=True)
    def desc(a: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (16, 16), dtype, align=64, offset_factor=16, scope=src_scope)
        C = T.match_buffer(c, (16, 16), dtype, align=64, offset_factor=16, scope=dst_scope)
        with T.sblock("root"):
            T.reads(A[0:16, 0:16])
            T.writes(C[0:16, 0:16])
            for i, j in T.grid(16, 16):
                with T.sblock("copy"):
                    vi, vj = T.axis.remap("SS", [i, j])
                    C[vi, vj] = A[vi, vj]

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, c: T.handle) -> None:
        a1 = T.int32()
        a0 = T.int32()
        c1 = T.int32()
        c0 = T.int32()
        A = T.match_buffer(a, (16, 16), dtype, align=64, offset_factor=16, scope=src_scope, strides=[a1, a0])
        C = T.match_buffer(c, (16, 16), dtype, align=64, offset_factor=16, scope=dst_scope, strides=[c1, c0])
        with T.sblock("root"):
            T.reads(A[0:16, 0:16])
            T.writes(C[0:16, 0:16])
            T.evaluate(call(A, C, a1, c1))

    s_tir.TensorIntrin.register(name, desc, impl, override=True)


def _load(layout):
    return lambda A, C, a1, c1: T.tvm_load_matrix_sync(C.data, M, N, K, _fragment(C, c1),
                                                       A.access_ptr("r", ptr_type="int8"), a1, layout, dtype="void")


def _store(A, C, a1, c1):
    return T.tvm_store_matrix_sync(A.data, M, N, K, _fragment(A, a1), C.access_ptr("w", ptr_type="int32"), c1,
                                   "row_major", dtype="void")


@T.prim_func(s_tir=True)
def _fill_desc(c: T.handle) -> None:
    C = T.match_buffer(c, (16, 16), "int32", align=64, offset_factor=16, scope="wmma.accumulator")
    with T.sblock("root"):
        T.reads()
        T.writes(C[0:16, 0:16])
        for i, j in T.grid(16, 16):
            with T.sblock("init"):
                vi, vj = T.axis.remap("SS", [i, j])
                C[vi, vj] = T.int32(0)


@T.prim_func(s_tir=True)
def _fill_impl(c: T.handle) -> None:
    d1 = T.int32()
    d0 = T.int32()
    C = T.match_buffer(c, (16, 16), "int32", align=64, offset_factor=16, scope="wmma.accumulator", strides=[d1, d0])
    with T.sblock("root"):
        T.reads()
        T.writes(C[0:16, 0:16])
        T.evaluate(T.tvm_fill_fragment(C.data, M, N, K, _fragment(C, d1), T.float32(0), dtype="void"))


@T.prim_func(s_tir=True)
def _sync_desc(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (16, 16), "int8", align=64, offset_factor=16, scope="wmma.matrix_a")
    B = T.match_buffer(b, (16, 16), "int8", align=64, offset_factor=16, scope="wmma.matrix_b")
    C = T.match_buffer(c, (16, 16), "int32", align=64, offset_factor=16, scope="wmma.accumulator")
    with T.sblock("root"):
        T.reads(C[0:16, 0:16], A[0:16, 0:16], B[0:16, 0:16])
        T.writes(C[0:16, 0:16])
        for i, j, k in T.grid(16, 16, 16):
            with T.sblock(""):
                vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                C[vi, vj] = C[vi, vj] + T.Cast("int32", A[vi, vk]) * T.Cast("int32", B[vj, vk])


@T.prim_func(s_tir=True)
def _sync_impl(a: T.handle, b: T.handle, c: T.handle) -> None:
    a1 = T.int32()
    a0 = T.int32()
    b1 = T.int32()
    b0 = T.int32()
    c1 = T.int32()
    c0 = T.int32()
    A = T.match_buffer(a, (16, 16), "int8", align=64, offset_factor=16, scope="wmma.matrix_a", strides=[a1, a0])
    B = T.match_buffer(b, (16, 16), "int8", align=64, offset_factor=16, scope="wmma.matrix_b", strides=[b1, b0])
    C = T.match_buffer(c, (16, 16), "int32", align=64, offset_factor=16, scope="wmma.accumulator", strides=[c1, c0])
    with T.sblock("root"):
        T.reads(C[0:16, 0:16], A[0:16, 0:16], B[0:16, 0:16])
        T.writes(C[0:16, 0:16])
        T.evaluate(T.tvm_mma_sync(C.data, _fragment(C, c1), A.data, _fragment(A, a1), B.data, _fragment(B, b1),
                                  C.data, _fragment(C, c1), dtype="void"))


_register_copy(LOAD_A, "int8", "shared", "wmma.matrix_a", _load("row_major"))
_register_copy(LOAD_B, "int8", "shared", "wmma.matrix_b", _load("col_major"))
_register_copy(STORE, "int32", "wmma.accumulator", "shared", _store)
s_tir.TensorIntrin.register(FILL, _fill_desc, _fill_impl, override=True)
s_tir.TensorIntrin.register(SYNC, _sync_desc, _sync_impl, override=True)
