"""The number of threads TVM's CPU thread pool runs kernels on.

    set_num_threads(4)   # -> the count the pool now uses (call it before the first run)

TVM sizes its pool from TVM_NUM_THREADS when the pool starts (by default half the logical CPUs on
x86), and runtime.config_threadpool changes how many of the pool's threads are used. So the count
can be set freely before the first model runs, and lowered afterwards; in TVM 0.27 a pool that has
started cannot grow past the size it started with (checked: the count stays put). `yuan profile
--threads` sets it before loading the module. tests/runtime checks the count in a fresh process.
"""
from __future__ import annotations

import os

_BIG_CORES = 1   # TVM's AffinityMode kBig: the pool's default mode


def set_num_threads(count: int) -> int:
    if count < 1:
        raise ValueError(f"the thread count must be at least 1, got {count}")
    import tvm
    os.environ["TVM_NUM_THREADS"] = str(count)   # the pool caps itself by this
    tvm.get_global_func("runtime.config_threadpool")(_BIG_CORES, int(count))
    return num_threads()


def num_threads() -> int:
    import tvm
    return int(tvm.get_global_func("runtime.NumThreads")())


__all__ = ["set_num_threads", "num_threads"]
