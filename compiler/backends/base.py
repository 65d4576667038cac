"""The steps every backend provides (see compiler/backends/__init__.py) and the artifact writers
they share: a shared library through export_library, a system-lib static archive through llvm-ar."""
from __future__ import annotations

import os
import subprocess
import tarfile
from dataclasses import dataclass

import tvm

from ..errors import BuildError
from ..tvm_errors import error_line
from .pipelines import TIR_PIPELINE


@dataclass
class Linker:
    """What prepare() found: the export_library compile function (None: TVM's default host
    compiler) and the archiver command for a static archive (None: no archive)."""
    fcompile: object = None
    archiver: list | None = None


class Backend:
    name = ""
    extra_artifacts: tuple = ()        # written beside the library (e.g. "cu": the CUDA source)

    def artifact_paths(self, target, output_path: str) -> dict:
        """{'so': path, 'a': path, ...} for what `target` writes. A target whose only artifact is a
        static archive (ios-arm64) always writes NAME.a, whatever extension output_path has."""
        stem, ext = os.path.splitext(os.path.abspath(output_path))
        paths = {}
        for kind in target.toolchain.artifacts:
            paths[kind] = stem + ((ext or ".so") if kind == "so" else ".a")
        for kind in self.extra_artifacts:
            paths[kind] = stem + "." + kind
        return paths

    def prepare(self, target, paths: dict) -> Linker:
        raise NotImplementedError

    def schedule_light_ops(self, mod, target):
        raise NotImplementedError

    def build(self, mod, target, paths: dict) -> dict:
        raise NotImplementedError

    def write(self, target, built: dict, tmp_paths: dict, linker: Linker, tmp_dir: str) -> None:
        raise NotImplementedError


def export_shared_library(executable, dest: str, fcompile, target_name: str) -> None:
    try:
        if fcompile is not None:
            executable.export_library(dest, fcompile=fcompile)
        else:
            executable.export_library(dest)
    except Exception as exc:
        raise BuildError(f"export_library failed for target '{target_name}': {error_line(exc)}") from exc


def export_static_library(executable, archiver: list, dest: str, tmp_dir: str, target_name: str) -> None:
    """System-lib executable -> .tar (objects + the VM bytecode blob) -> static archive."""
    try:
        tar = os.path.join(tmp_dir, "syslib.tar")
        executable.export_library(tar)
        objdir = os.path.join(tmp_dir, "syslib_objs")
        os.makedirs(objdir)
        with tarfile.open(tar) as tf:
            tf.extractall(objdir)
    except Exception as exc:
        raise BuildError(f"static library export failed for target '{target_name}': {error_line(exc)}") from exc
    objs = sorted(os.path.join(objdir, f) for f in os.listdir(objdir) if f.endswith(".o"))
    if not objs:
        raise BuildError(f"target '{target_name}': system-lib export produced no object files")
    proc = subprocess.run(archiver + ["rcs", dest] + objs, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"target '{target_name}': {archiver[0]} failed: {proc.stderr.strip()[-500:]}")


def compile_executables(mod, target, paths: dict, relax_pipeline="default") -> dict:
    """tvm.compile for the shared library, relax.build(system_lib=True) for the static archive; both through
    Yuan's TIR pipeline and `relax_pipeline` (pipelines.py)."""
    built = {}
    try:
        with target.tvm:
            if "so" in paths:
                built["so"] = tvm.compile(mod, target.tvm, relax_pipeline=relax_pipeline, tir_pipeline=TIR_PIPELINE)
            if "a" in paths:
                built["a"] = tvm.relax.build(mod, target.tvm, relax_pipeline=relax_pipeline, tir_pipeline=TIR_PIPELINE,
                                             system_lib=True)
    except Exception as exc:  # TVM errors are long; keep the line that names the problem
        raise BuildError(f"tvm.compile failed for target '{target.name}': {error_line(exc)}") from exc
    return built
