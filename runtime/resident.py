"""Resident memory of this process (Linux /proc), for `yuan bench` and bench/memory.py.

    start = resident_kib()      # VmRSS now
    reset_peak()                # VmHWM := VmRSS (so the peak covers only what follows)
    ... load and run a model ...
    peak = peak_kib()           # VmHWM: the highest resident set since the reset (or the start)
    anonymous_kib()             # RssAnon: heap and anonymous mappings (tensors TVM allocates)
    file_resident_kib(path)     # resident pages mapped from one file (a model library's code and
                                # the weights its kernels read in place)

Every function returns None where /proc/self/status is not available (not Linux).
"""
from __future__ import annotations

import os


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def resident_kib() -> int | None:
    return _status_kib("VmRSS")


def peak_kib() -> int | None:
    return _status_kib("VmHWM")


def anonymous_kib() -> int | None:
    return _status_kib("RssAnon")


def file_resident_kib(path: str) -> int | None:
    """Resident KiB of this process's mappings of the file `path` (0 when it is not mapped)."""
    real = os.path.realpath(path)
    total, mine = 0, False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                fields = line.split()
                if fields and "-" in fields[0] and not fields[0].endswith(":"):   # a mapping's header
                    mine = len(fields) >= 6 and " ".join(fields[5:]) == real
                elif mine and fields[0] == "Rss:":
                    total += int(fields[1])
    except OSError:
        return None
    return total


def reset_peak() -> bool:
    """Reset the process's peak resident set to its current one (Linux >= 4.0). False where it
    cannot be reset: the peak then includes everything since the process started."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


__all__ = ["resident_kib", "peak_kib", "anonymous_kib", "file_resident_kib", "reset_peak"]
