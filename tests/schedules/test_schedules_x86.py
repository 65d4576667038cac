"""x86 fast paths of schedules/: VNNI int8 conv (bit-exact, vpdpbusd in asm) and tiled fp32 conv/linear."""
import numpy as np
import pytest

from yuan.schedules import select_kernel
from tests.schedules.conftest import (GENERIC, HAS_AVX512, HAS_VNNI, HOST, ZNVER4, _out_shape, build, execute, ref_conv_acc,
                                      ref_requant)

RNG = np.random.default_rng(1)

QCASES = [
    # x shape, w shape, conv attrs, bias, per-channel, x dtype, out dtype
    ((1, 8, 7, 6), (32, 8, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    ((2, 4, 9, 8), (16, 4, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), False, False,
     "uint8", "uint8"),
    ((1, 12, 5, 5), (16, 12, 1, 1), dict(), True, False, "int8", "int8"),
    # C not a multiple of 4 (RGB stem), O not a multiple of 16
    ((1, 3, 20, 18), (16, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), True, True, "int8", "int8"),
    ((1, 5, 9, 8), (24, 5, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    ((2, 8, 7, 9), (8, 8, 1, 1), dict(strides=[2, 2]), False, False, "uint8", "uint8"),
]

DWCASES = [
    # x shape, w shape, conv attrs (group = C), bias, per-channel, x dtype, out dtype
    ((1, 8, 13, 12), (8, 1, 3, 3), dict(group=8, pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    ((2, 6, 11, 10), (12, 1, 3, 3), dict(group=6, strides=[2, 2], pads=[0, 1, 1, 1]), False, False, "uint8", "uint8"),
    ((1, 4, 9, 30), (4, 1, 5, 3), dict(group=4, strides=[1, 2], pads=[2, 1, 2, 1], dilations=[2, 1]), True, False,
     "int8", "uint8"),
    ((1, 16, 7, 7), (16, 1, 3, 3), dict(group=16, strides=[2, 2], pads=[1, 1, 1, 1]), True, True, "uint8", "int8"),
]


@pytest.mark.parametrize("case", range(len(DWCASES)))
def test_dwconv2d_int8_exact(case):
    xs, ws, cattrs, has_b, per_ch, xdt, odt = DWCASES[case]
    xlo, xhi = (-128, 127) if xdt == "int8" else (0, 255)
    lo, hi = (-128, 127) if odt == "int8" else (0, 255)
    x = RNG.integers(xlo, xhi + 1, xs).astype(xdt)
    w = RNG.integers(-127, 128, ws).astype("int8")
    b = RNG.integers(-5000, 5000, ws[0]).astype("int32") if has_b else None
    Cm = ws[0] if per_ch else 1
    zx = -7 if xdt == "int8" else 131
    attrs = dict(cattrs, x_zero_point=zx, multiplier=[int(v) for v in RNG.integers(1 << 30, (1 << 31) - 1, Cm)],
                 shift=[int(v) for v in RNG.integers(8, 13, Cm)], y_zero_point=3, out_min=lo + 5, out_max=hi,
                 out_dtype=odt)
    oshape = _out_shape(xs, ws, cattrs)
    f, lib, args = build("qconv2d", attrs, [x, w, b], (oshape, odt), HOST,
                         "qconv2d_dw_int8_nchw_x86")
    y = execute(f, lib, args, (oshape, odt))
    acc = ref_conv_acc(x, w, cattrs.get("strides", [1, 1]), cattrs.get("pads", [0] * 4),
                       cattrs.get("dilations", [1, 1]), cattrs["group"], zx=zx)
    if has_b:
        acc += b.reshape(1, -1, 1, 1)
    ref = ref_requant(acc, attrs["multiplier"], attrs["shift"], 3, lo + 5, hi)
    np.testing.assert_array_equal(y.astype(np.int64), ref)


def test_vnni_selected_only_with_feature():
    x, w = ((1, 8, 7, 6), "int8"), ((32, 8, 3, 3), "int8")
    attrs = dict(pads=[1, 1, 1, 1], multiplier=[1 << 30], shift=[20])
    assert select_kernel("qconv2d", attrs, [x, w], ((1, 32, 7, 6), "int8"), ZNVER4)[0].name == "qconv2d_int8_nchw_vnni"
    assert select_kernel("qconv2d", attrs, [x, w], ((1, 32, 7, 6), "int8"), GENERIC)[0].name == "qconv2d_nchw_generic"
    # weight not constant -> generic
    assert select_kernel("qconv2d", attrs, [x, w], ((1, 32, 7, 6), "int8"), ZNVER4,
                         constants={})[0].name == "qconv2d_nchw_generic"
    # O not a multiple of 16 -> still VNNI (output channels zero-padded); grouped (not depthwise) -> generic
    assert select_kernel("qconv2d", attrs, [x, ((8, 8, 3, 3), "int8")], ((1, 8, 7, 6), "int8"),
                         ZNVER4)[0].name == "qconv2d_int8_nchw_vnni"
    assert select_kernel("qconv2d", dict(attrs, group=2), [x, ((32, 4, 3, 3), "int8")], ((1, 32, 7, 6), "int8"),
                         ZNVER4)[0].name == "qconv2d_nchw_generic"
    # depthwise -> the x86 depthwise kernel
    assert select_kernel("qconv2d", dict(attrs, group=8), [x, ((8, 1, 3, 3), "int8")], ((1, 8, 7, 6), "int8"),
                         ZNVER4)[0].name == "qconv2d_dw_int8_nchw_x86"


@pytest.mark.skipif(not HAS_VNNI, reason="host lacks avx512_vnni")
@pytest.mark.parametrize("case", range(len(QCASES)))
def test_qconv2d_vnni_exact(case):
    xs, ws, cattrs, has_b, per_ch, xdt, odt = QCASES[case]
    lo, hi = (-128, 127) if xdt == "int8" else (0, 255)
    x = RNG.integers(lo, hi + 1, xs).astype(xdt)
    w = RNG.integers(-127, 128, ws).astype("int8")
    b = RNG.integers(-5000, 5000, ws[0]).astype("int32") if has_b else None
    O = ws[0]
    Cm = O if per_ch else 1
    zx = -7 if xdt == "int8" else 131
    attrs = dict(cattrs, x_zero_point=zx, multiplier=[int(v) for v in RNG.integers(1 << 30, (1 << 31) - 1, Cm)],
                 shift=[int(v) for v in RNG.integers(10, 15, Cm)], y_zero_point=3, out_min=lo + 5, out_max=hi,
                 out_dtype=odt)
    oshape = _out_shape(xs, ws, cattrs)
    f, lib, args = build("qconv2d", attrs, [x, w, b], (oshape, odt), HOST, "qconv2d_int8_nchw_vnni")
    if case == 0:
        asm = lib.mod.inspect_source("asm")
        assert "vpdpbusd" in asm
    y = execute(f, lib, args, (oshape, odt))
    acc = ref_conv_acc(x, w, cattrs.get("strides", [1, 1]), cattrs.get("pads", [0] * 4),
                       cattrs.get("dilations", [1, 1]), 1, zx=zx)
    if has_b:
        acc += b.reshape(1, -1, 1, 1)
    ref = ref_requant(acc, attrs["multiplier"], attrs["shift"], 3, lo + 5, hi)
    np.testing.assert_array_equal(y.astype(np.int64), ref)


@pytest.mark.skipif(not HAS_AVX512, reason="host lacks avx512")
@pytest.mark.parametrize("has_b,out_channels,in_channels,width", [
    (True, 32, 5, 8), (False, 32, 5, 8), (True, 24, 5, 8), (False, 7, 5, 8),
    (True, 64, 16, 14), (False, 40, 24, 28), (True, 50, 16, 14)])   # C >= 16: two channel vectors per tile
def test_conv2d_f32_tiled(has_b, out_channels, in_channels, width):
    # O not a multiple of 16 (MobileNetV2's 24-channel projections): zero-padded in the packed weight
    xs, ws = (1, in_channels, 9, width), (out_channels, in_channels, 3, 3)
    attrs = dict(strides=[1, 1], pads=[1, 0, 1, 2], dilations=[1, 1])
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    b = RNG.standard_normal(out_channels).astype("float32") if has_b else None
    oshape = _out_shape(xs, ws, attrs)
    f, lib, args = build("conv2d", attrs, [x, w, b], (oshape, "float32"), HOST, "conv2d_f32_nchw_tiled")
    y = execute(f, lib, args, (oshape, "float32"))
    ref = ref_conv_acc(x, w, [1, 1], attrs["pads"], [1, 1], 1, dtype=np.float64)
    if has_b:
        ref += b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not HAS_AVX512, reason="host lacks avx512")
@pytest.mark.parametrize("out_features", [48, 40, 5])
def test_linear_f32_tiled(out_features):
    x = RNG.standard_normal((3, 24)).astype("float32")
    w = RNG.standard_normal((out_features, 24)).astype("float32")
    b = RNG.standard_normal(out_features).astype("float32")
    out_type = ((3, out_features), "float32")
    f, lib, args = build("linear", {}, [x, w, b], out_type, HOST, "linear_f32_tiled")
    y = execute(f, lib, args, out_type)
    np.testing.assert_allclose(y, x.astype(np.float64) @ w.T.astype(np.float64) + b, rtol=1e-4, atol=1e-4)
