"""The fused 1x1 + depthwise fp32 kernel (schedules/x86_pw_dw_fp32.py) against NumPy, where it applies, and the
lowering that forms it (compiler/relax/fuse_conv_pairs.py) against the IR's reference interpreter."""
import numpy as np
import pytest

from tests.schedules.conftest import (HAS_AVX512, HOST, add_float_conv, compile_and_compare, out_shape, ref_conv_acc,
                                      run)

RNG = np.random.default_rng(3)
pytestmark = pytest.mark.skipif(not HAS_AVX512, reason="host lacks avx512")
RELU6 = dict(clip_min=0.0, clip_max=6.0)


def _case(C, M, H, W, pads, pw_act, dw_act, stride=2):
    x = RNG.standard_normal((1, C, H, W)).astype("float32")
    w1 = RNG.standard_normal((M, C, 1, 1)).astype("float32")
    b1 = RNG.standard_normal(M).astype("float32")
    w2 = RNG.standard_normal((M, 1, 3, 3)).astype("float32")
    b2 = RNG.standard_normal(M).astype("float32")
    attrs = dict(strides=[stride, stride], pads=pads, dilations=[1, 1], group=M, **dw_act,
                 pointwise=dict(strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1, **pw_act))
    return [x, w1, b1, w2, b2], attrs


def _clip(v, act):
    return np.clip(v, act.get("clip_min"), act.get("clip_max")) if act else v


def _reference(inputs, attrs):
    x, w1, b1, w2, b2 = inputs
    mid = _clip(ref_conv_acc(x, w1, [1, 1], [0] * 4, [1, 1], 1, dtype=np.float64) + b1.reshape(1, -1, 1, 1),
                {k: attrs["pointwise"].get(k) for k in RELU6 if k in attrs["pointwise"]})
    y = ref_conv_acc(mid, w2, attrs["strides"], attrs["pads"], [1, 1], w2.shape[0], dtype=np.float64)
    return _clip(y + b2.reshape(1, -1, 1, 1), {k: attrs[k] for k in RELU6 if k in attrs})


@pytest.mark.parametrize("C,M,H,W,pads,pw_act,dw_act", [
    (5, 12, 8, 8, [1, 1, 1, 1], RELU6, RELU6),     # C, M not multiples of 16
    (16, 24, 8, 8, [0, 0, 1, 1], RELU6, {}),       # asymmetric ("same") padding, no second activation
    (3, 6, 16, 10, [1, 1, 1, 1], {}, RELU6),       # not square, 3 channels per tile
    (7, 20, 16, 39, [1, 1, 1, 1], RELU6, RELU6),   # odd width: xq's vector column groups, edges and a partial one
    (7, 20, 16, 38, [0, 0, 1, 1], {}, RELU6),      # the same with "same" padding (no left pad column)
])
def test_pwdw_f32_matches_numpy(C, M, H, W, pads, pw_act, dw_act):
    inputs, attrs = _case(C, M, H, W, pads, pw_act, dw_act)
    shape = out_shape(inputs[0].shape, inputs[3].shape, attrs)
    y = run("conv2d_pw_dw", attrs, inputs, (shape, "float32"), HOST, "pwdw_f32_nchw_x86")
    ref = _reference(inputs, attrs)
    assert ref.std() > 0
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("C,M,H,W,stride,first_kernel", [
    (8, 16, 16, 16, 1, 1),   # stride 1: the separate kernels measured faster
    (8, 16, 7, 7, 2, 1),     # 7 x 7: the staged pixels are no whole vectors
    (8, 16, 16, 16, 2, 3),   # the first conv is no 1x1
])
def test_pwdw_f32_does_not_apply(C, M, H, W, stride, first_kernel):
    from yuan.schedules import applicable
    inputs, attrs = _case(C, M, H, W, [1, 1, 1, 1], RELU6, RELU6, stride)
    types = [(a.shape, "float32") for a in inputs]
    types[1] = ((M, C, first_kernel, first_kernel), "float32")
    shape = out_shape(inputs[0].shape, inputs[3].shape, attrs)
    assert not applicable("conv2d_pw_dw", attrs, types, (shape, "float32"), HOST)


def test_lowering_fuses_only_a_sole_consumer(tmp_path):
    """Branch a (1x1 without bias -> relu6 -> depthwise s2 -> relu6) becomes one call; branch b's 1x1 output is
    also a graph output, so b stays two calls. Both equal the reference interpreter."""
    from yuan.compiler.ir import Graph
    g = Graph("pwdw")
    x = g.add_input("x", (1, 6, 16, 16), "float32")

    def relu6(v):
        return g.add_node("clip", [v], dict(min=0.0, max=6.0)).outputs[0]

    a_pw = relu6(add_float_conv(g, RNG, x, 24, 1, 1, "a_pw", bias=False))
    a = relu6(add_float_conv(g, RNG, a_pw, 24, 3, 24, "a_dw", stride=2))
    b_pw = add_float_conv(g, RNG, x, 12, 1, 1, "b_pw")
    b = add_float_conv(g, RNG, b_pw, 12, 3, 12, "b_dw", stride=2)
    g.mark_output(a, b, b_pw)
    feed = {"x": RNG.standard_normal((1, 6, 16, 16)).astype("float32")}
    kernels = [info["kernel"] for info in compile_and_compare(g, feed, tmp_path / "pwdw.so")]
    assert kernels == ["conv2d_f32_nchw_1x1", "dwconv2d_f32_nchw_x86", "pwdw_f32_nchw_x86"], kernels
