"""CUDA backend: nvcc (and, on a machine without a GPU driver, a stub driver: cuda_toolchain.py)
compiles the device code; kernels that schedules/cuda.py left to TVM's DLight get its default GPU
schedules inside tvm.compile; the generated CUDA source is written beside the library (NAME.cu)."""
from __future__ import annotations

import tvm

from .base import Backend, Linker, compile_executables, export_shared_library
from .cuda_toolchain import prepare_cuda

UNSCHEDULED_MARK = "yuan.gpu_unscheduled"   # set by schedules/cuda.py on kernels left to DLight


class CudaBackend(Backend):
    name = "cuda"
    extra_artifacts = ("cu",)

    def prepare(self, target, paths: dict) -> Linker:
        prepare_cuda(target)              # ToolchainError when nvcc / TVM's CUDA runtime is unusable
        return Linker(None, None)

    def schedule_light_ops(self, mod, target):
        """Clear tirx.is_scheduled on the kernels schedules/cuda.py left for DLight: tvm.compile's
        cuda pipeline then binds their threads (and those of every light op)."""
        updates = {gv: func.with_attr("tirx.is_scheduled", False) for gv, func in mod.functions.items()
                   if isinstance(func, tvm.tirx.PrimFunc) and func.attrs is not None
                   and UNSCHEDULED_MARK in func.attrs}
        for gv, func in updates.items():
            mod[gv] = func
        return mod, None

    def build(self, mod, target, paths: dict) -> dict:
        return compile_executables(mod, target, paths)

    def write(self, target, built: dict, tmp_paths: dict, linker: Linker, tmp_dir: str) -> None:
        export_shared_library(built["so"], tmp_paths["so"], None, target.name)
        with open(tmp_paths["cu"], "w") as f:    # the loaded .so keeps only the fatbin: keep the source
            f.write(cuda_source(built["so"]))


def cuda_source(executable) -> str:
    """The generated CUDA C source of a compiled executable (or a loaded module)."""
    stack = [getattr(executable, "mod", executable)]
    while stack:
        m = stack.pop()
        if m.kind == "cuda":
            src = m.inspect_source("cuda")
            if src:
                return src
        stack.extend(m.imports)
    return ""
