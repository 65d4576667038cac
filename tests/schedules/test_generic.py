"""Generic NCHW kernels (schedules/generic.py) against NumPy references (bit-exact for the integer ops), on
the host CPU and on plain x86-64 (where no fast path competes)."""
import numpy as np
import pytest

from tests.schedules.conftest import (GENERIC, HOST, out_shape, qconv_inputs, ref_conv_acc, ref_qconv, ref_requant,
                                      requant_attrs, run)

RNG = np.random.default_rng(0)
TARGETS = pytest.mark.parametrize("target", [HOST, GENERIC], ids=["host", "x86-64"])


# ------------------------------------------------------------------ float kernels
CONV_CASES = [
    # (x shape, w shape, attrs, bias)
    ((1, 4, 7, 6), (6, 4, 3, 3), dict(strides=[1, 1], pads=[1, 1, 1, 1]), True),
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2], group=2), False),
    ((1, 6, 8, 8), (6, 1, 3, 3), dict(strides=[1, 1], pads=[1, 1, 1, 1], group=6), True),   # depthwise
]


@TARGETS
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d_f32(case, target):
    xs, ws, attrs, has_b = CONV_CASES[case]
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    b = RNG.standard_normal(ws[0]).astype("float32") if has_b else None
    y = run("conv2d", attrs, [x, w, b], (out_shape(xs, ws, attrs), "float32"), target)
    ref = ref_conv_acc(x, w, attrs.get("strides", [1, 1]), attrs.get("pads", [0] * 4), attrs.get("dilations", [1, 1]),
                       attrs.get("group", 1), dtype=np.float64)
    if has_b:
        ref += b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@TARGETS
@pytest.mark.parametrize("has_b", [True, False])
def test_linear_f32(target, has_b):
    x = RNG.standard_normal((3, 20)).astype("float32")
    w = RNG.standard_normal((10, 20)).astype("float32")
    b = RNG.standard_normal(10).astype("float32") if has_b else None
    y = run("linear", {}, [x, w, b], ((3, 10), "float32"), target)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (b if has_b else 0)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ integer kernels
QCONV_CASES = [
    ((1, 4, 7, 6), (8, 4, 3, 3), dict(strides=[1, 1], pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2], group=2),
     False, False, "uint8", "uint8"),
    ((1, 5, 6, 6), (5, 1, 3, 3), dict(pads=[1, 1, 1, 1], group=5), True, True, "int8", "uint8"),
]


@TARGETS
@pytest.mark.parametrize("case", range(len(QCONV_CASES)))
def test_qconv2d(case, target):
    x, w, b, attrs = qconv_inputs(RNG, QCONV_CASES[case], shift=(8, 14))
    ref = ref_qconv(x, w, b, attrs)
    y = run("qconv2d", attrs, [x, w, b], (ref.shape, str(ref.dtype)), target)
    np.testing.assert_array_equal(y, ref)


@TARGETS
@pytest.mark.parametrize("xdt,per_ch,has_b", [("int8", True, True), ("uint8", False, False)])
def test_qlinear(target, xdt, per_ch, has_b):
    lo, hi = (-128, 127) if xdt == "int8" else (0, 255)
    x = RNG.integers(lo, hi + 1, (3, 40)).astype(xdt)
    w = RNG.integers(-127, 128, (12, 40)).astype("int8")
    b = RNG.integers(-5000, 5000, 12).astype("int32") if has_b else None
    attrs = requant_attrs(RNG, 12 if per_ch else 1, "int8", -7 if xdt == "int8" else 120, shift=(8, 14))
    y = run("qlinear", attrs, [x, w, b], ((3, 12), "int8"), target)
    acc = (x.astype(np.int64) - attrs["x_zero_point"]) @ w.T.astype(np.int64) + (b if has_b else 0)
    ref = ref_requant(acc, attrs["multiplier"], attrs["shift"], attrs["y_zero_point"], attrs["out_min"],
                      attrs["out_max"])
    np.testing.assert_array_equal(y.astype(np.int64), ref)


@pytest.mark.parametrize("xdt,per_ch", [("int32", True), ("int8", False)])
def test_requantize(xdt, per_ch):
    x = (RNG.integers(-100000, 100000, (2, 6, 5)) if xdt == "int32" else RNG.integers(-128, 128, (2, 6, 5))).astype(xdt)
    attrs = requant_attrs(RNG, 6 if per_ch else 1, "int8", 4, shift=(8, 14) if xdt == "int32" else (2, 8))
    y = run("requantize", attrs, [x], ((2, 6, 5), "int8"), HOST)
    ref = ref_requant(x.astype(np.int64) - 4, attrs["multiplier"], attrs["shift"], attrs["y_zero_point"],
                      attrs["out_min"], attrs["out_max"])
    np.testing.assert_array_equal(y.astype(np.int64), ref)


def test_requantize_per_tensor_of_a_vector():
    """Per-tensor mult/shift need no channel axis: a 1-D input (rank <= the default axis 1) works."""
    x = RNG.integers(-1000, 1000, (7,)).astype("int32")
    attrs = requant_attrs(RNG, 1, "int8", 0, shift=(36, 38))
    y = run("requantize", attrs, [x], ((7,), "int8"), HOST)
    ref = ref_requant(x, attrs["multiplier"], attrs["shift"], attrs["y_zero_point"], attrs["out_min"],
                      attrs["out_max"])
    np.testing.assert_array_equal(y.astype(np.int64), ref)


@pytest.mark.parametrize("bshape", [(2, 3, 4, 5), (1, 3, 1, 1)])
def test_qadd(bshape):
    a = RNG.integers(-128, 128, (2, 3, 4, 5)).astype("int8")
    b = RNG.integers(-128, 128, bshape).astype("int8")
    attrs = dict(a_zero_point=5, b_zero_point=-9, a_multiplier=1 << 29, b_multiplier=3 << 27, shift=30,
                 y_zero_point=2, out_min=-100, out_max=127, out_dtype="int8")
    y = run("qadd", attrs, [a, b], ((2, 3, 4, 5), "int8"), HOST)
    A = a.astype(np.int64) - 5
    B = b.astype(np.int64) + 9
    ref = np.clip(((A * (1 << 29) + B * (3 << 27) + (1 << 29)) >> 30) + 2, -100, 127)
    np.testing.assert_array_equal(y.astype(np.int64), ref)


@pytest.mark.parametrize("per_ch", [True, False])
def test_qglobal_avg_pool2d(per_ch):
    x = RNG.integers(0, 256, (2, 4, 5, 3)).astype("uint8")
    attrs = requant_attrs(RNG, 4 if per_ch else 1, "uint8", 100, shift=(8, 14), y_zero_point=7)
    y = run("qglobal_avg_pool2d", attrs, [x], ((2, 4, 1, 1), "uint8"), HOST)
    acc = (x.astype(np.int64) - 100).sum(axis=(2, 3))
    ref = ref_requant(acc, attrs["multiplier"], attrs["shift"], attrs["y_zero_point"], attrs["out_min"],
                      attrs["out_max"]).reshape(2, 4, 1, 1)
    np.testing.assert_array_equal(y.astype(np.int64), ref)


def test_qavg_pool2d():
    x = RNG.integers(-128, 128, (1, 3, 7, 6)).astype("int8")
    k, s, p = [3, 2], [2, 2], [1, 0, 1, 1]
    OH = (7 + 2 - 3) // 2 + 1
    OW = (6 + 1 - 2) // 2 + 1
    mm = RNG.integers(1 << 30, (1 << 31) - 1, (OH, OW)).astype("int32")
    sm = RNG.integers(30, 34, (OH, OW)).astype("int32")
    attrs = dict(kernel=k, strides=s, pads=p, x_zero_point=-3, y_zero_point=1, out_min=-128, out_max=127,
                 out_dtype="int8")
    y = run("qavg_pool2d", attrs, [x, mm, sm], ((1, 3, OH, OW), "int8"), HOST)
    X = np.zeros((1, 3, 7 + 2, 6 + 1), np.int64)
    X[:, :, 1:8, 0:6] = x.astype(np.int64) + 3
    acc = np.zeros((1, 3, OH, OW), np.int64)
    for i in range(3):
        for j in range(2):
            acc += X[:, :, i:i + 2 * (OH - 1) + 1:2, j:j + 2 * (OW - 1) + 1:2]
    ref = np.clip(((acc * mm.astype(np.int64) + (np.int64(1) << (sm.astype(np.int64) - 1))) >> sm) + 1, -128, 127)
    np.testing.assert_array_equal(y.astype(np.int64), ref)


@pytest.mark.parametrize("xdt", ["int8", "uint8"])
def test_lut(xdt):
    lo = -128 if xdt == "int8" else 0
    x = RNG.integers(lo, lo + 256, (2, 3, 5)).astype(xdt)
    table = RNG.integers(-128, 128, 256).astype("int8")
    y = run("lut", {}, [x, table], ((2, 3, 5), "int8"), HOST)
    np.testing.assert_array_equal(y, table[x.astype(np.int64) - lo])


@TARGETS
def test_requantize_ties_round_half_up(target):
    """m = 2^30, n = 31 multiplies by 1/2: every odd value is a tie, which must round towards +inf."""
    x = np.arange(-300, 300, dtype=np.int32).reshape(1, 1, 600)
    attrs = dict(x_zero_point=0, multiplier=[1 << 30], shift=[31], y_zero_point=0, out_min=-128, out_max=127,
                 out_dtype="int8")
    y = run("requantize", attrs, [x], ((1, 1, 600), "int8"), target)
    ref = np.clip(np.floor(x.astype(np.float64) / 2 + 0.5), -128, 127)
    np.testing.assert_array_equal(y.astype(np.int64), ref)
