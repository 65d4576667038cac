"""The fused depthwise + 1x1 fp32 kernel (schedules/x86_dw_pw_fp32.py) against NumPy, where it applies, and the
lowering that forms it (compiler/relax/fuse_conv_pairs.py) against the IR's reference interpreter."""
import numpy as np
import pytest

from tests.schedules.conftest import (HAS_AVX512, HOST, add_float_conv, compile_and_compare, out_shape, ref_conv_acc,
                                      run)

RNG = np.random.default_rng(5)
pytestmark = pytest.mark.skipif(not HAS_AVX512, reason="host lacks avx512")
RELU6 = dict(clip_min=0.0, clip_max=6.0)
RELU = dict(clip_min=0.0)


def _case(C, O, H, W, k, pads, dw_act, pw_act, stride=1, N=1):
    x = RNG.standard_normal((N, C, H, W)).astype("float32")
    w1 = RNG.standard_normal((C, 1, k, k)).astype("float32")
    b1 = RNG.standard_normal(C).astype("float32")
    w2 = RNG.standard_normal((O, C, 1, 1)).astype("float32")
    b2 = RNG.standard_normal(O).astype("float32")
    attrs = dict(strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1, **pw_act,
                 depthwise=dict(strides=[stride, stride], pads=pads, dilations=[1, 1], group=C, **dw_act))
    return [x, w1, b1, w2, b2], attrs


def _clip(v, attrs):
    return np.clip(v, attrs.get("clip_min"), attrs.get("clip_max"))


def _reference(inputs, attrs):
    x, w1, b1, w2, b2 = inputs
    dw = attrs["depthwise"]
    mid = _clip(ref_conv_acc(x, w1, dw["strides"], dw["pads"], [1, 1], x.shape[1], dtype=np.float64)
                + b1.reshape(1, -1, 1, 1), dw)
    y = ref_conv_acc(mid, w2, [1, 1], [0] * 4, [1, 1], 1, dtype=np.float64)
    return _clip(y + b2.reshape(1, -1, 1, 1), attrs)


def _out_shape(inputs, attrs):
    _, _, OH, OW = out_shape(inputs[0].shape, inputs[1].shape, attrs["depthwise"])
    return (inputs[0].shape[0], inputs[3].shape[0], OH, OW)


@pytest.mark.parametrize("C,O,H,W,k,pads,dw_act,pw_act,N", [
    (32, 16, 16, 16, 3, [1, 1, 1, 1], RELU6, {}, 1),   # MobileNetV2's first block, small
    (8, 16, 8, 16, 3, [1, 1, 1, 1], RELU6, {}, 2),     # batch 2: the parallel blocks span both images
    (5, 3, 16, 32, 3, [1, 1, 1, 1], RELU6, RELU, 1),     # C, O not multiples of 16; one output channel tile of 3
    (20, 7, 8, 28, 3, [1, 1, 1, 1], {}, RELU6, 1),       # 28 columns: the last column vector overlaps the first
    (9, 12, 12, 20, 3, [0, 0, 2, 2], RELU6, {}, 1),      # asymmetric pads (none on the left), 4-row blocks
    (6, 10, 16, 16, 5, [2, 2, 2, 2], RELU, RELU6, 1),    # 5 x 5 taps
    (3, 4, 16, 14, 3, [1, 1, 1, 1], {}, {}, 1),          # 14 columns: 8-lane depthwise vectors, 8-row blocks
    (4, 6, 9, 17, 3, [1, 1, 0, 0], RELU6, {}, 1),        # pads on the top / left only
    (3, 5, 8, 16, 3, [1, 17, 1, 17], {}, RELU, 1),       # 17 pad columns: the image starts at scratch column 32
    (4, 8, 16, 160, 3, [1, 1, 1, 1], RELU6, {}, 1),      # 160 columns: 8 rows would pass MAX_BLOCK_PIXELS
])
def test_dwpw_f32_matches_numpy(C, O, H, W, k, pads, dw_act, pw_act, N):
    inputs, attrs = _case(C, O, H, W, k, pads, dw_act, pw_act, N=N)
    y = run("conv2d_dw_pw", attrs, inputs, (_out_shape(inputs, attrs), "float32"), HOST, "dwpw_f32_nchw_x86")
    ref = _reference(inputs, attrs)
    assert ref.std() > 0
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("C,O,H,W,stride,second_kernel", [
    (8, 16, 16, 16, 2, 1),   # a strided depthwise conv
    (8, 16, 14, 14, 1, 1),   # 14 x 14: no block of whole rows is whole 16-pixel vectors
    (8, 16, 7, 7, 1, 1),     # 7 columns: under one 8-lane vector
    (8, 16, 16, 16, 1, 3),   # the second conv is no 1x1
])
def test_dwpw_f32_does_not_apply(C, O, H, W, stride, second_kernel):
    from yuan.schedules import applicable
    inputs, attrs = _case(C, O, H, W, 3, [1, 1, 1, 1], RELU6, {}, stride)
    types = [(a.shape, "float32") for a in inputs]
    types[3] = ((O, C, second_kernel, second_kernel), "float32")
    assert not applicable("conv2d_dw_pw", attrs, types, (_out_shape(inputs, attrs), "float32"), HOST)


def test_lowering_fuses_only_a_sole_consumer(tmp_path):
    """Branch a (depthwise without bias -> relu6 -> 1x1) becomes one call; branch b's depthwise output is also a
    graph output, so b stays two calls. Both equal the reference interpreter."""
    from yuan.compiler.ir import Graph
    g = Graph("dwpw")
    x = g.add_input("x", (1, 8, 16, 16), "float32")
    a_dw = add_float_conv(g, RNG, x, 8, 3, 8, "a_dw", bias=False)
    a = add_float_conv(g, RNG, g.add_node("clip", [a_dw], dict(min=0.0, max=6.0)).outputs[0], 12, 1, 1, "a_pw")
    b_dw = add_float_conv(g, RNG, x, 8, 3, 8, "b_dw")
    b = add_float_conv(g, RNG, b_dw, 4, 1, 1, "b_pw")
    g.mark_output(a, b, b_dw)
    feed = {"x": RNG.standard_normal((1, 8, 16, 16)).astype("float32")}
    kernels = [info["kernel"] for info in compile_and_compare(g, feed, tmp_path / "dwpw.so")]
    assert kernels == ["conv2d_f32_nchw_1x1", "dwconv2d_f32_nchw_x86", "dwpw_f32_nchw_x86"], kernels


def test_dwpw_f32_equals_the_unfused_kernels_bit_for_bit():
    """The sums run in the unfused kernels' order: the depthwise kernel then the 1x1 kernel give the same floats."""
    inputs, attrs = _case(32, 16, 16, 16, 3, [1, 1, 1, 1], RELU6, {})
    x, w1, b1, w2, b2 = inputs
    mid = run("conv2d", attrs["depthwise"], [x, w1, b1], (x.shape, "float32"), HOST, "dwconv2d_f32_nchw_x86")
    pw = {k: v for k, v in attrs.items() if k != "depthwise"}
    ref = run("conv2d", pw, [mid, w2, b2], ((1, 16, 16, 16), "float32"), HOST, "conv2d_f32_nchw_1x1")
    y = run("conv2d_dw_pw", attrs, inputs, ((1, 16, 16, 16), "float32"), HOST, "dwpw_f32_nchw_x86")
    np.testing.assert_array_equal(y, ref)


def test_lowering_fuses_the_residual_add(tmp_path):
    """depthwise -> relu6 -> 1x1 -> add(x) -> relu: one call, the add (and its relu) in its write-back (input 5)."""
    from yuan.compiler.ir import Graph
    g = Graph("dwpw_add")
    x = g.add_input("x", (1, 8, 16, 16), "float32")
    dw = g.add_node("clip", [add_float_conv(g, RNG, x, 8, 3, 8, "dw")], dict(min=0.0, max=6.0)).outputs[0]
    y = g.add_node("add", [add_float_conv(g, RNG, dw, 8, 1, 1, "pw"), x], {}).outputs[0]
    g.mark_output(g.add_node("relu", [y], {}).outputs[0])
    calls = compile_and_compare(g, {"x": RNG.standard_normal((1, 8, 16, 16)).astype("float32")}, tmp_path / "a.so")
    assert [(c["kernel"], len(c["inputs"])) for c in calls] == [("dwpw_f32_nchw_x86", 6)], calls
