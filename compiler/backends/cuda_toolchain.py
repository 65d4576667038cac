"""CUDA targets: make TVM able to compile (and export a loadable .so) on a machine WITHOUT a GPU.

TVM's CUDA runtime (tvm/lib/libtvm_runtime_cuda.so) links the driver library libcuda.so.1. Without a
driver, TVM silently skips that library, CUDA codegen yields a source-only module, nvcc never runs and
the exported .so cannot be loaded. prepare_cuda() therefore, in this process:
  1. checks nvcc (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin) -> ToolchainError when missing;
  2. sets TVM_CUDA_COMPILE_MODE=nvcc (TVM's default, nvrtc, needs the cuda-bindings package) and
     TVM_CUDA_NVCC_NO_FAST_MATH=1 (exact float division in quantize), and makes nvcc embed PTX
     next to the machine code so an sm_80 library also runs on newer GPUs;
  3. when TVM's CUDA runtime is not enabled: loads the real libcuda.so.1 if there is one, else builds
     compiler/backends/cuda_stub.c (a tiny stub that answers CUDA_ERROR_NO_DEVICE) into
     <cache>/cudastub (compiler/ir/cache_dir.py: $YUAN_CACHE_DIR, else $XDG_CACHE_HOME/yuan, else
     ~/.cache/yuan) and loads it RTLD_GLOBAL under the soname libcuda.so.1, then loads
     libtvm_runtime_cuda.so so its codegen/loader register themselves.
Because glibc resolves libcuda.so.1 by soname to the already-loaded stub, no LD_LIBRARY_PATH or
subprocess is needed. The stub is never loaded when a real driver is found. Running kernels needs a GPU.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.resources
import os
import shutil
import subprocess

import tvm

from ..ir.cache_dir import cache_dir
from ..targets import ToolchainError

_STUB_SRC = str(importlib.resources.files(__package__).joinpath("cuda_stub.c"))   # package data


def find_nvcc() -> str | None:
    cands = [shutil.which("nvcc")]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            cands.append(os.path.join(os.environ[var], "bin", "nvcc"))
    cands += ["/usr/local/cuda/bin/nvcc"] + sorted(glob.glob("/usr/local/cuda-*/bin/nvcc"))
    for c in cands:
        if c and os.path.exists(c):
            return c
    return None


def build_stub() -> str:
    """Compile compiler/backends/cuda_stub.c into <cache>/libcuda.so.1 (once); returns its path."""
    out_dir = cache_dir("cudastub")
    out = os.path.join(out_dir, "libcuda.so.1")
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(_STUB_SRC):
        return out
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise ToolchainError("CUDA compile-only mode needs a C compiler (gcc) to build the driver stub")
    os.makedirs(out_dir, exist_ok=True)
    tmp = out + f".tmp{os.getpid()}"
    proc = subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", tmp, _STUB_SRC],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError(f"building the CUDA driver stub failed: {proc.stderr.strip()[-400:]}")
    os.replace(tmp, out)
    return out


def prepare_cuda(target=None) -> dict:
    """Make this process able to compile CUDA for `target` (a resolved yuan Target; None: "cuda").
    Returns {"nvcc": path, "driver": "real" | "stub" | "loaded"}."""
    name = target.name if target is not None else "cuda"
    hint = (target.toolchain.install_hint if target is not None else "") or "install the CUDA toolkit"
    nvcc = find_nvcc()
    if nvcc is None:
        raise ToolchainError(f"target '{name}' needs nvcc (the CUDA toolkit), which is not installed; {hint}")
    if shutil.which("nvcc") is None:
        os.environ["PATH"] = os.path.dirname(nvcc) + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
    # --use_fast_math turns quantize's x / scale into an approximate division, which can move a
    # value across a rounding boundary: the integer spec must hold on the GPU too.
    os.environ.setdefault("TVM_CUDA_NVCC_NO_FAST_MATH", "1")
    _register_portable_nvcc_callback()
    if tvm.runtime.enabled("cuda"):
        return {"nvcc": nvcc, "driver": "loaded"}
    try:
        ctypes.CDLL("libcuda.so.1", mode=ctypes.RTLD_GLOBAL)
        driver = "real"
    except OSError:
        ctypes.CDLL(build_stub(), mode=ctypes.RTLD_GLOBAL)
        driver = "stub"
    lib = os.path.join(os.path.dirname(tvm.__file__), "lib", "libtvm_runtime_cuda.so")
    try:
        ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise ToolchainError(f"target '{name}': TVM's CUDA runtime ({lib}) cannot be loaded: {exc}; "
                             f"it needs the CUDA runtime library libcudart ({hint})") from None
    if not tvm.runtime.enabled("cuda"):
        raise ToolchainError(f"target '{name}': TVM's CUDA runtime is not enabled after loading {lib}")
    return {"nvcc": nvcc, "driver": driver}


def _gencode(arch: str) -> list:
    """nvcc flags for machine code of `arch` (sm_XY) plus its PTX, which the driver JIT-compiles on
    newer GPUs (an sm_80 build then also runs on sm_90); TVM's default embeds the machine code only."""
    v = arch[3:]
    return ["-gencode", f"arch=compute_{v},code=sm_{v}", "-gencode", f"arch=compute_{v},code=compute_{v}"]


def _register_portable_nvcc_callback() -> None:
    import tvm_ffi
    from tvm.support import nvcc
    from tvm.target import Target

    def compile_cuda(code):
        if os.environ.get("TVM_CUDA_COMPILE_MODE", "nvrtc").lower() != "nvcc":   # the user chose nvrtc
            return nvcc.compile_cuda(code, target_format="cubin", compiler="nvrtc")
        target = Target.current(allow_none=True)
        arch = str(getattr(target, "arch", "") or "") if target is not None else ""
        return nvcc.compile_cuda(code, target_format="fatbin", compiler="nvcc",
                                 arch=_gencode(arch) if arch.startswith("sm_") else None)

    tvm_ffi.register_global_func("tvm_callback_cuda_compile", compile_cuda, override=True)
