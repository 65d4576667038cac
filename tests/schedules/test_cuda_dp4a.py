"""CUDA dp4a int8 kernels (schedules/cuda_dp4a.py) without a GPU:
* the kernel's own schedule, with its block/thread loops left serial and the dot product in plain TIR
  (DP4A_REF, the same TensorIntrin description as __dp4a), runs on this CPU bit-exact against NumPy;
* the registry picks it for cuda targets, kernel_inputs packs what its params say;
* nvcc's machine code for the real kernel contains IDP.4A (the model-level check is in
  tests/e2e/test_cross_cuda.py)."""
import numpy as np
import pytest

from yuan.compiler.backends.cuda_sass import compile_kernels, count_instructions, find_cuobjdump
from yuan.compiler.backends.cuda_toolchain import find_nvcc
from yuan.schedules import cuda_dp4a, cuda_implicit_gemm, kernel_inputs, select_kernel
from tests.schedules.conftest import CUDA, check_cpu_twin_qconv, ref_integer_op, requant_attrs, run_cpu_twin

RNG = np.random.default_rng(17)

CONV_CASES = [
    # x shape, w shape, conv attrs, bias, per-channel, x dtype, out dtype
    ((1, 8, 7, 6), (32, 8, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "uint8", "int8"),
    ((1, 3, 20, 18), (8, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), True, False, "int8", "int8"),  # C = 3
    ((2, 6, 9, 8), (20, 6, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), False, True,
     "uint8", "uint8"),                                                   # O = 20 padded to the block's 32
    ((1, 16, 4, 4), (24, 16, 1, 1), {}, True, True, "int8", "int8"),     # 1x1, kc = 4 groups
]


def _cpu_twin(attrs, inputs, out_type):
    return run_cpu_twin(cuda_dp4a.build, cuda_dp4a.prepare, attrs, inputs, out_type, intrin=cuda_dp4a.DP4A_REF)


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_qconv2d_dp4a_schedule_bit_exact_on_cpu(case):
    check_cpu_twin_qconv(RNG, CONV_CASES[case], cuda_dp4a.build, cuda_dp4a.prepare, intrin=cuda_dp4a.DP4A_REF)


@pytest.mark.parametrize("xdt,N,K,O", [("uint8", 3, 37, 12), ("int8", 1, 512, 10), ("int8", 16, 64, 40)])
def test_qlinear_dp4a_schedule_bit_exact_on_cpu(xdt, N, K, O):
    info = np.iinfo(xdt)
    x = RNG.integers(info.min, info.max + 1, (N, K)).astype(xdt)
    w = RNG.integers(-127, 128, (O, K)).astype(np.int8)
    b = RNG.integers(-5000, 5000, O).astype(np.int32)
    attrs = requant_attrs(RNG, O, "int8", 131 if xdt == "uint8" else -7)
    ref = ref_integer_op("qlinear", [x, w, b], attrs).astype(np.int8)
    assert ref.std() > 0
    np.testing.assert_array_equal(_cpu_twin(attrs, [x, w, b], (ref.shape, "int8")), ref)


def test_tile_rule():
    """Threads stay within the block limit, tiles divide the map, O is padded to the channel tile."""
    for N, OH, OW, O, Cp in [(1, 56, 56, 64, 64), (16, 7, 7, 512, 512), (1, 1, 1, 1000, 512), (8, 1, 1, 10, 64),
                             (1, 112, 112, 32, 4)]:
        t = cuda_dp4a.dp4a_tiles(N, OH, OW, O, Cp)
        assert t.threads <= cuda_implicit_gemm.MAX_THREADS and OH % t.ht == 0 and OW % (t.wt * t.wi) == 0 and N % t.nt == 0
        assert (Cp // 4) % t.kc == 0 and t.channels >= min(O, 64)


def test_selected_for_cuda_with_packed_constants():
    w = RNG.integers(-127, 128, (20, 6, 3, 3)).astype(np.int8)
    b = RNG.integers(-5000, 5000, 20).astype(np.int32)
    attrs = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 20, "int8", 3))
    in_types = [((1, 6, 8, 8), "uint8"), (w.shape, "int8"), (b.shape, "int32")]
    k, f = select_kernel("qconv2d", attrs, in_types, ((1, 20, 8, 8), "int8"), CUDA)
    assert k.name == "qconv2d_int8_nchw_dp4a"
    x_index, packed, beff, mult, shift = kernel_inputs(f, attrs, in_types, [None, w, b])
    assert x_index == 0 and packed.shape == (32, 3, 3, 8) and packed.dtype == np.int8
    assert np.array_equal(packed[:20, :, :, :6], w.transpose(0, 2, 3, 1)) and not packed[20:].any()
    assert beff.shape == (20,) and mult.shape == shift.shape == (20,)
    # depthwise convs go to the CUDA-core depthwise kernel (cuda_depthwise.py)
    dw = dict(attrs, group=6)
    in_dw = [((1, 6, 8, 8), "int8"), ((6, 1, 3, 3), "int8"), ((6,), "int32")]
    assert select_kernel("qconv2d", dict(dw, multiplier=[1 << 30], shift=[12]), in_dw,
                         ((1, 6, 8, 8), "int8"), CUDA)[0].name == "qconv2d_dw_int8_nchw_cuda"


def test_dp4a_kernel_sass_has_idp4a(tmp_path):
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("nvcc or cuobjdump/nvdisasm not installed")
    attrs = dict(pads=[1, 1, 1, 1], **requant_attrs(RNG, 32, "int8", 3))
    in_types = [((1, 16, 14, 14), "int8"), ((32, 16, 3, 3), "int8"), ((32,), "int32")]
    f = select_kernel("qconv2d", attrs, in_types, ((1, 32, 14, 14), "int8"), CUDA)[1]
    _, sass = compile_kernels([f], CUDA, str(tmp_path))
    assert count_instructions(sass[f.attrs["global_symbol"]], "IDP.4A") >= 9 * 4
