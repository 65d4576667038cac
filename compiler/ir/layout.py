"""Activation layouts of 4-D tensors.

The IR's default is NCHW. A few ops also take ``layout="NHWC"`` (channels last), which the
layout planning pass (compiler/passes/layout_plan.py) chooses for targets whose kernels want
it. Their semantics are defined once, here: an NHWC op is the NCHW op applied to its data
input transposed to NCHW, with the result transposed back. Shape inference and the reference
interpreter both wrap the NCHW rule with these helpers, so they cannot disagree.
"""
from __future__ import annotations

import numpy as np

from .errors import ShapeInferenceError

NCHW, NHWC = "NCHW", "NHWC"
LAYOUTS = (NCHW, NHWC)
TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)

# Ops with a `layout` attribute; their input 0 and output 0 are the 4-D activations.
LAYOUT_OPS = ("qconv2d", "max_pool2d", "qavg_pool2d", "qglobal_avg_pool2d", "channel_shuffle")


def permute(shape, perm) -> tuple:
    return tuple(shape[p] for p in perm)


def channels_last(attrs) -> bool:
    layout = attrs.get("layout", NCHW)
    if layout not in LAYOUTS:
        raise ShapeInferenceError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    return layout == NHWC


def layout_aware_infer(infer):
    """Shape rule for an op with a `layout` attr from its NCHW rule."""
    def wrapped(inputs, attrs):
        if not channels_last(attrs):
            return infer(inputs, attrs)
        x = inputs[0]
        if x is None or len(x.shape) != 4:
            raise ShapeInferenceError(f"layout NHWC needs a 4-D input, got {list(getattr(x, 'shape', []))}")
        as_nchw = type(x)(x.name, permute(x.shape, TO_NCHW), x.dtype, x.quant)
        specs = infer([as_nchw] + list(inputs[1:]), attrs)
        return [(permute(shape, TO_NHWC), dtype) if k == 0 else (shape, dtype)
                for k, (shape, dtype) in enumerate(specs)]
    return wrapped


def layout_aware_kernel(kernel):
    """NumPy reference kernel for an op with a `layout` attr from its NCHW kernel."""
    def wrapped(inputs, attrs):
        if not channels_last(attrs):
            return kernel(inputs, attrs)
        x = np.ascontiguousarray(np.transpose(inputs[0], TO_NCHW))
        y = kernel([x] + list(inputs[1:]), attrs)
        return np.ascontiguousarray(np.transpose(y, TO_NHWC))
    return wrapped
