"""CUDA fp32 kernels (schedules/cuda_fp32.py) without a GPU:
* the kernel's own schedule with its block/thread loops left serial runs on this CPU and matches a
  float64 NumPy conv / matmul (+ bias, activation) to 1e-4;
* the registry picks it for group-1 convs and linears on cuda targets (depthwise stays on DLight), and
  kernel_inputs packs the weight as its params say;
* nvcc's machine code for the real kernels is FFMA (no tensor cores), with no local-memory spills (LDL /
  STL) from the first staged step on."""
import numpy as np
import pytest

from yuan.compiler.backends.cuda_sass import compile_kernels, count_instructions, find_cuobjdump, staged_part
from yuan.compiler.backends.cuda_toolchain import find_nvcc
from yuan.schedules import cuda_fp32, kernel_inputs, select_kernel
from tests.schedules.conftest import CUDA, ref_conv_f32, run_cpu_twin

RNG = np.random.default_rng(29)

CONV_CASES = [
    # x shape, w shape, conv attrs (+ fused activation), bias
    ((1, 3, 20, 18), (8, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3], clip_min=0.0), True),   # RGB stem
    ((2, 6, 9, 8), (20, 6, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), False),  # O padded
    ((1, 32, 8, 8), (24, 32, 1, 1), dict(clip_min=0.0, clip_max=6.0), True),                      # kc = 16
    ((3, 5, 7, 7), (70, 5, 3, 3), dict(pads=[1, 1, 1, 1]), True),           # 2 channel blocks, odd map
]


def _check(attrs, inputs, ref):
    inputs = [a for a in inputs if a is not None]
    got = run_cpu_twin(cuda_fp32.build, cuda_fp32.prepare, attrs, inputs, (ref.shape, "float32"))
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def conv_case(rng, case):
    """(attrs, [x, w, b or None], float64 reference) of one (x shape, w shape, attrs, bias) case."""
    xs, ws, attrs, has_b = case
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32) if has_b else None
    ref = ref_conv_f32(x, w, b, attrs)
    assert ref.std() > 0
    return attrs, [x, w, b], ref


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d_fp32_schedule_on_cpu(case):
    _check(*conv_case(RNG, CONV_CASES[case]))


@pytest.mark.parametrize("N,K,O,has_b", [(3, 37, 12, True), (16, 64, 40, False), (1, 512, 100, True)])
def test_linear_fp32_schedule_on_cpu(N, K, O, has_b):
    x = RNG.standard_normal((N, K)).astype(np.float32)
    w = RNG.standard_normal((O, K)).astype(np.float32)
    b = RNG.standard_normal(O).astype(np.float32) if has_b else None
    ref = x.astype(np.float64) @ w.astype(np.float64).T + (0 if b is None else b)
    _check({}, [x, w, b], ref)


def test_tile_rule():
    """Threads within the block limit, tiles dividing the map and C, O padded to the channel tile."""
    for N, OH, OW, O, C in [(1, 112, 112, 64, 3), (16, 7, 7, 512, 512), (1, 1, 1, 1000, 512), (4, 28, 28, 20, 6)]:
        t = cuda_fp32.fp32_tiles(N, OH, OW, O, C)
        assert t.threads <= 256 and OH % t.ht == 0 and OW % (t.wt * t.wi) == 0 and N % t.nt == 0
        assert C % t.kc == 0 and t.channels >= min(O, 64)


def test_selected_for_cuda_with_packed_weight():
    w = RNG.standard_normal((20, 6, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(20).astype(np.float32)
    attrs = dict(pads=[1, 1, 1, 1])
    in_types = [((1, 6, 8, 8), "float32"), (w.shape, "float32"), (b.shape, "float32")]
    k, f = select_kernel("conv2d", attrs, in_types, ((1, 20, 8, 8), "float32"), CUDA)
    assert k.name == "conv2d_f32_nchw_cuda_tiled"
    x_index, packed, b_index = kernel_inputs(f, attrs, in_types, [None, w, b])
    assert x_index == 0 and b_index == 2 and packed.shape == (32, 3, 3, 6) and packed.dtype == np.float32
    assert np.array_equal(packed[:20], w.transpose(0, 2, 3, 1)) and not packed[20:].any()
    # grouped convs stay on the DLight kernel (depthwise: cuda_depthwise.py); linears get the tiled kernel
    grouped = [((1, 6, 8, 8), "float32"), ((6, 3, 3, 3), "float32")]
    assert select_kernel("conv2d", dict(attrs, group=2), grouped, ((1, 6, 8, 8), "float32"),
                         CUDA)[0].name == "conv2d_f32_nchw_cuda"
    lin_types = [((2, 10), "float32"), ((5, 10), "float32")]
    assert select_kernel("linear", {}, lin_types, ((2, 5), "float32"), CUDA)[0].name == "linear_f32_cuda_tiled"


def test_fp32_kernels_sass_is_ffma_without_spills(tmp_path):
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("nvcc or cuobjdump/nvdisasm not installed")
    nodes = [("conv2d", dict(pads=[1, 1, 1, 1], clip_min=0.0),
              [((1, 64, 14, 14), "float32"), ((64, 64, 3, 3), "float32"), ((64,), "float32")],
              ((1, 64, 14, 14), "float32")),
             ("linear", {}, [((16, 256), "float32"), ((100, 256), "float32")], ((16, 100), "float32"))]
    funcs = [select_kernel(op, attrs, in_types, out_type, CUDA)[1] for op, attrs, in_types, out_type in nodes]
    _, sass = compile_kernels(funcs, CUDA, str(tmp_path))
    for name, code in sass.items():
        loop = staged_part(code)        # from the first shared-memory step on
        assert count_instructions(loop, "FFMA") >= 64, name      # the unrolled register tile
        assert count_instructions(loop, "LDL") == count_instructions(loop, "STL") == 0, name   # no spills
        assert count_instructions(code, "HMMA") == 0, name   # no tensor cores (TF32 / FP16): fp32 stays fp32
