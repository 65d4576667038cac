"""Graph IR -> Relax lowering: every float op, compiled for the host and compared with the
NumPy reference interpreter (compiler.ir.run_graph). Each test graph is compiled once."""
import numpy as np
import pytest

import tvm

from yuan.compiler.build import compile_graph  # noqa: E402
from yuan.compiler.ir import Graph, run_graph  # noqa: E402
from yuan.compiler.relax import LoweringError, lower_graph, supported_ops  # noqa: E402
from yuan.compiler.ir.ops import OP_SCHEMAS  # noqa: E402
from yuan import runtime  # noqa: E402
from yuan.compiler.targets import resolve_target  # noqa: E402


def _rel_err(got, ref):
    scale = max(float(np.abs(ref).max()), 1e-6)
    return float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max()) / scale


def _ops_graph():
    """One graph exercising every float op (and quantize/dequantize) with odd attributes."""
    rng = np.random.default_rng(0)
    g = Graph("ops")
    x = g.add_input("x", (2, 4, 7, 7))
    v = rng.standard_normal
    c = lambda name, shape, scale=1.0: g.add_constant(name, (v(shape) * scale).astype(np.float32))  # noqa: E731
    out = []

    def node(op, inputs, **attrs):
        return g.add_node(op, inputs, attrs).outputs

    r = node("relu", [x])[0]
    bn = node("batch_norm", [r, c("g", (4,)), c("b", (4,)), c("m", (4,)),
                             g.add_constant("var", (np.abs(v(4)) + 0.5).astype(np.float32))])[0]
    conv = node("conv2d", [bn, c("w", (8, 2, 3, 3)), c("cb", (8,))], strides=[2, 1], pads=[1, 0, 2, 1],
                dilations=[1, 2], group=2)[0]
    dw = node("conv2d", [x, c("dw", (4, 1, 3, 3))], pads=[1, 1, 1, 1], group=4)[0]
    out.append(node("max_pool2d", [dw], kernel=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0], ceil_mode=1)[0])
    out.append(node("avg_pool2d", [dw], kernel=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1],
                    count_include_pad=0, ceil_mode=1)[0])
    out.append(node("avg_pool2d", [dw], kernel=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)[0])
    out.append(node("adaptive_avg_pool2d", [x], output_size=[3, 5])[0])
    out.append(node("global_avg_pool2d", [conv])[0])
    hs = node("hardswish", [conv])[0]
    hsig = node("hardsigmoid", [hs], alpha=0.2, beta=0.4)[0]
    sig = node("sigmoid", [hsig])[0]
    th = node("tanh", [sig])[0]
    cl = node("clip", [th], min=-0.5, max=None)[0]
    cl6 = node("clip", [conv], min=0.0, max=6.0)[0]
    a = node("add", [cl, cl6])[0]
    s = node("sub", [a, c("bc", (1, 8, 1, 1))])[0]
    m = node("mul", [s, c("mc", (4,))])[0]
    d = node("div", [m, g.add_constant("dc", (np.abs(v((4,))) + 1).astype(np.float32))])[0]
    out.append(node("neg", [node("exp", [node("sqrt", [node("log", [node("add", [node("mul", [d, d])[0],
                                                                                  g.add_constant("one", np.float32(1.0))])[0]])[0]])[0]])[0]])[0])
    out.append(node("pow", [node("relu", [d])[0], g.add_constant("two", np.float32(2.0))])[0])
    sh = node("channel_shuffle", [d], groups=2)[0]
    p1, p2, p3 = node("split", [sh], axis=1, sizes=[2, 5, 1])
    cat = node("concat", [p3, p1, p2], axis=1)[0]
    pad = node("pad", [cat], pads=[0, 1, -1, 2, 0, 0, 1, -1], value=0.5)[0]
    out.append(node("pad", [x], pads=[0, 0, 1, 2, 0, 0, 2, 1], mode="reflect")[0])
    out.append(node("pad", [x], pads=[0, 0, 1, 2, 0, 0, 2, 1], mode="edge")[0])
    sl = node("slice", [pad], starts=[-1, 5, 0], ends=[-100, 0, 100], axes=[3, 1, 2], steps=[-2, -2, 3])[0]
    out.append(sl)
    tr = node("transpose", [pad], perm=[0, 2, 3, 1])[0]
    out.append(node("reduce_mean", [tr], axes=[1, 2], keepdims=0)[0])
    out.append(node("reduce_sum", [tr], axes=[-1], keepdims=1)[0])
    out.append(node("reduce_max", [tr])[0])
    fl = node("flatten", [tr], axis=1)[0]
    lin = node("linear", [fl, c("lw", (6, g.values[fl].shape[1]), 0.1), c("lb", (6,))])[0]
    out.append(node("softmax", [lin], axis=1)[0])
    out.append(node("log_softmax", [lin], axis=0)[0])
    mm = node("matmul", [node("reshape", [lin], shape=[2, 3, 2])[0], c("mw", (2, 5))])[0]
    uq = node("unsqueeze", [mm], axes=[0, 3])[0]
    out.append(node("squeeze", [node("identity", [uq])[0]], axes=[3])[0])
    q = node("quantize", [conv, g.add_constant("qs", np.float32(0.05)), g.add_constant("qz", np.int8(3))])[0]
    out.append(q)
    out.append(node("dequantize", [q, g.add_constant("qs2", np.float32(0.05)), g.add_constant("qz2", np.int8(3))])[0])
    qa = node("quantize", [conv, g.add_constant("qsa", np.linspace(0.02, 0.1, 8).astype(np.float32)),
                           g.add_constant("qza", np.arange(8, dtype=np.uint8) * 10)], axis=1, signed=0)[0]
    out.append(node("dequantize", [qa, "qsa", "qza"], axis=1)[0])
    g.outputs = out
    return g


@pytest.fixture(scope="module")
def ops_model(tmp_path_factory):
    g = _ops_graph()
    path = compile_graph(g, "x86", str(tmp_path_factory.mktemp("ops") / "ops.so"))
    return g, runtime.load(path)


def test_every_float_op_matches_interpreter(ops_model):
    g, pred = ops_model
    x = np.random.default_rng(1).standard_normal((2, 4, 7, 7)).astype(np.float32)
    got, ref = pred.run({"x": x}), run_graph(g, {"x": x})
    assert list(got) == g.outputs
    for name in g.outputs:
        assert got[name].shape == ref[name].shape and got[name].dtype == ref[name].dtype, name
        if ref[name].dtype.kind in "iu":
            # codes may differ by one only where x / s sits on a rounding boundary after float
            # noise in the conv above; almost all must be identical
            diff = np.abs(got[name].astype(np.int64) - ref[name])
            assert diff.max() <= 1 and diff.mean() < 0.01, name
        else:
            assert _rel_err(got[name], ref[name]) < 1e-4, name


def test_every_ir_op_has_a_lowering():
    assert set(OP_SCHEMAS) <= set(supported_ops())


def _quant_graph(x_shape, scale, zp, signed=1):
    g = Graph("q")
    x = g.add_input("x", x_shape)
    q = g.add_node("quantize", [x, g.add_constant("s", np.float32(scale)),
                                g.add_constant("z", np.asarray(zp, np.int8 if signed else np.uint8))],
                   {"signed": signed}).outputs[0]
    dq = g.add_node("dequantize", [q, "s", "z"]).outputs[0]
    g.outputs = [q, dq]
    return g


@pytest.fixture(scope="module")
def quant_model(tmp_path_factory):
    g = _quant_graph((64,), 0.5, -3)
    return g, runtime.load(compile_graph(g, "x86", str(tmp_path_factory.mktemp("q") / "q.so")))


def test_quantize_rounds_half_to_even_and_clamps(quant_model):
    g, pred = quant_model
    x = np.zeros(64, np.float32)
    ties = np.array([0.25, 0.75, 1.25, -0.25, -0.75, -1.25, 2.5 * 0.5, 3.5 * 0.5, -2.5 * 0.5], np.float32)
    x[:ties.size] = ties
    x[10:20] = [1e6, -1e6, 63.5, 65.5, -62.5, -61.5, 0.0, -0.0, 1e-8, 0.2500001]
    x[20:] = np.random.default_rng(0).uniform(-70, 70, 44).astype(np.float32)
    got, ref = pred.run(x), run_graph(g, {"x": x})
    np.testing.assert_array_equal(got[g.outputs[0]], ref[g.outputs[0]])
    np.testing.assert_array_equal(got[g.outputs[1]], ref[g.outputs[1]])
    # x / 0.5 = 0.5 -> 0, 1.5 -> 2, 2.5 -> 2: half to even, then + zero point -3
    np.testing.assert_array_equal(got[g.outputs[0]][:6], np.array([-3, -1, -1, -3, -5, -5], np.int8))


def test_unknown_op_is_a_clear_lowering_error():
    g = Graph("bad")
    x = g.add_input("x", (2, 3))
    g.outputs = [g.add_node("relu", [x]).outputs[0]]
    g.nodes[0].op = "frobnicate"
    with pytest.raises(LoweringError, match="frobnicate"):
        lower_graph(g, resolve_target("x86"))


def test_lowering_uses_kernels_for_heavy_ops():
    g = Graph("k")
    x = g.add_input("x", (1, 3, 8, 8))
    y = g.add_node("conv2d", [x, g.add_constant("w", np.ones((4, 3, 3, 3), np.float32))]).outputs[0]
    g.outputs = [g.add_node("relu", [y]).outputs[0]]
    mod, info = lower_graph(g, resolve_target("x86"))
    assert len(info["kernels"]) == 1
    assert "call_tir" in mod["main"].script()


def _integer_graph():
    """The integer IR ops not reached by the quantized zoo tests (lut, qavg_pool2d, requantize
    on int32, per-tensor and per-channel multipliers), checked bit for bit."""
    rng = np.random.default_rng(3)
    g = Graph("int_ops")
    x = g.add_input("x", (2, 4, 7, 7), "int8")
    out = []

    def node(op, inputs, **attrs):
        return g.add_node(op, inputs, attrs).outputs[0]

    common = dict(y_zero_point=-5, out_min=-128, out_max=127, out_dtype="int8")
    out.append(node("lut", [x, g.add_constant("table", rng.integers(-128, 128, 256).astype(np.int8))]))
    out.append(node("requantize", [x], x_zero_point=3, multiplier=[1518500250, 1300000000, 1100000000, 2000000000],
                    shift=[31, 32, 30, 33], **common))
    oh = ow = 4
    out.append(node("qavg_pool2d", [x, g.add_constant("mm", rng.integers(2 ** 30, 2 ** 31 - 1, (oh, ow)).astype(np.int32)),
                                    g.add_constant("nm", rng.integers(32, 34, (oh, ow)).astype(np.int32))],
                    kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], x_zero_point=2, **common))
    out.append(node("qadd", [x, out[0]], a_zero_point=1, b_zero_point=-2, a_multiplier=1 << 29,
                    b_multiplier=3 << 28, shift=31, y_zero_point=4, out_min=4, out_max=127, out_dtype="int8"))
    out.append(node("max_pool2d", [x], kernel=[2, 2], strides=[2, 2], ceil_mode=1))
    g.outputs = out
    return g


def test_integer_ops_are_bit_exact(tmp_path):
    g = _integer_graph()
    pred = runtime.load(compile_graph(g, "x86", str(tmp_path / "int_ops.so")))
    x = np.random.default_rng(4).integers(-128, 128, (2, 4, 7, 7)).astype(np.int8)
    got, ref = pred.run({"x": x}), run_graph(g, {"x": x})
    for name in g.outputs:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def _conv_act_graph():
    """conv -> relu (fusable), conv -> clip(0, 6) (fusable), conv -> relu AND add (two users: not
    fused), conv -> relu where the conv output is also a graph output (not fused)."""
    rng = np.random.default_rng(3)
    g = Graph("conv_act")
    x = g.add_input("x", (1, 3, 9, 9))

    def conv(inp, name, o=8, c=3):
        w = g.add_constant(f"{name}_w", rng.standard_normal((o, c, 3, 3)).astype(np.float32))
        b = g.add_constant(f"{name}_b", rng.standard_normal(o).astype(np.float32))
        return g.add_node("conv2d", [inp, w, b], {"pads": [1, 1, 1, 1]}, name=name).outputs[0]

    r1 = g.add_node("relu", [conv(x, "c1")], name="r1").outputs[0]
    r2 = g.add_node("clip", [conv(r1, "c2", c=8)], {"min": 0.0, "max": 6.0}, name="r2").outputs[0]
    c3 = conv(r2, "c3", c=8)
    r3 = g.add_node("relu", [c3], name="r3").outputs[0]
    both = g.add_node("add", [r3, c3], name="both").outputs[0]
    c4 = conv(both, "c4", c=8)
    r4 = g.add_node("relu", [c4], name="r4").outputs[0]
    g.mark_output(r4, c4)
    return g


def test_relu_and_clip_fuse_into_the_float_conv_kernel(tmp_path):
    from yuan.compiler.relax import lower
    g = _conv_act_graph()
    ctx_absorbed = []
    original = lower.LowerContext.absorb
    lower.LowerContext.absorb = lambda self, node: (ctx_absorbed.append(node.name), original(self, node))[1]
    try:
        lower_graph(g, resolve_target("x86"))
    finally:
        lower.LowerContext.absorb = original
    assert sorted(ctx_absorbed) == ["r1", "r2"]   # r3: conv has two users; r4: conv output is a graph output
    path = compile_graph(g, "x86", str(tmp_path / "conv_act.so"))
    x = np.random.default_rng(4).standard_normal((1, 3, 9, 9)).astype(np.float32)
    got = runtime.load(path).run({"x": x})
    ref = run_graph(g, {"x": x})
    for name in g.outputs:
        assert _rel_err(got[name], ref[name]) < 1e-5, name
    assert float(got[g.outputs[0]].min()) >= 0.0


