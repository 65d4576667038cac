"""CUDA compile-only (no GPU needed): compile_graph(graph, "cuda", out) runs nvcc (with the driver stub
from compiler/backends/cuda_toolchain.py when there is no driver), writes a .so that load_module + the Relax VM
accept, NAME.cu holds the generated source (ex.mod.imports[cuda].inspect_source("cuda")), and the module carries CUDA kernels (__global__ functions for the convs, thread-bound by DLight).
Int8 models (zoo resnet18 / shufflenet_v1 at the tiny test_compiled_zoo sizes, hand-built graphs with lut and
qavg_pool2d) compile too, every kernel as a __global__ function. Running on a GPU (compared bit for bit with
the integer reference) only happens when one is present; skips when nvcc is missing."""
import json
import os
import re

import numpy as np
import pytest

import tvm

from yuan.compiler.build import compile_graph, sidecar_path  # noqa: E402
from yuan.compiler.backends.cuda_sass import count_instructions, find_cuobjdump, sass_by_kernel  # noqa: E402
from yuan.compiler.backends.cuda_toolchain import find_nvcc, prepare_cuda  # noqa: E402
from yuan.compiler.targets import resolve_target  # noqa: E402
from yuan.compiler.ir import Graph, run_graph  # noqa: E402
from yuan.frontend.models import get_model  # noqa: E402
from yuan.frontend.random import manual_seed  # noqa: E402
from yuan.frontend.tensor import Tensor  # noqa: E402
from yuan.frontend.trace import trace  # noqa: E402
from yuan import runtime  # noqa: E402
from tests.conftest import ZOO, int8_zoo_model, zoo_input  # noqa: E402
from bench.kernel_names import kernel_kind  # noqa: E402


def _cuda_modules(mod):
    found = [mod] if mod.kind == "cuda" else []
    for m in mod.imports:
        found += _cuda_modules(m)
    return found


def _need_nvcc():
    if find_nvcc() is None:
        pytest.skip("nvcc not installed (CUDA toolkit)")


def test_cuda_compile_only(tmp_path):
    _need_nvcc()
    manual_seed(0)
    graph = trace(get_model("small_cnn", num_classes=5, in_channels=3, width=0.25, input_size=16).eval(),
                  Tensor(np.zeros((1, 3, 16, 16), np.float32)))
    path = compile_graph(graph, "cuda", str(tmp_path / "m.so"))
    meta = json.load(open(sidecar_path(path)))
    assert meta["target"] == "cuda"
    # the dense fp32 convs and the linear are the scheduled FFMA kernels (schedules/cuda_fp32.py), not DLight's
    tiled = [k for k in meta["kernels"] if k.startswith(("conv2d_f32_nchw_cuda_tiled", "linear_f32_cuda_tiled"))]
    assert len(tiled) == sum(k.startswith(("conv2d", "linear")) for k in meta["kernels"]) >= 2, meta["kernels"]
    if find_cuobjdump() is not None:
        sass = sass_by_kernel(path)
        assert all(count_instructions(sass[f"{k}_kernel"], "FFMA") > 0 for k in tiled), tiled
    lib = tvm.runtime.load_module(path)                     # needs the fatbin (nvcc ran)
    cuda = _cuda_modules(lib)
    assert cuda, "no CUDA module inside the library"
    assert meta["artifacts"] == {"so": "m.so", "cu": "m.cu"}
    src = (tmp_path / "m.cu").read_text()                 # inspect_source("cuda") at compile time
    blob = open(path, "rb").read()
    assert b"conv2d_f32_nchw_cuda" in blob                  # kernel names inside the embedded fatbin
    assert src.count("__global__") >= 3 and "conv2d_f32_nchw_cuda" in src, src[:2000]
    assert "threadIdx.x" in src and "blockIdx.x" in src
    tvm.relax.VirtualMachine(lib, tvm.cpu())               # VM construction works without a GPU
    if _gpu_arch() is not None:                             # on a GPU: fp32 within 1e-4 of the NumPy graph
        x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
        got = runtime.load(path, device="cuda").run({graph.inputs[0]: x})
        for out, want in run_graph(graph, {graph.inputs[0]: x}).items():
            np.testing.assert_allclose(got[out], want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))


# ------------------------------------------------------------------------------ int8 models
def _lut_graph():
    """lut (int8 table) feeding a per-channel requantize and a broadcasting qadd."""
    rng = np.random.default_rng(11)
    g = Graph("cuda_lut")
    x = g.add_input("x", (1, 3, 5, 6), "int8")

    def node(op, inputs, **attrs):
        return g.add_node(op, inputs, attrs).outputs[0]

    t = node("lut", [x, g.add_constant("table", rng.integers(-128, 128, 256).astype(np.int8))])
    r = node("requantize", [t], x_zero_point=3, multiplier=[1518500250, 1300000000, 1100000000],
             shift=[31, 32, 30], y_zero_point=-5, out_min=-128, out_max=127, out_dtype="int8")
    s = node("qadd", [r, g.add_constant("bias", rng.integers(-128, 128, (1, 3, 1, 1)).astype(np.int8))],
             a_zero_point=1, b_zero_point=-2, a_multiplier=1 << 29, b_multiplier=3 << 28, shift=31,
             y_zero_point=4, out_min=-128, out_max=127, out_dtype="int8")
    g.outputs = [t, s]
    return g


def _qavg_graph():
    """qavg_pool2d (padded, per-cell multiplier/shift maps) feeding a qglobal_avg_pool2d."""
    rng = np.random.default_rng(12)
    g = Graph("cuda_qavg")
    x = g.add_input("x", (1, 4, 7, 7), "int8")

    def node(op, inputs, **attrs):
        return g.add_node(op, inputs, attrs).outputs[0]

    common = dict(y_zero_point=-5, out_min=-128, out_max=127, out_dtype="int8")
    oh = ow = 4
    p = node("qavg_pool2d", [x, g.add_constant("mm", rng.integers(2 ** 30, 2 ** 31 - 1, (oh, ow)).astype(np.int32)),
                             g.add_constant("nm", rng.integers(32, 34, (oh, ow)).astype(np.int32))],
             kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], x_zero_point=2, **common)
    q = node("qglobal_avg_pool2d", [p], x_zero_point=-1, multiplier=[3 << 28], shift=[33], **common)
    g.outputs = [p, q]
    return g


# kernel-name fragments of the ops lowered through emit_te / Relax ops (TVM names those PrimFuncs)
_TE_KINDS = {"resnet18": ("quantize", "dequantize", "max_pool2d"),
             "shufflenet_v1": ("quantize", "dequantize", "max_pool2d", "concatenate", "transpose")}
_LIGHT_KINDS = {"resnet18": {"qconv2d_int8_nchw_dp4a", "qadd_cuda", "qglobal_avg_pool2d_cuda", "qlinear_int8_dp4a"},
                "shufflenet_v1": {"qconv2d_nchw_cuda", "qconv2d_dw_int8_nchw_cuda", "qconv2d_int8_nchw_dp4a", "qadd_cuda",
                                  "qglobal_avg_pool2d_cuda",
                                  "qlinear_int8_dp4a", "qavg_pool2d_cuda", "requantize_cuda"},
                "lut": {"lut_cuda", "requantize_cuda", "qadd_cuda"},
                "qavg": {"qavg_pool2d_cuda", "qglobal_avg_pool2d_cuda"}}


def _gpu_arch():
    """"sm_XY" of the GPU when one is present, else None. prepare_cuda loads TVM's CUDA runtime (with the
    real driver when there is one, else with the stub that reports no device), so tvm.cuda(0) is only
    meaningful after it."""
    _need_nvcc()
    prepare_cuda()
    dev = tvm.cuda(0)
    return "sm_" + str(dev.compute_version).replace(".", "") if dev.exist else None


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """built(name) -> (graph, library path, reference(x) -> {output: array}, example input), compiled
    for cuda once per module. Zoo models at batch 1 (the deployment case; it also reaches DLight's
    N=1 paths)."""
    _need_nvcc()
    out_dir = tmp_path_factory.mktemp("cuda_int8")
    cache = {}
    target = resolve_target("cuda")
    arch = _gpu_arch()
    if arch is not None and not arch.startswith("sm_8"):
        # The "cuda" target is sm_80 (SASS + PTX, compiler/backends/cuda_toolchain.py: newer GPUs JIT the PTX at
        # load); build native code for the GPU at hand instead (same lowering, same kernels).
        target = target.with_config(arch=arch)

    def get(name):
        if name not in cache:
            if name in ("lut", "qavg"):
                graph = _lut_graph() if name == "lut" else _qavg_graph()
                shape = graph.values[graph.inputs[0]].shape
                x = np.random.default_rng(5).integers(-128, 128, shape).astype(np.int8)
                ref = lambda a, g=graph: run_graph(g, {g.inputs[0]: a})  # noqa: E731
            else:   # "resnet18_b16": batch 16, where the dense convs go to the tensor cores
                model = int8_zoo_model(model_name(name))
                x = zoo_input(ZOO[model_name(name)][1], 7, n=16 if name.endswith("_b16") else 1)
                graph = trace(model, Tensor(x))
                ref = lambda a, m=model, g=graph: {g.outputs[0]: m(Tensor(a)).data}  # noqa: E731
            path = compile_graph(graph, target, str(out_dir / f"{name}.so"))
            cache[name] = (graph, path, ref, x)
        return cache[name]

    return get


def model_name(name):
    return name[:-4] if name.endswith("_b16") else name


def _global_kernels(src):
    return set(re.findall(r"__global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(", src))


@pytest.mark.parametrize("name", ["resnet18", "shufflenet_v1", "lut", "qavg"])
def test_int8_compiles_every_kernel_for_gpu(name, built):
    graph, path, _, _ = built(name)
    meta = json.load(open(sidecar_path(path)))
    assert meta["target"] == "cuda" and meta["artifacts"] == {"so": f"{name}.so", "cu": f"{name}.cu"}
    assert os.path.isfile(path) and os.path.isfile(path[:-3] + ".cu")
    kernels = meta["kernels"]
    kinds = {kernel_kind(k) for k in kernels}
    # The cuda kernels were picked, never a CPU-scheduled generic one (those are not thread-bound).
    assert kinds == _LIGHT_KINDS[name], kinds
    src = open(path[:-3] + ".cu").read()
    globals_ = _global_kernels(src)
    # Every call_tir kernel became a __global__ function (unbound TIR would have stayed host code) ...
    missing = [k for k in kernels if f"{k}_kernel" not in globals_]
    assert not missing, (missing, sorted(globals_))
    # ... and so did the ops lowered through emit_te (quantize, max_pool2d, concat, channel shuffle).
    for kind in _TE_KINDS.get(name, ()):
        assert any(kind in g for g in globals_), (kind, sorted(globals_))
    assert _cuda_modules(tvm.runtime.load_module(path)), "no CUDA module inside the library"


@pytest.mark.parametrize("name", ["resnet18", "shufflenet_v1"])
def test_int8_dense_convs_use_dp4a_in_sass(name, built):
    """nvcc's machine code (cuobjdump -sass of the fatbin inside the library) of every dense int8 conv and
    linear kernel holds IDP.4A instructions: the dp4a kernels were picked and really run on dp4a."""
    if find_cuobjdump() is None:
        pytest.skip("cuobjdump/nvdisasm not installed (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")
    _, path, _, _ = built(name)
    sass = sass_by_kernel(path)
    dp4a = [k for k in json.load(open(sidecar_path(path)))["kernels"] if "_dp4a_" in k]
    assert dp4a
    counts = {k: count_instructions(sass[f"{k}_kernel"], "IDP.4A") for k in dp4a}
    assert all(c > 0 for c in counts.values()), counts


def test_int8_batch16_dense_convs_use_tensor_cores_in_sass(built):
    """At batch 16 each dense int8 conv and linear runs where the per-shape rule (cuda_imma.imma_applies)
    sends it: the 3x3 convs on the tensor cores (IMMA in their SASS), the rest on dp4a (IDP.4A)."""
    if find_cuobjdump() is None:
        pytest.skip("cuobjdump/nvdisasm not installed (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")
    _, path, _, _ = built("resnet18_b16")
    sass = sass_by_kernel(path)
    meta = json.load(open(sidecar_path(path)))
    dense = [k for k in meta["kernels"] if k.startswith(("qconv2d", "qlinear")) and "_dw_" not in k]
    imma = [k for k in dense if "_imma_" in k]
    windowed = [sym for sym, v in meta["kernel_info"].items() if v["op"] == "qconv2d"
                and v["inputs"][1][2] * v["inputs"][1][3] > 1 and v["inputs"][1][1] >= 8]
    assert windowed and all(any(sym.startswith(k) for k in imma) for sym in windowed), (windowed, imma)
    for k in dense:
        op = "IMMA" if k in imma else "IDP.4A"
        assert count_instructions(sass[f"{k}_kernel"], op) > 0, (k, op)


@pytest.mark.parametrize("name", ["resnet18", "resnet18_b16", "shufflenet_v1", "lut", "qavg"])
def test_int8_runs_on_gpu_bit_exact(name, built):
    if _gpu_arch() is None:
        pytest.skip("no CUDA GPU on this machine (compile-only checks above still ran)")
    graph, path, ref, x = built(name)
    pred = runtime.load(path, device="cuda")
    got, want = pred.run({graph.inputs[0]: x}), ref(x)
    assert set(want) <= set(got)
    for out, r in want.items():
        assert got[out].dtype == r.dtype and got[out].shape == r.shape, out
        assert np.array_equal(got[out], r), \
            f"{name}/{out}: {np.count_nonzero(got[out] != r)} of {r.size} differ on the GPU"
