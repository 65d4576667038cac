"""qlinear lowered as the 1x1 NHWC qconv2d where the target has a fast qconv2d but only the generic qlinear
(compiler/relax/qlinear_as_conv.py): the VNNI conv serves it on x86, bit for bit the integer interpreter."""
import numpy as np
import pytest

from yuan import runtime
from yuan.compiler.build import compile_graph
from yuan.compiler.ir import Graph, run_graph
from yuan.compiler.relax import lower_graph
from yuan.compiler.targets import resolve_target

X86 = resolve_target("x86")
pytestmark = pytest.mark.skipif("avx512_vnni" not in X86.features, reason="host lacks VNNI")


def _qlinear_graph(dtype, batch, bias):
    rng = np.random.default_rng(4)
    k, o = 400, 100   # at least qlinear_as_conv.MIN_WEIGHTS
    lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
    g = Graph("qlinear")
    x = g.add_input("x", (batch, k), dtype)
    ins = [x, g.add_constant("w", rng.integers(-127, 128, (o, k)).astype(np.int8))]
    if bias:
        ins.append(g.add_constant("b", rng.integers(-3000, 3000, o).astype(np.int32)))
    attrs = dict(x_zero_point=-3 if dtype == "int8" else 128, y_zero_point=5, out_min=lo, out_max=hi, out_dtype=dtype,
                 multiplier=[int(v) for v in rng.integers(2 ** 30, 2 ** 31, o)],
                 shift=[int(v) for v in rng.integers(44, 46, o)])
    g.mark_output(g.add_node("qlinear", ins, attrs, name="fc").outputs[0])
    return g


@pytest.mark.parametrize("dtype,batch,bias", [("int8", 1, True), ("uint8", 3, False)])
def test_qlinear_runs_as_vnni_conv_and_stays_exact(dtype, batch, bias, tmp_path):
    g = _qlinear_graph(dtype, batch, bias)
    _, info = lower_graph(g, X86)
    assert [i["kernel"] for i in info["kernel_info"].values()] == ["qconv2d_int8_nhwc_vnni"], info
    pred = runtime.load(compile_graph(g, "x86", str(tmp_path / "qlinear.so")))
    lo, hi = (-128, 128) if dtype == "int8" else (0, 256)
    for seed in (1, 2):
        x = np.random.default_rng(seed).integers(lo, hi, (batch, 400)).astype(dtype)
        got, ref = pred.run({"x": x})[g.outputs[0]], run_graph(g, {"x": x})[g.outputs[0]]
        assert np.unique(ref).size > 5                                  # not saturated
        np.testing.assert_array_equal(got, ref)
