"""aarch64 cross builds that actually RUN: quantized small_cnn compiled for "aarch64" (NEON) and
"aarch64-dotprod" (SDOT kernels from schedules/aarch64_int8.py), executed under qemu-aarch64 with an arm64
Python + aarch64 TVM runtime tree (runtime/qemu_runner.py, runtime/arm64/build_arm64_root.sh).

* both builds give int8-exact (bit for bit) the x86 build's and the quantized model's output;
* the dotprod build contains sdot instructions and dies with SIGILL on a CPU without dotprod
  (qemu -cpu cortex-a53), while the plain NEON build runs there.

The arm64 tree: $YUAN_ARM64_ROOT or ~/.cache/yuan/arm64-root. When it is missing the tests skip,
unless YUAN_BUILD_ARM64=1, which builds it once (~2 min). qemu runs: 2 processes (~15 s each)."""
import json
import shutil
import subprocess

import numpy as np
import pytest



from yuan.compiler.build import compile_graph, sidecar_path  # noqa: E402
from yuan.frontend.models import get_model  # noqa: E402
from yuan.frontend.random import manual_seed  # noqa: E402
from yuan.frontend.tensor import Tensor  # noqa: E402
from yuan.frontend.trace import trace  # noqa: E402
from yuan import runtime  # noqa: E402
from yuan.runtime import qemu_runner  # noqa: E402

SIZE = 16


def _x(seed, n=2):
    return np.random.default_rng(seed).standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    from yuan import quant
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("aarch64-linux-gnu-g++ not installed (apt-get install g++-aarch64-linux-gnu)")
    out = tmp_path_factory.mktemp("cross_aarch64")
    manual_seed(0)
    model = get_model("small_cnn", num_classes=5, in_channels=3, width=0.25, input_size=SIZE).eval()
    qat = quant.quantize_qat(model)
    quant.calibrate(qat, [_x(s) for s in (1, 2)])
    qmodel = quant.quantize(qat.eval())
    x = _x(7)
    graph = trace(qmodel, Tensor(x))
    paths = {t: compile_graph(graph, t, str(out / f"small_cnn_int8_{t}.so"))
             for t in ("x86", "aarch64", "aarch64-dotprod")}
    expected = qmodel(Tensor(x)).data
    x86_out = runtime.load(paths["x86"]).run({graph.inputs[0]: x})[graph.outputs[0]]
    np.testing.assert_array_equal(x86_out, expected)
    # a depthwise + residual network too (NHWC sdot, depthwise and qadd kernels on Arm)
    manual_seed(0)
    mbv2 = get_model("mobilenet_v2", num_classes=5, width=0.25, input_size=SIZE).eval()
    qat = quant.quantize_qat(mbv2)
    quant.calibrate(qat, [_x(s) for s in (1, 2)])
    qmbv2 = quant.quantize(qat.eval())
    mb_graph = trace(qmbv2, Tensor(x))
    mb_path = compile_graph(mb_graph, "aarch64-dotprod", str(out / "mobilenet_v2_int8_dotprod.so"))
    return {"paths": paths, "x": x, "expected": expected, "x86": x86_out, "graph": graph,
            "mbv2": (mb_path, qmbv2(Tensor(x)).data)}


def test_dotprod_build_uses_sdot_kernels(builds):
    meta = json.load(open(sidecar_path(builds["paths"]["aarch64-dotprod"])))
    assert meta["target"] == "aarch64-dotprod"
    # layout planning keeps activations NHWC between the sdot convs
    assert any(k.startswith("qconv2d_int8_nhwc_sdot") for k in meta["kernels"]), meta["kernels"]
    plain = json.load(open(sidecar_path(builds["paths"]["aarch64"])))
    assert not any("sdot" in k for k in plain["kernels"]), plain["kernels"]
    objdump = shutil.which("llvm-objdump-14") or shutil.which("llvm-objdump")
    if objdump is None:
        pytest.skip("llvm-objdump not installed (apt-get install llvm-14)")

    def disasm(path):
        return subprocess.run([objdump, "-d", "--mattr=+dotprod", path], capture_output=True,
                              text=True, check=True).stdout
    assert "sdot\t" in disasm(builds["paths"]["aarch64-dotprod"]) or \
        "sdot " in disasm(builds["paths"]["aarch64-dotprod"])
    assert "sdot" not in disasm(builds["paths"]["aarch64"])


def test_aarch64_builds_run_bit_exact_under_qemu(builds, arm64_root):
    cases = [{"lib": builds["paths"][t], "inputs": [builds["x"]]} for t in ("aarch64", "aarch64-dotprod")]
    mb_path, mb_expected = builds["mbv2"]
    cases.append({"lib": mb_path, "inputs": [builds["x"]]})
    res = qemu_runner.run_models(cases, cpu="cortex-a76", root=arm64_root)
    assert res.returncode == 0, (res.returncode, res.errors, res.stderr[-2000:])
    np.testing.assert_array_equal(res.outputs[2][0], mb_expected, err_msg="mobilenet_v2 dotprod vs quantized model")
    for t, outs in zip(("aarch64", "aarch64-dotprod"), res.outputs):
        assert outs is not None and len(outs) == 1, t
        got = outs[0]
        assert got.dtype == builds["expected"].dtype and got.shape == builds["expected"].shape, t
        np.testing.assert_array_equal(got, builds["x86"], err_msg=f"{t} vs x86 build")
        np.testing.assert_array_equal(got, builds["expected"], err_msg=f"{t} vs quantized model")


def test_dotprod_build_dies_without_dotprod(builds, arm64_root):
    # plain NEON first (must run on a Cortex-A53), then the dotprod build (must hit SIGILL)
    cases = [{"lib": builds["paths"][t], "inputs": [builds["x"]]} for t in ("aarch64", "aarch64-dotprod")]
    res = qemu_runner.run_models(cases, cpu="cortex-a53", root=arm64_root)
    assert res.outputs[0] is not None, (res.errors, res.stderr[-2000:])
    np.testing.assert_array_equal(res.outputs[0][0], builds["expected"])
    assert res.returncode != 0 and res.outputs[1] is None, (res.returncode, res.errors)
    assert res.crashed_by_signal == 4, f"expected SIGILL, got exit status {res.returncode}"
