"""int8 fast paths for every CPU (schedules/cpu_int8.py): the NHWC depthwise qconv2d, bit-exact."""
import numpy as np
import pytest

from tests.schedules.conftest import GENERIC, HOST, check_qconv, qconv_inputs

RNG = np.random.default_rng(11)

DW_CASES = [
    # x shape (NHWC), w shape [C, 1, KH, KW], conv attrs (group = C), bias, per-channel, x dtype, out dtype
    ((1, 13, 12, 8), (8, 1, 3, 3), dict(group=8, pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    # C = 6 (not a multiple of 16 or 4), stride 2, asymmetric pads, uint8
    ((2, 11, 10, 6), (6, 1, 3, 3), dict(group=6, strides=[2, 2], pads=[0, 1, 1, 1]), False, False,
     "uint8", "uint8"),
    # C = 24 (not a multiple of 16), 5x3 kernel, stride (1, 2), dilation (2, 1)
    ((1, 9, 30, 24), (24, 1, 5, 3), dict(group=24, strides=[1, 2], pads=[2, 1, 2, 1], dilations=[2, 1]), True,
     False, "int8", "uint8"),
    # C = 16, stride 2, uint8 in, int8 out
    ((1, 7, 7, 16), (16, 1, 3, 3), dict(group=16, strides=[2, 2], pads=[1, 1, 1, 1]), True, True, "uint8", "int8"),
    # C = 3 (one lane), dilation 2 both ways, odd width
    ((2, 8, 11, 3), (3, 1, 3, 3), dict(group=3, pads=[2, 2, 2, 2], dilations=[2, 2]), True, True, "uint8", "uint8"),
]


@pytest.mark.parametrize("target", [HOST, GENERIC], ids=["host", "x86-64"])
@pytest.mark.parametrize("case", range(len(DW_CASES)))
def test_dwconv2d_nhwc_exact(case, target):
    x, w, b, attrs = qconv_inputs(RNG, DW_CASES[case])
    check_qconv(x, w, b, dict(attrs, layout="NHWC"), target, "qconv2d_dw_int8_nhwc")
