"""Lowering rules of the image preprocessing ops (compiler/ir/image_ops.py). resize is a scheduled
kernel (schedules/image.py); the rest are light ops the CPU backend fuses and schedules: crop and
bgr_to_rgb are slices, hwc_to_chw a transpose, normalize and to_float element-wise."""
from __future__ import annotations

import numpy as np
from tvm import relax, te, tirx

from ..ir.image_ops import HWC_TO_CHW
from ..ir.layout import NHWC
from .common import elementwise
from .ops_tensor import _slice


def _hw_axes(attrs):
    return (1, 2) if attrs["layout"] == NHWC else (2, 3)


def _resize(ctx, node, args, attrs):
    return ctx.call_kernel(node, args, attrs)


def _crop(ctx, node, args, attrs):
    top, left = attrs["top"], attrs["left"]
    return _slice(ctx, node, args, {"starts": [top, left], "axes": list(_hw_axes(attrs)), "steps": [1, 1],
                                    "ends": [top + attrs["height"], left + attrs["width"]]})


def _bgr_to_rgb(ctx, node, args, attrs):
    axis = 3 if attrs["layout"] == NHWC else 1
    return _slice(ctx, node, args, {"starts": [2], "ends": [-4], "axes": [axis], "steps": [-1]})


def _hwc_to_chw(ctx, node, args, attrs):
    return relax.op.permute_dims(args[0], list(HWC_TO_CHW))


def _to_float(ctx, node, args, attrs):
    scale = attrs["scale"]
    if scale == 1.0:
        return elementwise(ctx, args[0], lambda v: v.astype("float32"), "to_float")
    return elementwise(ctx, args[0], lambda v: v.astype("float32") * tirx.const(scale, "float32"), "to_float")


def _normalize(ctx, node, args, attrs):
    x = args[0]
    dtype = ctx.value(node.inputs[0]).dtype
    channels = ctx.value(node.inputs[0]).shape[3 if attrs["layout"] == NHWC else 1]
    c_axis = 3 if attrs["layout"] == NHWC else 1
    mean, std = (relax.const(np.broadcast_to(np.asarray(attrs[k], dtype), (channels,)).copy(), dtype)
                 for k in ("mean", "std"))

    def f(t, m, s):   # (x - mean[c]) / std[c]: the interpreter's and ONNX Sub/Div's order
        return te.compute(t.shape, lambda *i: (t(*i) - m[i[c_axis]]) / s[i[c_axis]], name="normalize")
    return ctx.emit_te(f, x, mean, std, name="normalize")


LOWERINGS = {"resize": _resize, "crop": _crop, "bgr_to_rgb": _bgr_to_rgb, "hwc_to_chw": _hwc_to_chw,
             "to_float": _to_float, "normalize": _normalize}
