"""The C++ deployment kit: runtime/cpp/ (yuan_run.cc, npy.h, Makefile), shipped inside the package.
yuan_run loads a compiled model with the TVM runtime of the apache-tvm / apache-tvm-ffi wheels
(libtvm_runtime.so + libtvm_ffi.so), without Python; docs/deploy.md shows the builds for Linux
x86-64 / aarch64 and how Android and iOS apps link a model.

    yuan deploy-kit DIR [--build]          # copy the kit out of the (maybe read-only) package, build it
    copy_kit("kit"); build("kit", "kit/build")                               # the same from Python
    build("kit", "kit/build-arm", cxx="aarch64-linux-gnu-g++", site=ARM64_SITE)   # cross build
"""
from __future__ import annotations

import os
import shutil
import subprocess

KIT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpp")
KIT_FILES = ("yuan_run.cc", "npy.h", "Makefile")


class DeployKitError(RuntimeError):
    """The kit cannot be copied or built (missing make / compiler / TVM headers, compile error)."""


def tvm_site() -> str:
    """The site-packages folder holding this Python's tvm/ and tvm_ffi/ wheels."""
    import tvm_ffi
    return os.path.dirname(os.path.dirname(os.path.abspath(tvm_ffi.__file__)))


def copy_kit(dest: str) -> list[str]:
    """Copy the kit's files into `dest` (created if missing). Returns the copied paths."""
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise DeployKitError(f"'{dest}' exists and is not a folder")
    os.makedirs(dest, exist_ok=True)
    return [shutil.copyfile(os.path.join(KIT_DIR, name), os.path.join(dest, name)) for name in KIT_FILES]


def build(kit_dir: str, build_dir: str, cxx: str | None = None, site: str | None = None,
          model_lib: str | None = None, program: str = "yuan_run", timeout: float = 300) -> str:
    """`make` the kit: `program` in `build_dir` for `cxx` (g++) against the wheels in `site` (this
    Python's); `model_lib` links a system-lib archive NAME.a in. Returns the program's path."""
    if shutil.which("make") is None:
        raise DeployKitError("make is not installed (apt-get install make g++)")
    args = ["make", "-C", os.path.abspath(kit_dir), f"BUILD={os.path.abspath(build_dir)}",
            f"SITE={os.path.abspath(site or tvm_site())}", f"CXX={cxx or 'g++'}", f"PROGRAM={program}"]
    if model_lib:
        args.append(f"MODEL_LIB={os.path.abspath(model_lib)}")
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployKitError(f"building {program} took over {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise DeployKitError(f"building {program} failed: " + " | ".join(tail)[:600])
    return os.path.join(os.path.abspath(build_dir), program)


__all__ = ["copy_kit", "build", "tvm_site", "DeployKitError", "KIT_DIR", "KIT_FILES"]
