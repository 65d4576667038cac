"""Planned memory of a compiled module: weights, activation storage after Relax's static memory
planning, and their sum (the peak the VM's own allocations can reach).

    planned_memory(mod, target) -> {"weights_bytes", "activations_bytes", "intermediate_bytes",
                                    "outputs_bytes", "peak_bytes", "storages", "tensors"}

`mod` is the module compile_graph hands to the backend (kernels and scheduled light ops, before
tvm.compile). The library-lowering passes of TVM's default build pipeline are replayed up to
StaticPlanBlockMemory (they are cheap: no TIR is compiled):

* intermediate_bytes: the sum of every tensor the VM would allocate without planning (each call_tir
  output after CallTIRRewrite), i.e. no reuse at all;
* activations_bytes: the storages StaticPlanBlockMemory creates (R.memory.alloc_storage), which
  tensors with disjoint lifetimes share; reuse works when this is well below intermediate_bytes;
* outputs_bytes: what stays unplanned (the function's outputs, allocated fresh every run);
* weights_bytes: the constants the module holds (packed weights, biases, requantization tables),
  which live for the whole life of the loaded module (in a CPU target's .so: read-only pages of the
  library that the kernels read in place, compiler/library_weights.py).

peak_bytes = weights + activations + outputs: an upper bound of the VM's allocations while running
(every planned storage is allocated at first use and kept by the VM's allocator). Kernel scratch
(TVMBackendAllocWorkspace, small per-thread tiles) and the runtime's own code are not counted.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from .tvm_errors import error_line

# The steps of tvm.relax.pipeline.default_build_pipeline up to the planning (0.27 order).
_UNTIL_CALL_TIR_REWRITE = ("LegalizeOps", "RewriteDataflowReshape", "ToNonDataflow", "RemovePurityChecking",
                           "CallTIRRewrite")


def _dtype_bytes(dtype) -> int:
    dtype = str(getattr(dtype, "dtype", dtype))
    return 1 if dtype == "bool" else np.dtype(dtype).itemsize


def _allocations(func) -> dict:
    """Bytes per kind of allocation call in a Relax function: alloc_tensor (unplanned tensors),
    alloc_storage (planned storages), and the constants it refers to (each counted once)."""
    found = {"alloc_tensor": [], "alloc_storage": [], "constants": {}}
    alloc_tensor = tvm.ir.Op.get("relax.builtin.alloc_tensor")
    alloc_storage = tvm.ir.Op.get("relax.memory.alloc_storage")

    def visit(expr):
        if isinstance(getattr(expr, "value", None), tvm.runtime.Tensor):   # a Relax tensor constant
            found["constants"][expr] = expr.value.numpy().nbytes
        elif isinstance(expr, relax.Call) and expr.op.same_as(alloc_tensor):
            shape = [int(d) for d in expr.args[0].values]
            found["alloc_tensor"].append(int(np.prod(shape, dtype=np.int64)) * _dtype_bytes(expr.args[1].value))
        elif isinstance(expr, relax.Call) and expr.op.same_as(alloc_storage):
            size = int(np.prod([int(d) for d in expr.args[0].values], dtype=np.int64))
            found["alloc_storage"].append(size)   # in bytes (args[3] is the element dtype)

    relax.analysis.post_order_visit(func.body, visit)
    return found


def planned_memory(mod, target) -> dict:
    """The module's planned memory (see the module docstring). Never fails the build: a module the
    analysis cannot read gets {"note": why}."""
    try:
        with target.tvm:
            unplanned = tvm.transform.Sequential([getattr(relax.transform, p)() for p in _UNTIL_CALL_TIR_REWRITE])(mod)
            planned = relax.transform.StaticPlanBlockMemory()(unplanned)
        before, after = _allocations(unplanned["main"]), _allocations(planned["main"])
    except Exception as exc:   # analysis only: the build itself goes on
        return {"note": f"memory planning could not be read: {error_line(exc)}"}
    weights = sum(after["constants"].values())
    activations, outputs = sum(after["alloc_storage"]), sum(after["alloc_tensor"])
    return {"weights_bytes": weights, "activations_bytes": activations, "outputs_bytes": outputs,
            "intermediate_bytes": sum(before["alloc_tensor"]), "peak_bytes": weights + activations + outputs,
            "storages": len(after["alloc_storage"]), "tensors": len(before["alloc_tensor"])}


def describe_memory(memory: dict) -> str:
    """One line for `yuan compile` / `yuan bench`."""
    if "peak_bytes" not in memory:
        return f"memory: {memory.get('note', 'not recorded (recompile the module)')}"
    mib = lambda n: f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"  # noqa: E731
    return (f"memory (planned): weights {mib(memory['weights_bytes'])}, activations "
            f"{mib(memory['activations_bytes'])} in {memory['storages']} buffers (without reuse "
            f"{mib(memory['intermediate_bytes'])} in {memory['tensors']}), outputs {mib(memory['outputs_bytes'])}, "
            f"peak {mib(memory['peak_bytes'])}")


__all__ = ["planned_memory", "describe_memory"]
