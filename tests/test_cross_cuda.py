"""CUDA compile-only (no GPU needed): compile_graph(graph, "cuda", out) runs nvcc (with the driver stub
from compiler/cuda_support.py when there is no driver), writes a .so that load_module + the Relax VM
accept, NAME.cu holds the generated source (ex.mod.imports[cuda].inspect_source("cuda")), and the module carries CUDA kernels (__global__ functions for the convs, thread-bound by DLight).
Running on a GPU is not tested here (no GPU). Skips when nvcc is missing."""
import json

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")

from compiler.build import compile_graph, sidecar_path  # noqa: E402
from compiler.cuda_support import find_nvcc  # noqa: E402
from frontend.models import get_model  # noqa: E402
from frontend.random import manual_seed  # noqa: E402
from frontend.tensor import Tensor  # noqa: E402
from frontend.trace import trace  # noqa: E402


def _cuda_modules(mod):
    found = [mod] if mod.kind == "cuda" else []
    for m in mod.imports:
        found += _cuda_modules(m)
    return found


def test_cuda_compile_only(tmp_path):
    if find_nvcc() is None:
        pytest.skip("nvcc not installed (CUDA toolkit)")
    manual_seed(0)
    graph = trace(get_model("small_cnn", num_classes=5, in_channels=3, width=0.25, input_size=16).eval(),
                  Tensor(np.zeros((1, 3, 16, 16), np.float32)))
    path = compile_graph(graph, "cuda", str(tmp_path / "m.so"))
    meta = json.load(open(sidecar_path(path)))
    assert meta["target"] == "cuda" and any(k.startswith("conv2d_f32_nchw_cuda") for k in meta["kernels"])
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
