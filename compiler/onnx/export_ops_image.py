"""Image preprocessing IR ops -> standard ONNX ops (Resize, Slice, Sub/Div, Transpose, Cast/Mul).

Unlike the compiler's layout-planned NHWC nodes, these ops take NHWC from the user (a decoded
camera image): ONNX Resize and Slice handle any axes, so both layouts export.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ..ir.image_ops import HWC_TO_CHW, channel_params
from ..ir.layout import NHWC


def _hw_axes(node):
    return (1, 2) if node.attrs["layout"] == NHWC else (2, 3)


def export_resize(ctx, node):
    a = node.attrs
    x = node.inputs[0]
    in_shape = ctx.graph.values[x].shape
    h, w = _hw_axes(node)
    if a["scales"] is not None:
        scales = [1.0] * 4
        scales[h], scales[w] = a["scales"]
        implied = [int(np.floor(np.float32(s) * np.float32(d))) for s, d in zip(scales, in_shape)]
        out_shape = ctx.graph.values[node.outputs[0]].shape
        if tuple(implied) != tuple(out_shape):
            ctx.error(node, f"scales {a['scales']} give output {implied} in ONNX, not the node's "
                            f"{list(out_shape)}")
        inputs = [x, "", ctx.constant(np.asarray(scales, np.float32), f"{node.name}_scales")]
    else:
        sizes = list(in_shape)
        sizes[h], sizes[w] = a["size"]
        inputs = [x, "", "", ctx.int64s(sizes, f"{node.name}_sizes")]
    ctx.add_node("Resize", inputs, node.outputs, node.name, mode=a["mode"],
                 coordinate_transformation_mode=a["coordinate_mode"], nearest_mode=a["nearest_mode"])


def export_crop(ctx, node):
    a = node.attrs
    starts, ends = [a["top"], a["left"]], [a["top"] + a["height"], a["left"] + a["width"]]
    inputs = [node.inputs[0], ctx.int64s(starts, f"{node.name}_starts"),
              ctx.int64s(ends, f"{node.name}_ends"), ctx.int64s(_hw_axes(node), f"{node.name}_axes")]
    ctx.add_node("Slice", inputs, node.outputs, node.name)


def export_normalize(ctx, node):
    dtype = ctx.graph.values[node.inputs[0]].dtype
    mean = ctx.constant(channel_params(node.attrs, "mean", node.attrs["layout"], dtype), f"{node.name}_mean")
    std = ctx.constant(channel_params(node.attrs, "std", node.attrs["layout"], dtype), f"{node.name}_std")
    centred = ctx.fresh(f"{node.name}_centred")
    ctx.add_node("Sub", [node.inputs[0], mean], [centred], ctx.fresh(f"{node.name}_sub"))
    ctx.add_node("Div", [centred, std], node.outputs, node.name)


def export_bgr_to_rgb(ctx, node):
    axis = 3 if node.attrs["layout"] == NHWC else 1
    # channels 2, 1, 0: a step -1 slice whose end (-4 = before channel 0) ONNX clamps to -1
    inputs = [node.inputs[0], ctx.int64s([2], f"{node.name}_starts"), ctx.int64s([-4], f"{node.name}_ends"),
              ctx.int64s([axis], f"{node.name}_axes"), ctx.int64s([-1], f"{node.name}_steps")]
    ctx.add_node("Slice", inputs, node.outputs, node.name)


def export_hwc_to_chw(ctx, node):
    ctx.add_node("Transpose", node.inputs, node.outputs, node.name, perm=list(HWC_TO_CHW))


def export_to_float(ctx, node):
    scale = node.attrs["scale"]
    if scale == 1.0:
        ctx.add_node("Cast", node.inputs, node.outputs, node.name, to=TensorProto.FLOAT)
        return
    as_float = ctx.fresh(f"{node.name}_cast")
    ctx.add_node("Cast", node.inputs, [as_float], ctx.fresh(f"{node.name}_cast"), to=TensorProto.FLOAT)
    ctx.add_node("Mul", [as_float, ctx.constant(np.float32(scale), f"{node.name}_scale")],
                 node.outputs, node.name)


IMAGE_EXPORTERS = {"resize": export_resize, "crop": export_crop, "normalize": export_normalize,
                   "bgr_to_rgb": export_bgr_to_rgb, "hwc_to_chw": export_hwc_to_chw,
                   "to_float": export_to_float}
