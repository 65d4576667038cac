"""IR op -> ONNX nodes, one function per IR op: EXPORTERS[op](ctx, node).

`ctx` is export.ExportContext. Every exporter writes the node's IR output names as the final
ONNX outputs, so value names survive the export.
"""
from __future__ import annotations

import numpy as np

from ..ir.quant_params import quant_range, storage_dtype
from ..ir.shape_inference import normalize_axis
from .export_ops_image import IMAGE_EXPORTERS

SIMPLE_OPS = {
    "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "identity": "Identity", "neg": "Neg",
    "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "matmul": "MatMul", "add": "Add", "sub": "Sub",
    "mul": "Mul", "div": "Div", "pow": "Pow", "global_avg_pool2d": "GlobalAveragePool",
}


def _shape(ctx, name):
    return ctx.graph.values[name].shape


def _dtype(ctx, name):
    return ctx.graph.values[name].dtype


def export_simple(ctx, node):
    ctx.add_node(SIMPLE_OPS[node.op], node.inputs, node.outputs, node.name)


def export_conv2d(ctx, node):
    a = node.attrs
    kernel = list(_shape(ctx, node.inputs[1])[2:])
    inputs = [i for i in node.inputs if i]  # only b is optional and it is last
    ctx.add_node("Conv", inputs, node.outputs, node.name, kernel_shape=kernel,
                 strides=a["strides"], pads=a["pads"], dilations=a["dilations"], group=a["group"])


def export_linear(ctx, node):
    x, w, b = (node.inputs + [""])[:3]
    if len(_shape(ctx, x)) == 2:
        ctx.add_node("Gemm", [i for i in (x, w, b) if i], node.outputs, node.name, transB=1)
        return
    # Gemm is 2-D only: y = MatMul(x, w^T) (+ b) for other ranks.
    if w in ctx.graph.constants:
        w_t = ctx.constant(ctx.graph.constants[w].T, f"{w}_transposed")
    else:
        w_t = ctx.fresh(f"{w}_transposed")
        ctx.add_node("Transpose", [w], [w_t], ctx.fresh(f"{node.name}_transpose"), perm=[1, 0])
    if not b:
        ctx.add_node("MatMul", [x, w_t], node.outputs, node.name)
        return
    product = ctx.fresh(f"{node.name}_matmul")
    ctx.add_node("MatMul", [x, w_t], [product], ctx.fresh(f"{node.name}_matmul"))
    ctx.add_node("Add", [product, b], node.outputs, node.name)


def export_batch_norm(ctx, node):
    ctx.add_node("BatchNormalization", node.inputs, node.outputs, node.name,
                 epsilon=node.attrs["epsilon"])


def export_hardswish(ctx, node):
    if ctx.opset >= 14:
        ctx.add_node("HardSwish", node.inputs, node.outputs, node.name)
        return
    gate = ctx.fresh(f"{node.name}_gate")  # HardSwish(x) = x * HardSigmoid(x; 1/6, 0.5)
    ctx.add_node("HardSigmoid", node.inputs, [gate], ctx.fresh(f"{node.name}_gate"),
                 alpha=1.0 / 6.0, beta=0.5)
    ctx.add_node("Mul", [node.inputs[0], gate], node.outputs, node.name)


def export_hardsigmoid(ctx, node):
    ctx.add_node("HardSigmoid", node.inputs, node.outputs, node.name,
                 alpha=node.attrs["alpha"], beta=node.attrs["beta"])


def export_leaky_relu(ctx, node):
    ctx.add_node("LeakyRelu", node.inputs, node.outputs, node.name, alpha=node.attrs["alpha"])


def export_clip(ctx, node):
    x = node.inputs[0]
    dtype = np.dtype(_dtype(ctx, x))
    lo, hi = node.attrs["min"], node.attrs["max"]
    if dtype.kind in "iu":  # integer tensors: bounds rounded inwards, as the interpreter does
        lo = None if lo is None else int(np.ceil(lo))
        hi = None if hi is None else int(np.floor(hi))
    lo_name = "" if lo is None else ctx.constant(lo, f"{node.name}_min", dtype)
    hi_name = "" if hi is None else ctx.constant(hi, f"{node.name}_max", dtype)
    inputs = [x, lo_name, hi_name]
    while inputs[-1] == "":
        inputs.pop()
    ctx.add_node("Clip", inputs, node.outputs, node.name)


def _pool_ceil_mode(ctx, node) -> int:
    """ONNX's shape rule for ceil_mode keeps a last window that starts in the end padding;
    ORT and the IR drop it. When that window exists, ceil_mode=0 gives the IR's exact result
    (same windows), so export that instead and keep the checker's shapes in agreement."""
    a = node.attrs
    if not a["ceil_mode"]:
        return 0
    in_shape = _shape(ctx, node.inputs[0])[2:]
    out_shape = _shape(ctx, node.outputs[0])[2:]
    for size, out, k, s, pb, pe in zip(in_shape, out_shape, a["kernel"], a["strides"],
                                       a["pads"][:2], a["pads"][2:]):
        if -(-(size + pb + pe - k) // s) + 1 != out:
            return 0
    return 1


def export_max_pool2d(ctx, node):
    a = node.attrs
    ctx.add_node("MaxPool", node.inputs, node.outputs, node.name, kernel_shape=a["kernel"],
                 strides=a["strides"], pads=a["pads"], ceil_mode=_pool_ceil_mode(ctx, node))


def export_avg_pool2d(ctx, node):
    a = node.attrs
    ctx.add_node("AveragePool", node.inputs, node.outputs, node.name, kernel_shape=a["kernel"],
                 strides=a["strides"], pads=a["pads"], ceil_mode=_pool_ceil_mode(ctx, node),
                 count_include_pad=a["count_include_pad"])


def export_adaptive_avg_pool2d(ctx, node):
    in_hw = _shape(ctx, node.inputs[0])[2:]
    out_hw = node.attrs["output_size"]
    if list(out_hw) == [1, 1]:
        ctx.add_node("GlobalAveragePool", node.inputs, node.outputs, node.name)
        return
    if any(i % o for i, o in zip(in_hw, out_hw)):
        ctx.error(node, f"input size {list(in_hw)} is not a multiple of output_size "
                        f"{list(out_hw)}; only that case maps to an ONNX AveragePool")
    kernel = [i // o for i, o in zip(in_hw, out_hw)]
    ctx.add_node("AveragePool", node.inputs, node.outputs, node.name, kernel_shape=kernel,
                 strides=kernel)


def export_concat(ctx, node):
    ctx.add_node("Concat", node.inputs, node.outputs, node.name, axis=node.attrs["axis"])


def export_split(ctx, node):
    sizes = ctx.int64s(node.attrs["sizes"], f"{node.name}_sizes")
    ctx.add_node("Split", [node.inputs[0], sizes], node.outputs, node.name, axis=node.attrs["axis"])


def _reshape(ctx, x, shape, output, name):
    allowzero = 1 if 0 in shape else None  # IR 0 is a literal size-0 dim, ONNX's needs allowzero
    ctx.add_node("Reshape", [x, ctx.int64s(shape, f"{name}_shape")], [output], name,
                 allowzero=allowzero)


def export_reshape(ctx, node):
    _reshape(ctx, node.inputs[0], node.attrs["shape"], node.outputs[0], node.name)


def export_flatten(ctx, node):
    x = node.inputs[0]
    if normalize_axis(node.attrs["axis"], len(_shape(ctx, x))) == 1:
        ctx.add_node("Flatten", [x], node.outputs, node.name, axis=1)
    else:  # ONNX Flatten always makes 2-D; the IR keeps the leading dims
        _reshape(ctx, x, list(_shape(ctx, node.outputs[0])), node.outputs[0], node.name)


def export_transpose(ctx, node):
    ctx.add_node("Transpose", node.inputs, node.outputs, node.name, perm=node.attrs["perm"])


def export_squeeze_like(op_type):
    def export(ctx, node):
        axes = ctx.int64s(node.attrs["axes"], f"{node.name}_axes")
        ctx.add_node(op_type, [node.inputs[0], axes], node.outputs, node.name)
    return export


def export_slice(ctx, node):
    a = node.attrs
    inputs = [node.inputs[0]] + [ctx.int64s(a[k], f"{node.name}_{k}")
                                 for k in ("starts", "ends", "axes", "steps")]
    ctx.add_node("Slice", inputs, node.outputs, node.name)


REDUCE_OPS = {"reduce_mean": ("ReduceMean", 18), "reduce_sum": ("ReduceSum", 13),
              "reduce_max": ("ReduceMax", 18)}


def export_reduce(ctx, node):
    op_type, axes_input_since = REDUCE_OPS[node.op]
    axes, keepdims = node.attrs["axes"], node.attrs["keepdims"]
    if not axes:  # the IR's [] reduces nothing; ONNX would read it as "all axes"
        ctx.add_node("Identity", node.inputs, node.outputs, node.name)
    elif ctx.opset >= axes_input_since:
        ctx.add_node(op_type, [node.inputs[0], ctx.int64s(axes, f"{node.name}_axes")],
                     node.outputs, node.name, keepdims=keepdims)
    else:
        ctx.add_node(op_type, node.inputs, node.outputs, node.name, axes=axes, keepdims=keepdims)


def export_softmax_like(op_type):
    def export(ctx, node):
        ctx.add_node(op_type, node.inputs, node.outputs, node.name, axis=node.attrs["axis"])
    return export


def export_pad(ctx, node):
    a = node.attrs
    x = node.inputs[0]
    inputs = [x, ctx.int64s(a["pads"], f"{node.name}_pads")]
    if a["mode"] == "constant":
        inputs.append(ctx.constant(a["value"], f"{node.name}_value", _dtype(ctx, x)))
    ctx.add_node("Pad", inputs, node.outputs, node.name, mode=a["mode"])


def export_channel_shuffle(ctx, node):
    x, g = node.inputs[0], node.attrs["groups"]
    shape = list(_shape(ctx, x))
    grouped, swapped = ctx.fresh(f"{node.name}_grouped"), ctx.fresh(f"{node.name}_swapped")
    _reshape(ctx, x, [shape[0], g, shape[1] // g] + shape[2:], grouped, ctx.fresh(f"{node.name}_split"))
    perm = [0, 2, 1] + list(range(3, len(shape) + 1))
    ctx.add_node("Transpose", [grouped], [swapped], ctx.fresh(f"{node.name}_swap"), perm=perm)
    _reshape(ctx, swapped, shape, node.outputs[0], node.name)


# ---------------------------------------------------------------- quantization

def _per_axis(ctx, node) -> bool:
    axis, scale = node.attrs["axis"], node.inputs[1]
    return axis is not None and int(np.prod(_shape(ctx, scale))) > 1


def _quant_param(ctx, node, name, dtype, per_axis, what) -> str:
    """Scale/zero-point input in the form ONNX wants: a scalar per-tensor, 1-D per-axis,
    zero-point in the quantized dtype."""
    want_shape = (-1,) if per_axis else ()
    if name in ctx.graph.constants:
        array = ctx.graph.constants[name].reshape(want_shape)
        if dtype is not None:
            array = array.astype(dtype)
        original = ctx.graph.constants[name]
        if array.shape == original.shape and array.dtype == original.dtype:
            return name
        return ctx.constant(array, f"{name}_{what}")
    if dtype is not None and np.dtype(_dtype(ctx, name)) != np.dtype(dtype):
        ctx.error(node, f"non-constant {what} '{name}' has dtype {_dtype(ctx, name)}, ONNX needs {dtype}")
    rank = len(_shape(ctx, name))
    if (per_axis and rank == 1) or (not per_axis and rank == 0):
        return name
    reshaped = ctx.fresh(f"{name}_{what}")
    _reshape(ctx, name, [-1] if per_axis else [], reshaped, ctx.fresh(f"{node.name}_{what}"))
    return reshaped


def export_quantize(ctx, node):
    a = node.attrs
    bits, signed, narrow = a["bits"], bool(a["signed"]), bool(a["narrow_range"])
    if bits > 8 and not (bits == 16 and ctx.opset >= 21):
        ctx.error(node, f"{bits}-bit quantize has no ONNX QuantizeLinear form at opset {ctx.opset} "
                        f"(supported: bits <= 8, or 16 from opset 21)")
    dtype = storage_dtype(bits, signed)
    per_axis = _per_axis(ctx, node)
    x, scale, zp = (node.inputs + [""])[:3]
    scale = _quant_param(ctx, node, scale, None, per_axis, "scale")
    if zp:
        zp = _quant_param(ctx, node, zp, dtype, per_axis, "zero_point")
    else:
        zp = ctx.constant(0, f"{node.name}_zero_point", dtype)
    axis = normalize_axis(a["axis"], len(_shape(ctx, x))) if per_axis else None
    qmin, qmax = quant_range(bits, signed, narrow)
    full_min, full_max = np.iinfo(dtype).min, np.iinfo(dtype).max
    if (qmin, qmax) == (full_min, full_max):
        ctx.add_node("QuantizeLinear", [x, scale, zp], node.outputs, node.name, axis=axis)
        return
    # Narrow range / fewer bits: QuantizeLinear saturates to the storage type, then Clip
    # narrows further; clamping twice equals clamping once to the inner range.
    wide = ctx.fresh(f"{node.outputs[0]}_storage")
    ctx.add_node("QuantizeLinear", [x, scale, zp], [wide], ctx.fresh(f"{node.name}_storage"), axis=axis)
    ctx.add_node("Clip", [wide, ctx.constant(qmin, f"{node.name}_qmin", dtype),
                          ctx.constant(qmax, f"{node.name}_qmax", dtype)], node.outputs, node.name)


def export_dequantize(ctx, node):
    per_axis = _per_axis(ctx, node)
    x, scale, zp = (node.inputs + [""])[:3]
    inputs = [x, _quant_param(ctx, node, scale, None, per_axis, "scale")]
    if zp:
        inputs.append(_quant_param(ctx, node, zp, _dtype(ctx, x), per_axis, "zero_point"))
    axis = normalize_axis(node.attrs["axis"], len(_shape(ctx, x))) if per_axis else None
    ctx.add_node("DequantizeLinear", inputs, node.outputs, node.name, axis=axis)


EXPORTERS = {
    **{op: export_simple for op in SIMPLE_OPS},
    "conv2d": export_conv2d,
    "linear": export_linear,
    "batch_norm": export_batch_norm,
    "hardswish": export_hardswish,
    "hardsigmoid": export_hardsigmoid,
    "leaky_relu": export_leaky_relu,
    "clip": export_clip,
    "max_pool2d": export_max_pool2d,
    "avg_pool2d": export_avg_pool2d,
    "adaptive_avg_pool2d": export_adaptive_avg_pool2d,
    "concat": export_concat,
    "split": export_split,
    "reshape": export_reshape,
    "flatten": export_flatten,
    "transpose": export_transpose,
    "squeeze": export_squeeze_like("Squeeze"),
    "unsqueeze": export_squeeze_like("Unsqueeze"),
    "slice": export_slice,
    "reduce_mean": export_reduce,
    "reduce_sum": export_reduce,
    "reduce_max": export_reduce,
    "softmax": export_softmax_like("Softmax"),
    "log_softmax": export_softmax_like("LogSoftmax"),
    "pad": export_pad,
    "channel_shuffle": export_channel_shuffle,
    "quantize": export_quantize,
    "dequantize": export_dequantize,
    **IMAGE_EXPORTERS,
}
