"""qconv2d -> qadd fused into one kernel call (compiler/relax/fuse_residual.py): which pairs fuse, and the
compiled graph equals the integer interpreter bit for bit (x86; layout planning makes the convs NHWC)."""
import numpy as np
import pytest

from yuan import runtime
from yuan.compiler.build import compile_graph
from yuan.compiler.ir import Graph, run_graph
from yuan.compiler.relax import lower_graph
from yuan.compiler.targets import resolve_target

C = 16


def _residual_graph(dtype):
    """a1 = qadd(conv, x) and a2 = qadd(a1, conv) fuse (the conv as either input); a3 = qadd(c3, c4) fuses
    into c4 (c4 is lowered after c3, so c3's residual is ready); a4: the conv output is also a graph
    output; a5: the conv has a second user. Only a4 and a5 stay qadd kernels."""
    rng = np.random.default_rng(7)
    lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
    z = -3 if dtype == "int8" else 125
    g = Graph("residual")
    x = g.add_input("x", (1, C, 8, 8), dtype)

    def conv(inp, name, k=3):
        w = g.add_constant(f"{name}_w", rng.integers(-127, 128, (C, C, k, k)).astype(np.int8))
        b = g.add_constant(f"{name}_b", rng.integers(-3000, 3000, C).astype(np.int32))
        attrs = dict(pads=[k // 2] * 4, x_zero_point=z, multiplier=[int(v) for v in rng.integers(2 ** 30, 2 ** 31, C)],
                     shift=[int(v) for v in rng.integers(39, 42, C)], y_zero_point=z + 2, out_min=lo, out_max=hi,
                     out_dtype=dtype)
        return g.add_node("qconv2d", [inp, w, b], attrs, name=name).outputs[0]

    def qadd(a, b, name, relu=False):
        attrs = dict(a_zero_point=z + 2, b_zero_point=z, a_multiplier=1518500250, b_multiplier=1100000000, shift=31,
                     y_zero_point=z, out_min=z if relu else lo, out_max=hi, out_dtype=dtype)
        return g.add_node("qadd", [a, b], attrs, name=name).outputs[0]

    a1 = qadd(conv(x, "c1"), x, "a1", relu=True)
    a2 = qadd(a1, conv(a1, "c2"), "a2")
    a3 = qadd(conv(a2, "c3"), conv(a2, "c4", k=1), "a3", relu=True)
    c5 = conv(a3, "c5")
    a4 = qadd(c5, a3, "a4")
    c6 = conv(a4, "c6")
    a5 = qadd(c6, a4, "a5")
    g.mark_output(a5, c5, c6)
    return g


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_conv_residual_add_fuses_and_stays_exact(dtype, tmp_path):
    g = _residual_graph(dtype)
    _, info = lower_graph(g, resolve_target("x86"))
    qadds = [k for k in info["kernels"] if k.startswith("qadd")]
    assert len(qadds) == 2, info["kernels"]                     # a4, a5 unfused
    pred = runtime.load(compile_graph(g, "x86", str(tmp_path / "residual.so")))
    meta_qadds = [k for k in pred.metadata["kernels"] if k.startswith("qadd")]
    assert len(meta_qadds) == 2, pred.metadata["kernels"]       # the same after layout planning (NHWC)
    info_ = np.iinfo(dtype)
    for seed in (1, 2):
        x = np.random.default_rng(seed).integers(info_.min, info_.max + 1, (1, C, 8, 8)).astype(dtype)
        got, ref = pred.run({"x": x}), run_graph(g, {"x": x})
        for name in g.outputs:
            assert np.unique(ref[name]).size > 20, name           # not saturated
            np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
