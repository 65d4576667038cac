"""aarch64 depthwise kernels (schedules/aarch64_depthwise.py). int8: both aarch64 targets select it, its asm
multiplies with smlal (no sdot), and it RUNS under qemu-aarch64 (cortex-a53 for "aarch64": a dotprod instruction
would SIGILL; cortex-a76 for "aarch64-dotprod") bit-exact against the NumPy integer reference. Odd shapes: C not a
multiple of 8 or 4, stride 2 with asymmetric pads, 5x5 with dilation, a 7x7 map, per-tensor and per-channel
requantize, the whole int8 range. fp32 (its plain cases run in test_aarch64_fp32.py): the stride-2 staging
de-interleaves whole vectors (ld2 / uzp, no per-lane gathers), and odd shapes that exercise the staging's
partitions and the padded tile widths run under qemu against a float64 NumPy reference (a NaN input stays NaN
through the relu6 clamp)."""
import re

import numpy as np
import pytest

from yuan.compiler.ir import Graph
from yuan.schedules import select_kernel
from tests.schedules.conftest import (AARCH64, AARCH64_DOT, compile_kernel, int_codes, out_shape, ref_conv_f32,
                                      ref_qconv, requant_attrs, run_graph_on_arm)

RNG = np.random.default_rng(17)
# multipliers ~2^30 and these shifts scale full-range sums of 9 (25) taps mostly into the output range
SHIFT, SHIFT_5X5 = (39, 41), (40, 42)

CASES = [
    # x shape (NCHW), kernel, conv attrs, x dtype, per-channel requantize
    ((1, 16, 9, 10), 3, dict(pads=[1, 1, 1, 1]), "uint8", True),                       # 8 lanes x 5 columns
    ((1, 12, 13, 13), 3, dict(strides=[2, 2], pads=[0, 1, 1, 1]), "int8", True),      # 4 lanes, stride 2
    ((2, 6, 7, 7), 5, dict(pads=[4, 4, 4, 4], dilations=[2, 2]), "uint8", False),     # 2 lanes, 7 columns
    ((1, 24, 7, 7), 3, dict(strides=[2, 2], pads=[1, 1, 1, 1]), "int8", False),       # per-tensor, 4 columns
]


def _dw_attrs(case):
    xs, k, cattrs, xdt, per_channel = CASES[case]
    return dict(cattrs, group=xs[1], **requant_attrs(RNG, xs[1] if per_channel else 1, "int8",
                                                     -7 if xdt == "int8" else 131, SHIFT_5X5 if k == 5 else SHIFT))


@pytest.mark.parametrize("target", [AARCH64, AARCH64_DOT], ids=["aarch64", "aarch64-dotprod"])
def test_int8_depthwise_is_selected_and_uses_smlal(target):
    xs, k, _, xdt, _ = CASES[0]
    attrs = dict(_dw_attrs(0), layout="NHWC")
    N, C, H, W = xs
    kern, f = select_kernel("qconv2d", attrs, [((N, H, W, C), xdt), ((C, 1, k, k), "int8"), ((C,), "int32")],
                            ((N, H, W, C), "int8"), target)
    assert kern.name == "qconv2d_dw_int8_nhwc_neon", kern.name
    asm = compile_kernel(f, target).mod.inspect_source("asm")
    assert "smlal\t" in asm and "smlal2\t" in asm and "sdot" not in asm


@pytest.mark.parametrize("target,cpu", [("aarch64", "cortex-a53"), ("aarch64-dotprod", "cortex-a76")])
def test_int8_depthwise_runs_bit_exact(arm64_root, tmp_path, target, cpu):
    """Every case as its own node of one graph (layout planning feeds them NHWC), run once under qemu."""
    g = Graph("dw_int8")
    feed, expected = [], []
    for case, (xs, k, _, xdt, _) in enumerate(CASES):
        x, w = int_codes(RNG, xs, xdt), int_codes(RNG, (xs[1], 1, k, k), "int8")
        b = RNG.integers(-5000, 5000, xs[1]).astype("int32")
        attrs = _dw_attrs(case)
        name = g.add_input(f"x{case}", xs, xdt)
        g.mark_output(g.add_node("qconv2d", [name, g.add_constant(f"w{case}", w), g.add_constant(f"b{case}", b)],
                                 attrs).outputs[0])
        feed.append(x)
        expected.append(ref_qconv(x, w, b, attrs))
    kernels, outputs = run_graph_on_arm(g, feed, tmp_path / "dw_int8.so", arm64_root, target, cpu)
    kernels = [k for k in kernels if k.startswith("qconv2d")]
    assert len(kernels) == len(CASES) and all(k.startswith("qconv2d_dw_int8_nhwc_neon") for k in kernels), kernels
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert np.mean((want == -123) | (want == 127)) < 0.5, f"output {i} mostly clipped: a weak check"
        np.testing.assert_array_equal(got, want, err_msg=f"output {i}")


F32_CASES = [
    # x shape, weight shape, conv attrs (group = C), clip to relu6
    ((1, 6, 13, 11), (6, 1, 5, 5), dict(strides=[2, 2], pads=[1, 1, 1, 1]), True),    # 5x5 s2, C % 4, odd H, W
    ((1, 5, 21, 23), (5, 1, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1]), False),   # s2 with vector groups
    ((1, 3, 9, 15), (3, 1, 3, 3), dict(strides=[2, 2], pads=[1, 2, 0, 1]), True),     # asymmetric, left pad 2
    ((1, 3, 11, 11), (6, 1, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1], dilations=[2, 2]), False),  # mult 2
    ((2, 7, 10, 37), (7, 1, 3, 3), dict(pads=[1, 1, 1, 1]), True),                    # 37 columns: 5 tiles of 8
    ((1, 4, 6, 6), (4, 1, 3, 3), dict(strides=[2, 2], pads=[0, 0, 2, 2]), False),     # no left / top pad
]


def test_fp32_depthwise_stride2_staging_deinterleaves_vectors():
    attrs = dict(strides=[2, 2], pads=[1, 1, 1, 1], group=32)
    xs, ws = (1, 32, 56, 56), (32, 1, 3, 3)
    k, f = select_kernel("conv2d", attrs, [(xs, "float32"), (ws, "float32")],
                         (out_shape(xs, ws, attrs), "float32"), AARCH64)
    assert k.name == "dwconv2d_f32_nchw_neon", k.name
    asm = compile_kernel(f, AARCH64).mod.inspect_source("asm")
    assert re.search(r"\tld2\t|\tuzp1\t", asm), "the stride-2 staging has no vector de-interleave"
    assert "fmla\t" in asm


def test_fp32_depthwise_odd_shapes_run(arm64_root, tmp_path):
    g = Graph("dw_f32")
    feed, expected = [], []
    for i, (xs, ws, attrs, relu6) in enumerate(F32_CASES):
        x = RNG.standard_normal(xs).astype(np.float32)
        if i == 0:   # NaN stays NaN through the clamp (fmax / fmin, not fmaxnm / fminnm)
            x[0, 1, 4, 5] = np.nan
        w = RNG.standard_normal(ws).astype(np.float32)
        b = RNG.standard_normal(ws[0]).astype(np.float32)
        attrs = dict(attrs, group=xs[1])
        out = g.add_node("conv2d", [g.add_input(f"x{i}", xs, "float32"), g.add_constant(f"w{i}", w),
                                    g.add_constant(f"b{i}", b)], attrs).outputs[0]
        if relu6:   # a clip node after the conv (fused into it by the passes)
            out = g.add_node("clip", [out], dict(min=0.0, max=6.0)).outputs[0]
        g.mark_output(out)
        feed.append(x)
        expected.append(ref_conv_f32(x, w, b, dict(attrs, **(dict(clip_min=0.0, clip_max=6.0) if relu6 else {}))))
    kernels, outputs = run_graph_on_arm(g, feed, tmp_path / "dw_f32.so", arm64_root)
    kernels = [k for k in kernels if "conv2d" in k]
    assert len(kernels) == len(F32_CASES) and all(k.startswith("dwconv2d_f32_nchw_neon") for k in kernels), kernels
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert got.shape == want.shape, (i, got.shape, want.shape)
        assert i != 0 or np.isnan(want).any(), "the NaN case has no NaN output: a weak check"
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=f"output {i}")   # NaN == NaN
