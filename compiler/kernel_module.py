"""A library of bare kernel calls, for kernels no graph reaches yet (a layout no planner produces): a Relax
`main(inputs...)` calling each scheduled PrimFunc once with its constants and returning every output, linked
for a CPU target like compile_graph's libraries, so runtime/qemu_runner.py runs it under qemu-aarch64 and
bench/arm_insn.py's KernelMap names its calls (the sidecar holds "kernel_info", symbol -> what the call is).

    kernel_library([(shape, dtype), ...], [KernelCall(func, args, out_type, info), ...], "aarch64-dotprod", "k.so")
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from tvm import relax

from .backends import backend_for
from .backends.base import compile_executables, export_shared_library
from .backends.pipelines import cpu_relax_pipeline
from .build import sidecar_path
from .targets import resolve_target


@dataclass
class KernelCall:
    func: object          # a scheduled PrimFunc with its global_symbol (schedules.select)
    args: list            # per param before the output: an int (input i of main) or an np.ndarray (a constant)
    out_type: tuple       # (shape, dtype)
    info: dict = field(default_factory=dict)   # the sidecar's kernel_info entry (kernel, op, macs, inputs, ...)


def kernel_library(inputs, calls, target, path) -> str:
    """Compile `calls` into one library at `path` for `target` (a name or Target); returns `path`."""
    target = resolve_target(target) if isinstance(target, str) else target
    bb = relax.BlockBuilder()
    params = [relax.Var(f"x{i}", relax.TensorType(tuple(shape), dtype)) for i, (shape, dtype) in enumerate(inputs)]
    with bb.function("main", params):
        with bb.dataflow():
            outs = []
            for call in calls:
                symbol = str(call.func.attrs["global_symbol"])
                gv = bb.add_func(call.func, symbol)
                args = [params[a] if isinstance(a, int) else relax.const(np.ascontiguousarray(a)) for a in call.args]
                outs.append(bb.emit(relax.call_tir(gv, args, relax.TensorType(tuple(call.out_type[0]),
                                                                               call.out_type[1]))))
            out = bb.emit_output(relax.Tuple(outs))
        bb.emit_func_output(out)
    linker = backend_for(target).prepare(target, {"so": path})
    built = compile_executables(bb.get(), target, {"so": path}, cpu_relax_pipeline(target.tvm))["so"]
    export_shared_library(built, path, linker.fcompile, target.name)
    info = {str(c.func.attrs["global_symbol"]): dict(c.info, kernel=str(c.func.attrs["yuan.kernel"])) for c in calls}
    with open(sidecar_path(path), "w") as f:
        json.dump({"kernel_info": info}, f, indent=1)
    return path
