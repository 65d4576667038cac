"""The SASS (GPU machine code) of a compiled CUDA library, read without a GPU: which instructions the int8
kernels really use (IDP.4A = dp4a, IMMA = int8 tensor cores).

The library embeds nvcc's fatbin verbatim inside TVM's module blob; it is found by its magic number and
header, written to a temporary file and disassembled with ``cuobjdump -sass`` (which needs ``nvdisasm``).
Both come with the CUDA toolkit, or from PyPI (nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm)."""
from __future__ import annotations

import glob
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

_FATBIN_MAGIC = b"\x50\xed\x55\xba"          # 0xBA55ED50, little endian: version u16, header size u16, size u64


def find_cuobjdump() -> str | None:
    """cuobjdump with an nvdisasm beside it or on PATH, or None."""
    cands = [shutil.which("cuobjdump")]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            cands.append(os.path.join(os.environ[var], "bin", "cuobjdump"))
    cands += glob.glob("/usr/local/cuda*/bin/cuobjdump")
    cands += glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nvidia", "cu*", "bin", "cuobjdump"))
    for c in cands:
        if c and os.path.exists(c) and (shutil.which("nvdisasm") or os.path.exists(os.path.join(os.path.dirname(c), "nvdisasm"))):
            return c
    return None


def fatbins(blob: bytes) -> list:
    """The fatbin images inside a binary (an exported library)."""
    found, i = [], blob.find(_FATBIN_MAGIC)
    while i >= 0:
        version, header, size = struct.unpack_from("<HHQ", blob, i + 4)
        if version == 1 and header == 16 and i + header + size <= len(blob):
            found.append(blob[i:i + header + size])
            i += header + size
        else:
            i += 4
        i = blob.find(_FATBIN_MAGIC, i)
    return found


def _cuobjdump(library_path: str, flags: list) -> list:
    """`cuobjdump FLAGS` of every fatbin in the library: one stdout per fatbin. Raises RuntimeError when
    cuobjdump is missing or fails, or the library has no fatbin."""
    tool = find_cuobjdump()
    if tool is None:
        raise RuntimeError("cuobjdump (with nvdisasm) not found: install the CUDA toolkit or "
                           "pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm")
    with open(library_path, "rb") as f:
        images = fatbins(f.read())
    if not images:
        raise RuntimeError(f"{library_path}: no CUDA fatbin inside (was nvcc run?)")
    env = dict(os.environ, PATH=os.path.dirname(tool) + os.pathsep + os.environ.get("PATH", ""))
    outputs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, image in enumerate(images):
            path = os.path.join(tmp, f"m{n}.fatbin")
            with open(path, "wb") as f:
                f.write(image)
            proc = subprocess.run([tool, *flags, path], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"cuobjdump {' '.join(flags)} failed: {proc.stderr.strip()[-300:]}")
            outputs.append(proc.stdout)
    return outputs


def sass_by_kernel(library_path: str) -> dict:
    """{kernel function name: its SASS text} of every fatbin in the library (machine code only: embedded
    PTX has no SASS). Raises RuntimeError when cuobjdump is missing or fails, or the library has no fatbin."""
    kernels = {}
    for text in _cuobjdump(library_path, ["-sass"]):
        for name, body in re.findall(r"Function : (\S+)\n(.*?)(?=\n\s*Function : |\Z)", text, re.S):
            kernels[name] = kernels.get(name, "") + body
    return kernels


def fatbin_contents(library_path: str) -> set:
    """What the library's fatbins hold: {("ELF", "sm_80"), ("PTX", "sm_80"), ...}. ELF is machine code for
    that GPU generation; PTX is what the driver JIT-compiles for newer GPUs."""
    found = set()
    for text in _cuobjdump(library_path, ["-lelf", "-lptx"]):
        found |= set(re.findall(r"^(ELF|PTX) file\s+\d+: \S+?\.(sm_\w+?)\.(?:cubin|ptx)$", text, re.M))
    return found


def count_instructions(sass: str, opcode: str) -> int:
    """How many instructions of `opcode` (e.g. "IDP.4A", "IMMA") a SASS text holds."""
    return len(re.findall(r"\b" + re.escape(opcode) + r"\b", sass))


def staged_part(sass: str) -> str:
    """The SASS from a kernel's first barrier (BAR.SYNC) on: for the shared-memory staged kernels
    (schedules/cuda_implicit_gemm.py) the steps that stage a tile and multiply-add it, and the epilogue,
    without the prologue (index set-up, where nvcc may park a value on the stack). Empty without barriers."""
    lines = sass.splitlines()
    first = next((i for i, line in enumerate(lines) if "BAR.SYNC" in line), len(lines))
    return "\n".join(lines[first:])


def build_kernel_library(funcs, target, path: str) -> list:
    """Compile PrimFuncs (scheduled kernels, each with its global_symbol) for a CUDA `target` (a resolved
    yuan Target) into one library at `path` (nvcc; no cuobjdump needed). Returns their global symbols."""
    import tvm
    from .cuda_toolchain import prepare_cuda
    prepare_cuda(target)
    funcs = {str(f.attrs["global_symbol"]): f for f in funcs}
    with target.tvm:
        lib = tvm.compile(tvm.IRModule(funcs), target.tvm)
    lib.export_library(path)
    return list(funcs)


def compile_kernels(funcs, target, folder: str):
    """build_kernel_library into FOLDER/kernels.so. Returns (library path, {global_symbol: the SASS of
    its kernel})."""
    path = os.path.join(folder, "kernels.so")
    names = build_kernel_library(funcs, target, path)
    sass = sass_by_kernel(path)
    return path, {name: sass[f"{name}_kernel"] for name in names}
