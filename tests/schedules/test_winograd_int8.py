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
from yuan.schedules.winograd_int8 import FP32_EXACT, WinogradInt8Conv, flush_block, int_matrices, per_channel_bound
from yuan.schedules.x86_avx2_winograd_int8 import AVX2_WINOGRAD
from tests.schedules.conftest import (AARCH64, AARCH64_DOT, HOST, ZNVER4, check_qconv, compile_kernel, execute,
                                      int_codes, ref_integer_op, ref_qconv, requant_attrs, run_graph_on_arm)

RNG = np.random.default_rng(23)
AVX2 = resolve_target("x86-avx2")
needs_avx2 = pytest.mark.skipif("avx2" not in HOST.features or "fma" not in HOST.features, reason="host lacks avx2")
SHIFT = (39, 42)   # full-range sums of ~20 channels land inside the output range (few clipped outputs)


def test_bound_is_the_true_maximum():
    """per_channel_bound(255) = max |U| * max |V| found by enumerating the extreme codes (U and V are linear,
    so their extremes are at the corners), and flush_block keeps K * bound within 2^24 but not K + 1."""
    _, G2, BT = int_matrices()
    corners_w = np.array(list(itertools.product((-128, 127), repeat=9))).reshape(-1, 3, 3)
    u_max = np.abs(np.einsum("ik,nkl,jl->nij", G2, corners_w, G2)).max(axis=0)
    corners_d = np.array(list(itertools.product((-255, 255), repeat=16))).reshape(-1, 4, 4)
    v_max = np.abs(np.einsum("ik,nkl,jl->nij", BT, corners_d, BT)).max(axis=0)
    assert (u_max * v_max).max() == per_channel_bound(255) == 1152 * 1020
    K, Cp = flush_block(1000, 255)
    k_max = FP32_EXACT // per_channel_bound(255)
    assert k_max == 14 and K <= k_max and Cp >= 1000 and Cp - 1000 < Cp // K
    assert (k_max + 1) * per_channel_bound(255) > FP32_EXACT


def _case(xs, ws, cattrs, xdt, bias=True, per_channel=True, layout="NCHW", shift=SHIFT):
    x = int_codes(RNG, xs, xdt)
    w = int_codes(RNG, ws, "int8")
    b = RNG.integers(-5000, 5000, ws[0]).astype("int32") if bias else None
    attrs = dict(cattrs, layout=layout, **requant_attrs(RNG, ws[0] if per_channel else 1, "int8",
                                                      -7 if xdt == "int8" else 131, shift))
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x, w, b, attrs


def _worst_case(C=48, O=16, H=6, W=9):
    """int8 x with zero point -128 (|x - zx| up to 255): channels 0..19 all 127 with w = -127, 28..47 all 127
    with w = +127 (they cancel), 20..27 small random codes and weights; 15 tiles, padded to 16 for the
    GEMM tile of 4. The first channels drive the middle
    transform entry to -20 * 1143 * 1020 < -2^24; the small channels then add odd products that fp32 rounds
    unless the sum is flushed first. Output scale 1/2, so a rounding error shows in the codes."""
    x = np.full((1, C, H, W), 127, np.int8)
    w = np.zeros((O, C, 3, 3), np.int8)
    w[:, :20], w[:, 28:] = -127, 127
    x[:, 20:28] = RNG.integers(-128, -121, (1, 8, H, W))
    w[:, 20:28] = RNG.integers(-3, 4, (O, 8, 3, 3))
    attrs = dict(pads=[1, 1, 1, 1], x_zero_point=-128, multiplier=[1 << 30], shift=[31], y_zero_point=0,
                 out_min=-128, out_max=127, out_dtype="int8")
    return x, w, None, attrs


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
    """Flushed every K channels the worst case is exact; the same kernel summing all 48 channels in fp32
    (K = C) rounds above 2^24 and differs."""
    x, w, b, attrs = _worst_case()
    got, ref = _run(AVX2_WINOGRAD, x, w, b, attrs, AVX2)
    assert ref.std() > 0 and np.mean(np.abs(ref.astype(int)) >= 127) < 0.2
    np.testing.assert_array_equal(got, ref)
    unflushed = WinogradInt8Conv("unflushed", AVX2_WINOGRAD.tiles, AVX2_WINOGRAD.wins, block_limit=x.shape[1])
    bad, _ = _run(unflushed, x, w, b, attrs, AVX2)
    assert not np.array_equal(bad, ref), "the unflushed fp32 sums should round on this input"


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
    narrow = [((1, 8, 7, 5), "int8"), ((64, 8, 3, 3), "int8"), ((64,), "int32")]
    assert "winograd" not in pick(AARCH64, attrs, narrow)
    # a 1x1 output map: one 2x2 tile costs 16 multiplies against the direct conv's 9
    tiny = [((1, 64, 1, 1), "int8"), ((64, 64, 3, 3), "int8"), ((64,), "int32")]
    assert "winograd" not in select_kernel("qconv2d", attrs, tiny, ((1, 64, 1, 1), "int8"), AARCH64)[0].name


def test_neon_winograd_runs_bit_exact_on_cortex_a53(arm64_root, tmp_path):
    """One graph compiled for "aarch64" (layout planning keeps it NHWC): a random full-range conv chained
    into a second one whose output feeds a qadd (fused into the conv), and the worst case; run under qemu."""
    g = Graph("winograd_int8")
    x1, w1, b1, a1 = _case((1, 20, 7, 9), (16, 20, 3, 3), dict(pads=[1, 1, 1, 1]), "uint8")
    w2 = int_codes(RNG, (16, 16, 3, 3), "int8")
    a2 = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 16, "int8", 3, (40, 43)))
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

    kernels, outputs = run_graph_on_arm(g, [x1, xw], tmp_path / "winograd_int8.so", arm64_root)
    convs = [k for k in kernels if k.startswith("qconv2d")]
    assert len(convs) == 3 and all(k.startswith("qconv2d_int8_nhwc_winograd_neon") for k in convs), kernels
    assert not any(k.startswith("qadd") for k in kernels), kernels   # the qadd ran in the second conv
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert want.std() > 0 and np.mean(np.abs(want.astype(int)) >= 127) < 0.5, f"output {i}: weak check"
        np.testing.assert_array_equal(got, want, err_msg=f"output {i}")
    assert NEON_WINOGRAD.enabled
