"""bench/int8_floor.py's dot-product instruction counts, against the multiply-adds of the conv (direct) and the
extent of the Winograd kernel's own GEMM stage (the TE it schedules)."""
import importlib.util
import os

import pytest

from yuan.schedules import x86_vnni_winograd_int8 as W

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("int8_floor", os.path.join(ROOT, "bench", "int8_floor.py"))
int8_floor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(int8_floor)


def test_direct_count_is_the_multiply_adds_over_64_without_padding():
    # 256 -> 512, 3x3 stride 2, 14x14 -> 7x7: no channel padding, so 64 MACs per vpdpbusd exactly
    macs = 1 * 7 * 7 * 512 * 256 * 9
    assert int8_floor.direct_instructions([[1, 14, 14, 256], [512, 256, 3, 3]], [1, 7, 7, 512]) == macs // 64
    # padded: O = 24 -> 32 lanes; C = 5 -> 8 on a 1x1 (nothing to fold): 2 steps of 4 channels
    assert int8_floor.direct_instructions([[1, 5, 5, 20], [24, 20, 3, 3]], [1, 5, 5, 24]) == 25 * 2 * 9 * 5
    assert int8_floor.direct_instructions([[2, 6, 6, 5], [16, 5, 1, 1]], [2, 6, 6, 16]) == 2 * 36 * 1 * 2


def test_direct_count_of_the_folded_stem():
    # 7 columns x 3 channels = 21 -> 24 bytes: 6 steps per kernel row instead of 7
    n = int8_floor.direct_instructions([[1, 224, 224, 3], [64, 3, 7, 7]], [1, 112, 112, 64])
    assert n == 112 * 112 * 4 * 7 * 6


def _gemm_lanes(C, O, H):
    """Multiply lanes of the kernel's "mg" stage: its extent times the reduction (Cg channels)."""
    attrs = dict(pads=[1, 1, 1, 1], x_zero_point=-128, multiplier=[1 << 30] * O, shift=[40] * O, y_zero_point=-128,
                 out_dtype="int8", layout="NHWC")
    in_types = [((1, H, H, C), "int8"), ((O, C, 3, 3), "int8"), ((O,), "int32")]
    _, y, _, _ = W.compute(attrs, in_types, ((1, H, H, O), "int8"))
    stack, seen = [y], {}
    while stack:
        t = stack.pop()
        seen[t.op.name] = t
        stack.extend(getattr(t.op, "input_tensors", []))
    mg = seen["mg"]
    extent = 1
    for d in mg.shape:
        extent *= int(d)
    return extent * int(mg.op.reduce_axis[0].dom.extent)


@pytest.mark.parametrize("C, O, H", [(64, 64, 56), (128, 128, 28), (256, 16, 14), (64, 64, 44)])
def test_winograd_count_is_the_gemm_stage_over_32_lanes(C, O, H, monkeypatch):
    # per block of tiles (64 @ 56), channel blocks (128 @ 28), two channel groups (256 channels), and tiles
    # padded to whole blocks (44 x 44: 121 tiles computed as 126)
    monkeypatch.setattr(W.VNNI_WINOGRAD, "wins", lambda *a: True)   # shapes the kernel builds, its rule aside
    attrs = dict(pads=[1, 1, 1, 1], x_zero_point=-128, multiplier=[1 << 30], shift=[40], out_dtype="int8",
                 layout="NHWC")
    assert W.applies(attrs, [((1, H, H, C), "int8"), ((O, C, 3, 3), "int8"), ((O,), "int32")], ((1, H, H, O), "int8"))
    n = int8_floor.winograd_instructions([[1, H, H, C], [O, C, 3, 3]], [1, H, H, O])
    assert n * 32 == _gemm_lanes(C, O, H)
