"""Resident memory of this process (Linux /proc), for `yuan bench` and bench/memory.py.

    start = resident_kib()      # VmRSS now
    reset_peak()                # VmHWM := VmRSS (so the peak covers only what follows)
    ... load and run a model ...
    peak = peak_kib()           # VmHWM: the highest resident set since the reset (or the start)

Every function returns None where /proc/self/status is not available (not Linux).
"""
from __future__ import annotations


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


def reset_peak() -> bool:
    """Reset the process's peak resident set to its current one (Linux >= 4.0). False where it
    cannot be reset: the peak then includes everything since the process started."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


__all__ = ["resident_kib", "peak_kib", "reset_peak"]
