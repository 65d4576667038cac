"""Yuan's pipelines (compiler/backends/pipelines.py): the x86 TIR rewrite of int32 high products into lane
pairs keeps every bit of int32((int64(a) * int64(b)) >> 32), at every vector width, and removes the widening
shuffles it was written for; the CPU Relax pipeline leaves out the VM's per-value kills and nothing else
(same outputs, same planned buffers)."""
import numpy as np
import pytest
import tvm
from tvm import s_tir, te, tirx

from tests.schedules.conftest import HOST, execute
from yuan import runtime
from yuan.compiler.backends.pipelines import TIR_PIPELINE
from yuan.compiler.build import compile_graph
from yuan.compiler.ir import run_graph
from yuan.frontend.models import get_model
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace

I32 = np.iinfo(np.int32)


def high_product_kernel(size, lanes, broadcast_b):
    """y[i] = int32((int64(a[i]) * int64(b[i] or b[0])) >> 32), vectorised `lanes` wide."""
    a = te.placeholder((size,), "int32", "a")
    b = te.placeholder((size,), "int32", "b")
    y = te.compute((size,), lambda i: tirx.shift_right(
        a[i].astype("int64") * (b[0] if broadcast_b else b[i]).astype("int64"), tirx.const(32, "int64")
    ).astype("int32"), name="y")
    sch = s_tir.Schedule(te.create_prim_func([a, b, y]).with_attr("global_symbol", "high_product"))
    if lanes > 1:
        sch.vectorize(sch.split(sch.get_loops(sch.get_sblock("y"))[0], [None, lanes])[1])
    return sch.mod


def edge_values(rng, size):
    edges = np.array([I32.min, I32.min + 1, -1, 0, 1, I32.max - 1, I32.max, 1 << 30, -(1 << 30)], np.int64)
    return np.concatenate([edges, rng.integers(I32.min, I32.max + 1, size - len(edges))]).astype(np.int32)


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("broadcast_b", [False, True])
def test_high_product_exact_at_every_width(lanes, broadcast_b):
    size = 4096
    rng = np.random.default_rng(lanes + 17 * broadcast_b)
    a = edge_values(rng, size)
    b = np.roll(edge_values(rng, size), 3) if not broadcast_b else np.full(size, rng.integers(I32.min, I32.max), np.int32)
    mod = high_product_kernel(size, lanes, broadcast_b)
    lib = tvm.compile(mod, HOST.tvm, tir_pipeline=TIR_PIPELINE)
    y = execute(mod["main"], lib, [a, b], ((size,), "int32"))
    ref = ((a.astype(object) * b.astype(object)) >> 32).astype(np.int64).astype(np.int32)   # Python integers
    np.testing.assert_array_equal(y, ref)


def per_column_kernel(rows, lanes):
    """y[i, j] = int32((int64(a[i, j]) * int64(m[j])) >> 32), j vectorised: m is loop invariant over the rows, as
    a requantize multiplier is over a conv's pixels."""
    a = te.placeholder((rows, lanes), "int32", "a")
    m = te.placeholder((lanes,), "int32", "m")
    y = te.compute((rows, lanes), lambda i, j: tirx.shift_right(
        a[i, j].astype("int64") * m[j].astype("int64"), tirx.const(32, "int64")).astype("int32"), name="y")
    sch = s_tir.Schedule(te.create_prim_func([a, m, y]).with_attr("global_symbol", "per_column"))
    sch.vectorize(sch.get_loops(sch.get_sblock("y"))[1])
    return sch.mod


@pytest.mark.skipif("avx512" not in HOST.features, reason="host lacks AVX-512")
@pytest.mark.parametrize("lanes", [8, 16])
def test_high_product_has_no_widening_shuffles(lanes):
    mod = per_column_kernel(64, lanes)
    rewritten = tvm.compile(mod, HOST.tvm, tir_pipeline=TIR_PIPELINE).mod.inspect_source("asm")
    plain = tvm.compile(mod, HOST.tvm).mod.inspect_source("asm")
    assert "vpmuldq" in rewritten and "vpmovqd" not in rewritten
    assert "vpmovqd" in plain   # what the rewrite is for: with m hoisted, TVM's default pipeline widens and narrows


def test_cpu_module_runs_without_per_value_kills(tmp_path):
    manual_seed(0)
    graph = trace(get_model("mlp", in_features=12, num_classes=3, hidden=(8,)).eval(),
                  Tensor(np.zeros((2, 12), np.float32)))
    pred = runtime.load(compile_graph(graph, "x86", str(tmp_path / "mlp.so")))
    code = tvm.runtime.Executable(pred.module).mod["as_text"]()   # the VM bytecode
    assert "vm.builtin.alloc_storage" in code and "vm.builtin.null_value" not in code
    x = np.random.default_rng(0).standard_normal((2, 12)).astype(np.float32)
    for _ in range(3):   # the planned buffers are reused run after run
        np.testing.assert_allclose(pred.run(x)[graph.outputs[0]], run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]],
                                   rtol=1e-5, atol=1e-6)
