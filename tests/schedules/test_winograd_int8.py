"""The exact int8 Winograd F(2x2, 3x3) (schedules/winograd_int8.py and its x86-avx2 / aarch64 kernels):
its fp32 bound is the true maximum, it is bit-exact against the NumPy integer reference on x86-avx2 (run
here) and on aarch64 NEON (run under qemu -cpu cortex-a53), on odd shapes (odd H / W, asymmetric pads,
C above the flush block, uint8, NHWC, no bias, a fused residual add) and on a worst case built so that the
fp32 sums pass 2^24: there the same kernel without flushing really rounds and differs."""
import itertools

import numpy as np
import pytest

from yuan.compiler.ir import Graph
from yuan.compiler.targets import resolve_target
from yuan.schedules import select_kernel
from yuan.schedules.aarch64_winograd_int8 import NEON_WINOGRAD
from yuan.schedules.winograd_int8 import (FP32_EXACT, WinogradInt8Conv, element_bounds, element_grains, flush_classes,
                                          input_bound, int_matrices, per_channel_bound)
from yuan.schedules.x86_avx2_winograd_int8 import AVX2_WINOGRAD
from tests.schedules.conftest import (AARCH64, AARCH64_DOT, HOST, ZNVER4, check_qconv, compile_kernel, execute,
                                      int_codes, ref_integer_op, ref_qconv, requant_attrs, run_graph_on_arm)

RNG = np.random.default_rng(23)
AVX2 = resolve_target("x86-avx2")
needs_avx2 = pytest.mark.skipif("avx2" not in HOST.features or "fma" not in HOST.features, reason="host lacks avx2")
SHIFT = (39, 42)   # full-range sums of ~20 channels land inside the output range (few clipped outputs)


def test_bounds_are_the_true_maxima():
    """element_bounds(128)[e] = max |U[e]| * max |V[e]| found by enumerating the extreme codes (U and V are
    linear, so their extremes are at the corners), every U[e] a multiple of element_grains()[e]; each flush
    class keeps K * bound within grain * 2^24 but not K + 1 (centre 28, edges 85, corners 256); the staged
    d' = x - m is within D = 128 for int8 and uint8 at any zero point in range (padding included)."""
    _, G2, BT = int_matrices()
    corners_w = np.array(list(itertools.product((-128, 128), repeat=9))).reshape(-1, 3, 3)   # |w| <= 128
    u = np.einsum("ik,nkl,jl->nij", G2, corners_w, G2).reshape(-1, 16)
    corners_d = np.array(list(itertools.product((-128, 128), repeat=16))).reshape(-1, 4, 4)
    v_max = np.abs(np.einsum("ik,nkl,jl->nij", BT, corners_d, BT)).max(axis=0).reshape(16)
    assert np.array_equal(np.abs(u).max(axis=0) * v_max, element_bounds(128))
    assert per_channel_bound(128) == 1152 * 512
    grains = element_grains()
    u = np.einsum("ik,nkl,jl->nij", G2, int_codes(RNG, (200, 3, 3), "int8").astype(np.int64), G2).reshape(-1, 16)
    assert all((u[:, e] % grains[e] == 0).all() and grains[e] & (grains[e] - 1) == 0 for e in range(16))
    classes = flush_classes(1000, 128)
    assert sorted(e for fc in classes for e in fc.elements) == list(range(16))
    assert [fc.K for fc in classes] == [28, 77, 250]   # k_max 28, 85, 256: 1000 channels in 36, 13, 4 blocks
    for fc in classes:
        bound, grain = max(element_bounds(128)[list(fc.elements)]), grains[fc.elements[0]]
        k_max = FP32_EXACT * grain // bound
        assert fc.K <= k_max and (k_max + 1) * bound > FP32_EXACT * grain and fc.channels >= 1000
    assert {input_bound("int8", z) for z in (-128, 0, 127)} == {input_bound("uint8", z) for z in (0, 131, 255)} \
        == {128}


def _case(xs, ws, cattrs, xdt, bias=True, per_channel=True, layout="NCHW", shift=SHIFT):
    x = int_codes(RNG, xs, xdt)
    w = int_codes(RNG, ws, "int8")
    b = RNG.integers(-5000, 5000, ws[0]).astype("int32") if bias else None
    attrs = dict(cattrs, layout=layout, **requant_attrs(RNG, ws[0] if per_channel else 1, "int8",
                                                      -7 if xdt == "int8" else 131, shift))
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x, w, b, attrs


def _worst_case(C=72, O=16, H=6, W=9):
    """int8 x with zero point -128 (staged d' = x, -128 in the padding): channels 0..31 all 127 with w = -127,
    40..71 all 127 with w = +127 (they cancel), 32..39 small random codes and weights; 15 tiles. The first
    channels drive the centre transform entry to -32 * 1143 * 508 < -2^24; the small channels then add odd
    products that fp32 rounds unless the sum is flushed first. Output scale 1/2, so a rounding error shows in
    the codes."""
    x = np.full((1, C, H, W), 127, np.int8)
    w = np.zeros((O, C, 3, 3), np.int8)
    w[:, :32], w[:, 40:] = -127, 127
    x[:, 32:40] = RNG.integers(-128, -121, (1, 8, H, W))
    w[:, 32:40] = RNG.integers(-3, 4, (O, 8, 3, 3))
    attrs = dict(pads=[1, 1, 1, 1], x_zero_point=-128, multiplier=[1 << 30], shift=[31], y_zero_point=0,
                 out_min=-128, out_max=127, out_dtype="int8")
    return x, w, None, attrs


def _corner_case(C=256, O=16, H=8, W=8, out_dtype="int32"):
    """The corner elements at their flush bound: d' = x in a pattern that puts the 4 corner taps of every tile
    at -128 / 127 with opposite signs (|V| = 510), w = -128 on tap (0, 0) (U = 4 w = -512), so a corner block
    of 256 channels sums to 256 * 261 120 < 2^26, exact only because every product is a multiple of 4
    (element_grains); 1 of 8 output channels gets random weights. int32 output at scale 1: any rounding
    shows; int8 (graphs): scale 2^-17 around the pattern's mean."""
    r = np.arange(H)[:, None] + 1
    c = np.arange(W)[None, :] + 1
    x = np.broadcast_to(np.where((r // 2 + c // 2) % 2 == 0, -128, 127), (1, C, H, W)).astype(np.int8)
    w = np.zeros((O, C, 3, 3), np.int8)
    w[:, :, 0, 0] = -128
    w[::8] = RNG.integers(-128, 128, (O // 8, C, 3, 3))
    b = RNG.integers(-5000, 5000, O).astype("int32")
    attrs = dict(pads=[1, 1, 1, 1], x_zero_point=-128, multiplier=[1 << 30], shift=[30], y_zero_point=0,
                 out_min=-2 ** 31, out_max=2 ** 31 - 1, out_dtype="int32")
    if out_dtype == "int8":
        b += 128 * 255 * C // 2
        attrs.update(shift=[47], out_min=-128, out_max=127, out_dtype="int8")
    return x, w, b, attrs


def _run(conv, x, w, b, attrs, target):
    """The instance's kernel (whatever its `wins` rule says) built, compiled for target and run here."""
    in_types = [(x.shape, str(x.dtype)), (w.shape, "int8")] + ([(b.shape, "int32")] if b is not None else [])
    ref = ref_qconv(x, w, b, attrs)
    out_type = (ref.shape, str(ref.dtype))
    f = conv.build(attrs, in_types, out_type, attrs.get("layout") == "NHWC")
    plan = conv.prepare(attrs, in_types, [None, w, b][:len(in_types)])
    args = [(x, w, b)[p] if isinstance(p, int) else p for p in plan]
    return execute(f, compile_kernel(f, target), args, out_type), ref


X86_CASES = [
    # odd H / W, C = 40 > K = 14 (3 flush blocks), O not a multiple of 16
    dict(xs=(1, 40, 9, 7), ws=(24, 40, 3, 3), cattrs=dict(pads=[1, 1, 1, 1]), xdt="int8", shift=(41, 44)),
    # uint8 (zx 131: K = 27), C = 70 (3 blocks), NHWC, asymmetric pads, no bias, per-tensor, batch 2
    dict(xs=(2, 70, 6, 11), ws=(20, 70, 3, 3), cattrs=dict(pads=[0, 2, 1, 0]), xdt="uint8", bias=False,
         per_channel=False, layout="NHWC", shift=(41, 44)),
]


@needs_avx2
@pytest.mark.parametrize("case", range(len(X86_CASES)))
def test_avx2_winograd_exact(case):
    got, ref = _run(AVX2_WINOGRAD, *_case(**X86_CASES[case]), AVX2)
    assert ref.std() > 0 and np.mean(np.abs(ref.astype(int)) >= 120) < 0.5, "weak check: mostly clipped"
    np.testing.assert_array_equal(got, ref)


@needs_avx2
def test_avx2_worst_case_needs_the_flush():
    """Flushed every K channels the worst case is exact; the same kernel summing all 72 channels in fp32
    (K = C) rounds above 2^24 and differs."""
    x, w, b, attrs = _worst_case()
    got, ref = _run(AVX2_WINOGRAD, x, w, b, attrs, AVX2)
    assert ref.std() > 0 and np.mean(np.abs(ref.astype(int)) >= 127) < 0.2
    np.testing.assert_array_equal(got, ref)
    unflushed = WinogradInt8Conv("unflushed", AVX2_WINOGRAD.tiles, AVX2_WINOGRAD.wins, block_limit=x.shape[1])
    bad, _ = _run(unflushed, x, w, b, attrs, AVX2)
    assert not np.array_equal(bad, ref), "the unflushed fp32 sums should round on this input"


@needs_avx2
def test_avx2_corners_at_their_bound():
    """256 channels in one corner block (sums up to 2^26, multiples of 4): exact at scale 1."""
    got, ref = _run(AVX2_WINOGRAD, *_corner_case(), AVX2)
    assert len(np.unique(ref)) > 10
    np.testing.assert_array_equal(got, ref)


@needs_avx2
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_avx2_winograd_through_the_registry(layout, monkeypatch):
    """Selected (its rule forced on), planned by kernel_inputs, compiled for x86-avx2: bit-exact."""
    monkeypatch.setattr(AVX2_WINOGRAD, "wins", lambda *a: True)
    x, w, b, attrs = _case((1, 64, 7, 5), (64, 64, 3, 3), dict(pads=[1, 1, 1, 1]), "int8", layout=layout,
                           shift=(42, 45))
    check_qconv(x, w, b, attrs, AVX2, f"qconv2d_int8_{layout.lower()}_winograd_avx2")


def test_selection_rules():
    """aarch64 (no dotprod) picks Winograd for a 64-channel 3x3 stride-1 conv, not for narrow, strided or
    dilated ones; x86-avx2 only for wide convs on mid-size maps (x86_avx2_winograd_int8.py); VNNI and
    dotprod targets keep their dot-product kernels."""
    x, w, b, attrs = _case((1, 64, 7, 5), (64, 64, 3, 3), dict(pads=[1, 1, 1, 1]), "int8")
    types = [(x.shape, "int8"), (w.shape, "int8"), (b.shape, "int32")]

    def pick(target, a=attrs, t=types):
        return select_kernel("qconv2d", a, t, (x.shape, "int8"), target)[0].name
    assert pick(AARCH64) == "qconv2d_int8_nchw_winograd_neon"
    assert pick(AARCH64_DOT).endswith("_sdot") and pick(ZNVER4).endswith("_vnni")
    assert pick(AVX2) == "qconv2d_int8_nchw_avx2"   # 64 channels on a small map: direct
    wide = [((1, 128, 28, 28), "int8"), ((128, 128, 3, 3), "int8"), ((128,), "int32")]
    assert select_kernel("qconv2d", attrs, wide, ((1, 128, 28, 28), "int8"), AVX2)[0].name \
        == "qconv2d_int8_nchw_winograd_avx2"
    for other in (dict(attrs, strides=[2, 2]), dict(attrs, dilations=[2, 2])):
        assert "winograd" not in pick(AARCH64, other)
    for c in (8, 16):   # the transforms outweigh narrow GEMMs (aarch64_winograd_int8.py)
        narrow = [((1, c, 7, 5), "int8"), ((64, c, 3, 3), "int8"), ((64,), "int32")]
        assert "winograd" not in pick(AARCH64, attrs, narrow)
    # a 1x1 output map: one 2x2 tile costs 16 multiplies against the direct conv's 9
    tiny = [((1, 64, 1, 1), "int8"), ((64, 64, 3, 3), "int8"), ((64,), "int32")]
    assert "winograd" not in select_kernel("qconv2d", attrs, tiny, ((1, 64, 1, 1), "int8"), AARCH64)[0].name


def test_neon_winograd_runs_bit_exact_on_cortex_a53(arm64_root, tmp_path):
    """One graph compiled for "aarch64" (layout planning keeps it NHWC): a random full-range conv chained
    into a second one whose output feeds a qadd (fused into the conv), and the worst case; run under qemu."""
    g = Graph("winograd_int8")
    x1, w1, b1, a1 = _case((1, 36, 7, 9), (32, 36, 3, 3), dict(pads=[1, 1, 1, 1]), "uint8")
    w2 = int_codes(RNG, (32, 32, 3, 3), "int8")
    a2 = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 32, "int8", 3, (40, 43)))
    aq = dict(a_zero_point=3, b_zero_point=-1, a_multiplier=1 << 30, b_multiplier=3 << 28, shift=31,
              y_zero_point=2, out_min=-128, out_max=127, out_dtype="int8")
    i1 = g.add_input("x1", x1.shape, "uint8")
    y1 = g.add_node("qconv2d", [i1, g.add_constant("w1", w1), g.add_constant("b1", b1)], a1).outputs[0]
    y2 = g.add_node("qconv2d", [y1, g.add_constant("w2", w2)], a2).outputs[0]
    g.mark_output(g.add_node("qadd", [y2, y1], aq).outputs[0])
    r1 = ref_qconv(x1, w1, b1, a1)
    expected = [ref_integer_op("qadd", [ref_qconv(r1, w2, None, a2), r1], aq)]
    xw, ww, _, aw = _worst_case()
    i2 = g.add_input("xw", xw.shape, "int8")
    g.mark_output(g.add_node("qconv2d", [i2, g.add_constant("ww", ww)], aw).outputs[0])
    expected.append(ref_qconv(xw, ww, None, aw))
    xc, wc, bc, ac = _corner_case(C=512, out_dtype="int8")   # 2 corner blocks of 256, 19 centre blocks of 28
    i3 = g.add_input("xc", xc.shape, "int8")
    g.mark_output(g.add_node("qconv2d", [i3, g.add_constant("wc", wc), g.add_constant("bc", bc)], ac).outputs[0])
    expected.append(ref_qconv(xc, wc, bc, ac))

    kernels, outputs = run_graph_on_arm(g, [x1, xw, xc], tmp_path / "winograd_int8.so", arm64_root)
    convs = [k for k in kernels if k.startswith("qconv2d")]
    assert len(convs) == 4 and all(k.startswith("qconv2d_int8_nhwc_winograd_neon") for k in convs), kernels
    assert not any(k.startswith("qadd") for k in kernels), kernels   # the qadd ran in the second conv
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert want.std() > 0 and np.mean(np.abs(want.astype(int)) >= 127) < 0.5, f"output {i}: weak check"
        np.testing.assert_array_equal(got, want, err_msg=f"output {i}")
    assert NEON_WINOGRAD.enabled
