"""Per-backend pipelines: what differs between CPU and GPU builds, behind one interface.

    backend = backend_for(target)          # target: a resolved yuan Target
    backend.artifact_paths(target, output) # {"so": ..., "a": ..., "cu": ...}
    backend.prepare(target, paths)         # toolchain checks, before any slow work -> Linker
    backend.schedule_light_ops(mod, target) -> (mod, sidecar entry | None)
    backend.build(mod, target, paths)      # tvm.compile / relax.build -> {kind: executable}
    backend.write(target, built, tmp_paths, linker, tmp_dir)

compiler/build.py runs these steps in order for every target; a new backend is one module here and
one line in BACKENDS.
"""
from __future__ import annotations

from .base import Backend, Linker
from .cpu import CpuBackend
from .cuda import CudaBackend

# Target.backend -> the pipeline that builds it
BACKENDS: dict[str, Backend] = {"cpu": CpuBackend(), "cuda": CudaBackend()}


def backend_for(target) -> Backend:
    try:
        return BACKENDS[target.backend]
    except KeyError:
        raise ValueError(f"target '{target.name}': no backend '{target.backend}'; "
                         f"known: {sorted(BACKENDS)}") from None


__all__ = ["Backend", "Linker", "CpuBackend", "CudaBackend", "BACKENDS", "backend_for"]
