"""x86 fp32 fast paths (schedules/x86_fp32.py): AVX-512 tiled conv2d and linear against NumPy. (The fp32
depthwise kernel is tested in tests/compiler/test_cpu_schedule.py; its narrow-map and partitioned-staging
paths here.)"""
import numpy as np
import pytest

from tests.schedules.conftest import HAS_AVX512, HOST, build, execute, out_shape, ref_conv_acc, ref_conv_f32, run

RNG = np.random.default_rng(1)
pytestmark = pytest.mark.skipif(not HAS_AVX512, reason="host lacks avx512")


@pytest.mark.parametrize("has_b,out_channels,in_channels,width", [
    (True, 32, 5, 8), (False, 32, 5, 8), (True, 24, 5, 8), (False, 7, 5, 8),
    (True, 64, 24, 14), (False, 40, 24, 28), (True, 50, 16, 14)])   # C >= 16: two channel vectors per tile
    # (3x3 stride 1 with C and O multiples of 16 goes to the Winograd kernel: test_x86_winograd_fp32.py)
def test_conv2d_f32_tiled(has_b, out_channels, in_channels, width):
    # O not a multiple of 16 (MobileNetV2's 24-channel projections): zero-padded in the packed weight
    xs, ws = (1, in_channels, 9, width), (out_channels, in_channels, 3, 3)
    attrs = dict(strides=[1, 1], pads=[1, 0, 1, 2], dilations=[1, 1])
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    b = RNG.standard_normal(out_channels).astype("float32") if has_b else None
    y = run("conv2d", attrs, [x, w, b], (out_shape(xs, ws, attrs), "float32"), HOST, "conv2d_f32_nchw_tiled")
    ref = ref_conv_acc(x, w, [1, 1], attrs["pads"], [1, 1], 1, dtype=np.float64)
    if has_b:
        ref += b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_conv2d_f32_tiled_fused_clip():
    """The lowering folds a relu6 into the conv (attrs clip_min / clip_max): applied at write-back."""
    xs, ws = (1, 16, 9, 14), (32, 16, 3, 3)
    attrs = dict(pads=[1, 1, 1, 1], strides=[1, 2], clip_min=0.0, clip_max=6.0)   # strided: not Winograd
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    y = run("conv2d", attrs, [x, w, None], (out_shape(xs, ws, attrs), "float32"), HOST, "conv2d_f32_nchw_tiled")
    ref = np.clip(ref_conv_acc(x, w, attrs["strides"], attrs["pads"], [1, 1], 1, dtype=np.float64), 0.0, 6.0)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs,ws,strides", [
    ((1, 40, 7, 7), (24, 40, 1, 1), [1, 1]),     # 1x1 on a 7x7 map (no row tile for conv2d_f32_nchw_1x1)
    ((1, 16, 9, 12), (20, 16, 3, 3), [2, 1]),    # 3x3 without padding
])
def test_conv2d_f32_tiled_unpadded(xs, ws, strides):
    """No pads: the kernel reads x in place instead of staging a copy."""
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    b = RNG.standard_normal(ws[0]).astype("float32")
    attrs = dict(strides=strides)
    y = run("conv2d", attrs, [x, w, b], (out_shape(xs, ws, attrs), "float32"), HOST, "conv2d_f32_nchw_tiled")
    ref = ref_conv_acc(x, w, strides, [0, 0, 0, 0], [1, 1], 1, dtype=np.float64) + b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs,out_channels,has_b,clip,lanes", [
    ((1, 40, 7, 7), 32, True, True, 7),      # 7 x 7, two channel vectors per tile, relu6
    ((1, 8, 7, 7), 16, False, False, 7),     # C < 16: one channel vector per tile, no bias
    ((1, 80, 14, 14), 64, True, False, 14),  # 14 x 14 projection (the flat kernel takes expand layers only)
    ((2, 96, 7, 7), 160, False, True, 7),    # batch 2, O = 5 x 32
])
def test_conv2d_f32_tiled_rowwise_write_back(xs, out_channels, has_b, clip, lanes):
    """1x1 on a narrow map: the tile is written back one output row per channel (a `lanes`-wide vector)."""
    ws = (out_channels, xs[1], 1, 1)
    attrs = dict(strides=[1, 1], pads=[0] * 4, **(dict(clip_min=0.0, clip_max=6.0) if clip else {}))
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    b = RNG.standard_normal(out_channels).astype("float32") if has_b else None
    out_type = (out_shape(xs, ws, attrs), "float32")
    f, lib, args = build("conv2d", attrs, [x, w, b], out_type, HOST, "conv2d_f32_nchw_tiled")
    assert f"in T.vectorized(T.int64({lanes})):" in f.script()
    ref = ref_conv_acc(x, w, [1, 1], [0] * 4, [1, 1], 1, dtype=np.float64)
    ref = np.clip(ref + (b.reshape(1, -1, 1, 1) if has_b else 0), 0.0 if clip else None, 6.0 if clip else None)
    np.testing.assert_allclose(execute(f, lib, args, out_type), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("out_features", [48, 40, 5])
def test_linear_f32_tiled(out_features):
    x = RNG.standard_normal((3, 24)).astype("float32")
    w = RNG.standard_normal((out_features, 24)).astype("float32")
    b = RNG.standard_normal(out_features).astype("float32")
    y = run("linear", {}, [x, w, b], ((3, out_features), "float32"), HOST, "linear_f32_tiled")
    np.testing.assert_allclose(y, x.astype(np.float64) @ w.T.astype(np.float64) + b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs,out_channels,has_b,clip,kernel", [
    ((1, 16, 8, 14), 10, True, True, "conv2d_f32_nchw_1x1"),     # 8 rows x 14 columns per tile, 2 channels
    ((2, 24, 4, 16), 9, False, False, "conv2d_f32_nchw_1x1"),    # batch 2, one row per tile, 3 channels
    ((1, 8, 4, 32), 64, True, False, "conv2d_f32_nchw_1x1"),
    # x86_pointwise_flat_fp32.py: pixel counts no multiple of 16 (the last vector overlaps the one before it)
    ((1, 8, 14, 14), 24, True, False, "conv2d_f32_nchw_1x1_flat"),   # 196: 2 tiles x 7, the 14th repeats the 13th
    ((2, 6, 10, 14), 20, False, True, "conv2d_f32_nchw_1x1_flat"),   # 140: 2 tiles x 5; batch 2; zero bias
])
def test_conv2d_f32_1x1(xs, out_channels, has_b, clip, kernel):
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal((out_channels, xs[1], 1, 1)).astype("float32")
    b = RNG.standard_normal(out_channels).astype("float32") if has_b else None
    attrs = dict(clip_min=0.0, clip_max=6.0) if clip else {}
    y = run("conv2d", attrs, [x, w, b], (out_shape(xs, w.shape, attrs), "float32"), HOST, kernel)
    ref = np.einsum("oc,nchw->nohw", w[:, :, 0, 0].astype(np.float64), x)
    if has_b:
        ref += b.reshape(1, -1, 1, 1)
    if clip:
        ref = np.clip(ref, 0.0, 6.0)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs,ws,pads,dil,clip", [
    ((1, 24, 7, 7), (24, 1, 3, 3), [1, 1, 1, 1], [1, 1], True),       # MobileNetV2's 7x7: 8-column tile
    ((1, 6, 14, 14), (12, 1, 3, 3), [1, 1, 1, 1], [1, 1], False),     # 14x14, channel multiplier 2
    ((2, 5, 12, 13), (5, 1, 5, 3), [2, 0, 2, 1], [2, 1], True),       # 12 columns, dilation, uneven pads
    ((1, 3, 6, 3), (3, 1, 3, 3), [1, 1, 1, 1], [1, 1], False),        # 3 columns in an 8-column tile
])
def test_dwconv2d_f32_x86_narrow(xs, ws, pads, dil, clip):
    """Narrow stride-1 maps: accumulator padded to 8 / 16 columns, input planes staged up front."""
    from yuan.schedules.x86_fp32 import dw_narrow_width
    assert dw_narrow_width([1, 1], out_shape(xs, ws, dict(pads=pads, dilations=dil))[3]) in (8, 16)
    check_dw(xs, ws, pads, dil, clip, [1, 1])


@pytest.mark.parametrize("xs,ws,pads,dil,clip", [
    ((1, 6, 10, 24), (6, 1, 3, 3), [1, 1, 1, 1], [1, 1], True),      # 24 columns: tiles of 8 (not 12)
    ((1, 4, 9, 60), (4, 1, 3, 3), [1, 0, 1, 0], [2, 2], False),      # 56 columns, dilation 2
])
def test_dwconv2d_f32_x86_vector_column_tiles(xs, ws, pads, dil, clip):
    """Stride 1, OW a multiple of 8: whole 8 / 16-lane column tiles."""
    check_dw(xs, ws, pads, dil, clip, [1, 1])


@pytest.mark.parametrize("xs,ws,strides,pads,dil,clip", [
    ((1, 5, 29, 27), (5, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], True),      # odd map, one edge group a side
    ((1, 3, 23, 41), (6, 1, 3, 3), [2, 2], [0, 2, 1, 0], [1, 1], False),     # multiplier 2, uneven pads
    ((2, 4, 17, 37), (4, 1, 5, 3), [2, 2], [2, 0, 2, 1], [1, 2], True),      # no left pad, column dilation 2
    ((1, 4, 9, 30), (4, 1, 3, 3), [1, 2], [1, 1, 1, 1], [2, 1], False),      # stride 2 across only
])
def test_dwconv2d_f32_x86_partitioned_staging(xs, ws, strides, pads, dil, clip):
    """Strided maps with rows of more than one 8-column group: the staging partitioned into vector copies of
    the image's groups, zero rows and unrolled edge groups (stage_plane)."""
    from yuan.schedules.depthwise_f32_tile import phase_split_extent
    from yuan.schedules.x86_fp32 import DW_STAGE_LANES
    oshape = out_shape(xs, ws, dict(strides=strides, pads=pads, dilations=dil))
    assert phase_split_extent(strides, dil, *oshape[2:], *ws[2:])[1] > DW_STAGE_LANES
    check_dw(xs, ws, pads, dil, clip, strides)


def check_dw(xs, ws, pads, dil, clip, strides):
    attrs = dict(strides=strides, pads=pads, dilations=dil, group=xs[1])
    attrs.update(dict(clip_min=0.0, clip_max=6.0) if clip else {})
    oshape = out_shape(xs, ws, attrs)
    x = RNG.standard_normal(xs).astype("float32")
    w = RNG.standard_normal(ws).astype("float32")
    b = RNG.standard_normal(ws[0]).astype("float32")
    y = run("conv2d", attrs, [x, w, b], (oshape, "float32"), HOST, "dwconv2d_f32_nchw_x86")
    np.testing.assert_allclose(y, ref_conv_f32(x, w, b, attrs), rtol=1e-5, atol=1e-5)
