"""Yuan kernel library (see docs/design.md, "Kernels (schedules/) and lowering").

    select(op, attrs, in_types, out_type, target=None, constants=None) -> tvm.tirx.PrimFunc
    kernel_inputs(func, attrs, in_types, arrays) -> list[int | np.ndarray]
"""
from .registry import (Kernel, applicable, get_kernel, kernel_inputs, kernels, preferred_layouts, register_kernel,
                       select, select_kernel, target_features)
from . import aarch64, cuda  # noqa: F401,E402  (register the aarch64 dotprod + cuda kernels)

__all__ = ["Kernel", "applicable", "get_kernel", "kernel_inputs", "kernels", "preferred_layouts", "register_kernel", "select",
           "select_kernel", "target_features"]
