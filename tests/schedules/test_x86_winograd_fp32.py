"""fp32 Winograd (schedules/x86_winograd_fp32.py, winograd_matrices.py) against NumPy float64 convs.

Tolerance: the fp32 transforms round differently from a direct sum; errors are ~1e-5 of max |y| for
F(4x4), so outputs are compared at 1e-4 of max |y| (a wrong tap or tile edge is O(1))."""
import numpy as np
import pytest

from tests.schedules.conftest import DEV, HAS_AVX512, HOST, ZNVER4, compile_kernel, out_shape, ref_conv_acc, run
from yuan.schedules.registry import applicable
from yuan.schedules.winograd_matrices import winograd_matrices

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("m", [2, 4, 6])
def test_matrices_compute_the_correlation(m):
    AT, G, BT = winograd_matrices(m, 3)
    a = m + 2
    assert AT.shape == (m, a) and G.shape == (a, 3) and BT.shape == (a, a) and AT.dtype == np.float64
    d, g = RNG.standard_normal((a, a)), RNG.standard_normal((3, 3))
    ref = np.array([[(d[i:i + 3, j:j + 3] * g).sum() for j in range(m)] for i in range(m)])
    np.testing.assert_allclose(AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T, ref, rtol=0, atol=1e-12)


def _case(xs, o, pads, has_b, clip):
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal((o, xs[1], 3, 3)).astype("float32")
    b = RNG.standard_normal(o).astype("float32") if has_b else None
    attrs = dict(pads=pads, **({"clip_min": 0.0, "clip_max": 6.0} if clip else {}))
    ref = ref_conv_acc(x, w, [1, 1], pads, [1, 1], 1, dtype=np.float64)
    if has_b:
        ref += b.reshape(1, -1, 1, 1)
    if clip:
        ref = np.clip(ref, 0.0, 6.0)
    return x, w, b, attrs, ref


@pytest.mark.skipif(not HAS_AVX512, reason="host lacks avx512")
@pytest.mark.parametrize("xs,o,pads,has_b,clip", [
    ((1, 64, 16, 17), 48, [1, 0, 1, 2], True, True),    # ragged tiles (17 columns), asymmetric pads, relu6
    ((2, 64, 14, 14), 32, [1, 1, 1, 1], False, False),  # batch 2, no bias
])
def test_winograd_kernel_matches_float64(xs, o, pads, has_b, clip):
    x, w, b, attrs, ref = _case(xs, o, pads, has_b, clip)
    y = run("conv2d", attrs, [x, w, b], (ref.shape, "float32"), HOST, "conv2d_f32_nchw_winograd")
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


@pytest.mark.skipif(not HAS_AVX512, reason="host lacks avx512")
def test_winograd_f2x2():
    """F(2x2) (the rule's pick for 7x7 maps with C >= 512) on a small shape, built directly."""
    import tvm
    from yuan.schedules.x86_winograd_fp32 import build_winograd, pack_winograd_weight
    x, w, b, attrs, ref = _case((1, 16, 9, 10), 16, [1, 1, 1, 1], True, False)
    in_types = [(x.shape, "float32"), (w.shape, "float32"), (b.shape, "float32")]
    f = build_winograd(attrs, in_types, (ref.shape, "float32"), 2)
    lib = compile_kernel(f.with_attr("global_symbol", "wino2"), HOST)
    out = tvm.runtime.empty(ref.shape, "float32", DEV)
    lib["wino2"](*[tvm.runtime.tensor(a, DEV) for a in (x, pack_winograd_weight(w, 2), b)], out)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("xs,ws,attrs,expect", [
    ((1, 64, 56, 56), (64, 64, 3, 3), dict(pads=[1, 1, 1, 1]), "conv2d_f32_nchw_winograd"),
    ((1, 512, 7, 7), (512, 512, 3, 3), dict(pads=[1, 1, 1, 1]), "conv2d_f32_nchw_winograd"),  # F(2x2)
    ((1, 24, 56, 56), (32, 24, 3, 3), dict(pads=[1, 1, 1, 1]), "conv2d_f32_nchw_tiled"),      # C % 16 != 0
    ((1, 64, 56, 56), (64, 64, 3, 3), dict(pads=[1, 1, 1, 1], dilations=[2, 2]), "conv2d_f32_nchw_tiled"),
    ((1, 64, 56, 56), (64, 64, 3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 2]), "conv2d_f32_nchw_tiled"),
    ((1, 64, 56, 56), (64, 64, 1, 1), {}, "conv2d_f32_nchw_1x1"),
    ((1, 64, 14, 14), (64, 64, 1, 1), {}, "conv2d_f32_nchw_tiled"),     # 1x1 on a 14x14 map: no row tile
    ((1, 64, 56, 56), (64, 64, 1, 1), dict(strides=[2, 2]), "conv2d_f32_nchw_tiled"),
])
def test_winograd_rule(xs, ws, attrs, expect):
    """Which fp32 conv kernel the registry ranks first (selection only: ZNVER4 is an avx512 target on any host)."""
    cands = applicable("conv2d", attrs, [(xs, "float32"), (ws, "float32")], (out_shape(xs, ws, attrs), "float32"),
                       ZNVER4)
    assert cands[0].name == expect


def test_winograd_tile_choice():
    from yuan.schedules.x86_winograd_fp32 import winograd_tile
    conv = lambda c, h: (dict(pads=[1, 1, 1, 1]), [((1, c, h, h), "float32"), ((c, c, 3, 3), "float32")],  # noqa: E731
                         ((1, c, h, h), "float32"))
    assert [winograd_tile(*conv(c, h)) for c, h in ((512, 7), (256, 7), (512, 14), (64, 56))] == [2, 4, 4, 4]
    # maps smaller than a tile: F(2x2) while it saves multiplies (2x2: 16 vs 36), none on a 1x1 map (16 vs 9)
    assert [winograd_tile(*conv(256, h)) for h in (2, 1)] == [2, None]
