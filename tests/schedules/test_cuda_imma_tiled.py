"""The tiled CUDA tensor-core int8 kernel (schedules/cuda_imma_tiled.py) without a GPU:
* its schedule with serial thread loops and the tensor intrinsics' own blocks runs on this CPU bit-exact vs
  NumPy, with the largest tiles (min_blocks=0: 4 x 2 fragments per warp, K chunk up to 64) and with the
  small-grid tiles, on odd shapes (C, O not multiples of 16, OW not a multiple of the pixel tile, 7x7 and
  1x1 maps, stride 2, padding, dilation, two image groups);
* the kernel rule: it wins over cuda_imma.py (which stays registered) at batch % 16 == 0 on the shapes
  cuda_imma.imma_applies gives the tensor cores, dp4a otherwise;
* nvcc's machine code for it has IMMA and 128-bit weight loads."""
import functools

import numpy as np
import pytest

from yuan.compiler.backends.cuda_sass import compile_kernels, count_instructions, find_cuobjdump
from yuan.compiler.backends.cuda_toolchain import find_nvcc
from yuan.schedules import cuda_imma, cuda_imma_tiled, select_kernel
from tests.schedules.conftest import CUDA, check_cpu_twin_qconv, check_cpu_twin_qlinear, requant_attrs

RNG = np.random.default_rng(31)

CONV_CASES = [
    # x shape, w shape, conv attrs, bias, per-channel, x dtype, out dtype
    ((16, 40, 6, 11), (72, 40, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "uint8", "int8"),    # C, O, OW padded
    ((32, 64, 7, 7), (48, 64, 1, 1), {}, False, False, "int8", "int8"),                         # K chunk 64, 7x7
    ((16, 3, 9, 9), (64, 3, 7, 7), dict(pads=[3, 3, 3, 3], strides=[2, 2]), True, True, "int8", "uint8"),
    ((16, 32, 8, 8), (40, 32, 3, 3), dict(pads=[0, 2, 1, 0], dilations=[2, 1]), True, True, "int8", "int8"),
]


@pytest.mark.parametrize("case, min_blocks", [(c, 0) for c in range(len(CONV_CASES))] +
                         [(0, cuda_imma_tiled.MIN_BLOCKS), (2, cuda_imma_tiled.MIN_BLOCKS)])
def test_qconv2d_imma_tiled_schedule_bit_exact_on_cpu(case, min_blocks):
    check_cpu_twin_qconv(RNG, CONV_CASES[case], functools.partial(cuda_imma_tiled.build, min_blocks=min_blocks),
                         functools.partial(cuda_imma_tiled.prepare, min_blocks=min_blocks))


def test_qlinear_imma_tiled_schedule_bit_exact_on_cpu():
    check_cpu_twin_qlinear(RNG, cuda_imma_tiled.build, cuda_imma_tiled.prepare, k=72, o=20)


def test_tile_rule():
    # ResNet-18's 56x56 layer: the largest tile; its 7x7 layer: smaller tiles, enough blocks for the SMs
    assert cuda_imma_tiled.imma_tiles(16, 56, 56, 64, 64) == cuda_imma_tiled.ImmaTiles(2, 4, 2, 2, 4)
    small = cuda_imma_tiled.imma_tiles(16, 7, 7, 512, 512)
    assert (small.fm, small.fn, small.kc) == (1, 2, 4)
    assert cuda_imma_tiled.imma_tiles(16, 1, 1, 10, 16) == cuda_imma_tiled.ImmaTiles(1, 1, 1, 1, 1)


def _conv_types(n):
    return [((n, 8, 6, 6), "int8"), ((24, 8, 3, 3), "int8"), ((24,), "int32")], ((n, 24, 6, 6), "int8")


def test_kernel_rule():
    attrs = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 24, "int8", 3))
    for n, expect in ((16, "qconv2d_int8_nchw_imma_tiled"), (1, "qconv2d_int8_nchw_dp4a")):
        in_types, out_type = _conv_types(n)
        assert select_kernel("qconv2d", attrs, in_types, out_type, CUDA)[0].name == expect, n
    # linears and 1x1 convs: the tensor cores only from IMMA_MIN_POINTWISE_OUT output channels (measured)
    big = cuda_imma.IMMA_MIN_POINTWISE_OUT
    for O, expect in ((10, "qlinear_int8_dp4a"), (big, "qlinear_int8_imma_tiled")):
        lin = [((16, 40), "int8"), ((O, 40), "int8"), ((O,), "int32")]
        assert select_kernel("qlinear", requant_attrs(RNG, O, "int8", 3), lin, ((16, O), "int8"),
                             CUDA)[0].name == expect, O
    for O, expect in ((big - 64, "qconv2d_int8_nchw_dp4a"), (big, "qconv2d_int8_nchw_imma_tiled")):
        pw = [((16, 32, 7, 7), "int8"), ((O, 32, 1, 1), "int8"), ((O,), "int32")]
        assert select_kernel("qconv2d", dict(pads=[0, 0, 0, 0], **requant_attrs(RNG, O, "int8", 3)), pw,
                             ((16, O, 7, 7), "int8"), CUDA)[0].name == expect, O
    # a 3-channel stem stays on dp4a: most of each 16-channel fragment would be padding
    stem = [((16, 3, 9, 9), "int8"), ((24, 3, 3, 3), "int8"), ((24,), "int32")]
    assert select_kernel("qconv2d", attrs, stem, ((16, 24, 9, 9), "int8"), CUDA)[0].name == "qconv2d_int8_nchw_dp4a"


def test_imma_tiled_sass(tmp_path):
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("nvcc or cuobjdump/nvdisasm not installed")
    attrs = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 64, "int8", 3))
    in_types = [((16, 64, 14, 14), "int8"), ((64, 64, 3, 3), "int8"), ((64,), "int32")]
    f = cuda_imma_tiled.build(attrs, in_types, ((16, 64, 14, 14), "int8"), min_blocks=0)
    sass = compile_kernels([f.with_attr("global_symbol", "conv")], CUDA, str(tmp_path))[1]["conv"]
    assert count_instructions(sass, "IMMA.16816.S8.S8") > 0 and count_instructions(sass, "IDP.4A") == 0
    assert count_instructions(sass, "LDG.E.128.CONSTANT") > 0      # the weight tile: 16-byte loads
