"""A float add (and its relu) fused into the x86 fp32 conv write-back (attrs fused_add, residual = node input 3):
bit for bit the unfused kernel's output + residual (then the relu), as the unfused graph computes it, and close to
a float64 reference. Small odd shapes: O not a multiple of 16 (padded channels), maps without a row tile, a
flat pixel axis that is no multiple of 16."""
import numpy as np
import pytest

from tests.schedules.conftest import HAS_AVX512, HOST, out_shape, ref_conv_acc, run

RNG = np.random.default_rng(5)
pytestmark = pytest.mark.skipif(not HAS_AVX512, reason="host lacks avx512")


@pytest.mark.parametrize("xs,ws,pads,has_b,kernel", [
    ((1, 16, 8, 14), (10, 16, 1, 1), [0] * 4, True, "conv2d_f32_nchw_1x1"),     # 8 x 14 row tile
    ((1, 24, 4, 16), (9, 24, 1, 1), [0] * 4, False, "conv2d_f32_nchw_1x1"),     # no bias: residual after w
    ((1, 40, 7, 7), (24, 40, 1, 1), [0] * 4, True, "conv2d_f32_nchw_tiled"),    # 7x7: no row tile, O padded
    ((1, 40, 7, 7), (32, 40, 1, 1), [0] * 4, False, "conv2d_f32_nchw_tiled"),   # 7x7, rowwise write-back
    ((1, 16, 5, 9), (20, 16, 3, 3), [1, 0, 1, 2], False, "conv2d_f32_nchw_tiled"),   # padded staging
    ((1, 8, 14, 14), (40, 8, 1, 1), [0] * 4, True, "conv2d_f32_nchw_1x1_flat"),   # overlapping last vector
])
@pytest.mark.parametrize("relu", [False, True])
def test_fused_add_equals_unfused(xs, ws, pads, has_b, kernel, relu):
    attrs = dict(strides=[1, 1], pads=pads)
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    b = RNG.standard_normal(ws[0]).astype("float32") if has_b else None
    out_type = (out_shape(xs, ws, attrs), "float32")
    r = RNG.standard_normal(out_type[0]).astype("float32")
    fused_attrs = dict(attrs, fused_add={"clip_min": 0.0 if relu else None, "clip_max": None})
    got = run("conv2d", fused_attrs, [x, w, b, r], out_type, HOST, kernel)
    conv = run("conv2d", attrs, [x, w, b], out_type, HOST, kernel)
    unfused = conv + r
    if relu:
        unfused = np.maximum(unfused, np.float32(0))
    np.testing.assert_array_equal(got, unfused)
    ref = ref_conv_acc(x, w, [1, 1], pads, [1, 1], 1, dtype=np.float64) + r
    if has_b:
        ref += b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(got, np.maximum(ref, 0) if relu else ref, rtol=1e-4, atol=1e-4)


def test_kernels_that_do_not_fuse_refuse():
    """The aarch64 conv shares the packed-conv TE: asked for a fused add it refuses instead of dropping it."""
    from yuan.schedules.fp32_packed_conv import packed_conv2d_f32
    attrs = dict(strides=[1, 1], pads=[0] * 4, fused_add={"clip_min": None, "clip_max": None})
    in_types = [((1, 8, 4, 4), "float32"), ((16, 8, 1, 1), "float32"), None, ((1, 16, 4, 4), "float32")]
    with pytest.raises(NotImplementedError, match="residual add"):
        packed_conv2d_f32(attrs, in_types)
