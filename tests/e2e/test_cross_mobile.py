"""Android / iOS artifacts (nothing can run them here; format, architecture and symbols are checked):

* "android-arm64": NAME.so (ELF aarch64 shared object linked by clang-14 + lld without an NDK, or the
  NDK when ANDROID_NDK_HOME / TVM_NDK_CC is set; soname set, no NEEDED libraries, exports the packed
  kernel entries __tvm_ffi_* and the embedded VM bytecode __tvm_ffi__library_bin) AND NAME.a
  (system-lib static archive: ELF aarch64 objects that register themselves through
  TVMFFIEnvModRegisterSystemLibSymbol);
* "ios-arm64": only NAME.a, a BSD-format archive of Mach-O arm64 objects with the same system-lib
  registration;
* missing toolchains give a ToolchainError naming what to install.
Needs clang-14, lld-14 and llvm-14 (apt); skips otherwise."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest



from yuan.compiler.build import compile_graph, sidecar_path  # noqa: E402
from yuan.compiler.targets import ToolchainError  # noqa: E402
from yuan.frontend.models import get_model  # noqa: E402
from yuan.frontend.random import manual_seed  # noqa: E402
from yuan.frontend.tensor import Tensor  # noqa: E402
from yuan.frontend.trace import trace  # noqa: E402

TOOLS = {"nm": "llvm-nm-14", "readelf": "llvm-readelf-14", "ar": "llvm-ar-14"}


def _tool(name):
    path = shutil.which(TOOLS[name]) or shutil.which(TOOLS[name].rsplit("-", 1)[0])
    if path is None:
        pytest.skip(f"{TOOLS[name]} not installed (apt-get install llvm-14)")
    return path


def _run(*argv):
    return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout


def _file(path):
    if shutil.which("file") is None:
        pytest.skip("file(1) not installed")
    return _run("file", "-b", path)


@pytest.fixture(scope="module")
def graph():
    manual_seed(0)
    return trace(get_model("small_cnn", num_classes=5, in_channels=3, width=0.25, input_size=16).eval(),
                 Tensor(np.zeros((1, 3, 16, 16), np.float32)))


def _members(archive, tmp_path):
    out = tmp_path / ("x_" + os.path.basename(archive))
    out.mkdir()
    subprocess.run([_tool("ar"), "x", archive], cwd=out, check=True)
    return sorted(str(p) for p in out.iterdir())


@pytest.fixture(scope="module")
def android(graph, tmp_path_factory):
    if not (shutil.which("clang-14") and (shutil.which("ld.lld-14") or shutil.which("ld.lld"))
            and shutil.which("llvm-ar-14")) and not os.environ.get("ANDROID_NDK_HOME"):
        pytest.skip("needs clang-14, lld-14 and llvm-14 (apt-get install clang-14 lld-14 llvm-14)")
    out = tmp_path_factory.mktemp("android")
    path = compile_graph(graph, "android-arm64", str(out / "libsmallcnn.so"))
    return path


def test_android_shared_library(android):
    assert android.endswith("libsmallcnn.so") and os.path.exists(android)
    desc = _file(android)
    assert "ELF 64-bit" in desc and "aarch64" in desc and "shared object" in desc, desc
    dyn = _run(_tool("readelf"), "-d", android)
    assert "libsmallcnn.so" in dyn and "NEEDED" not in dyn, dyn      # soname, no libc dependency
    syms = _run(_tool("nm"), "-D", "--defined-only", android)
    assert "__tvm_ffi__library_bin" in syms                        # the Relax VM executable
    assert any(line.split()[-1].startswith("__tvm_ffi_conv2d") for line in syms.splitlines()), syms
    undef = _run(_tool("nm"), "-D", "--undefined-only", android)
    libc = {"memcpy", "memset", "memmove"}      # resolved from the app process (the runtime links libc)
    names = [line.split()[-1] for line in undef.splitlines() if line.strip()]
    assert all("TVM" in n or n in libc for n in names), undef
    meta = json.load(open(sidecar_path(android)))
    assert meta["target"] == "android-arm64"
    assert meta["artifacts"] == {"so": "libsmallcnn.so", "a": "libsmallcnn.a"}


def test_android_static_system_lib(android, tmp_path):
    archive = os.path.splitext(android)[0] + ".a"
    assert "ar archive" in _file(archive)
    members = _members(archive, tmp_path)
    assert members
    for m in members:
        d = _file(m)
        assert "ELF 64-bit" in d and "aarch64" in d and "relocatable" in d, (m, d)
    syms = _run(_tool("nm"), archive)
    assert "TVMFFIEnvModRegisterSystemLibSymbol" in syms               # system-lib registration
    assert "__tvm_ffi__library_bin" in syms and "__tvm_ffi_conv2d" in syms
    assert json.load(open(sidecar_path(android)))["system_lib"]["archive"] == "libsmallcnn.a"


def test_ios_static_archive(graph, tmp_path):
    if not shutil.which("llvm-ar-14"):
        pytest.skip("llvm-ar-14 not installed (apt-get install llvm-14)")
    path = compile_graph(graph, "ios-arm64", str(tmp_path / "smallcnn.so"))   # extension becomes .a
    assert path.endswith("smallcnn.a") and not (tmp_path / "smallcnn.so").exists()
    assert "ar archive" in _file(path)
    members = _members(path, tmp_path)
    assert members
    for m in members:
        d = _file(m)
        assert "Mach-O 64-bit" in d and "arm64" in d and "object" in d, (m, d)
    syms = _run(_tool("nm"), path)
    assert "_TVMFFIEnvModRegisterSystemLibSymbol" in syms                # Mach-O: leading underscore
    assert "___tvm_ffi__library_bin" in syms and "___tvm_ffi_conv2d" in syms
    meta = json.load(open(sidecar_path(path)))
    assert meta["target"] == "ios-arm64" and meta["artifacts"] == {"a": "smallcnn.a"}
    assert meta["system_lib"]["prefix"] == ""


def test_missing_mobile_toolchain_is_a_clear_error(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for var in ("ANDROID_NDK_HOME", "ANDROID_NDK_ROOT", "ANDROID_NDK", "TVM_NDK_CC"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ToolchainError, match="clang-14.*install it with: apt-get install clang-14 lld-14"):
        compile_graph(graph, "android-arm64", str(tmp_path / "m.so"))
    with pytest.raises(ToolchainError, match="llvm-ar-14.*apt-get install llvm-14"):
        compile_graph(graph, "ios-arm64", str(tmp_path / "m.a"))
    assert os.listdir(tmp_path) == []
