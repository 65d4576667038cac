"""Yuan's cache folder (compiler/ir/cache_dir.py): $YUAN_CACHE_DIR, else $XDG_CACHE_HOME/yuan, else
~/.cache/yuan, and the caches built on it follow the same order."""
import os
import shutil

import pytest

from yuan.compiler.ir.cache_dir import cache_dir


@pytest.fixture
def env(tmp_path, monkeypatch):
    for var in ("YUAN_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_order_of_the_cache_folder(tmp_path, env):
    assert cache_dir() == os.path.join(str(tmp_path), "home", ".cache", "yuan")
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("tune") == os.path.join(str(tmp_path), "xdg", "yuan", "tune")
    env.setenv("YUAN_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir("cudastub") == os.path.join(str(tmp_path), "mine", "cudastub")
    assert cache_dir() == str(tmp_path / "mine")


def test_tuning_cache_and_cuda_stub_honour_xdg(tmp_path, env):
    from yuan.compiler.targets import resolve_target
    from yuan.compiler.tune_cache import cache_path
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    xdg_yuan = str(tmp_path / "xdg" / "yuan")
    assert os.path.dirname(cache_path(resolve_target("x86"))) == os.path.join(xdg_yuan, "tune")
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        pytest.skip("no C compiler to build the CUDA driver stub")
    from yuan.compiler.backends.cuda_toolchain import build_stub
    assert build_stub() == os.path.join(xdg_yuan, "cudastub", "libcuda.so.1")
    assert os.path.isfile(os.path.join(xdg_yuan, "cudastub", "libcuda.so.1"))
