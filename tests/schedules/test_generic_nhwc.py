"""Generic channels-last kernels (schedules/generic_nhwc.py), each compiled alone and compared bit for bit
with the NumPy references (for the pools: the integer spec compiler.ir.kernels with layout="NHWC")."""
import numpy as np
import pytest

from tests.schedules.conftest import (GENERIC, HOST, build, check_qconv, execute, int_codes, int_range, qconv_inputs,
                                      ref_integer_op, requant_attrs)

RNG = np.random.default_rng(7)

GROUPED_CASES = [
    # group 3 (neither dense nor depthwise): generic even on VNNI targets
    ("group3", ((1, 7, 6, 6), (9, 2, 3, 3), dict(group=3, pads=[1, 1, 1, 1]), True, True, "int8", "int8")),
    # depthwise with a channel multiplier (O = 2C): not the depthwise kernel
    ("dw_mult2", ((1, 6, 5, 4), (8, 1, 3, 3), dict(group=4, strides=[2, 1], pads=[1, 0, 1, 1]), False, True,
                  "uint8", "uint8")),
]


@pytest.mark.parametrize("label,case", GROUPED_CASES, ids=[c[0] for c in GROUPED_CASES])
def test_qconv2d_nhwc_generic_grouped(label, case):
    x, w, b, attrs = qconv_inputs(RNG, case)
    check_qconv(x, w, b, dict(attrs, layout="NHWC"), HOST, "qconv2d_nhwc_generic")


@pytest.mark.parametrize("case", [
    ((1, 9, 8, 5), (12, 5, 3, 3), dict(strides=[2, 2], pads=[1, 0, 2, 1], dilations=[1, 2]), True, True,
     "int8", "int8"),
    ((2, 6, 7, 8), (16, 8, 1, 1), dict(), False, False, "uint8", "uint8"),
])
def test_qconv2d_nhwc_generic_group1_without_vnni(case):
    # Target({"kind": "llvm"}) has no avx512_vnni: the VNNI kernels are out, and a dense conv is not
    # depthwise, so the generic NHWC kernel serves it.
    x, w, b, attrs = qconv_inputs(RNG, case)
    check_qconv(x, w, b, dict(attrs, layout="NHWC"), GENERIC, "qconv2d_nhwc_generic")


@pytest.mark.parametrize("xs,xdt,per_ch", [((2, 5, 3, 4), "uint8", False), ((1, 4, 4, 20), "int8", False),
                                           ((1, 3, 6, 16), "int8", True)])
def test_qglobal_avg_pool2d_nhwc(xs, xdt, per_ch):
    x = int_codes(RNG, xs, xdt)
    zx = -4 if xdt == "int8" else 100
    attrs = dict(layout="NHWC", **requant_attrs(RNG, xs[3] if per_ch else 1, xdt, zx, shift=(34, 36)))
    ref = ref_integer_op("qglobal_avg_pool2d", [x], attrs)
    assert ref.shape == (xs[0], 1, 1, xs[3]) and ref.std() > 0
    out_type = (ref.shape, xdt)
    f, lib, args = build("qglobal_avg_pool2d", attrs, [x], out_type, HOST, "qglobal_avg_pool2d_nhwc_generic")
    np.testing.assert_array_equal(execute(f, lib, args, out_type), ref)


@pytest.mark.parametrize("xs,xdt,kernel,strides,pads", [
    ((1, 7, 6, 3), "int8", [3, 2], [2, 2], [1, 0, 1, 1]),
    ((2, 6, 6, 16), "uint8", [2, 2], [2, 2], [0, 0, 0, 0]),
    ((1, 5, 9, 5), "int8", [3, 3], [1, 2], [1, 1, 1, 2]),
])
def test_qavg_pool2d_nhwc(xs, xdt, kernel, strides, pads):
    x = int_codes(RNG, xs, xdt)
    N, H, W, C = xs
    oh = (H + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    ow = (W + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    # per-cell (multiplier, shift) maps, like qdq_rewrites builds from the divisors
    mm = RNG.integers(1 << 30, (1 << 31) - 1, (oh, ow)).astype("int32")
    sm = RNG.integers(31, 35, (oh, ow)).astype("int32")
    lo, hi = int_range(xdt)
    attrs = dict(kernel=kernel, strides=strides, pads=pads, x_zero_point=-3 if xdt == "int8" else 120,
                 y_zero_point=1, out_min=lo, out_max=hi, out_dtype=xdt, layout="NHWC")
    ref = ref_integer_op("qavg_pool2d", [x, mm, sm], attrs)
    assert ref.shape == (N, oh, ow, C) and ref.std() > 0
    out_type = (ref.shape, xdt)
    f, lib, args = build("qavg_pool2d", attrs, [x, mm, sm], out_type, HOST, "qavg_pool2d_nhwc_generic")
    np.testing.assert_array_equal(execute(f, lib, args, out_type), ref)
