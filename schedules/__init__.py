"""Yuan kernel library (see docs/design.md, "Kernels (schedules/) and lowering").

    select(op, attrs, in_types, out_type, target, constants=None) -> tvm.tirx.PrimFunc
    kernel_inputs(func, attrs, in_types, arrays) -> list[int | np.ndarray]
"""
from .registry import (Kernel, applicable, get_kernel, kernel_inputs, kernels, preferred_layouts, register_kernel,
                       select, select_kernel, target_features)

__all__ = ["Kernel", "applicable", "get_kernel", "kernel_inputs", "kernels", "preferred_layouts", "register_kernel", "select",
           "select_kernel", "target_features"]
