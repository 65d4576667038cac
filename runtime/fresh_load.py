"""Load a model library so that a file recompiled at the same path is really loaded again.

The dynamic loader returns the library it already has open when asked for the same path again
(dlopen matches by name), so in one process a module recompiled in place would silently keep
running the old code and weights. load_library remembers the SHA-256 each path had when it was
loaded; when the file there has changed, it loads the new file through a uniquely named hard link
(or copy) in a private temporary folder, removed again once loaded (the mapping stays valid).
"""
from __future__ import annotations

import os
import shutil
import tempfile

_loaded: dict[str, str] = {}   # real path -> SHA-256 of the library dlopen holds under that name


def load_library(path: str, sha256: str):
    """tvm.runtime.load_module(path), fresh when `path` was loaded before with other contents."""
    import tvm
    key = os.path.realpath(path)
    if _loaded.setdefault(key, sha256) == sha256:
        return tvm.runtime.load_module(path)
    folder = tempfile.mkdtemp(prefix="yuan_reload_")
    alias = os.path.join(folder, f"{sha256[:16]}_{os.path.basename(path)}")
    try:
        try:
            os.link(path, alias)
        except OSError:    # another file system, or links not allowed: a copy does too
            shutil.copyfile(path, alias)
        return tvm.runtime.load_module(alias)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["load_library"]
