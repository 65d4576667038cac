"""The number of threads TVM's CPU thread pool runs kernels on.

    set_num_threads(4)   # -> the count the pool now uses (call it before the first run)
    default_threads()    # one per physical core this process may use (`yuan run / bench / profile`'s default)

TVM sizes its pool from TVM_NUM_THREADS when the pool starts (by default half the logical CPUs on
x86), and runtime.config_threadpool changes how many of the pool's threads are used. So the count
can be set freely before the first model runs, and lowered afterwards; in TVM 0.27 a pool that has
started cannot grow past the size it started with (checked: the count stays put). `yuan run / bench /
profile --threads` sets it before loading the module. tests/runtime checks the count in a fresh process.

TVM's own default, half the logical CPUs, assumes two hardware threads per core: on a machine without SMT
(most VMs: 2 vCPUs report 1 thread per core) it leaves half the cores idle (1 thread on a 2-core box).
default_threads() counts the cores instead, from the CPU topology in sysfs.
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


def default_threads() -> int:
    """The physical cores among the CPUs this process may run on (its affinity mask): hardware threads of one
    core share its vector units, so a second thread per core adds little to these compute-bound kernels.
    Without sysfs topology (not Linux): the CPUs available."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:   # no affinity API (macOS)
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        try:
            topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
            with open(f"{topo}/physical_package_id") as pkg, open(f"{topo}/core_id") as core:
                cores.add((pkg.read().strip(), core.read().strip()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def num_threads() -> int:
    import tvm
    return int(tvm.get_global_func("runtime.NumThreads")())


__all__ = ["set_num_threads", "num_threads", "default_threads"]
