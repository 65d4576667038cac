"""Kernel names of a compiled model's sidecar ("kernels") grouped by kernel: schedules/registry.py's
_unique_name appends `_<sha1[:10]>` to the kernel's name, and TVM may add `_<n>` to a repeated symbol.
Plain Python (no TVM, no yuan import): bench/gpu_check.py uses it on the GPU machine, which has only
TVM's runtime."""
import re

_SUFFIX = re.compile(r"_[0-9a-f]{10}(_\d+)?$")


def kernel_kind(name: str) -> str:
    """'qconv2d_int8_nchw_dp4a_0123456789_1' -> 'qconv2d_int8_nchw_dp4a'."""
    return _SUFFIX.sub("", name)
