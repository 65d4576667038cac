"""CUDA depthwise kernels (schedules/cuda_depthwise.py) without a GPU:
* the kernels' own schedule with serial block/thread loops runs on this CPU: int8 bit-exact against the
  NumPy integer reference, fp32 within 1e-4 of a float64 NumPy conv;
* the registry picks them for depthwise convs on cuda targets (other grouped convs stay on DLight);
* nvcc's machine code stages the window through shared memory (LDS), with no local-memory spills (LDL /
  STL) from the first barrier on."""
import numpy as np
import pytest

from yuan.compiler.backends.cuda_sass import compile_kernels, count_instructions, find_cuobjdump, staged_part
from yuan.compiler.backends.cuda_toolchain import find_nvcc
from yuan.schedules import cuda_depthwise, kernel_inputs, select_kernel
from yuan.schedules.constants import prep_requant
from tests.schedules.conftest import CUDA, check_cpu_twin_qconv, ref_conv_f32, run_cpu_twin

RNG = np.random.default_rng(31)

INT8_CASES = [
    # x shape, w shape, conv attrs, bias, per-channel, x dtype, out dtype
    ((1, 8, 9, 10), (8, 1, 3, 3), dict(group=8, pads=[1, 1, 1, 1]), True, True, "uint8", "int8"),
    ((2, 4, 11, 9), (8, 1, 3, 3), dict(group=4, strides=[2, 2], pads=[1, 0, 1, 1]), False, True, "int8", "int8"),  # mult 2
    ((1, 6, 7, 7), (6, 1, 5, 5), dict(group=6, pads=[4, 4, 4, 4], dilations=[2, 2]), True, False, "int8", "uint8"),
]


@pytest.mark.parametrize("case", range(len(INT8_CASES)))
def test_qconv2d_dw_schedule_bit_exact_on_cpu(case):
    check_cpu_twin_qconv(RNG, INT8_CASES[case], cuda_depthwise.build, prep_requant)


@pytest.mark.parametrize("xs,ws,attrs,has_b", [
    ((1, 8, 9, 10), (8, 1, 3, 3), dict(group=8, pads=[1, 1, 1, 1], clip_min=0.0, clip_max=6.0), True),
    ((2, 4, 11, 9), (8, 1, 3, 3), dict(group=4, strides=[2, 2], pads=[1, 0, 1, 1]), False)])
def test_dwconv2d_f32_schedule_on_cpu(xs, ws, attrs, has_b):
    x = RNG.standard_normal(xs).astype(np.float32)
    w = RNG.standard_normal(ws).astype(np.float32)
    b = RNG.standard_normal(ws[0]).astype(np.float32) if has_b else None
    ref = ref_conv_f32(x, w, b, attrs)
    inputs = [a for a in (x, w, b) if a is not None]
    got = run_cpu_twin(cuda_depthwise.build, lambda a, t, arr: list(range(len(t))), attrs, inputs,
                       (ref.shape, "float32"))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_tile_rule():
    for O, OH, OW in [(32, 112, 112), (144, 56, 56), (960, 7, 7), (24, 14, 14), (48, 1, 1), (6, 9, 5)]:
        ct, ht, wt = cuda_depthwise.dw_tiles(O, OH, OW)
        assert ct * ht * wt <= cuda_depthwise.MAX_THREADS and O % ct == 0 and OH % ht == 0 and OW % wt == 0
        if OH % 7 == 0 or OH == 1:                       # the zoo's maps: at least a warp per block
            assert ct * ht * wt >= 32, (O, OH, OW)


def _dw_types(dtype, C=8, O=8, group=8):
    wdt = "int8" if dtype != "float32" else "float32"
    return [((1, C, 8, 8), dtype), ((O, C // group, 3, 3), wdt)], ((1, O, 8, 8), dtype)


def test_selected_for_depthwise_only():
    q = dict(pads=[1, 1, 1, 1], x_zero_point=3, multiplier=[1 << 30], shift=[12], y_zero_point=0,
             out_min=-128, out_max=127, out_dtype="int8")
    in_types, out_type = _dw_types("int8")
    k, f = select_kernel("qconv2d", dict(q, group=8), in_types, out_type, CUDA)
    assert k.name == "qconv2d_dw_int8_nchw_cuda"
    assert kernel_inputs(f, dict(q, group=8), in_types, [None, None])[:2] == [0, 1]   # x, w unchanged
    in_types, out_type = _dw_types("float32")
    assert select_kernel("conv2d", dict(pads=[1, 1, 1, 1], group=8), in_types, out_type,
                         CUDA)[0].name == "dwconv2d_f32_nchw_cuda"
    in_types, out_type = _dw_types("int8", group=2)                 # grouped, not depthwise: DLight
    assert select_kernel("qconv2d", dict(q, group=2), in_types, out_type, CUDA)[0].name == "qconv2d_nchw_cuda"


def test_dw_kernels_sass(tmp_path):
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("nvcc or cuobjdump/nvdisasm not installed")
    q = dict(group=32, pads=[1, 1, 1, 1], x_zero_point=3, multiplier=[1 << 30] * 32, shift=[40] * 32,
             y_zero_point=0, out_min=-128, out_max=127, out_dtype="int8")
    funcs = [select_kernel("qconv2d", q, [((1, 32, 28, 28), "uint8"), ((32, 1, 3, 3), "int8")],
                           ((1, 32, 28, 28), "int8"), CUDA)[1],
             select_kernel("conv2d", dict(group=32, pads=[1, 1, 1, 1]), [((1, 32, 28, 28), "float32"),
                           ((32, 1, 3, 3), "float32")], ((1, 32, 28, 28), "float32"), CUDA)[1]]
    _, sass = compile_kernels(funcs, CUDA, str(tmp_path))
    for name, code in sass.items():
        code = staged_part(code)
        assert count_instructions(code, "LDS") >= 9, name                       # taps read from shared memory
        assert count_instructions(code, "LDL") == count_instructions(code, "STL") == 0, name
    assert count_instructions(next(c for n, c in sass.items() if n.startswith("dwconv2d")), "FFMA") >= 9
