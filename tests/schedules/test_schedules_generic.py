"""Generic kernels of schedules/ against NumPy references (bit-exact for the integer ops)."""
import numpy as np
import pytest

from yuan import schedules

from yuan.schedules import kernel_inputs, select_kernel
from yuan.compiler.targets import Target
from tests.schedules.conftest import (AARCH64, GENERIC, HOST, ZNVER4, _out_shape, compile_kernel, execute, ref_conv_acc,
                                      ref_requant)

RNG = np.random.default_rng(0)


def run(func, target, args, out_type):
    return execute(func, compile_kernel(func, target), args, out_type)


def call(op, attrs, inputs, out_type, target, expect_kernel=None):
    in_types = [None if a is None else (a.shape, str(a.dtype)) for a in inputs]
    k, f = select_kernel(op, attrs, in_types, out_type, target)
    if expect_kernel:
        assert expect_kernel in k.name, k.name
    assert f.attrs["tirx.is_scheduled"] and int(f.attrs["op_pattern"]) == 8
    assert f.attrs["global_symbol"].startswith(k.name)
    # int64 index dtype
    sig = f.script().split("):")[0]
    assert "T.int64(" in sig and "T.int32(" not in sig.split("T.Buffer")[1], sig
    inputs = [a for a in inputs if a is not None]
    plan = kernel_inputs(f, attrs, in_types, inputs)
    args = [inputs[p] if isinstance(p, int) else p for p in plan]
    return run(f, target, args, out_type)


# ------------------------------------------------------------------ registry
def test_registry_wants_a_resolved_target():
    with pytest.raises(TypeError, match="resolved yuan Target"):
        select_kernel("lut", {}, [((4,), "int8"), ((256,), "int8")], ((4,), "int8"), "llvm")


def test_fallback_everywhere():
    """Every op has a kernel on every target kind, and priority decides."""
    tconv = [((1, 4, 6, 6), "int8"), ((8, 4, 3, 3), "int8"), None]
    attrs = dict(x_zero_point=0, multiplier=[1 << 30], shift=[31], y_zero_point=0)
    riscv = Target.from_tvm({"kind": "llvm", "mtriple": "riscv64-linux-gnu"})
    for tgt in [GENERIC, AARCH64, ZNVER4, riscv]:
        for op in ["conv2d", "qconv2d", "linear", "qlinear", "qadd", "requantize", "qglobal_avg_pool2d",
                   "qavg_pool2d", "lut"]:
            assert schedules.kernels(op), op
        ks = schedules.applicable("qconv2d", attrs, tconv, ((1, 8, 4, 4), "int8"), tgt)
        assert ks and ks[-1].name == "qconv2d_nchw_generic"
    with pytest.raises(NotImplementedError):
        schedules.select("nonexistent_op", {}, [((1,), "float32")], ((1,), "float32"), GENERIC)


def test_other_isas_get_only_generic_kernels():
    """An LLVM target that is neither x86 nor Arm (riscv64) never gets an ISA-specific kernel."""
    riscv = Target.from_tvm({"kind": "llvm", "mtriple": "riscv64-linux-gnu"})
    assert riscv.isa == "generic" and riscv.features == {"cpu"}
    conv = [((1, 16, 8, 8), "int8"), ((32, 16, 3, 3), "int8")]
    attrs = dict(x_zero_point=0, multiplier=[1 << 30], shift=[31], y_zero_point=0, pads=[1, 1, 1, 1])
    for op, types, out in [("qconv2d", conv, ((1, 32, 8, 8), "int8")),
                           ("conv2d", [((1, 16, 8, 8), "float32"), ((32, 16, 3, 3), "float32")],
                            ((1, 32, 6, 6), "float32"))]:
        names = [k.name for k in schedules.applicable(op, attrs if op == "qconv2d" else {}, types, out, riscv)]
        assert names and all("generic" in n for n in names), names


def test_unique_names():
    a = schedules.select("conv2d", {}, [((1, 2, 5, 5), "float32"), ((3, 2, 3, 3), "float32")],
                         ((1, 3, 3, 3), "float32"), GENERIC)
    b = schedules.select("conv2d", {"strides": [2, 2]}, [((1, 2, 5, 5), "float32"), ((3, 2, 3, 3), "float32")],
                         ((1, 3, 2, 2), "float32"), GENERIC)
    assert a.attrs["global_symbol"] != b.attrs["global_symbol"]


# ------------------------------------------------------------------ float kernels
CONV_CASES = [
    # (x shape, w shape, attrs, bias)
    ((1, 4, 7, 6), (6, 4, 3, 3), dict(strides=[1, 1], pads=[1, 1, 1, 1]), True),
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2], group=2), False),
    ((1, 6, 8, 8), (6, 1, 3, 3), dict(strides=[1, 1], pads=[1, 1, 1, 1], group=6), True),   # depthwise
]




@pytest.mark.parametrize("target", [HOST, GENERIC], ids=["host", "x86-64"])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d_f32(case, target):
    xs, ws, attrs, has_b = CONV_CASES[case]
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    b = RNG.standard_normal(ws[0]).astype("float32") if has_b else None
    oshape = _out_shape(xs, ws, attrs)
    y = call("conv2d", attrs, [x, w, b], (oshape, "float32"), target)
    ref = ref_conv_acc(x, w, attrs.get("strides", [1, 1]), attrs.get("pads", [0] * 4), attrs.get("dilations", [1, 1]),
                       attrs.get("group", 1), dtype=np.float64)
    if has_b:
        ref += b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("target", [HOST, GENERIC], ids=["host", "x86-64"])
@pytest.mark.parametrize("has_b", [True, False])
def test_linear_f32(target, has_b):
    x = RNG.standard_normal((3, 20)).astype("float32")
    w = RNG.standard_normal((10, 20)).astype("float32")
    b = RNG.standard_normal(10).astype("float32") if has_b else None
    y = call("linear", {}, [x, w, b], ((3, 10), "float32"), target)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (b if has_b else 0)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ integer kernels
def _qattrs(O, per_channel, out_dtype="int8", zx=3, zy=-5):
    Cm = O if per_channel else 1
    m = RNG.integers(1 << 30, (1 << 31) - 1, Cm).astype(np.int64)
    n = RNG.integers(8, 14, Cm).astype(np.int64)
    lo, hi = (-128, 127) if out_dtype == "int8" else (0, 255)
    return dict(x_zero_point=zx, multiplier=[int(v) for v in m], shift=[int(v) for v in n],
                y_zero_point=zy if out_dtype == "int8" else 7, out_min=lo + 10, out_max=hi, out_dtype=out_dtype)


QCONV_CASES = [
    ((1, 4, 7, 6), (8, 4, 3, 3), dict(strides=[1, 1], pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2], group=2),
     False, False, "uint8", "uint8"),
    ((1, 5, 6, 6), (5, 1, 3, 3), dict(pads=[1, 1, 1, 1], group=5), True, True, "int8", "uint8"),
]


@pytest.mark.parametrize("target", [HOST, GENERIC], ids=["host", "x86-64"])
@pytest.mark.parametrize("case", range(len(QCONV_CASES)))
def test_qconv2d(case, target):
    xs, ws, cattrs, has_b, per_ch, xdt, odt = QCONV_CASES[case]
    lo, hi = (-128, 127) if xdt == "int8" else (0, 255)
    x = RNG.integers(lo, hi + 1, xs).astype(xdt)
    w = RNG.integers(-127, 128, ws).astype("int8")
    b = RNG.integers(-5000, 5000, ws[0]).astype("int32") if has_b else None
    attrs = dict(cattrs, **_qattrs(ws[0], per_ch, odt, zx=3 if xdt == "int8" else 130))
    oshape = _out_shape(xs, ws, cattrs)
    y = call("qconv2d", attrs, [x, w, b], (oshape, odt), target)
    acc = ref_conv_acc(x, w, cattrs.get("strides", [1, 1]), cattrs.get("pads", [0] * 4),
                       cattrs.get("dilations", [1, 1]), cattrs.get("group", 1), zx=attrs["x_zero_point"])
    if has_b:
        acc += b.reshape(1, -1, 1, 1)
    ref = ref_requant(acc, attrs["multiplier"], attrs["shift"], attrs["y_zero_point"], attrs["out_min"],
                      attrs["out_max"])
    assert y.dtype == np.dtype(odt)
    np.testing.assert_array_equal(y.astype(np.int64), ref)


@pytest.mark.parametrize("target", [HOST, GENERIC], ids=["host", "x86-64"])
@pytest.mark.parametrize("xdt,per_ch,has_b", [("int8", True, True), ("uint8", False, False)])
def test_qlinear(target, xdt, per_ch, has_b):
    lo, hi = (-128, 127) if xdt == "int8" else (0, 255)
    x = RNG.integers(lo, hi + 1, (3, 40)).astype(xdt)
    w = RNG.integers(-127, 128, (12, 40)).astype("int8")
    b = RNG.integers(-5000, 5000, 12).astype("int32") if has_b else None
    attrs = _qattrs(12, per_ch, "int8", zx=-7 if xdt == "int8" else 120)
    y = call("qlinear", attrs, [x, w, b], ((3, 12), "int8"), target)
    acc = (x.astype(np.int64) - attrs["x_zero_point"]) @ w.T.astype(np.int64) + (b if has_b else 0)
    ref = ref_requant(acc, attrs["multiplier"], attrs["shift"], attrs["y_zero_point"], attrs["out_min"],
                      attrs["out_max"])
    np.testing.assert_array_equal(y.astype(np.int64), ref)


@pytest.mark.parametrize("xdt,per_ch", [("int32", True), ("int8", False)])
def test_requantize(xdt, per_ch):
    x = (RNG.integers(-100000, 100000, (2, 6, 5)) if xdt == "int32" else RNG.integers(-128, 128, (2, 6, 5))).astype(xdt)
    attrs = _qattrs(6, per_ch, "int8", zx=4)
    attrs["shift"] = [s - 6 for s in attrs["shift"]] if xdt == "int8" else attrs["shift"]
    y = call("requantize", attrs, [x], ((2, 6, 5), "int8"), HOST)
    ref = ref_requant(x.astype(np.int64) - 4, attrs["multiplier"], attrs["shift"], attrs["y_zero_point"],
                      attrs["out_min"], attrs["out_max"])
    np.testing.assert_array_equal(y.astype(np.int64), ref)


@pytest.mark.parametrize("bshape", [(2, 3, 4, 5), (1, 3, 1, 1)])
def test_qadd(bshape):
    a = RNG.integers(-128, 128, (2, 3, 4, 5)).astype("int8")
    b = RNG.integers(-128, 128, bshape).astype("int8")
    attrs = dict(a_zero_point=5, b_zero_point=-9, a_multiplier=1 << 29, b_multiplier=3 << 27, shift=30,
                 y_zero_point=2, out_min=-100, out_max=127, out_dtype="int8")
    y = call("qadd", attrs, [a, b], ((2, 3, 4, 5), "int8"), HOST)
    A = a.astype(np.int64) - 5
    B = b.astype(np.int64) + 9
    ref = np.clip(((A * (1 << 29) + B * (3 << 27) + (1 << 29)) >> 30) + 2, -100, 127)
    np.testing.assert_array_equal(y.astype(np.int64), ref)


@pytest.mark.parametrize("per_ch", [True, False])
def test_qglobal_avg_pool2d(per_ch):
    x = RNG.integers(0, 256, (2, 4, 5, 3)).astype("uint8")
    attrs = _qattrs(4, per_ch, "uint8", zx=100)
    y = call("qglobal_avg_pool2d", attrs, [x], ((2, 4, 1, 1), "uint8"), HOST)
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
    y = call("qavg_pool2d", attrs, [x, mm, sm], ((1, 3, OH, OW), "int8"), HOST)
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
    y = call("lut", {}, [x, table], ((2, 3, 5), "int8"), HOST)
    np.testing.assert_array_equal(y, table[x.astype(np.int64) - lo])


@pytest.mark.parametrize("target", [HOST, GENERIC], ids=["host", "x86-64"])
def test_requantize_ties_round_half_up(target):
    """m = 2^30, n = 31 multiplies by 1/2: every odd value is a tie, which must round towards +inf."""
    x = np.arange(-300, 300, dtype=np.int32).reshape(1, 1, 600)
    attrs = dict(x_zero_point=0, multiplier=[1 << 30], shift=[31], y_zero_point=0, out_min=-128, out_max=127,
                 out_dtype="int8")
    y = call("requantize", attrs, [x], ((1, 1, 600), "int8"), target)
    ref = np.clip(np.floor(x.astype(np.float64) / 2 + 0.5), -128, 127)
    np.testing.assert_array_equal(y.astype(np.int64), ref)
