"""Kernel selection for heavy and integer ops: schedules.select when the schedules package
provides it, else a TEMPORARY FALLBACK (unscheduled TE compute of our own, below) so the
lowering works without schedules/. Returns (PrimFunc, call arguments)."""
from __future__ import annotations

from tvm import te


def _schedules():
    try:
        import schedules
    except ImportError:
        return None
    if not hasattr(schedules, "select") or not hasattr(schedules, "kernel_inputs"):
        return None
    return schedules


def using_schedules() -> bool:
    return _schedules() is not None


def select(op, attrs, in_types, out_type, target, constants, arrays, args, te_fallback=None):
    """(prim_func, call_args): call_args are Relax exprs (node inputs) or NumPy arrays
    (extra constants the kernel asked for)."""
    sched = _schedules()
    present = [i for i, t in enumerate(in_types) if t is not None]
    if sched is not None:
        prim = sched.select(op, attrs, in_types, out_type, target, constants=constants)
        kept = [t for t in in_types]
        while kept and kept[-1] is None:
            kept.pop()
        plan = sched.kernel_inputs(prim, attrs, kept, arrays[:len(kept)])
        call_args = []
        for item in plan:
            if isinstance(item, int):
                if args[item] is None:
                    raise ValueError(f"kernel for '{op}' wants omitted input {item}")
                call_args.append(args[item])
            else:
                call_args.append(item)
        return prim, call_args
    # ---- TEMPORARY FALLBACK (no schedules.select): naive, unscheduled TE compute ----
    if te_fallback is None:
        raise NotImplementedError(f"no kernel for '{op}': schedules.select is missing and the "
                                  f"lowering has no TE fallback for it")
    placeholders = [te.placeholder(tuple(in_types[i][0]), in_types[i][1], name=f"in{i}") for i in present]
    out = te_fallback(*placeholders)
    prim = te.create_prim_func(placeholders + [out], index_dtype_override="int64")
    return prim.with_attr("op_pattern", 8), [args[i] for i in present]
