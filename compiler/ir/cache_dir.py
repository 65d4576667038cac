"""Yuan's per-user cache folder, in one place for every cache (tuning choices, the parsed bundled
data set, the CUDA driver stub). It lives in compiler.ir only because that is the lowest part that
both yuan.frontend and yuan.compiler may import (tests/test_architecture.py); it uses no IR."""
from __future__ import annotations

import os


def cache_dir(sub: str = "") -> str:
    """$YUAN_CACHE_DIR, else $XDG_CACHE_HOME/yuan, else ~/.cache/yuan; joined with `sub` when given.
    Not created here: each cache makes (or fails to make) its own folder when it writes."""
    root = os.environ.get("YUAN_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "yuan")
    return os.path.join(root, sub) if sub else root
