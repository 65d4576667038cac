"""Kernel selection for heavy and integer ops: the schedules registry picks the kernel for the
target; this turns its input plan into call arguments. Returns (PrimFunc, call arguments)."""
from __future__ import annotations

from yuan import schedules


def select(op, attrs, in_types, out_type, target, constants, arrays, args):
    """(prim_func, call_args): call_args are Relax exprs (node inputs) or NumPy arrays
    (extra constants the kernel asked for: packed weights, requantization multipliers)."""
    kept = list(in_types)
    while kept and kept[-1] is None:
        kept.pop()
    if attrs.get("fused_add"):   # refuse before building when the best kernel would not take the residual
        best = schedules.applicable(op, attrs, in_types, out_type, target, constants)
        if best:
            _check_takes_residual(op, best[0], schedules.kernel_inputs(best[0], attrs, kept, arrays[:len(kept)]),
                                  len(kept) - 1)
            _check_keeps_kernel(op, best[0], attrs, in_types, out_type, target, constants)
    prim = schedules.select(op, attrs, in_types, out_type, target, constants=constants)
    plan = schedules.kernel_inputs(prim, attrs, kept, arrays[:len(kept)])
    if attrs.get("fused_add"):
        _check_takes_residual(op, schedules.get_kernel(prim), plan, len(kept) - 1, prim)
    call_args = []
    for item in plan:
        if isinstance(item, int):
            if args[item] is None:
                raise ValueError(f"kernel for '{op}' wants omitted input {item}")
            call_args.append(args[item])
        else:
            call_args.append(item)
    return prim, call_args


def _check_keeps_kernel(op, fused, attrs, in_types, out_type, target, constants):
    """Fusing the add must not cost the conv its better kernel: the fp32 Winograd takes no residual, and the
    tiled conv that would fuse it is ~2x slower on ResNet-18's 3x3 layers than Winograd + a separate add."""
    alone = schedules.applicable(op, {k: v for k, v in attrs.items() if k != "fused_add"}, in_types[:-1], out_type,
                                 target, constants)
    if alone and alone[0] is not fused:
        raise NotImplementedError(f"kernel {alone[0].name} for '{op}' does not fuse the residual add "
                                  f"(fusing would trade it for {fused.name})")


def _check_takes_residual(op, kernel, plan, residual, prim=None):
    """attrs fused_add: the residual is the last node input, `residual` (3 for a conv, 5 for a fused conv pair:
    fuse_residual.py, fuse_conv_pairs.py), and only a kernel that plans its inputs itself (the
    fusing ones: dot-product int8 convs, x86 fp32 convs) takes it; a kernel whose plan leaves it out, or that
    passes every node input by default (no prepare_constants) to a PrimFunc without a residual parameter,
    would drop the add silently. Checked before building too (a CUDA fp32 conv built for nothing cost 13 s)."""
    takes = kernel.prepare_constants is not None and any(isinstance(i, int) and i == residual for i in plan)
    if not takes or (prim is not None and len(prim.params) != len(plan) + 1):   # + 1: the output
        raise NotImplementedError(f"kernel {kernel.name} for '{op}' does not fuse the residual add")
