"""aarch64 sdot kernels (schedules/aarch64_int8.py) cross-compiled: the asm has sdot instructions. They run
(bit-exact against the x86 build) in tests/e2e/test_cross_aarch64.py under qemu; tests/schedules/
test_dot_product.py checks their constants and algorithm in NumPy."""
import numpy as np
import pytest

from yuan.schedules import kernel_inputs, select_kernel
from yuan.compiler.ir import Graph
from tests.schedules.conftest import (AARCH64_DOT, compile_kernel, int_codes, out_shape, ref_qconv, requant_attrs,
                                      run_graph_on_arm)

RNG = np.random.default_rng(5)

CONV_CASES = [
    # x shape (NCHW), w shape, conv attrs, x dtype
    ((1, 8, 7, 6), (32, 8, 3, 3), dict(pads=[1, 1, 1, 1]), "int8"),          # 4 lane groups per tile
    ((1, 3, 20, 18), (8, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), "uint8"),   # C = 3, 2 groups
    ((2, 6, 9, 8), (12, 6, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), "uint8"),  # 1 group
]


def _asm(op, attrs, in_types, out_type, expect):
    k, f = select_kernel(op, attrs, in_types, out_type, AARCH64_DOT)
    assert k.name == expect, k.name
    return compile_kernel(f, AARCH64_DOT).mod.inspect_source("asm")


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_qconv2d_sdot_compiles_to_sdot(case, layout):
    xs, ws, cattrs, xdt = CONV_CASES[case]
    oshape = out_shape(xs, ws, cattrs)
    attrs = dict(cattrs, layout=layout, **requant_attrs(RNG, ws[0], "int8", 3))
    if layout == "NHWC":
        xs, oshape = (xs[0], xs[2], xs[3], xs[1]), (oshape[0], oshape[2], oshape[3], oshape[1])
    in_types = [(xs, xdt), (ws, "int8"), ((ws[0],), "int32")]
    asm = _asm("qconv2d", attrs, in_types, (oshape, "int8"), f"qconv2d_int8_{layout.lower()}_sdot")
    assert "sdot\t" in asm or "sdot " in asm


@pytest.mark.parametrize("xdt,K", [("int8", 40), ("uint8", 37)])
def test_qlinear_sdot_compiles_to_sdot(xdt, K):
    attrs = requant_attrs(RNG, 12, "int8", 5)
    asm = _asm("qlinear", attrs, [((3, K), xdt), ((12, K), "int8"), ((12,), "int32")], ((3, 12), "int8"),
               "qlinear_int8_sdot")
    assert "sdot\t" in asm or "sdot " in asm


def test_sdot_constants_are_packed_and_folded():
    """kernel_inputs of the sdot conv: x, the packed weight, bias_eff, mult, shift (shapes per the README)."""
    w = RNG.integers(-127, 128, (12, 6, 3, 2)).astype("int8")
    b = RNG.integers(-5000, 5000, 12).astype("int32")
    attrs = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 1, "int8", 3))
    in_types = [((1, 6, 5, 5), "uint8"), (w.shape, "int8"), (b.shape, "int32")]
    f = select_kernel("qconv2d", attrs, in_types, ((1, 12, 5, 6), "int8"), AARCH64_DOT)[1]
    x_index, packed, beff, mult, shift = kernel_inputs(f, attrs, in_types, [None, w, b])
    assert x_index == 0 and packed.shape == (3, 3, 2, 2, 4, 4) and packed.dtype == np.int8
    assert beff.shape == (12,) and beff.dtype == np.int32 and mult.shape == shift.shape == (1,)


@pytest.mark.parametrize("ow,op", [(56, 64), (28, 128), (14, 256), (7, 512), (112, 64), (6, 32), (5, 12)])
def test_sdot_register_tile_fits_the_register_file(ow, op):
    """The indexed-sdot tile keeps its accumulators (columns x groups), weights (4 words x groups) and inputs
    (one per column) in the 32 vector registers, the tile dividing the map and the channels."""
    from yuan.schedules.aarch64_int8 import SDOT_CONV
    from yuan.schedules.cpu_schedules import first_divisor
    columns = first_divisor(ow, SDOT_CONV.column_tiles)
    groups = first_divisor(op // 4, SDOT_CONV.lane_groups)
    assert ow % columns == 0 and (op // 4) % groups == 0
    assert columns * groups + 4 * groups + columns <= 32

# C % 16 == 0 takes the indexed sdot (sdot_lane_intrin.py: one ldr q, 4 sdot ... .4b[j]), and so does a C
# padded up to 16s where that at most doubles the MACs (DotProductConv.channel_multiple); the rest the ld1r one
LANE_CASES = [
    ((1, 32, 9, 8), (16, 32, 3, 3), dict(pads=[1, 1, 1, 1]), "int8"),                              # 4 x 4 tile
    ((1, 16, 11, 10), (8, 16, 3, 3), dict(strides=[2, 2], pads=[0, 1, 2, 0], dilations=[1, 2]), "uint8"),
    ((1, 48, 7, 7), (24, 48, 1, 1), dict(strides=[2, 2]), "uint8"),                                # downsample
    ((2, 20, 7, 7), (12, 20, 1, 1), {}, "int8"),                                          # C = 20: padded to 32
    ((1, 6, 7, 5), (8, 6, 3, 3), dict(pads=[1, 0, 1, 2]), "uint8"),                       # C = 6: ld1r
]


def test_sdot_pads_channels_to_the_wide_step_only_where_cheap():
    from yuan.schedules.aarch64_int8 import SDOT_CONV
    assert [SDOT_CONV.channel_multiple(c) for c in (6, 8, 16, 20, 24, 116, 232)] == [4, 16, 4, 16, 16, 16, 16]


def test_sdot_lane_conv_asm_uses_indexed_sdot():
    xs, ws, cattrs, xdt = LANE_CASES[0]
    oshape = out_shape(xs, ws, cattrs)
    attrs = dict(cattrs, **requant_attrs(RNG, ws[0], "int8", 3))
    asm = _asm("qconv2d", attrs, [(xs, xdt), (ws, "int8"), ((ws[0],), "int32")], (oshape, "int8"),
               "qconv2d_int8_nchw_sdot")
    assert ".4b[3]" in asm and "ld1r" not in asm


def test_sdot_convs_run_bit_exact_on_cortex_a76(arm64_root, tmp_path):
    """Each case its own node of one graph, compiled for "aarch64-dotprod", run under qemu -cpu cortex-a76,
    against the NumPy integer reference (full-range codes, shifts that rarely clip)."""
    g = Graph("sdot_int8")
    feed, expected = [], []
    for i, (xs, ws, cattrs, xdt) in enumerate(LANE_CASES):
        x, w = int_codes(RNG, xs, xdt), int_codes(RNG, ws, "int8")
        b = RNG.integers(-5000, 5000, ws[0]).astype("int32")
        attrs = dict(cattrs, **requant_attrs(RNG, ws[0], "int8", -7 if xdt == "int8" else 131, (38, 41)))
        name = g.add_input(f"x{i}", x.shape, xdt)
        g.mark_output(g.add_node("qconv2d", [name, g.add_constant(f"w{i}", w), g.add_constant(f"b{i}", b)],
                                 attrs).outputs[0])
        feed.append(x)
        expected.append(ref_qconv(x, w, b, attrs))
    kernels, outputs = run_graph_on_arm(g, feed, tmp_path / "sdot_int8.so", arm64_root, "aarch64-dotprod",
                                        "cortex-a76")
    assert sum(k.startswith("qconv2d_int8_") and "_sdot" in k for k in kernels) == len(LANE_CASES), kernels
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert np.mean((want == -128) | (want == 127)) < 0.5, f"output {i} mostly clipped: a weak check"
        np.testing.assert_array_equal(got, want, err_msg=f"output {i}")
