"""aarch64 int8 kernels without dot product (schedules/neon_int8_conv.py, the NEON kernels of aarch64_int8.py):
the "aarch64" target selects them, their asm has smull/smlsl2/sadalp and no sdot, and they RUN bit-exact against
the NumPy integer reference under qemu-aarch64 -cpu cortex-a53 (an Armv8.0 CPU: a dotprod instruction would
SIGILL). The cases cover each depth layout (taps: C % 16, 1x1 with C padded to 16; im2col: the 3-channel 7x7
stem, C = 6, dilation) and register tile (4 columns, 2 x 2, 1 x 2 on a 1x1 map, OW rounded up to the tile:
7 -> 8, 9 -> 10), stride 2, asymmetric pads, batch 2, a fused residual add, NCHW and NHWC, with inputs and
weights over the whole int8 range (-128 * -128 included: the int16 pair sums hit their bound)."""
import numpy as np
import pytest

from yuan.compiler import build
from yuan.compiler.build import compile_graph, sidecar_path
from yuan.compiler.ir import Graph
from yuan.runtime import qemu_runner
from yuan.schedules import select_kernel
from yuan.schedules.neon_int8_conv import depth_layout, register_tile
from tests.schedules.conftest import (AARCH64, compile_kernel, int_codes, out_shape, ref_integer_op, ref_qconv,
                                      requant_attrs)

RNG = np.random.default_rng(11)
# multipliers ~2^30 with these shifts scale full-range int8 sums into the output range: few outputs clip, so
# an off-by-one accumulator shows (conftest's default shifts saturate nearly every output)
SHIFT = (38, 41)


def _shifts(K):
    """Shifts for a K-term full-range int8 sum (std ~ 5500 sqrt(K)): outputs spread over +-60, few clip."""
    lo = int(37 + 0.5 * np.log2(K))
    return lo, lo + 2

CONV_CASES = [
    # x shape (NCHW), w shape, conv attrs, x dtype
    ((1, 6, 9, 8), (8, 6, 3, 3), dict(pads=[1, 1, 1, 1]), "int8"),                       # im2col, 4 columns
    ((1, 3, 20, 18), (8, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), "uint8"),   # the stem: OW 9 -> 10
    ((2, 10, 7, 7), (12, 10, 1, 1), {}, "int8"),                                         # 1x1 C 10 -> 16, OW 7 -> 8
    ((1, 6, 9, 8), (12, 6, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), "uint8"),
    ((1, 24, 13, 13), (16, 24, 1, 1), dict(strides=[2, 2]), "uint8"),                    # 1x1 C 24 -> 32
    ((1, 32, 13, 13), (16, 32, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1]), "int8"),  # taps, 7x7 out
    ((1, 5, 6, 6), (4, 5, 1, 1), {}, "int8"),                                            # 1x1 C 5, 2 x 1 tile
    ((1, 16, 3, 3), (8, 16, 3, 3), {}, "int8"),                                          # 1x1 output map
]
# case 5's conv feeds a qadd with case 4's output (NHWC already, so the conv's write-back computes the qadd)
RESIDUAL_CASE = 5
QADD = dict(a_zero_point=4, b_zero_point=-6, a_multiplier=1518500250, b_multiplier=1300000000, shift=31,
            y_zero_point=-3, out_min=-3, out_max=127, out_dtype="int8")


def _conv(case):
    xs, ws, cattrs, xdt = CONV_CASES[case]
    attrs = dict(cattrs, **requant_attrs(RNG, ws[0], "int8", -7 if xdt == "int8" else 131, _shifts(np.prod(ws[1:]))))
    return int_codes(RNG, xs, xdt), int_codes(RNG, ws, "int8"), RNG.integers(-5000, 5000, ws[0]).astype("int32"), attrs


def test_cases_cover_every_layout_and_tile():
    """The layouts and tiles the docstring promises (so that a change of the rules keeps the test honest)."""
    seen = set()
    for xs, ws, cattrs, _ in CONV_CASES:
        lay = depth_layout(xs[1], ws[2], ws[3])
        seen.add("im2col" if lay.im2col else "taps" if lay.channels == xs[1] else "taps, channels padded")
        ow = out_shape(xs, ws, cattrs)[3]
        columns, groups, padded = register_tile(ow, ws[0])
        seen.add((columns, groups))
        seen.add("padded" if padded > ow else "exact")
    assert seen >= {"im2col", "taps", "taps, channels padded", (4, 1), (2, 2), (2, 1), (1, 2), "padded",
                    "exact"}, seen


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_neon_conv_is_selected_and_uses_smull_smlsl_sadalp(layout):
    xs, ws, cattrs, xdt = CONV_CASES[5]
    oshape = out_shape(xs, ws, cattrs)
    attrs = dict(cattrs, layout=layout, **requant_attrs(RNG, ws[0], "int8", 3))
    if layout == "NHWC":
        xs, oshape = (xs[0], xs[2], xs[3], xs[1]), (oshape[0], oshape[2], oshape[3], oshape[1])
    k, f = select_kernel("qconv2d", attrs, [(xs, xdt), (ws, "int8"), ((ws[0],), "int32")], (oshape, "int8"), AARCH64)
    assert k.name == f"qconv2d_int8_{layout.lower()}_neon", k.name
    asm = compile_kernel(f, AARCH64).mod.inspect_source("asm")
    assert "smull\t" in asm and "smlsl2\t" in asm and "sadalp\t" in asm and "sdot" not in asm


def test_neon_qlinear_is_selected_and_uses_smull():
    attrs = requant_attrs(RNG, 12, "int8", 5)
    k, f = select_kernel("qlinear", attrs, [((3, 37), "uint8"), ((12, 37), "int8"), ((12,), "int32")],
                         ((3, 12), "int8"), AARCH64)
    assert k.name == "qlinear_int8_neon", k.name
    asm = compile_kernel(f, AARCH64).mod.inspect_source("asm")
    assert "smull\t" in asm and "sdot" not in asm


def _nhwc_graph():
    """Every conv case as its own node (plus a conv -> conv chain, so layout planning keeps NHWC between
    them, and a qadd after RESIDUAL_CASE), and a qlinear: (graph, feed, expected outputs)."""
    g = Graph("neon_int8")
    feed, expected, outs = [], [], []
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
            a2 = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 16, "int8", 3, _shifts(72)))
            out = g.add_node("qconv2d", [out, g.add_constant("w_chain", w2), g.add_constant("b_chain", b2)],
                             a2).outputs[0]
            y = ref_qconv(y, w2, b2, a2)
        if case == RESIDUAL_CASE:
            out = g.add_node("qadd", [out, outs[-1]], QADD).outputs[0]
            y = ref_integer_op("qadd", [y, expected[-1]], QADD)
        g.mark_output(out)
        outs.append(out)
        expected.append(y)
    xl = int_codes(RNG, (3, 37), "uint8")
    wl = int_codes(RNG, (12, 37), "int8")
    bl = RNG.integers(-5000, 5000, 12).astype("int32")
    al = requant_attrs(RNG, 12, "int8", 131, SHIFT)
    name = g.add_input("xl", xl.shape, "uint8")
    g.mark_output(g.add_node("qlinear", [name, g.add_constant("wl", wl), g.add_constant("bl", bl)], al).outputs[0])
    feed.append(xl)
    expected.append(ref_integer_op("qlinear", [xl, wl, bl], al))
    return g, feed, expected


def _nchw_graph():
    """The stem (im2col) and the channels-mode stride-2 case, kept NCHW (no layout planning)."""
    g = Graph("neon_int8_nchw")
    feed, expected = [], []
    for case in (1, 5):
        x, w, b, attrs = _conv(case)
        name = g.add_input(f"x{case}", x.shape, str(x.dtype))
        g.mark_output(g.add_node("qconv2d", [name, g.add_constant(f"w{case}", w), g.add_constant(f"b{case}", b)],
                                 attrs).outputs[0])
        feed.append(x)
        expected.append(ref_qconv(x, w, b, attrs))
    return g, feed, expected


def _kernels(lib):
    import json
    return [k for k in json.load(open(sidecar_path(lib)))["kernels"] if k.startswith(("qconv2d", "qlinear", "qadd"))]


def test_neon_kernels_run_bit_exact_on_cortex_a53(arm64_root, tmp_path, monkeypatch):
    """Both graphs compiled for "aarch64" and run in one qemu process."""
    nhwc, feed, expected = _nhwc_graph()
    lib = compile_graph(nhwc, "aarch64", str(tmp_path / "neon_int8.so"))
    monkeypatch.setattr(build, "preferred_layouts", lambda target: {})
    nchw, feed_nchw, expected_nchw = _nchw_graph()
    lib_nchw = compile_graph(nchw, "aarch64", str(tmp_path / "neon_int8_nchw.so"))
    # every conv (layout planning keeps them NHWC) and the linear run the NEON kernels: no generic fallback;
    # the qadd runs inside its conv
    kernels = _kernels(lib)
    assert len(kernels) == len(CONV_CASES) + 2 and all(
        k.startswith(("qconv2d_int8_nhwc_neon", "qlinear_int8_neon")) for k in kernels), kernels
    assert [k.rsplit("_", 1)[0] for k in _kernels(lib_nchw)] == ["qconv2d_int8_nchw_neon"] * 2, _kernels(lib_nchw)
    res = qemu_runner.run_models([{"lib": lib, "inputs": feed}, {"lib": lib_nchw, "inputs": feed_nchw}],
                                 cpu="cortex-a53", root=arm64_root)
    assert res.returncode == 0, (res.returncode, res.errors, res.stderr[-2000:])
    for tag, outputs, want_all in (("NHWC", res.outputs[0], expected), ("NCHW", res.outputs[1], expected_nchw)):
        for i, (got, want) in enumerate(zip(outputs, want_all)):
            assert np.mean((want == -123) | (want == 127)) < 0.5, f"{tag} output {i} mostly clipped: a weak check"
            np.testing.assert_array_equal(got, want, err_msg=f"{tag} output {i}")
