"""Channels-last graphs through the compiler: the Relax lowering of the layout ops that have no schedules
kernel (max_pool2d, channel_shuffle), a planned int8 graph on the VNNI host, and NHWC on a GPU target."""
import numpy as np
import pytest

from yuan import runtime
from yuan.compiler.build import compile_graph, optimize
from yuan.compiler.ir import Graph, run_graph
from yuan.compiler.ir.layout import LAYOUT_OPS
from yuan.compiler.relax import LoweringError, lower_graph
from yuan.schedules import preferred_layouts
from tests.schedules.conftest import CUDA, HOST, int_codes, requant_attrs

RNG = np.random.default_rng(7)


def test_nhwc_max_pool2d_and_channel_shuffle_lowering(tmp_path):
    """max_pool2d / channel_shuffle have no schedules kernel: the Relax lowering builds them from
    TE/Relax ops, NHWC included. Compiled graph vs the reference interpreter, bit for bit."""
    g = Graph("nhwc_ops")
    xi = g.add_input("xi", (2, 7, 6, 6), "int8")
    xf = g.add_input("xf", (1, 5, 8, 9), "float32")
    outs = [
        g.add_node("max_pool2d", [xi], dict(kernel=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1], ceil_mode=1,
                                           layout="NHWC")).outputs[0],
        g.add_node("max_pool2d", [xf], dict(kernel=[2, 2], layout="NHWC")).outputs[0],
        g.add_node("channel_shuffle", [xi], dict(groups=3, layout="NHWC")).outputs[0],
        g.add_node("channel_shuffle", [xf], dict(groups=3, layout="NHWC")).outputs[0],
    ]
    g.mark_output(*outs)
    pred = runtime.load(compile_graph(g, "x86", str(tmp_path / "nhwc_ops.so")))
    feed = {"xi": int_codes(RNG, (2, 7, 6, 6), "int8"), "xf": RNG.standard_normal((1, 5, 8, 9)).astype("float32")}
    got, ref = pred.run(feed), run_graph(g, feed)
    for name in outs:
        assert got[name].shape == ref[name].shape and got[name].dtype == ref[name].dtype, name
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def test_planned_int8_graph_compiles_bit_exact(tmp_path):
    """A small int8 graph through compile_graph("x86"): for a VNNI target (x86 = the host CPU) it is planned NHWC (conv,
    depthwise conv, pools, shuffle, qadd in the region) and must still equal the reference."""
    g = Graph("planned")
    x = g.add_input("x", (1, 3, 12, 10), "int8")

    def qconv(inp, O, k, name, group=1, stride=1):
        C = g.values[inp].shape[1]
        w = g.add_constant(f"{name}_w", RNG.integers(-127, 128, (O, C // group, k, k)).astype("int8"))
        b = g.add_constant(f"{name}_b", RNG.integers(-2000, 2000, O).astype("int32"))
        attrs = dict(strides=[stride, stride], pads=[k // 2] * 4, group=group,
                     **requant_attrs(RNG, O, "int8", -5, shift=(14, 17)))
        return g.add_node("qconv2d", [inp, w, b], attrs, name=name).outputs[0]

    c1 = qconv(x, 12, 3, "stem", stride=2)                                    # [1, 12, 6, 5]
    p = g.add_node("max_pool2d", [c1], dict(kernel=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])).outputs[0]
    d = qconv(p, 12, 3, "dw", group=12)
    s = g.add_node("channel_shuffle", [d], dict(groups=3)).outputs[0]
    e = qconv(s, 12, 1, "pw")
    add = g.add_node("qadd", [e, p], dict(a_zero_point=3, b_zero_point=3, a_multiplier=1 << 29,
                                          b_multiplier=3 << 28, shift=31, y_zero_point=-1, out_min=-128,
                                          out_max=127, out_dtype="int8")).outputs[0]
    gap = g.add_node("qglobal_avg_pool2d", [add], dict(x_zero_point=-1, multiplier=[1 << 30], shift=[35],
                                                       y_zero_point=0, out_min=-128, out_max=127,
                                                       out_dtype="int8")).outputs[0]
    g.mark_output(gap, add)
    pred = runtime.load(compile_graph(g, "x86", str(tmp_path / "planned.so")))
    prefs = preferred_layouts(HOST)
    assert prefs == {"qconv2d": "NHWC"}   # the "x86" target (rocketlake) has AVX-512 VNNI
    planned = optimize(g, layouts=prefs)
    assert all(n.attrs.get("layout") == "NHWC" for n in planned.nodes if n.op in LAYOUT_OPS)
    for seed in (1, 2):
        feed = {"x": np.random.default_rng(seed).integers(-128, 128, (1, 3, 12, 10)).astype("int8")}
        got, ref = pred.run(feed), run_graph(g, feed)
        assert ref[add].std() > 0
        for name in g.outputs:
            np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def test_nhwc_node_on_a_gpu_target_is_a_clear_lowering_error():
    """NHWC kernels are CPU kernels: a channels-last graph for cuda names the node, not a TVM trace."""
    g = Graph("nhwc_cuda")
    g.add_input("x", (1, 6, 6, 8), "int8")
    w = g.add_constant("w", np.ones((8, 8, 3, 3), np.int8))
    attrs = dict(pads=[1, 1, 1, 1], x_zero_point=0, multiplier=[1 << 30], shift=[12], y_zero_point=0,
                 out_min=-128, out_max=127, out_dtype="int8", layout="NHWC")
    g.mark_output(g.add_node("qconv2d", ["x", w], attrs, name="conv7").outputs[0])
    with pytest.raises(LoweringError, match=r"node 'conv7' \(qconv2d\).*no kernel.*layout NHWC.*cuda"):
        lower_graph(g, CUDA)
