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


def sass_by_kernel(library_path: str) -> dict:
    """{kernel function name: its SASS text} of every fatbin in the library (machine code only: embedded
    PTX has no SASS). Raises RuntimeError when cuobjdump is missing or fails, or the library has no fatbin."""
    tool = find_cuobjdump()
    if tool is None:
        raise RuntimeError("cuobjdump (with nvdisasm) not found: install the CUDA toolkit or "
                           "pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm")
    with open(library_path, "rb") as f:
        images = fatbins(f.read())
    if not images:
        raise RuntimeError(f"{library_path}: no CUDA fatbin inside (was nvcc run?)")
    env = dict(os.environ, PATH=os.path.dirname(tool) + os.pathsep + os.environ.get("PATH", ""))
    kernels = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, image in enumerate(images):
            path = os.path.join(tmp, f"m{n}.fatbin")
            with open(path, "wb") as f:
                f.write(image)
            proc = subprocess.run([tool, "-sass", path], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"cuobjdump -sass failed: {proc.stderr.strip()[-300:]}")
            for name, body in re.findall(r"Function : (\S+)\n(.*?)(?=\n\s*Function : |\Z)", proc.stdout, re.S):
                kernels[name] = kernels.get(name, "") + body
    return kernels


def count_instructions(sass: str, opcode: str) -> int:
    """How many instructions of `opcode` (e.g. "IDP.4A", "IMMA") a SASS text holds."""
    return len(re.findall(r"\b" + re.escape(opcode) + r"\b", sass))
