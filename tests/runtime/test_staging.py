"""Predictor.run on the CPU without an allocation per run (runtime/staging.py): aligned inputs passed as they are,
the others (unaligned, non-contiguous, read-only) copied into a kept tensor; every run equals the interpreter, and
outputs stay valid after later runs (one output is a reshape of the input, a view of the kept tensor)."""
import numpy as np
import pytest

from yuan import runtime
from yuan.compiler.build import compile_graph
from yuan.compiler.ir import Graph, run_graph
from yuan.runtime.staging import ALIGNMENT


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    g = Graph("staging")
    x = g.add_input("x", (1, 4, 6, 6), "float32")
    w = g.add_constant("w", np.random.default_rng(0).standard_normal((8, 4, 3, 3)).astype(np.float32))
    y = g.add_node("conv2d", [x, w], dict(pads=[1, 1, 1, 1]), name="conv").outputs[0]
    flat = g.add_node("flatten", [x], dict(axis=1), name="flat").outputs[0]
    g.mark_output(y, flat)
    return g, runtime.load(compile_graph(g, "x86", str(tmp_path_factory.mktemp("staging") / "m.so")))


def _aligned(a, offset=0):
    """A copy of `a` whose data starts `offset` bytes past a 64-byte boundary."""
    buf = np.empty(a.nbytes + 2 * ALIGNMENT, np.uint8)
    start = (-buf.ctypes.data) % ALIGNMENT + offset
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def test_every_kind_of_input_array_gives_the_interpreters_result(model):
    g, pred = model
    rng = np.random.default_rng(1)
    base = [rng.standard_normal((1, 4, 6, 6)).astype(np.float32) for _ in range(5)]
    readonly = base[3].copy()
    readonly.setflags(write=False)
    inputs = [_aligned(base[0]), _aligned(base[1], 4),
              np.ascontiguousarray(base[2].transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),   # not C-contiguous
              readonly, _aligned(base[4])]
    assert inputs[0].ctypes.data % ALIGNMENT == 0 and inputs[1].ctypes.data % ALIGNMENT == 4
    assert not inputs[2].flags.c_contiguous
    results = [pred.run({"x": x}) for x in inputs]
    for x, got in zip(inputs, results):            # earlier results unchanged by the later runs
        ref = run_graph(g, {"x": np.ascontiguousarray(x)})
        for name in g.outputs:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_an_aligned_input_is_read_in_place_not_kept(model):
    """Changing the caller's array after run() does not change the result run() returned."""
    g, pred = model
    x = _aligned(np.random.default_rng(2).standard_normal((1, 4, 6, 6)).astype(np.float32))
    got = pred.run(x)
    expected = run_graph(g, {"x": x.copy()})
    x[...] = 0
    for name in g.outputs:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name)
