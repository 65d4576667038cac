"""CUDA tensor-core int8 kernels (schedules/cuda_imma.py) without a GPU:
* the kernel's schedule with serial thread loops and the tensor intrinsics' own blocks (what tensorize
  replaces, after checking they equal the intrinsic descriptions) runs on this CPU bit-exact vs NumPy;
* the shape rule: batch % 16 == 0 -> IMMA, else dp4a; an arch without int8 tensor cores falls back;
* nvcc's machine code for the real kernel contains IMMA."""
import numpy as np
import pytest

from yuan.compiler.backends.cuda_sass import compile_kernels, count_instructions, find_cuobjdump
from yuan.compiler.backends.cuda_toolchain import find_nvcc
from yuan.schedules import cuda_imma, kernel_inputs, select_kernel
from tests.schedules.conftest import CUDA, check_cpu_twin_qconv, check_cpu_twin_qlinear, requant_attrs

RNG = np.random.default_rng(23)

CONV_CASES = [
    # x shape, w shape, conv attrs, bias, per-channel, x dtype, out dtype
    ((16, 6, 5, 5), (20, 6, 3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 1]), True, True, "uint8", "int8"),  # O, C padded
    ((16, 32, 3, 4), (64, 32, 1, 1), {}, False, False, "int8", "int8"),       # 4 warps, 2 channel steps
    ((32, 3, 7, 7), (16, 3, 3, 3), dict(pads=[0, 2, 1, 0], dilations=[2, 1]), True, True, "int8", "uint8"),
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_qconv2d_imma_schedule_bit_exact_on_cpu(case):
    check_cpu_twin_qconv(RNG, CONV_CASES[case], cuda_imma.build, cuda_imma.prepare)


def test_qlinear_imma_schedule_bit_exact_on_cpu():
    check_cpu_twin_qlinear(RNG, cuda_imma.build, cuda_imma.prepare)


def _conv_types(n):
    return [((n, 8, 6, 6), "int8"), ((24, 8, 3, 3), "int8"), ((24,), "int32")], ((n, 24, 6, 6), "int8")


def test_shape_rule_and_packed_constants():
    attrs = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 24, "int8", 3))
    # batch % 16 == 0: the tiled successor (cuda_imma_tiled.py, priority 75) wins over this kernel (70)
    tiled, dp4a = "qconv2d_int8_nchw_imma_tiled", "qconv2d_int8_nchw_dp4a"
    for n, expect in ((16, tiled), (32, tiled), (1, dp4a), (8, dp4a)):
        in_types, out_type = _conv_types(n)
        assert select_kernel("qconv2d", attrs, in_types, out_type, CUDA)[0].name == expect, n
    in_types, out_type = _conv_types(16)
    old = CUDA.with_config(arch="sm_61")          # dp4a but no int8 tensor cores (target feature imma)
    assert select_kernel("qconv2d", attrs, in_types, out_type, old)[0].name == "qconv2d_int8_nchw_dp4a"
    w = RNG.integers(-127, 128, (24, 8, 3, 3)).astype(np.int8)
    f = select_kernel("qconv2d", attrs, in_types, out_type, CUDA)[1]
    _, packed, beff, _, _ = kernel_inputs(f, attrs, in_types, [None, w, np.zeros(24, np.int32)])
    assert packed.shape == (32, 3, 3, 16) and np.array_equal(packed[:24, :, :, :8], w.transpose(0, 2, 3, 1))
    assert not packed[24:].any() and not packed[:, :, :, 8:].any() and beff.shape == (24,)


def test_imma_kernel_sass_has_imma(tmp_path):
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("nvcc or cuobjdump/nvdisasm not installed")
    attrs = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 24, "int8", 3))
    in_types, out_type = _conv_types(16)
    f = cuda_imma.build(attrs, in_types, out_type).with_attr("global_symbol", "imma_conv")
    sass = compile_kernels([f], CUDA, str(tmp_path))[1]["imma_conv"]
    assert count_instructions(sass, "IMMA") > 0 and count_instructions(sass, "IDP.4A") == 0
