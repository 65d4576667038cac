"""Channels-last (layout="NHWC") kernels of schedules/ (x86.py, aarch64.py, generic_nhwc.py), each compiled
alone and compared bit for bit with the reference kernel compiler.ir.kernels.KERNELS[op] run with
layout="NHWC" (the integer spec on data transposed to NCHW, ir/layout.py: independent of the
schedules). Also: layout-aware kernel selection, preferred_layouts, and the Relax lowering of the
layout ops that have no schedules kernel (max_pool2d, channel_shuffle)."""
import numpy as np
import pytest



from yuan.compiler.ir import Graph, run_graph
from yuan.compiler.ir.kernels import KERNELS
from yuan.compiler.ir.layout import LAYOUT_OPS
from yuan.compiler.targets import Target
from yuan.schedules import applicable, kernels, preferred_layouts, select_kernel
from tests.schedules.conftest import (AARCH64, AARCH64_DOT, CUDA, GENERIC as PLAIN_X86, HAS_VNNI, HOST, ZNVER4, build,
                                      execute)

RNG = np.random.default_rng(7)
CONV_DEFAULTS = dict(strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)


def _codes(shape, dtype):
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max + 1, shape).astype(dtype)


def _out_range(dtype):
    return (-128, 127) if dtype == "int8" else (0, 255)


def _requant(count, odt, zx, shift=(10, 15)):
    lo, hi = _out_range(odt)
    return dict(x_zero_point=zx, multiplier=[int(v) for v in RNG.integers(1 << 30, (1 << 31) - 1, count)],
                shift=[int(v) for v in RNG.integers(shift[0], shift[1], count)], y_zero_point=3 if odt == "int8" else 9,
                out_min=lo + 5, out_max=hi - 2, out_dtype=odt)


def _reference(op, inputs, attrs):
    """KERNELS[op] with every attr spelled out (the kernel table does not fill in defaults)."""
    full = dict(CONV_DEFAULTS, **attrs) if op == "qconv2d" else dict(attrs)
    if op == "qavg_pool2d":
        full.setdefault("strides", full["kernel"])
        full.setdefault("pads", [0, 0, 0, 0])
    assert full["layout"] == "NHWC"
    return np.asarray(KERNELS[op](list(inputs), full))


def _qconv_case(xs_nhwc, ws, cattrs, has_b, per_ch, xdt, odt, shift=(10, 15)):
    """NHWC input, weight [O, C/g, KH, KW], attrs with layout NHWC; the reference output."""
    x = _codes(xs_nhwc, xdt)
    w = RNG.integers(-127, 128, ws).astype("int8")
    b = RNG.integers(-5000, 5000, ws[0]).astype("int32") if has_b else None
    zx = -7 if xdt == "int8" else 131
    attrs = dict(cattrs, layout="NHWC", **_requant(ws[0] if per_ch else 1, odt, zx, shift))
    ref = _reference("qconv2d", [x, w, b], attrs)
    assert ref.dtype == np.dtype(odt) and ref.std() > 0, "degenerate case (saturated output)"
    return x, w, b, attrs, ref


def _check_qconv(case, target, expect):
    x, w, b, attrs, ref = _qconv_case(*case)
    out_type = (ref.shape, str(ref.dtype))
    f, lib, args = build("qconv2d", attrs, [x, w, b], out_type, target, expect)
    y = execute(f, lib, args, out_type)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    np.testing.assert_array_equal(y, ref)
    return lib


# ------------------------------------------------------------------ VNNI NHWC conv
VNNI_CASES = [
    # x shape (NHWC), w shape, conv attrs, bias, per-channel, x dtype, out dtype
    ((1, 7, 6, 8), (32, 8, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    # C = 3 (not a multiple of 4: RGB stem), O = 16, stride 2
    ((1, 20, 18, 3), (16, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), True, True, "int8", "int8"),
    # C = 5, O = 24 (not a multiple of 16)
    ((1, 9, 8, 5), (24, 5, 3, 3), dict(pads=[1, 1, 1, 1]), True, False, "int8", "uint8"),
    # uint8, asymmetric pads, stride (2, 1), dilation (1, 2), no bias, per-tensor
    ((2, 9, 8, 4), (16, 4, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), False, False,
     "uint8", "uint8"),
    # O = 8 < 16, 1x1 stride 2, uint8
    ((2, 7, 9, 8), (8, 8, 1, 1), dict(strides=[2, 2]), False, True, "uint8", "int8"),
    # C = 12, O = 20, dilation 2, asymmetric pads, per-channel, bias
    ((1, 9, 10, 12), (20, 12, 3, 3), dict(pads=[2, 0, 1, 2], dilations=[2, 2]), True, True, "int8", "int8"),
    # C = 6, O = 33, stride 2 and pads wider on one side
    ((1, 11, 7, 6), (33, 6, 3, 3), dict(strides=[2, 2], pads=[1, 2, 0, 1]), True, False, "uint8", "uint8"),
]


@pytest.mark.skipif(not HAS_VNNI, reason="host lacks avx512_vnni")
@pytest.mark.parametrize("case", range(len(VNNI_CASES)))
def test_qconv2d_nhwc_vnni_exact(case):
    lib = _check_qconv(VNNI_CASES[case], HOST, "qconv2d_int8_nhwc_vnni")
    if case == 0:
        assert "vpdpbusd" in lib.mod.inspect_source("asm")


# ------------------------------------------------------------------ depthwise NHWC conv
DW_CASES = [
    # x shape (NHWC), w shape [C, 1, KH, KW], conv attrs (group = C), bias, per-channel, x dtype, out dtype
    ((1, 13, 12, 8), (8, 1, 3, 3), dict(group=8, pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    # C = 6 (not a multiple of 16 or 4), stride 2, asymmetric pads, uint8
    ((2, 11, 10, 6), (6, 1, 3, 3), dict(group=6, strides=[2, 2], pads=[0, 1, 1, 1]), False, False,
     "uint8", "uint8"),
    # C = 24 (not a multiple of 16), 5x3 kernel, stride (1, 2), dilation (2, 1)
    ((1, 9, 30, 24), (24, 1, 5, 3), dict(group=24, strides=[1, 2], pads=[2, 1, 2, 1], dilations=[2, 1]), True,
     False, "int8", "uint8"),
    # C = 16, stride 2, uint8 in, int8 out
    ((1, 7, 7, 16), (16, 1, 3, 3), dict(group=16, strides=[2, 2], pads=[1, 1, 1, 1]), True, True, "uint8", "int8"),
    # C = 3 (one lane), dilation 2 both ways, odd width
    ((2, 8, 11, 3), (3, 1, 3, 3), dict(group=3, pads=[2, 2, 2, 2], dilations=[2, 2]), True, True, "uint8", "uint8"),
]


@pytest.mark.parametrize("case", range(len(DW_CASES)))
def test_dwconv2d_nhwc_x86_exact(case):
    _check_qconv(DW_CASES[case], HOST, "qconv2d_dw_int8_nhwc")


def test_dwconv2d_nhwc_on_plain_x86():
    _check_qconv(DW_CASES[1], PLAIN_X86, "qconv2d_dw_int8_nhwc")


# ------------------------------------------------------------------ generic NHWC conv
GENERIC_CASES = [
    # group 3 (neither dense nor depthwise): generic even on VNNI targets
    ("group3", ((1, 7, 6, 6), (9, 2, 3, 3), dict(group=3, pads=[1, 1, 1, 1]), True, True, "int8", "int8")),
    # depthwise with a channel multiplier (O = 2C): not the depthwise kernel
    ("dw_mult2", ((1, 6, 5, 4), (8, 1, 3, 3), dict(group=4, strides=[2, 1], pads=[1, 0, 1, 1]), False, True,
                  "uint8", "uint8")),
]


@pytest.mark.parametrize("label,case", GENERIC_CASES, ids=[c[0] for c in GENERIC_CASES])
def test_qconv2d_nhwc_generic_grouped(label, case):
    target = HOST
    _check_qconv(case, target, "qconv2d_nhwc_generic")


@pytest.mark.parametrize("case", [
    ((1, 9, 8, 5), (12, 5, 3, 3), dict(strides=[2, 2], pads=[1, 0, 2, 1], dilations=[1, 2]), True, True,
     "int8", "int8"),
    ((2, 6, 7, 8), (16, 8, 1, 1), dict(), False, False, "uint8", "uint8"),
])
def test_qconv2d_nhwc_generic_group1_without_vnni(case):
    # Target({"kind": "llvm"}) has no avx512_vnni: the VNNI kernels are out, and a dense conv is not
    # depthwise, so the generic NHWC kernel serves it.
    _check_qconv(case, PLAIN_X86, "qconv2d_nhwc_generic")


# ------------------------------------------------------------------ NHWC pools
@pytest.mark.parametrize("xs,xdt,per_ch", [((2, 5, 3, 4), "uint8", False), ((1, 4, 4, 20), "int8", False),
                                           ((1, 3, 6, 16), "int8", True)])
def test_qglobal_avg_pool2d_nhwc(xs, xdt, per_ch):
    x = _codes(xs, xdt)
    zx = -4 if xdt == "int8" else 100
    attrs = dict(layout="NHWC", **_requant(xs[3] if per_ch else 1, xdt, zx, shift=(12, 16)))
    ref = _reference("qglobal_avg_pool2d", [x], attrs)
    assert ref.shape == (xs[0], 1, 1, xs[3]) and ref.std() > 0
    out_type = (ref.shape, xdt)
    f, lib, args = build("qglobal_avg_pool2d", attrs, [x], out_type, HOST,
                         "qglobal_avg_pool2d_nhwc_generic")
    np.testing.assert_array_equal(execute(f, lib, args, out_type), ref)


@pytest.mark.parametrize("xs,xdt,kernel,strides,pads", [
    ((1, 7, 6, 3), "int8", [3, 2], [2, 2], [1, 0, 1, 1]),
    ((2, 6, 6, 16), "uint8", [2, 2], [2, 2], [0, 0, 0, 0]),
    ((1, 5, 9, 5), "int8", [3, 3], [1, 2], [1, 1, 1, 2]),
])
def test_qavg_pool2d_nhwc(xs, xdt, kernel, strides, pads):
    x = _codes(xs, xdt)
    N, H, W, C = xs
    oh = (H + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    ow = (W + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    # per-cell (multiplier, shift) maps, like qdq_rewrites builds from the divisors
    mm = RNG.integers(1 << 30, (1 << 31) - 1, (oh, ow)).astype("int32")
    sm = RNG.integers(31, 35, (oh, ow)).astype("int32")
    lo, hi = _out_range(xdt)
    attrs = dict(kernel=kernel, strides=strides, pads=pads, x_zero_point=-3 if xdt == "int8" else 120,
                 y_zero_point=1, out_min=lo, out_max=hi, out_dtype=xdt, layout="NHWC")
    ref = _reference("qavg_pool2d", [x, mm, sm], attrs)
    assert ref.shape == (N, oh, ow, C) and ref.std() > 0
    out_type = (ref.shape, xdt)
    f, lib, args = build("qavg_pool2d", attrs, [x, mm, sm], out_type, HOST,
                         "qavg_pool2d_nhwc_generic")
    np.testing.assert_array_equal(execute(f, lib, args, out_type), ref)


# ------------------------------------------------------------------ selection by layout
def _conv_types(layout, C=8, O=16, group=1):
    x = ((1, 7, 6, C), "int8") if layout == "NHWC" else ((1, C, 7, 6), "int8")
    w = ((O, C // group, 3, 3), "int8")
    out = ((1, 7, 6, O), "int8") if layout == "NHWC" else ((1, O, 7, 6), "int8")
    attrs = dict(pads=[1, 1, 1, 1], group=group, multiplier=[1 << 30], shift=[20], layout=layout)
    return attrs, [x, w], out


TARGETS = {"znver4": ZNVER4, "llvm": PLAIN_X86, "aarch64": AARCH64, "aarch64-dotprod": AARCH64_DOT}


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("group", [1, 2, 8])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_applicable_kernels_match_the_layout(target, group, layout):
    attrs, in_types, out = _conv_types(layout, group=group, O=8 if group == 8 else 16)
    found = applicable("qconv2d", attrs, in_types, out, TARGETS[target])
    assert found, (target, group, layout)
    assert all(layout in k.layouts for k in found), [(k.name, k.layouts) for k in found]
    assert found[-1].name == f"qconv2d_{layout.lower()}_generic"   # the fallback is always there


def test_selection_per_layout_and_target():
    def pick(layout, target, **kw):
        attrs, in_types, out = _conv_types(layout, **kw)
        return select_kernel("qconv2d", attrs, in_types, out, target)[0].name

    assert pick("NHWC", ZNVER4) == "qconv2d_int8_nhwc_vnni"
    assert pick("NCHW", ZNVER4) == "qconv2d_int8_nchw_vnni"
    assert pick("NHWC", PLAIN_X86) == "qconv2d_nhwc_generic"
    assert pick("NHWC", ZNVER4, group=8, O=8) == "qconv2d_dw_int8_nhwc"
    assert pick("NHWC", PLAIN_X86, group=8, O=8) == "qconv2d_dw_int8_nhwc"
    assert pick("NCHW", ZNVER4, group=8, O=8) == "qconv2d_dw_int8_nchw_x86"
    assert pick("NHWC", ZNVER4, group=2) == "qconv2d_nhwc_generic"
    # the sdot conv has an NHWC variant; plain NEON gets the generic NHWC kernel
    assert pick("NHWC", AARCH64_DOT) == "qconv2d_int8_nhwc_sdot"
    assert pick("NCHW", AARCH64_DOT) == "qconv2d_int8_nchw_sdot"
    assert pick("NHWC", AARCH64) == "qconv2d_nhwc_generic"
    assert pick("NHWC", AARCH64, group=8, O=8) == "qconv2d_dw_int8_nhwc"
    # the VNNI NHWC kernel needs a constant weight, like the NCHW one
    attrs, in_types, out = _conv_types("NHWC")
    assert select_kernel("qconv2d", attrs, in_types, out, ZNVER4, constants={})[0].name == "qconv2d_nhwc_generic"


def test_nhwc_pools_never_get_an_nchw_kernel():
    x = ((2, 5, 4, 6), "int8")
    for target in (ZNVER4, PLAIN_X86, AARCH64):
        gap = applicable("qglobal_avg_pool2d", dict(layout="NHWC", multiplier=[1 << 30], shift=[20]), [x],
                         ((2, 1, 1, 6), "int8"), target)
        assert [k.name for k in gap] == ["qglobal_avg_pool2d_nhwc_generic"]
        avg = applicable("qavg_pool2d", dict(layout="NHWC", kernel=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]),
                         [x, ((2, 3), "int32"), ((2, 3), "int32")], ((2, 2, 2, 6), "int8"), target)
        assert [k.name for k in avg] == ["qavg_pool2d_nhwc_generic"]
        # and an NCHW pool never gets an NHWC kernel
        gap = applicable("qglobal_avg_pool2d", dict(multiplier=[1 << 30], shift=[20]), [((2, 6, 5, 4), "int8")],
                         ((2, 6, 1, 1), "int8"), target)
        assert gap and all("NCHW" in k.layouts for k in gap)


def test_no_nhwc_kernel_means_no_kernel():
    """An op without an NHWC kernel (qlinear, requantize) asked for NHWC: nothing is applicable, and
    select_kernel says so instead of returning an NCHW kernel."""
    attrs = dict(x_zero_point=0, multiplier=[1 << 30], shift=[20], layout="NHWC")
    assert applicable("qlinear", attrs, [((2, 8), "int8"), ((4, 8), "int8")], ((2, 4), "int8"), ZNVER4) == []
    with pytest.raises(NotImplementedError, match="qlinear"):
        select_kernel("qlinear", attrs, [((2, 8), "int8"), ((4, 8), "int8")], ((2, 4), "int8"), ZNVER4)
    with pytest.raises(NotImplementedError, match="requantize"):
        select_kernel("requantize", attrs, [((1, 3, 4, 5), "int8")], ((1, 3, 4, 5), "int8"), PLAIN_X86)


def test_registry_nhwc_kernels_are_for_layout_ops():
    table = kernels()
    nhwc = {k.name for ks in table.values() for k in ks if "NHWC" in k.layouts}
    assert {"qconv2d_int8_nhwc_vnni", "qconv2d_dw_int8_nhwc", "qconv2d_nhwc_generic",
            "qglobal_avg_pool2d_nhwc_generic", "qavg_pool2d_nhwc_generic"} <= nhwc
    for op, ks in table.items():
        for k in ks:
            assert set(k.layouts) <= {"NCHW", "NHWC"}, k.name
            if "NHWC" in k.layouts:
                assert op in LAYOUT_OPS, k.name
                # a generic NHWC fallback exists for the op on every CPU target
                assert any(g.requires <= {"cpu"} and "NHWC" in g.layouts for g in ks), op


def test_preferred_layouts():
    assert preferred_layouts(ZNVER4) == {"qconv2d": "NHWC"}
    assert preferred_layouts(Target.from_tvm({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mattr": ["+avx512f", "+avx512vnni"]})) == \
        {"qconv2d": "NHWC"}
    assert preferred_layouts(Target.from_tvm({"kind": "llvm", "mcpu": "znver4", "mattr": ["-avx512vnni"]})) == {}
    assert preferred_layouts(PLAIN_X86) == {}
    assert preferred_layouts(AARCH64) == {}
    assert preferred_layouts(AARCH64_DOT) == {"qconv2d": "NHWC"}
    assert preferred_layouts(CUDA) == {}


# ------------------------------------------------------------------ Relax lowering of NHWC layout ops
def test_nhwc_max_pool2d_and_channel_shuffle_lowering(tmp_path):
    """max_pool2d / channel_shuffle have no schedules kernel: the Relax lowering builds them from
    TE/Relax ops, NHWC included. Compiled graph vs the reference interpreter, bit for bit."""
    from yuan import runtime
    from yuan.compiler.build import compile_graph
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
    feed = {"xi": _codes((2, 7, 6, 6), "int8"), "xf": RNG.standard_normal((1, 5, 8, 9)).astype("float32")}
    got, ref = pred.run(feed), run_graph(g, feed)
    for name in outs:
        assert got[name].shape == ref[name].shape and got[name].dtype == ref[name].dtype, name
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def test_planned_int8_graph_compiles_bit_exact(tmp_path):
    """A small int8 graph through compile_graph("x86"): for a VNNI target (x86 = the host CPU) it is planned NHWC (conv,
    depthwise conv, pools, shuffle, qadd in the region) and must still equal the reference."""
    from yuan import runtime
    from yuan.compiler.build import compile_graph, optimize
    g = Graph("planned")
    x = g.add_input("x", (1, 3, 12, 10), "int8")

    def qconv(inp, O, k, name, group=1, stride=1):
        C = g.values[inp].shape[1]
        w = g.add_constant(f"{name}_w", RNG.integers(-127, 128, (O, C // group, k, k)).astype("int8"))
        b = g.add_constant(f"{name}_b", RNG.integers(-2000, 2000, O).astype("int32"))
        attrs = dict(strides=[stride, stride], pads=[k // 2] * 4, group=group,
                     **_requant(O, "int8", -5, shift=(14, 17)))
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
    from yuan.compiler.ir import Graph
    from yuan.compiler.relax import LoweringError, lower_graph
    g = Graph("nhwc_cuda")
    g.add_input("x", (1, 6, 6, 8), "int8")
    w = g.add_constant("w", np.ones((8, 8, 3, 3), np.int8))
    attrs = dict(pads=[1, 1, 1, 1], x_zero_point=0, multiplier=[1 << 30], shift=[12], y_zero_point=0,
                 out_min=-128, out_max=127, out_dtype="int8", layout="NHWC")
    g.mark_output(g.add_node("qconv2d", ["x", w], attrs, name="conv7").outputs[0])
    with pytest.raises(LoweringError, match=r"node 'conv7' \(qconv2d\).*no kernel.*layout NHWC.*cuda"):
        lower_graph(g, CUDA)
