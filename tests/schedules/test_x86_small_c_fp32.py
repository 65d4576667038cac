"""The few-input-channel fp32 conv (schedules/x86_small_c_fp32.py, the RGB stems) against NumPy."""
import numpy as np
import pytest

from tests.schedules.conftest import HAS_AVX512, HOST, out_shape, ref_conv_acc, run

RNG = np.random.default_rng(5)
pytestmark = pytest.mark.skipif(not HAS_AVX512, reason="host lacks avx512")


@pytest.mark.parametrize("xs,ws,attrs,has_b", [
    ((1, 3, 15, 15), (10, 3, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1], clip_min=0.0, clip_max=6.0), True),
    ((1, 3, 16, 20), (8, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), False),      # ResNet's 7x7 stem
    ((2, 1, 8, 16), (6, 1, 3, 3), dict(strides=[1, 1], pads=[0, 1, 2, 1], dilations=[2, 1]), True),
    ((1, 4, 9, 32), (12, 4, 5, 3), dict(strides=[1, 2], pads=[2, 0, 2, 1], clip_min=0.0), True),
])
def test_conv2d_f32_small_c_matches_numpy(xs, ws, attrs, has_b):
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    b = RNG.standard_normal(ws[0]).astype("float32") if has_b else None
    y = run("conv2d", attrs, [x, w, b], (out_shape(xs, ws, attrs), "float32"), HOST, "conv2d_f32_nchw_small_c")
    ref = ref_conv_acc(x, w, attrs["strides"], attrs["pads"], attrs.get("dilations", [1, 1]), 1, dtype=np.float64)
    if has_b:
        ref += b.reshape(1, -1, 1, 1)
    ref = np.clip(ref, attrs.get("clip_min"), attrs.get("clip_max"))
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("xs,ws,strides", [
    ((1, 5, 16, 16), (8, 5, 3, 3), [2, 2]),   # more input channels: conv2d_f32_nchw_tiled
    ((1, 3, 14, 14), (8, 3, 3, 3), [2, 2]),   # 7 x 7 output: no whole-vector row tile
    ((1, 3, 16, 16), (8, 3, 1, 1), [1, 1]),   # 1x1
])
def test_conv2d_f32_small_c_does_not_apply(xs, ws, strides):
    from yuan.schedules import applicable
    attrs = dict(strides=strides, pads=[ws[2] // 2] * 4)
    names = [k.name for k in applicable("conv2d", attrs, [(xs, "float32"), (ws, "float32")],
                                        (out_shape(xs, ws, attrs), "float32"), HOST)]
    assert names and "conv2d_f32_nchw_small_c" not in names, names
