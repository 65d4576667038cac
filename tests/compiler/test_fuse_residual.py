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


def _float_residual_graph():
    """MobileNetV2-like float blocks on a 7x7 map (the tiled kernel): a1 = add(conv 1x1, x) and
    r2 = relu(add(a1, conv 1x1 without bias)) fuse (the conv as either add input; r2's relu too); a4: the conv
    output is also a graph output, a5: the conv has a relu of its own (fused into it instead), a6: no kernel of
    a grouped 1x1 conv fuses an add: those stay adds."""
    rng = np.random.default_rng(3)
    g = Graph("float_residual")
    x = g.add_input("x", (1, C, 7, 7), "float32")

    def conv(inp, name, k=1, bias=True, group=1):
        w = g.add_constant(f"{name}_w", (rng.standard_normal((C, C // group, k, k)) * 0.3).astype(np.float32))
        ins = [inp, w] + ([g.add_constant(f"{name}_b", rng.standard_normal(C).astype(np.float32))] if bias else [])
        return g.add_node("conv2d", ins, dict(pads=[k // 2] * 4, group=group), name=name).outputs[0]

    def op(kind, ins, name):
        return g.add_node(kind, ins, {}, name=name).outputs[0]

    a1 = op("add", [conv(x, "c1"), x], "a1")
    a2 = op("relu", [op("add", [a1, conv(a1, "c2", bias=False)], "a2")], "r2")   # (3x3: Winograd, below)
    c4 = conv(a2, "c4")
    a4 = op("add", [c4, a2], "a4")
    a5 = op("add", [op("relu", [conv(a4, "c5")], "r5"), a4], "a5")
    a6 = op("add", [conv(a5, "c6", group=2), a5], "a6")   # grouped: the generic kernel, which takes no residual
    g.mark_output(a6, c4)
    return g


@pytest.mark.skipif("avx512" not in resolve_target("x86").features, reason="host lacks avx512")
def test_float_conv_residual_add_fuses(tmp_path):
    g = _float_residual_graph()
    mod, _ = lower_graph(g, resolve_target("x86"))
    adds = mod["main"].script().count("R.add(")
    assert adds == 3, mod["main"].script()                     # a4, a5, a6 unfused; a1, a2 (and r2) in the convs
    assert "relu" not in mod["main"].script()                  # r2 in c2's kernel, r5 in c5's
    pred = runtime.load(compile_graph(g, "x86", str(tmp_path / "float_residual.so")))
    for seed in (1, 2):
        x = np.random.default_rng(seed).standard_normal((1, C, 7, 7)).astype(np.float32)
        got, ref = pred.run({"x": x}), run_graph(g, {"x": x})
        for name in g.outputs:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.skipif("avx512" not in resolve_target("x86").features, reason="host lacks avx512")
def test_float_add_is_not_fused_at_the_cost_of_the_conv_kernel():
    """A ResNet 3x3 conv: the kernel it gets alone (fp32 Winograd, which takes no residual) is kept and the add
    stays separate, rather than fused into a slower conv that takes the residual."""
    rng = np.random.default_rng(4)

    def graph(with_add):
        g = Graph("winograd_residual")
        x = g.add_input("x", (1, 64, 14, 14), "float32")
        w = g.add_constant("w", (rng.standard_normal((64, 64, 3, 3)) * 0.1).astype(np.float32))
        y = g.add_node("conv2d", [x, w], dict(pads=[1] * 4), name="conv").outputs[0]
        g.mark_output(g.add_node("add", [y, x], {}, name="add").outputs[0] if with_add else y)
        return g

    conv_kernels = [[k for k in lower_graph(graph(a), resolve_target("x86"))[1]["kernels"] if "conv" in k]
                    for a in (False, True)]
    assert len(conv_kernels[0]) == 1 and conv_kernels[0] == conv_kernels[1], conv_kernels
