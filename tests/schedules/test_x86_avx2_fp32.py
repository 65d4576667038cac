"""The fp32 conv tiled for AVX2 (schedules/x86_avx2_fp32.py) against NumPy, compiled for x86-avx2."""
import numpy as np
import pytest

from yuan.compiler.targets import resolve_target
from tests.schedules.conftest import HOST, out_shape, ref_conv_acc, run

RNG = np.random.default_rng(5)
AVX2 = resolve_target("x86-avx2")
pytestmark = pytest.mark.skipif("avx2" not in HOST.features, reason="host lacks avx2")


@pytest.mark.parametrize("has_b,out_channels,in_channels,width,strides", [
    (True, 32, 5, 8, [1, 1]), (False, 7, 3, 13, [2, 2]), (True, 40, 24, 12, [1, 1])])
def test_conv2d_f32_avx2(has_b, out_channels, in_channels, width, strides):
    xs, ws = (1, in_channels, 9, width), (out_channels, in_channels, 3, 3)
    attrs = dict(strides=strides, pads=[1, 0, 1, 2], dilations=[1, 1], clip_min=-1.0, clip_max=2.0)
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    b = RNG.standard_normal(out_channels).astype("float32") if has_b else None
    y = run("conv2d", attrs, [x, w, b], (out_shape(xs, ws, attrs), "float32"), AVX2, "conv2d_f32_nchw_avx2")
    ref = ref_conv_acc(x, w, strides, attrs["pads"], [1, 1], 1, dtype=np.float64)
    if has_b:
        ref += b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(y, np.clip(ref, -1.0, 2.0), rtol=1e-4, atol=1e-4)
