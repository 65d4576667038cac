"""The int8 conv without VNNI (schedules/x86_avx2_int8.py, vpmaddwd): selected on x86-avx2 / x86-avx512,
bit-exact against the NumPy reference in both layouts, on odd shapes and on the worst-case codes where a
vpmaddubsw kernel's int16 pair sums would saturate."""
import numpy as np
import pytest

from yuan.compiler.targets import resolve_target
from tests.schedules.conftest import HAS_AVX512, HOST, check_qconv, nhwc_case, qconv_inputs, requant_attrs

RNG = np.random.default_rng(7)
AVX2 = resolve_target("x86-avx2")
AVX512 = resolve_target("x86-avx512")
needs_avx2 = pytest.mark.skipif("avx2" not in HOST.features, reason="host lacks avx2")
needs_avx512 = pytest.mark.skipif(not HAS_AVX512, reason="host lacks avx512")

CASES = [
    # x shape (NCHW), w shape, conv attrs, bias, per-channel, x dtype, out dtype
    ((1, 8, 7, 6), (32, 8, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    # RGB stem: C = 3, O not a multiple of 8, stride 2
    ((1, 3, 20, 18), (20, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), True, True, "uint8", "int8"),
    # 1x1 on a 7x7 map, O = 33
    ((1, 12, 7, 7), (33, 12, 1, 1), dict(), False, False, "int8", "uint8"),
    # dilation 2, asymmetric pads, batch 2
    ((2, 6, 9, 10), (16, 6, 3, 3), dict(pads=[2, 0, 1, 2], dilations=[2, 2]), True, False, "uint8", "uint8"),
]


@needs_avx2
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_avx2_conv_exact(case, layout):
    nhwc = layout == "NHWC"
    x, w, b, attrs = qconv_inputs(RNG, nhwc_case(CASES[case]) if nhwc else CASES[case])
    lib = check_qconv(x, w, b, dict(attrs, layout=layout), AVX2, f"qconv2d_int8_{layout.lower()}_avx2")
    if case == 0:
        asm = lib.mod.inspect_source("asm")
        assert "vpmaddwd" in asm and "ymm" in asm and "zmm" not in asm


@needs_avx512
@pytest.mark.parametrize("case", [0, 2])
def test_avx512_without_vnni_conv_exact(case):
    x, w, b, attrs = qconv_inputs(RNG, nhwc_case(CASES[case]))
    lib = check_qconv(x, w, b, dict(attrs, layout="NHWC"), AVX512, "qconv2d_int8_nhwc_avx512bw")
    assert "vpmaddwd" in lib.mod.inspect_source("asm")


@needs_avx2
@pytest.mark.parametrize("xdt, xv, wv", [("uint8", 255, -128), ("uint8", 255, 127), ("int8", -128, -128),
                                         ("int8", 127, 127), ("int8", -128, 127)])
def test_avx2_conv_worst_case_codes(xdt, xv, wv):
    """Every input and weight at an extreme: pair sums up to 2 x 255 x 128 = 65280 in magnitude, and
    2 x (-128)^2 = 32768 for int8 (a saturating int16 pair sum, vpmaddubsw's, clips them to 32767);
    3x3x64 taps; the requantize shift keeps the large accumulators mostly off the clip bounds."""
    x = np.full((1, 64, 5, 5), xv, xdt)
    w = np.full((16, 64, 3, 3), wv, "int8")
    w[1::2, ::3] = -wv - 1 if wv < 0 else -wv   # mixed signs, still extreme
    attrs = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 16, "int8", 0, shift=(48, 50), y_zero_point=0))
    check_qconv(x, w, None, attrs, AVX2, "qconv2d_int8_nchw_avx2")


def test_priorities_keep_vnni_first():
    from yuan.schedules import applicable
    in_types = [((1, 8, 7, 7), "int8"), ((16, 8, 3, 3), "int8")]
    attrs = dict(pads=[1, 1, 1, 1], multiplier=[1 << 30], shift=[31], x_zero_point=0, y_zero_point=0)
    out = ((1, 16, 7, 7), "int8")
    names = {t: [k.name for k in applicable("qconv2d", attrs, in_types, out, resolve_target(t))]
             for t in ("x86-avx2", "x86-avx512", "x86-avx512-vnni")}
    assert names["x86-avx2"][0] == "qconv2d_int8_nchw_avx2"
    assert names["x86-avx512"][0] == "qconv2d_int8_nchw_avx512bw"
    assert names["x86-avx512-vnni"][0] == "qconv2d_int8_nchw_vnni"


@needs_avx2
def test_avx2_graph_planned_nhwc_bit_exact(tmp_path):
    """compile_graph for x86-avx2 plans qconv2d channels-last (registry.preferred_layouts) and picks the AVX2
    conv; a conv chain with a residual qadd equals the IR's reference interpreter bit for bit."""
    import json
    from yuan import runtime
    from yuan.compiler.build import compile_graph, sidecar_path
    from yuan.compiler.ir import Graph, run_graph
    g = Graph("avx2")
    x = g.add_input("x", (1, 3, 14, 12), "int8")

    def qconv(inp, O, k, name, stride=1):
        C = g.values[inp].shape[1]
        w = g.add_constant(f"{name}_w", RNG.integers(-128, 128, (O, C, k, k)).astype("int8"))
        b = g.add_constant(f"{name}_b", RNG.integers(-2000, 2000, O).astype("int32"))
        attrs = dict(strides=[stride, stride], pads=[k // 2] * 4, **requant_attrs(RNG, O, "int8", -5, shift=(14, 17)))
        return g.add_node("qconv2d", [inp, w, b], attrs, name=name).outputs[0]

    stem = qconv(x, 20, 3, "stem", stride=2)
    body = qconv(qconv(stem, 20, 3, "c1"), 20, 1, "c2")
    add = g.add_node("qadd", [body, stem], dict(a_zero_point=3, b_zero_point=3, a_multiplier=1 << 29,
                                                b_multiplier=3 << 28, shift=31, y_zero_point=-1, out_min=-128,
                                                out_max=127, out_dtype="int8")).outputs[0]
    g.mark_output(add)
    lib = compile_graph(g, "x86-avx2", str(tmp_path / "avx2.so"))
    kernels = json.dumps(json.load(open(sidecar_path(lib)))["kernels"])
    assert "qconv2d_int8_nhwc_avx2" in kernels, kernels
    pred = runtime.load(lib)
    for seed in (1, 2):
        feed = {"x": np.random.default_rng(seed).integers(-128, 128, (1, 3, 14, 12)).astype("int8")}
        got, ref = pred.run(feed)[add], run_graph(g, feed)[add]
        assert ref.std() > 0
        np.testing.assert_array_equal(got, ref)
