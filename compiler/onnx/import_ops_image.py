"""ONNX Resize -> IR `resize` (compiler/ir/image_ops.py), for the modes the IR computes exactly as
ONNX Runtime does; any other mode is refused with the node and the attribute named."""
from __future__ import annotations

import numpy as np

from ..ir.image_ops import COORDINATE_MODES, INT_DTYPES, NEAREST_MODES, RESIZE_MODES
from ..ir.layout import NCHW, NHWC


def _refuse_unsupported_attrs(ctx):
    checks = (("mode", "nearest", RESIZE_MODES),
              ("coordinate_transformation_mode", "half_pixel", COORDINATE_MODES),
              ("nearest_mode", "round_prefer_floor", NEAREST_MODES),
              ("keep_aspect_ratio_policy", "stretch", ("stretch",)))
    for key, default, supported in checks:
        value = ctx.attr(key, default)
        if value not in supported:
            ctx.error(f"attribute {key}='{value}' is not supported ({', '.join(supported)})")
    if ctx.attr("antialias", 0):
        ctx.error("attribute antialias=1 is not supported")


def _full_list(ctx, values, rank, fill, what):
    """Per-axis values for all `rank` axes (opset 18 `axes` may name a subset)."""
    axes = ctx.attr("axes")
    values = [float(v) for v in np.asarray(values).reshape(-1)]
    if axes is None:
        if len(values) != rank:
            ctx.error(f"{what} has {len(values)} values for a rank-{rank} input")
        return values
    full = list(fill)
    for axis, v in zip(axes, values):
        full[axis % rank] = v
    return full


def convert_resize(ctx):
    if ctx.opset < 11:
        ctx.error("Resize before opset 11 is not supported (no coordinate_transformation_mode)")
    _refuse_unsupported_attrs(ctx)
    x = ctx.input(0)
    shape = ctx.shape(x)
    if len(shape) != 4:
        ctx.error(f"only 4-D inputs are supported, got shape {list(shape)}")
    scales = ctx.constant(2, "scales")
    sizes = ctx.constant(3, "sizes")
    if sizes is not None and np.asarray(sizes).size:
        out = [int(v) for v in _full_list(ctx, sizes, 4, shape, "sizes")]
        ir_scales = None
    elif scales is not None and np.asarray(scales).size:
        full = _full_list(ctx, scales, 4, [1.0] * 4, "scales")
        out = [int(np.floor(np.float32(s) * np.float32(d))) for s, d in zip(full, shape)]
        ir_scales = full
    else:
        ctx.error("needs constant scales or sizes")
    changed = {axis for axis in range(4) if out[axis] != shape[axis]
               or (ir_scales is not None and ir_scales[axis] != 1.0)}
    if changed <= {2, 3}:
        layout, (h, w) = NCHW, (2, 3)
    elif changed <= {1, 2}:
        layout, (h, w) = NHWC, (1, 2)
    else:
        ctx.error(f"resizes axes {sorted(changed)} of {list(shape)}; only H, W of NCHW or NHWC are supported")
    attrs = {"size": [out[h], out[w]], "mode": ctx.attr("mode", "nearest"),
             "coordinate_mode": ctx.attr("coordinate_transformation_mode", "half_pixel"),
             "nearest_mode": ctx.attr("nearest_mode", "round_prefer_floor"), "layout": layout}
    if ir_scales is not None:
        attrs["scales"] = [ir_scales[h], ir_scales[w]]
    integer = ctx.dtype(x) in INT_DTYPES and attrs["mode"] == "nearest"   # nearest copies pixels exactly
    if ctx.dtype(x) not in ("float32", "float16", "float64") and not integer:
        ctx.error(f"input '{ctx.node.input[0]}' is {ctx.dtype(x)}; Resize supports float inputs, and "
                  f"integer ones in mode nearest")
    ctx.emit("resize", [x], attrs, [ctx.out()])


IMAGE_CONVERTERS = {"Resize": convert_resize}
