"""aarch64 int8 depthwise kernel (schedules/aarch64_depthwise.py; its fp32 one runs in test_aarch64_fp32.py): both
aarch64 targets select it, its asm multiplies with smlal (no sdot), and it RUNS under qemu-aarch64 (cortex-a53
for "aarch64": a dotprod instruction would SIGILL; cortex-a76 for "aarch64-dotprod") bit-exact against the NumPy
integer reference. Odd shapes: C not a multiple of 8 or 4, stride 2 with asymmetric pads, 5x5 with dilation, a
7x7 map, per-tensor and per-channel requantize, the whole int8 range."""
import numpy as np
import pytest

from yuan.compiler.ir import Graph
from yuan.schedules import select_kernel
from tests.schedules.conftest import (AARCH64, AARCH64_DOT, compile_kernel, int_codes, ref_qconv, requant_attrs,
                                      run_graph_on_arm)

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
