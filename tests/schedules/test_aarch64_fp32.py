"""aarch64 fp32 conv (schedules/aarch64_fp32.py): the "aarch64" target selects it, its hot loop is fmla, and it
RUNS under qemu-aarch64 -cpu cortex-a53 matching a float64 NumPy reference. Odd shapes: O not a multiple of
16 (padded channels), the 3-channel 7x7 stride-2 stem, a 1x1 conv on a 7x7 map (7-column tile), stride 2 with
asymmetric pads and dilation, no bias."""
import numpy as np

from yuan.compiler.ir import Graph
from yuan.schedules import select_kernel
from tests.schedules.conftest import AARCH64, compile_kernel, ref_conv_acc, run_graph_on_arm

RNG = np.random.default_rng(3)

CASES = [
    # x shape, w shape, conv attrs, bias
    ((1, 8, 12, 12), (20, 8, 3, 3), dict(pads=[1, 1, 1, 1]), True),                     # O = 20: padded to 32
    ((1, 3, 20, 18), (16, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), True),     # the stem
    ((2, 24, 7, 7), (32, 24, 1, 1), {}, True),                                          # 1x1, 7 columns
    ((1, 6, 9, 8), (16, 6, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), False),
]


def test_neon_fp32_conv_is_selected_and_uses_fmla():
    k, f = select_kernel("conv2d", dict(pads=[1, 1, 1, 1]), [((1, 16, 14, 14), "float32"),
                                                              ((32, 16, 3, 3), "float32"), ((32,), "float32")],
                         ((1, 32, 14, 14), "float32"), AARCH64)
    assert k.name == "conv2d_f32_nchw_neon", k.name
    assert "fmla\t" in compile_kernel(f, AARCH64).mod.inspect_source("asm")


def test_neon_fp32_conv_runs_on_cortex_a53(arm64_root, tmp_path):
    g = Graph("neon_fp32")
    feed, expected = [], []
    for i, (xs, ws, attrs, has_b) in enumerate(CASES):
        x = RNG.standard_normal(xs).astype(np.float32)
        w = RNG.standard_normal(ws).astype(np.float32)
        b = RNG.standard_normal(ws[0]).astype(np.float32) if has_b else None
        names = [g.add_input(f"x{i}", xs, "float32"), g.add_constant(f"w{i}", w)]
        if has_b:
            names.append(g.add_constant(f"b{i}", b))
        g.mark_output(g.add_node("conv2d", names, attrs).outputs[0])
        feed.append(x)
        ref = ref_conv_acc(x, w, attrs.get("strides", [1, 1]), attrs.get("pads", [0] * 4),
                           attrs.get("dilations", [1, 1]), 1, dtype=np.float64)
        expected.append(ref + (b.reshape(1, -1, 1, 1) if has_b else 0))
    kernels, outputs = run_graph_on_arm(g, feed, tmp_path / "neon_fp32.so", arm64_root)
    kernels = [k for k in kernels if k.startswith("conv2d")]
    assert len(kernels) == len(CASES) and all(k.startswith("conv2d_f32_nchw_neon") for k in kernels), kernels
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert got.shape == want.shape, (i, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=f"output {i}")
