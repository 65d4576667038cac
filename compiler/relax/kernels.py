"""Kernel selection for heavy and integer ops: the schedules registry picks the kernel for the
target; this turns its input plan into call arguments. Returns (PrimFunc, call arguments)."""
from __future__ import annotations

from yuan import schedules


def select(op, attrs, in_types, out_type, target, constants, arrays, args):
    """(prim_func, call_args): call_args are Relax exprs (node inputs) or NumPy arrays
    (extra constants the kernel asked for: packed weights, requantization multipliers)."""
    prim = schedules.select(op, attrs, in_types, out_type, target, constants=constants)
    kept = list(in_types)
    while kept and kept[-1] is None:
        kept.pop()
    call_args = []
    for item in schedules.kernel_inputs(prim, attrs, kept, arrays[:len(kept)]):
        if isinstance(item, int):
            if args[item] is None:
                raise ValueError(f"kernel for '{op}' wants omitted input {item}")
            call_args.append(args[item])
        else:
            call_args.append(item)
    return prim, call_args
