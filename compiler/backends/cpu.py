"""CPU backend (every LLVM target: x86, aarch64, Android, iOS, other ISAs): the light ops get the
generic CPU schedule (cpu_light_ops.py); artifacts are a shared library linked by the target's
(cross) compiler and/or a system-lib static archive."""
from __future__ import annotations

import os

import tvm

from ..library_weights import lift_weights, link_weights
from .base import Backend, Linker, compile_executables, export_shared_library, export_static_library
from .cpu_light_ops import schedule_cpu_with_report
from .pipelines import cpu_relax_pipeline


class CpuBackend(Backend):
    name = "cpu"

    def prepare(self, target, paths: dict) -> Linker:
        argv = target.toolchain.compiler_command()      # ToolchainError names what to install
        archiver = target.toolchain.archiver_command()
        fcompile = None
        if argv is not None:
            opts = list(argv[1:])
            if "so" in paths:   # Android's loader requires a soname; harmless on other Linux .so files
                opts.append(f"-Wl,-soname,{os.path.basename(paths['so'])}")
            fcompile = tvm.support.cc.cross_compiler(argv[0], options=opts)
        return Linker(fcompile, archiver)

    def schedule_light_ops(self, mod, target):
        """The CPU pipeline would leave light ops as naive loops: fuse and schedule them. Returns the
        sidecar's "light_ops" entry: what was done and anything left unscheduled."""
        mod, report = schedule_cpu_with_report(mod)
        return mod, {"scheduled": len(report["scheduled"]), "views": len(report["views"]),
                     "left_unscheduled": dict(report["failed"]), "note": report["error"]}

    def build(self, mod, target, paths: dict) -> dict:
        # The .so reads its weights in place from its own read-only data (library_weights.py);
        # the static archive keeps them in TVM's VM executable.
        relax_pipeline = cpu_relax_pipeline(target.tvm)
        built = compile_executables(mod, target, {k: v for k, v in paths.items() if k != "so"}, relax_pipeline)
        if "so" in paths:
            so_mod, built["weights"] = lift_weights(mod)
            built.update(compile_executables(so_mod, target, {"so": paths["so"]}, relax_pipeline))
        return built

    def write(self, target, built: dict, tmp_paths: dict, linker: Linker, tmp_dir: str) -> None:
        name = target.name
        if "so" in built:
            fcompile = link_weights(built["weights"], linker.fcompile, tmp_dir) if built["weights"] else linker.fcompile
            export_shared_library(built["so"], tmp_paths["so"], fcompile, name)
        if "a" in built:
            export_static_library(built["a"], linker.archiver, tmp_paths["a"], tmp_dir, name)
