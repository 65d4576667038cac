"""CUDA fp32 SGEMM conv (schedules/cuda_fp32_gemm.py) without a GPU:
* its schedule with the block/thread loops left serial runs on this CPU and matches a float64 NumPy conv
  (+ bias, activation) to 1e-4, with the tile the rule picks and with the largest and smallest tiles
  (M, O and K not multiples of them, 7x7 and 1x1 maps, stride 2, padding, dilation);
* where it applies (the per-tap kernel keeps the convs it measured faster on);
* the registry picks it above the per-tap kernel (kept, second) for group-1 convs on cuda, and its
  packed weight is the [K, O] matrix of the conv;
* nvcc's machine code is FFMA on float4 shared reads (LDS.128), no tensor cores, no spills."""
import numpy as np
import pytest

from yuan.compiler.backends.cuda_sass import compile_kernels, count_instructions, find_cuobjdump, staged_part
from yuan.compiler.backends.cuda_toolchain import find_nvcc
from yuan.schedules import cuda_fp32_gemm, kernel_inputs, select_kernel
from yuan.schedules.registry import applicable
from tests.schedules.conftest import CUDA, run_cpu_twin
from tests.schedules.test_cuda_fp32 import CONV_CASES, conv_case

RNG = np.random.default_rng(31)
BIG, SMALL = cuda_fp32_gemm.CANDIDATES[0][0], cuda_fp32_gemm.CANDIDATES[-1][0]

CASES = CONV_CASES + [
    ((2, 13, 7, 7), (37, 13, 3, 3), dict(pads=[1, 1, 1, 1], clip_min=0.0), True),    # 7x7 map, odd C, O
    ((3, 9, 9, 9), (11, 9, 1, 1), dict(strides=[2, 2]), True),                      # 1x1 stride 2
]


@pytest.mark.parametrize("tiles", [None, BIG, SMALL], ids=["rule", "128x128", "64x32"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_sgemm_conv_schedule_on_cpu(case, tiles):
    attrs, inputs, ref = conv_case(RNG, CASES[case])
    inputs = [a for a in inputs if a is not None]
    got = run_cpu_twin(cuda_fp32_gemm.build, cuda_fp32_gemm.prepare, attrs, inputs, (ref.shape, "float32"),
                       tiles=tiles)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_where_it_applies():
    """ResNet-18's convs: the SGEMM takes the strided / 1x1 convs with enough blocks and the deep stride-1
    ones at batch 16; the per-tap kernel keeps the 56x56 C=64 stride-1 convs and the few-block layers."""
    def applies(N, C, H, O, K, s):
        p = K // 2
        OH = (H + 2 * p - K) // s + 1
        return cuda_fp32_gemm.worth_it(dict(strides=[s, s], pads=[p] * 4), [((N, C, H, H), "float32"),
                                       ((O, C, K, K), "float32")], ((N, O, OH, OH), "float32"))
    assert all(applies(16, *layer) for layer in [(3, 224, 64, 7, 2), (64, 56, 128, 3, 2), (128, 28, 128, 3, 1),
                                                 (512, 7, 512, 3, 1), (256, 14, 512, 1, 2)])
    assert not any(applies(*layer) for layer in [(16, 64, 56, 64, 3, 1), (1, 128, 28, 128, 3, 1),
                                                 (1, 512, 7, 512, 3, 1), (1, 256, 14, 512, 3, 2)])
    assert not cuda_fp32_gemm.worth_it(dict(group=2, strides=[2, 2]), [((16, 64, 56, 56), "float32"),
                                       ((64, 32, 3, 3), "float32")], ((16, 64, 27, 27), "float32"))


def test_selected_above_the_per_tap_kernel():
    w = RNG.standard_normal((20, 6, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(20).astype(np.float32)
    attrs = dict(pads=[1, 1, 1, 1])
    attrs = dict(attrs, strides=[2, 2])
    in_types = [((4, 6, 64, 64), "float32"), (w.shape, "float32"), (b.shape, "float32")]
    out_type = ((4, 20, 32, 32), "float32")
    k, f = select_kernel("conv2d", attrs, in_types, out_type, CUDA)
    assert k.name == "conv2d_f32_nchw_cuda_sgemm"
    assert [c.name for c in applicable("conv2d", attrs, in_types, out_type, CUDA)][1] == "conv2d_f32_nchw_cuda_tiled"
    x_index, packed, b_index = kernel_inputs(f, attrs, in_types, [None, w, b])
    assert x_index == 0 and b_index == 2 and packed.shape == (56, 128) and packed.dtype == np.float32
    assert np.array_equal(packed[:54, :20], w.reshape(20, 54).T) and not packed[54:].any() and not packed[:, 20:].any()


def test_sgemm_sass_is_ffma_on_float4_shared_reads(tmp_path):
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("nvcc or cuobjdump/nvdisasm not installed")
    in_types = [((16, 64, 14, 14), "float32"), ((128, 64, 3, 3), "float32"), ((128,), "float32")]
    out_type = ((16, 128, 14, 14), "float32")
    funcs = [cuda_fp32_gemm.build(dict(pads=[1, 1, 1, 1], clip_min=0.0), in_types, out_type, tiles=t)
             .with_attr("global_symbol", f"sgemm_{t.bm}x{t.bn}") for t in (BIG, SMALL)]
    _, sass = compile_kernels(funcs, CUDA, str(tmp_path))
    for t, (name, code) in zip((BIG, SMALL), sass.items()):
        loop = staged_part(code)
        assert count_instructions(loop, "FFMA") >= t.tm * t.tn * t.bk, name      # the unrolled outer products
        assert count_instructions(loop, "LDS.128") >= (t.tm + t.tn) // 4 * t.bk, name   # float4 fragments
        assert count_instructions(code, "LDL") == count_instructions(code, "STL") == 0, name   # no spills
        assert count_instructions(code, "HMMA") == 0, name   # no tensor cores: fp32 stays fp32
