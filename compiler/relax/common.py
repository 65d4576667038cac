"""Small helpers shared by the lowering tables."""
from __future__ import annotations

import numpy as np
from tvm import relax, te, tirx

from yuan.schedules.te_utils import llvm_maximum, max_keeping_nan


def dtype_of(expr) -> str:
    dtype = expr.ty.dtype
    return getattr(dtype, "dtype", str(dtype))


def shape_of(expr) -> tuple[int, ...]:
    return tuple(int(d) for d in expr.ty.shape)


def const(value, dtype):
    return relax.const(np.asarray(value, dtype=dtype), dtype)


def ttype(expr):
    """(shape, dtype) pair of a Relax expression, as schedules.select wants it."""
    return shape_of(expr), dtype_of(expr)


def prim_dtype(expr) -> str:
    """dtype string of a TIR expression (0.27: `expr.ty` is a PrimType)."""
    return str(expr.ty.dtype) if hasattr(expr.ty, "dtype") else str(expr.ty)


def clamp_keeping_nan(v, lo=None, hi=None, target=None):
    """v clamped to [lo, hi] (either may be None) with NaN passed through, as NumPy, ONNX Runtime and
    PyTorch do. tirx.max/min lower to LLVM maxnum/minnum, which turn NaN into the bound: relu(NaN)
    would be 0. On LLVM targets: llvm.maximum/minimum (NaN in, NaN out), which use `v` once — the
    select form below uses it three times, so a chain of k fused clamps (hardsigmoid of hardsigmoid
    of ...) grows as 3^k and hangs TVM's simplifier. Elsewhere (CUDA C has no llvm.*): `v < lo` is
    false for NaN, so the selects leave it alone. Integer data has no NaN: plain max/min."""
    dtype = prim_dtype(v)
    if np.dtype(dtype).kind != "f":
        v = v if lo is None else tirx.max(v, tirx.const(lo, dtype))
        return v if hi is None else tirx.min(v, tirx.const(hi, dtype))
    if _is_llvm(target):
        v = v if lo is None else tirx.call_llvm_pure_intrin(dtype, "llvm.maximum", v, tirx.const(lo, dtype))
        return v if hi is None else tirx.call_llvm_pure_intrin(dtype, "llvm.minimum", v, tirx.const(hi, dtype))
    if lo is not None:
        v = tirx.Select(v < tirx.const(lo, dtype), tirx.const(lo, dtype), v)
    if hi is not None:
        v = tirx.Select(v > tirx.const(hi, dtype), tirx.const(hi, dtype), v)
    return v


def clamp_nan_to_low(v, lo, hi, target=None):
    """v clamped to [lo, hi] with NaN mapped to lo (the quantize rule of quant/SPEC.md §3). LLVM's
    maxnum returns the number when one operand is NaN, so on LLVM targets `v` is used once."""
    dtype = prim_dtype(v)
    lo_c, hi_c = tirx.const(lo, dtype), tirx.const(hi, dtype)
    if _is_llvm(target):
        return tirx.call_llvm_pure_intrin(dtype, "llvm.minnum",
                                          tirx.call_llvm_pure_intrin(dtype, "llvm.maxnum", v, lo_c), hi_c)
    return tirx.Select(tirx.isnan(v), lo_c, clamp_keeping_nan(v, lo, hi, target))


def _is_llvm(target) -> bool:
    return target is not None and getattr(target, "kind", None) == "llvm"


def elementwise(ctx, x, fn, name):
    """emit_te of y[i] = fn(x[i])."""
    return ctx.emit_te(lambda xt: te.compute(xt.shape, lambda *i: fn(xt(*i)), name=name), x, name=name)


def _max_selecting_nan(a, b):
    # tirx.isnan, not `a != a`: TVM's simplifier folds x != x to false
    return tirx.Select(tirx.isnan(a), a, tirx.Select(tirx.isnan(b), b, tirx.max(a, b)))


def max_reducer(dtype: str, target):
    """The max reduction of a max pool: NaN anywhere in the window gives NaN (te.max would drop it,
    see clamp_keeping_nan) for float data; integer data keeps te.max."""
    if np.dtype(dtype).kind != "f":
        return te.max
    # llvm.maximum: the pair of isnan selects costs twice te.max on ResNet-18's max pool; CUDA C has no llvm.*
    return max_keeping_nan(llvm_maximum if _is_llvm(target) else _max_selecting_nan)


def fusable_activation(ctx, node):
    """(relu/clip node, min, max) when a float conv's only consumer is that activation (and the conv
    output is not a graph output): the conv kernel then applies it in its write-back, saving a pass
    over the activation in memory."""
    y = node.outputs[0]
    users = ctx.consumers.get(y, [])
    if len(users) != 1 or y in ctx.graph.outputs or ctx.value(y).dtype != "float32":
        return None
    act = users[0]
    if act.op == "relu":
        return act, 0.0, None
    if act.op == "clip":
        return act, act.attrs.get("min"), act.attrs.get("max")
    return None
