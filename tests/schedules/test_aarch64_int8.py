"""aarch64 sdot kernels (schedules/aarch64_int8.py) cross-compiled: the asm has sdot instructions. They run
(bit-exact against the x86 build) in tests/e2e/test_cross_aarch64.py under qemu; tests/schedules/
test_dot_product.py checks their constants and algorithm in NumPy."""
import numpy as np
import pytest

from yuan.schedules import kernel_inputs, select_kernel
from tests.schedules.conftest import AARCH64_DOT, compile_kernel, out_shape, requant_attrs

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
