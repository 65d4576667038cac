"""aarch64 int8 kernels without dot product (schedules/neon_int8_conv.py, the NEON kernels of aarch64_int8.py):
the "aarch64" target selects them, their asm has smull/sadalp and no sdot, and they RUN bit-exact against the
NumPy integer reference under qemu-aarch64 -cpu cortex-a53 (an Armv8.0 CPU: a dotprod instruction would
SIGILL). Odd shapes: C not a multiple of 4, 3-channel 7x7 stride 2, 1x1 on a 7x7 map, stride 2 with
asymmetric pads and dilation, weights and inputs over the whole int8 range (-128 * -128 included)."""
import numpy as np
import pytest

from yuan.compiler.ir import Graph
from yuan.schedules import select_kernel
from tests.schedules.conftest import (AARCH64, compile_kernel, int_codes, out_shape, ref_integer_op, ref_qconv,
                                      requant_attrs, run_graph_on_arm)

RNG = np.random.default_rng(11)
# multipliers ~2^30 with these shifts scale full-range int8 sums into the output range: few outputs clip, so
# an off-by-one accumulator shows (conftest's default shifts saturate nearly every output)
SHIFT = (38, 41)

CONV_CASES = [
    # x shape (NCHW), w shape, conv attrs, x dtype
    ((1, 6, 9, 8), (8, 6, 3, 3), dict(pads=[1, 1, 1, 1]), "int8"),                       # 4 columns x 2 groups
    ((1, 3, 20, 18), (8, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), "uint8"),   # the stem: C = 3
    ((2, 10, 7, 7), (12, 10, 1, 1), {}, "int8"),                                         # 1x1, 7 columns x 1 group
    ((1, 6, 9, 8), (12, 6, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), "uint8"),
]


def _conv(case):
    xs, ws, cattrs, xdt = CONV_CASES[case]
    attrs = dict(cattrs, **requant_attrs(RNG, ws[0], "int8", -7 if xdt == "int8" else 131, SHIFT))
    return int_codes(RNG, xs, xdt), int_codes(RNG, ws, "int8"), RNG.integers(-5000, 5000, ws[0]).astype("int32"), attrs


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_neon_conv_is_selected_and_uses_smull_sadalp(layout):
    xs, ws, cattrs, xdt = CONV_CASES[0]
    oshape = out_shape(xs, ws, cattrs)
    attrs = dict(cattrs, layout=layout, **requant_attrs(RNG, ws[0], "int8", 3))
    if layout == "NHWC":
        xs, oshape = (xs[0], xs[2], xs[3], xs[1]), (oshape[0], oshape[2], oshape[3], oshape[1])
    k, f = select_kernel("qconv2d", attrs, [(xs, xdt), (ws, "int8"), ((ws[0],), "int32")], (oshape, "int8"), AARCH64)
    assert k.name == f"qconv2d_int8_{layout.lower()}_neon", k.name
    asm = compile_kernel(f, AARCH64).mod.inspect_source("asm")
    assert "smull\t" in asm and "sadalp\t" in asm and "sdot" not in asm


def test_neon_qlinear_is_selected_and_uses_smull():
    attrs = requant_attrs(RNG, 12, "int8", 5)
    k, f = select_kernel("qlinear", attrs, [((3, 37), "uint8"), ((12, 37), "int8"), ((12,), "int32")],
                         ((3, 12), "int8"), AARCH64)
    assert k.name == "qlinear_int8_neon", k.name
    asm = compile_kernel(f, AARCH64).mod.inspect_source("asm")
    assert "smull\t" in asm and "sdot" not in asm


def test_neon_kernels_run_bit_exact_on_cortex_a53(arm64_root, tmp_path):
    """One graph: every conv case as its own node (and a conv -> conv chain, so layout planning keeps NHWC
    between them), plus a qlinear; compiled for "aarch64", run once under qemu."""
    g = Graph("neon_int8")
    feed, expected = [], []

    for case in range(len(CONV_CASES)):
        x, w, b, attrs = _conv(case)
        name = g.add_input(f"x{case}", x.shape, str(x.dtype))
        out = g.add_node("qconv2d", [name, g.add_constant(f"w{case}", w), g.add_constant(f"b{case}", b)],
                         attrs).outputs[0]
        feed.append(x)
        y = ref_qconv(x, w, b, attrs)
        if case == 0:   # chain a second conv (int8 in, C = 8) on the first one's output
            w2 = int_codes(RNG, (16, w.shape[0], 3, 3), "int8")
            b2 = RNG.integers(-5000, 5000, 16).astype("int32")
            a2 = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 16, "int8", 3, (40, 43)))
            out = g.add_node("qconv2d", [out, g.add_constant("w_chain", w2), g.add_constant("b_chain", b2)],
                             a2).outputs[0]
            y = ref_qconv(y, w2, b2, a2)
        g.mark_output(out)
        expected.append(y)
    xl = int_codes(RNG, (3, 37), "uint8")
    wl = int_codes(RNG, (12, 37), "int8")
    bl = RNG.integers(-5000, 5000, 12).astype("int32")
    al = requant_attrs(RNG, 12, "int8", 131, SHIFT)
    name = g.add_input("xl", xl.shape, "uint8")
    g.mark_output(g.add_node("qlinear", [name, g.add_constant("wl", wl), g.add_constant("bl", bl)], al).outputs[0])
    feed.append(xl)
    expected.append(ref_integer_op("qlinear", [xl, wl, bl], al))

    kernels, outputs = run_graph_on_arm(g, feed, tmp_path / "neon_int8.so", arm64_root)
    kernels = [k for k in kernels if k.startswith(("qconv2d", "qlinear"))]
    # every conv (layout planning keeps them NHWC) and the linear run the NEON kernels: no generic fallback
    assert len(kernels) == len(CONV_CASES) + 2 and all(
        k.startswith(("qconv2d_int8_nhwc_neon", "qlinear_int8_neon")) for k in kernels), kernels
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert np.mean((want == -123) | (want == 127)) < 0.5, f"output {i} mostly clipped: a weak check"
        np.testing.assert_array_equal(got, want, err_msg=f"output {i}")
