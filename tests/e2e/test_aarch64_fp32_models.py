"""The fp32 ResNet-18 of the zoo compiled for "aarch64" RUNS under qemu-aarch64 and matches the frontend's own
(NumPy) forward pass: its 3x3 stride-1 convs on the NEON Winograd kernel (schedules/aarch64_winograd_fp32.py),
direct where the map is too small for 4x4 tiles. Width 0.25 and a 32x32 input keep the build and the qemu run
short. Tolerance 1e-4 of max |y|: Winograd rounds differently from a direct sum. (MobileNetV2's fp32 kernels, the
NEON depthwise ones, run in tests/schedules/test_aarch64_fp32.py.)"""
import json

import numpy as np

from yuan.compiler.build import compile_graph, sidecar_path
from yuan.frontend.models import get_model
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from yuan.runtime import qemu_runner

SIZE = 32


def test_fp32_resnet18_matches_the_frontend_on_aarch64(arm64_root, tmp_path):
    x = np.random.default_rng(5).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    manual_seed(0)
    model = get_model("resnet18", num_classes=10, width=0.25).eval()
    lib = compile_graph(trace(model, Tensor(x)), "aarch64", str(tmp_path / "resnet18.so"))
    kernels = json.load(open(sidecar_path(lib)))["kernels"]
    assert any(k.startswith("conv2d_f32_nchw_winograd_neon") for k in kernels), kernels
    res = qemu_runner.run_models([{"lib": lib, "inputs": [x]}], cpu="cortex-a53", root=arm64_root)
    assert res.returncode == 0, (res.returncode, res.errors, res.stderr[-2000:])
    want = model(Tensor(x)).data
    got = np.asarray(res.outputs[0][0]).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())
