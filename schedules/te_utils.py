"""TE building blocks of every compute: the PrimFunc maker, zero/zero-point padding, and the float conv
write-back (bias + fused activation)."""
from __future__ import annotations

from tvm import te, tirx


def create(args):
    """The PrimFunc of TE tensors `args` (inputs, then the output) with int64 indices, as Relax wants."""
    return te.create_prim_func(list(args), index_dtype_override="int64")


def image_cell(hh, ww, top, left, height, width):
    """(inside, ih, iw) for cell (hh, ww) of a padded plane: whether it lies in the height x width
    image, and the image coordinates clamped into it, so that the read the select drops stays in
    bounds (and needs no guard)."""
    inside = tirx.all(hh >= top, hh < height + top, ww >= left, ww < width + left)
    ih = te.max(te.min(hh - top, height - 1), 0)
    iw = te.max(te.min(ww - left, width - 1), 0)
    return inside, ih, iw


def pad_nchw(x, p, value, name="pad"):
    """Pad H/W of an NCHW tensor with `value` (a python number, cast to x.dtype)."""
    if not any(p):
        return x
    n, c, h, w = (int(v) for v in x.shape)
    t, l, b, r = p
    val = tirx.const(value, x.dtype)

    def f(nn, cc, hh, ww):
        cond = tirx.all(hh >= t, hh < h + t, ww >= l, ww < w + l)
        return tirx.if_then_else(cond, x[nn, cc, hh - t, ww - l], val)

    return te.compute((n, c, h + t + b, w + l + r), f, name=name)


def bias_clip(value, bias, c, attrs):
    """A float conv's write-back: + bias[c] (when there is a bias), then the fused activation."""
    return clip_epilogue(value if bias is None else value + bias[c], attrs)


def clip_epilogue(value, attrs, dtype="float32"):
    """A float conv's fused activation: clamp to attrs clip_min / clip_max (None = unbounded),
    set by the lowering when a relu / clip is the conv's only consumer. Selects, not max/min: those
    lower to LLVM maxnum/minnum, which turn NaN into the bound; `v < lo` is false for NaN, so NaN
    passes through as in NumPy, PyTorch and ONNX Runtime."""
    lo, hi = attrs.get("clip_min"), attrs.get("clip_max")
    if lo is not None:
        lo = tirx.const(float(lo), dtype)
        value = tirx.Select(value < lo, lo, value)
    if hi is not None:
        hi = tirx.const(float(hi), dtype)
        value = tirx.Select(value > hi, hi, value)
    return value


def centred_value(x, nn, c, hh, ww, zx, channels_last):
    """x - zx as int32 at image row hh, column ww (either may fall in the padding), 0 in the padding:
    a padded window read without a padded copy. x is NCHW, or NHWC with channels_last."""
    H, W = (int(v) for v in (x.shape[1:3] if channels_last else x.shape[2:4]))
    inside, ih, iw = image_cell(hh, ww, 0, 0, H, W)
    v = (x[nn, ih, iw, c] if channels_last else x[nn, c, ih, iw]).astype("int32")
    return tirx.if_then_else(inside, v - tirx.const(zx, "int32"), tirx.const(0, "int32"))


def llvm_maximum(a, b):
    """IEEE 754-2019 maximum (NaN in, NaN out) on LLVM targets: one instruction on Arm (fmax), a short sequence
    on x86 (vmaxps alone drops a NaN in its second operand; te.max lowers to maxnum, which drops NaN)."""
    dtype = str(a.ty.dtype) if hasattr(a.ty, "dtype") else str(a.ty)   # 0.27: a PrimExpr's type is `ty`
    return tirx.call_llvm_pure_intrin(dtype, "llvm.maximum", a, b)


def llvm_minimum(a, b):
    """IEEE 754-2019 minimum (NaN in, NaN out): llvm_maximum's pair (fmin on Arm)."""
    dtype = str(a.ty.dtype) if hasattr(a.ty, "dtype") else str(a.ty)
    return tirx.call_llvm_pure_intrin(dtype, "llvm.minimum", a, b)


def max_keeping_nan(combine=llvm_maximum):
    """A max reducer under which NaN anywhere in the window gives NaN (`combine` for targets without llvm.*)."""
    return te.comm_reducer(combine, lambda t: tirx.min_value(t), name="max_keeping_nan")
