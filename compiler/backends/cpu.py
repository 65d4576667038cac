"""CPU backend (every LLVM target: x86, aarch64, Android, iOS, other ISAs): the light ops get the
generic CPU schedule (cpu_light_ops.py); artifacts are a shared library linked by the target's
(cross) compiler and/or a system-lib static archive."""
from __future__ import annotations

import os

import tvm

from .base import Backend, Linker, compile_executables, export_shared_library, export_static_library
from .cpu_light_ops import schedule_cpu_with_report


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
        return compile_executables(mod, target, paths)

    def write(self, target, built: dict, tmp_paths: dict, linker: Linker, tmp_dir: str) -> None:
        name = target.name
        if "so" in built:
            export_shared_library(built["so"], tmp_paths["so"], linker.fcompile, name)
        if "a" in built:
            export_static_library(built["a"], linker.archiver, tmp_paths["a"], tmp_dir, name)
