"""aarch64 fp32 conv and linear (schedules/aarch64_fp32.py) and depthwise conv (aarch64_depthwise.py): the
"aarch64" target selects them, their hot loops are fmla, and they RUN under qemu-aarch64 -cpu cortex-a53
matching a float64 NumPy reference. Odd shapes (the direct 3x3 stride-1 cases have C = 3: Winograd takes C >= 4):
O not a multiple of 16 (padded channels), the 3-channel 7x7 stride-2 stem, a 1x1 conv on a 7x7 map (7-column tile), stride 2 with asymmetric pads and dilation, no bias;
depthwise stride 1 and 2 with relu6, a 5x5 on a 7x7 map, channel multiplier 2; a linear with O = 20. The Winograd
F(4x4, 3x3) kernel (aarch64_winograd_fp32.py) in the same run: C not a multiple of 4 on a 7x7 map, O not a
multiple of 16, ragged 4x4 tiles (13 x 17) with asymmetric pads, batch 2 on 14x14 (tolerance 1e-4 of max |y|:
its transforms round differently from a direct sum)."""
import re

import numpy as np

from yuan.compiler.ir import Graph
from yuan.schedules import select_kernel
from yuan.schedules.aarch64_winograd_fp32 import MIN_CHANNELS
from tests.schedules.conftest import AARCH64, compile_kernel, out_shape, ref_conv_acc, run_graph_on_arm

RNG = np.random.default_rng(3)

CASES = [
    # x shape, w shape, conv attrs, bias
    ((1, 3, 12, 12), (20, 3, 3, 3), dict(pads=[1, 1, 1, 1]), True),                     # O = 20: padded to 32
    ((1, 3, 20, 18), (16, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), True),     # the stem
    ((1, 3, 13, 13), (16, 3, 3, 3), dict(pads=[1, 1, 1, 1], relu6=True), True),        # no column tile divides 13
    ((2, 24, 7, 7), (32, 24, 1, 1), {}, True),                                          # 1x1, 7 columns
    ((1, 6, 9, 8), (16, 6, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), False),
]
DEPTHWISE = [   # the same fields; group = C
    ((1, 16, 14, 14), (16, 1, 3, 3), dict(pads=[1, 1, 1, 1], relu6=True), True),   # + clip
    ((1, 8, 15, 15), (8, 1, 3, 3), dict(strides=[2, 2], pads=[0, 1, 1, 1]), True),
    ((2, 6, 7, 7), (12, 1, 5, 5), dict(pads=[2, 2, 2, 2]), False),       # channel multiplier 2
]
WINOGRAD = [   # 3x3 stride 1: conv2d_f32_nchw_winograd_neon
    ((1, 18, 7, 7), (24, 18, 3, 3), dict(pads=[1, 1, 1, 1], relu6=True), True),    # C % 4 != 0, O % 16 != 0
    ((1, 16, 13, 17), (16, 16, 3, 3), dict(pads=[1, 0, 1, 2]), True),              # ragged tiles, asymmetric pads
    ((2, 32, 14, 14), (32, 32, 3, 3), dict(pads=[1, 1, 1, 1]), False),             # batch 2, no bias
]


def test_neon_fp32_conv_is_selected_and_uses_fmla():
    k, f = select_kernel("conv2d", dict(pads=[1, 1, 1, 1]), [((1, 3, 14, 14), "float32"),
                                                              ((32, 3, 3, 3), "float32"), ((32,), "float32")],
                         ((1, 32, 14, 14), "float32"), AARCH64)
    assert k.name == "conv2d_f32_nchw_neon", k.name
    assert "fmla\t" in compile_kernel(f, AARCH64).mod.inspect_source("asm")


def _select_3x3(c, h, **attrs):
    attrs = dict(pads=[1, 1, 1, 1], **attrs)
    xs, ws = (1, c, h, h), (c, c, 3, 3)
    return select_kernel("conv2d", attrs, [(xs, "float32"), (ws, "float32")], (out_shape(xs, ws, attrs), "float32"),
                         AARCH64)


def test_neon_winograd_rule_and_fmla_by_element():
    k, f = _select_3x3(64, 56)
    assert k.name == "conv2d_f32_nchw_winograd_neon", k.name
    # the GEMM's 4 input channels per vector load, used lane by lane
    asm = compile_kernel(f, AARCH64).mod.inspect_source("asm")
    assert re.search(r"fmla\tv\d+\.4s, v\d+\.4s, v\d+\.s\[[1-3]\]", asm)
    assert _select_3x3(512, 7)[0].name == "conv2d_f32_nchw_winograd_neon"
    for direct in (_select_3x3(64, 56, strides=[2, 2]), _select_3x3(MIN_CHANNELS - 1, 56),
                   _select_3x3(64, 2)):   # a 2x2 map: one 4x4 tile, 36 multiplies per channel pair for 4 outputs
        assert direct[0].name == "conv2d_f32_nchw_neon", direct[0].name


def test_neon_fp32_linear_and_depthwise_are_selected_and_use_fmla():
    k, f = select_kernel("linear", {}, [((1, 40), "float32"), ((20, 40), "float32")], ((1, 20), "float32"), AARCH64)
    assert k.name == "linear_f32_neon", k.name
    assert "fmla\t" in compile_kernel(f, AARCH64).mod.inspect_source("asm")
    k, f = select_kernel("conv2d", dict(pads=[1, 1, 1, 1], group=16), [((1, 16, 14, 14), "float32"),
                                                                        ((16, 1, 3, 3), "float32")],
                         ((1, 16, 14, 14), "float32"), AARCH64)
    assert k.name == "dwconv2d_f32_nchw_neon", k.name
    assert "fmla\t" in compile_kernel(f, AARCH64).mod.inspect_source("asm")


def _add_conv(g, i, case, group, feed, expected):
    xs, ws, attrs, has_b = case
    attrs = dict(attrs)
    relu6 = attrs.pop("relu6", False)   # a clip node after the conv (fused into it by the passes)
    x = RNG.standard_normal(xs).astype(np.float32)
    w = RNG.standard_normal(ws).astype(np.float32)
    b = RNG.standard_normal(ws[0]).astype(np.float32) if has_b else None
    names = [g.add_input(f"x{i}", xs, "float32"), g.add_constant(f"w{i}", w)]
    if has_b:
        names.append(g.add_constant(f"b{i}", b))
    out = g.add_node("conv2d", names, dict(attrs, group=group)).outputs[0]
    if relu6:
        out = g.add_node("clip", [out], dict(min=0.0, max=6.0)).outputs[0]
    g.mark_output(out)
    feed.append(x)
    if group > 1:   # each output channel reads input channel o // multiplier: repeat the input channels
        x = np.repeat(x, ws[0] // xs[1], axis=1)
    ref = ref_conv_acc(x, w, attrs.get("strides", [1, 1]), attrs.get("pads", [0] * 4),
                       attrs.get("dilations", [1, 1]), ws[0] if group > 1 else 1, dtype=np.float64)
    ref = ref + (b.reshape(1, -1, 1, 1) if has_b else 0)
    expected.append(np.clip(ref, 0.0, 6.0) if relu6 else ref)


def test_neon_fp32_conv_runs_on_cortex_a53(arm64_root, tmp_path):
    g = Graph("neon_fp32")
    feed, expected = [], []
    for i, case in enumerate(CASES):
        _add_conv(g, i, case, 1, feed, expected)
    for i, case in enumerate(DEPTHWISE):
        _add_conv(g, len(CASES) + i, case, case[0][1], feed, expected)
    for i, case in enumerate(WINOGRAD):
        _add_conv(g, len(CASES) + len(DEPTHWISE) + i, case, 1, feed, expected)
    xl, wl, bl = (RNG.standard_normal(s).astype(np.float32) for s in ((3, 40), (20, 40), (20,)))
    name = g.add_input("xl", xl.shape, "float32")
    g.mark_output(g.add_node("linear", [name, g.add_constant("wl", wl), g.add_constant("bl", bl)], {}).outputs[0])
    feed.append(xl)
    expected.append(xl.astype(np.float64) @ wl.T.astype(np.float64) + bl)
    kernels, outputs = run_graph_on_arm(g, feed, tmp_path / "neon_fp32.so", arm64_root)
    kernels = [k for k in kernels if k.startswith(("conv2d", "dwconv2d", "linear"))]
    want = ["conv2d_f32_nchw_neon"] * len(CASES) + ["dwconv2d_f32_nchw_neon"] * len(DEPTHWISE) + \
        ["conv2d_f32_nchw_winograd_neon"] * len(WINOGRAD) + ["linear_f32_neon"]
    assert len(kernels) == len(want) and all(k.startswith(w) for k, w in zip(kernels, want)), kernels
    winograd = range(len(CASES) + len(DEPTHWISE), len(CASES) + len(DEPTHWISE) + len(WINOGRAD))
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert got.shape == want.shape, (i, got.shape, want.shape)
        if i in winograd:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max(), err_msg=f"output {i}")
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=f"output {i}")
