"""The dot-product conv shared by VNNI and sdot (schedules/dot_product.py), checked in NumPy for both lane
counts: the constants kernel_inputs makes (packed weight, bias with the zero point and the staging offset
folded in) plus the kernel's staging reproduce the qconv2d reference bit for bit. For sdot this is the
check that runs without an Arm CPU."""
import subprocess
import sys

import numpy as np
import pytest

from yuan.schedules import get_kernel, kernel_inputs
from yuan.schedules.dot_product import pack_conv_weight, pack_linear_weight, staging_offset
from yuan.schedules.intrinsics import SDOT, VNNI
from tests.schedules.conftest import CONV_DEFAULTS, qconv_inputs, ref_conv_acc, ref_qconv, ref_requant

RNG = np.random.default_rng(3)
KERNELS = {"vnni": ("qconv2d_int8_nchw_vnni", VNNI), "sdot": ("qconv2d_int8_nchw_sdot", SDOT)}

CASES = [
    ((1, 8, 7, 6), (32, 8, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    ((2, 3, 9, 8), (12, 3, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), False, False,
     "uint8", "uint8"),
    ((1, 6, 5, 5), (20, 6, 1, 1), dict(), True, True, "uint8", "int8"),
]


def _emulate(x, packed, beff, attrs, intrin, out_channels):
    """What the kernel computes, in NumPy: stage x + offset (padding and extra channels: zx + offset) in
    the intrinsic's input dtype, accumulate against the unpacked weight, add bias_eff, requantize."""
    a = dict(CONV_DEFAULTS, **attrs)
    offset = staging_offset(str(x.dtype), intrin.a_dtype)
    fill = attrs["x_zero_point"] + offset
    N, C, H, W = x.shape
    t, l, b, r = a["pads"]
    Opl, KH, KW, Cq, lanes, four = packed.shape
    assert lanes == intrin.lanes and four == 4
    staged = np.full((N, Cq * 4, H + t + b, W + l + r), fill, np.int64)
    staged[:, :C, t:t + H, l:l + W] = x.astype(np.int64) + offset
    info = np.iinfo(intrin.a_dtype)
    assert staged.min() >= info.min and staged.max() <= info.max, "staged values leave the intrinsic's dtype"
    weight = packed.transpose(0, 4, 3, 5, 1, 2).reshape(Opl * lanes, Cq * 4, KH, KW)
    acc = ref_conv_acc(staged, weight, a["strides"], [0, 0, 0, 0], a["dilations"], 1)[:, :out_channels]
    y = ref_requant(acc + beff.reshape(1, -1, 1, 1), attrs["multiplier"], attrs["shift"], attrs["y_zero_point"],
                    attrs["out_min"], attrs["out_max"])
    return y.astype(attrs["out_dtype"])


@pytest.mark.parametrize("isa", sorted(KERNELS))
@pytest.mark.parametrize("case", range(len(CASES)))
def test_constants_and_staging_reproduce_the_conv(isa, case):
    name, intrin = KERNELS[isa]
    x, w, b, attrs = qconv_inputs(RNG, CASES[case])
    in_types = [(x.shape, str(x.dtype)), (w.shape, "int8"), None if b is None else (b.shape, "int32")]
    plan = kernel_inputs(get_kernel(name), attrs, in_types, [None, w] + ([b] if b is not None else []))
    assert plan[0] == 0 and len(plan) == 5
    _, packed, beff, mult, shift = plan
    np.testing.assert_array_equal(mult, attrs["multiplier"])
    np.testing.assert_array_equal(_emulate(x, packed, beff, attrs, intrin, w.shape[0]), ref_qconv(x, w, b, attrs))


def test_packing_pads_channels_with_zero_weights():
    w = RNG.integers(-127, 128, (10, 5, 3, 2)).astype("int8")
    for lanes in (4, 16):
        packed = pack_conv_weight(w, lanes)
        Op = -(-10 // lanes) * lanes
        assert packed.shape == (Op // lanes, 3, 2, 2, lanes, 4)
        # element [o // lanes, kh, kw, c // 4, o % lanes, c % 4] is w[o, c, kh, kw] (0 when padded)
        full = np.zeros((Op, 8, 3, 2), np.int8)
        full[:10, :5] = w
        o, c, kh, kw = np.meshgrid(*[np.arange(n) for n in full.shape], indexing="ij")
        np.testing.assert_array_equal(packed[o // lanes, kh, kw, c // 4, o % lanes, c % 4], full)


def test_linear_packing_is_the_1x1_conv_packing():
    w = RNG.integers(-127, 128, (8, 37)).astype("int8")
    packed = pack_linear_weight(w, 4)
    assert packed.shape == (2, 10, 4, 4)
    j, k = np.meshgrid(np.arange(8), np.arange(40), indexing="ij")
    full = np.zeros((8, 40), np.int8)
    full[:, :37] = w
    np.testing.assert_array_equal(packed[j // 4, k // 4, j % 4, k % 4], full)


def test_staging_offset_maps_into_the_intrinsic_dtype():
    assert staging_offset("int8", "uint8") == 128 and staging_offset("uint8", "uint8") == 0
    assert staging_offset("uint8", "int8") == -128 and staging_offset("int8", "int8") == 0


def test_kernels_load_without_tvm_tensor_intrin():
    """Registering every kernel (both dot-product intrinsics included) never imports
    tvm.s_tir.tensor_intrin, whose import parses every target's intrinsics (~20 s)."""
    code = ("import sys; from yuan.schedules import registry; registry._ensure_loaded(); "
            "import tvm.s_tir; assert 'tvm.s_tir.tensor_intrin' not in sys.modules, 'imported'; "
            "names = [tvm.s_tir.TensorIntrin.get(n) for n in "
            "('yuan_dot_16x4_u8i8i32_vnni', 'yuan_dot_4x4_i8i8s32_sdot')]; print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
