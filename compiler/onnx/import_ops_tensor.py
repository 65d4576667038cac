"""ONNX -> IR converters for element-wise math and tensor-shuffling ops, plus the shape
arithmetic (Shape, Gather, Cast, ConstantOfShape, Constant) that only ever runs on constants
once the graph's shapes are concrete."""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from .dtypes import numpy_dtype_name


def _int_list(array) -> list[int]:
    return [int(v) for v in np.asarray(array).reshape(-1)]


def _axes(ctx, input_index: int, since_opset: int, required: bool = False):
    """Axes from the `axes` attribute (older opsets) or from a constant input (newer)."""
    if ctx.opset >= since_opset:
        array = ctx.constant(input_index, "axes")
        axes = None if array is None else _int_list(array)
    else:
        axes = ctx.attr("axes")
        axes = None if axes is None else list(axes)
    if axes is None and required:
        ctx.error("axes are required")
    return axes


# ---------------------------------------------------------------- element-wise

def convert_binary(ir_op):
    def convert(ctx):
        a, b = ctx.input(0), ctx.input(1)
        if ir_op == "pow" and ctx.dtype(b) != ctx.dtype(a) and b in ctx.graph.constants:
            # Pow allows an exponent of another type; the IR's binary ops share one dtype.
            b = ctx.graph.add_constant(ctx.fresh(f"{b}_as_{ctx.dtype(a)}"),
                                       ctx.graph.constants[b].astype(ctx.dtype(a)))
        ctx.emit(ir_op, [a, b], outputs=[ctx.out()])
    return convert


def convert_sum(ctx):
    terms = ctx.inputs()
    if len(terms) == 1:
        ctx.alias(ctx.node.output[0], terms[0])
        return
    total = terms[0]
    for k, term in enumerate(terms[1:], start=2):  # n-ary Sum -> a chain of binary adds
        total = ctx.emit("add", [total, term], outputs=[ctx.out()] if k == len(terms) else None)[0]


def convert_identity(ctx):
    ctx.alias(ctx.node.output[0], ctx.input(0))


def convert_dropout(ctx):
    if ctx.opset >= 12 and ctx.has_input(2):
        training = ctx.constant(2, "training_mode")
        if bool(np.asarray(training).reshape(-1)[0]):
            ctx.error("training_mode=True dropout cannot be imported (inference only)")
    ctx.alias(ctx.node.output[0], ctx.input(0))  # inference: dropout is the identity


# ---------------------------------------------------------------- shape arithmetic

def convert_constant(ctx):
    a = ctx.attrs
    if "value" in a:
        array = numpy_helper.to_array(a["value"])
    elif "value_float" in a:
        array = np.asarray(a["value_float"], dtype=np.float32)
    elif "value_floats" in a:
        array = np.asarray(a["value_floats"], dtype=np.float32)
    elif "value_int" in a:
        array = np.asarray(a["value_int"], dtype=np.int64)
    elif "value_ints" in a:
        array = np.asarray(a["value_ints"], dtype=np.int64)
    else:
        ctx.error(f"unsupported Constant attribute(s) {sorted(a)} (sparse or string constants)")
    ctx.set_constant(ctx.node.output[0], array)


def convert_shape(ctx):
    shape = np.asarray(ctx.shape(ctx.input(0)), dtype=np.int64)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    ctx.set_constant(ctx.node.output[0], shape[start:end])


def convert_gather(ctx):
    axis = ctx.attr("axis", 0)
    indices = ctx.constant(1, "indices")
    if ctx.is_constant(0):
        data = ctx.constant(0, "data")
        ctx.set_constant(ctx.node.output[0], np.take(data, indices, axis=axis))
        return
    x = ctx.input(0)
    rank = len(ctx.shape(x))
    if not -rank <= axis < rank:
        ctx.error(f"axis {axis} out of range for rank {rank}")
    axis %= rank
    if indices.ndim == 0:  # x[..., i, ...] on a run-time tensor: slice then drop the axis
        i = int(indices) % ctx.shape(x)[axis]
        piece = ctx.emit("slice", [x], {"starts": [i], "ends": [i + 1], "axes": [axis]})[0]
        ctx.emit("squeeze", [piece], {"axes": [axis]}, [ctx.out()])
        return
    ctx.error("Gather on a run-time tensor needs a scalar constant index")


def convert_cast(ctx):
    to = numpy_dtype_name(ctx.attr("to"))
    if ctx.is_constant(0):
        ctx.set_constant(ctx.node.output[0], ctx.constant(0, "input").astype(to))
    elif ctx.dtype(ctx.input(0)) == to:
        ctx.alias(ctx.node.output[0], ctx.input(0))
    elif to == "float32" and np.dtype(ctx.dtype(ctx.input(0))).kind in "iu":   # e.g. uint8 pixels
        ctx.emit("to_float", [ctx.input(0)], outputs=[ctx.out()])
    else:
        ctx.error(f"Cast of a run-time tensor from {ctx.dtype(ctx.input(0))} to {to} "
                  f"is not supported (the IR has no cast op)")


def convert_constant_of_shape(ctx):
    shape = _int_list(ctx.constant(0, "shape"))
    value = ctx.attr("value")
    fill = numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    ctx.set_constant(ctx.node.output[0], np.full(shape, fill[0], dtype=fill.dtype))


# ---------------------------------------------------------------- tensor shuffling

def convert_concat(ctx):
    ctx.emit("concat", [i for i in ctx.inputs() if i], {"axis": ctx.attr("axis")}, [ctx.out()])


def convert_reshape(ctx):
    x = ctx.input(0)
    if ctx.opset < 5:
        target = list(ctx.attr("shape"))
    else:
        target = _int_list(ctx.constant(1, "shape"))
    if not ctx.attr("allowzero", 0):  # ONNX 0 copies the input dim; the IR's 0 is literal
        in_shape = ctx.shape(x)
        target = [in_shape[i] if d == 0 else d for i, d in enumerate(target)]
    ctx.emit("reshape", [x], {"shape": target}, [ctx.out()])


def convert_flatten(ctx):
    x = ctx.input(0)
    shape = ctx.shape(x)
    rank, axis = len(shape), ctx.attr("axis", 1)
    if not -rank <= axis <= rank:
        ctx.error(f"axis {axis} out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    if axis == 1 and rank >= 2:
        ctx.emit("flatten", [x], {"axis": 1}, [ctx.out()])
        return
    rows = int(np.prod(shape[:axis], dtype=np.int64))  # ONNX Flatten is always 2-D
    cols = int(np.prod(shape[axis:], dtype=np.int64))
    ctx.emit("reshape", [x], {"shape": [rows, cols]}, [ctx.out()])


def convert_transpose(ctx):
    x = ctx.input(0)
    perm = ctx.attr("perm", list(reversed(range(len(ctx.shape(x))))))
    ctx.emit("transpose", [x], {"perm": list(perm)}, [ctx.out()])


def convert_squeeze(ctx):
    x = ctx.input(0)
    axes = _axes(ctx, 1, 13)
    if axes is None:
        axes = [i for i, d in enumerate(ctx.shape(x)) if d == 1]
    ctx.emit("squeeze", [x], {"axes": axes}, [ctx.out()])


def convert_unsqueeze(ctx):
    ctx.emit("unsqueeze", [ctx.input(0)], {"axes": _axes(ctx, 1, 13, required=True)}, [ctx.out()])


def convert_slice(ctx):
    x = ctx.input(0)
    if ctx.opset < 10:
        starts, ends = list(ctx.attr("starts")), list(ctx.attr("ends"))
        axes = ctx.attr("axes")
        steps = None
    else:
        starts = _int_list(ctx.constant(1, "starts"))
        ends = _int_list(ctx.constant(2, "ends"))
        axes = ctx.constant(3, "axes")
        steps = ctx.constant(4, "steps")
    attrs = {"starts": starts, "ends": ends}
    if axes is not None:
        attrs["axes"] = _int_list(axes)
    if steps is not None:
        attrs["steps"] = _int_list(steps)
    ctx.emit("slice", [x], attrs, [ctx.out()])


def convert_split(ctx):
    x = ctx.input(0)
    rank = len(ctx.shape(x))
    axis = ctx.attr("axis", 0)
    if not -rank <= axis < rank:
        ctx.error(f"axis {axis} out of range for rank {rank}")
    dim = ctx.shape(x)[axis % rank]
    n = len(ctx.node.output)
    sizes = ctx.attr("split") if ctx.opset < 13 else ctx.constant(1, "split")
    if sizes is not None:
        sizes = _int_list(sizes)
    elif ctx.opset >= 18 and ctx.attr("num_outputs") is not None:
        n = ctx.attr("num_outputs")
        chunk = -(-dim // n)  # ONNX 18: equal chunks of ceil(dim / n), the last one smaller
        sizes = [min(chunk, dim - k * chunk) for k in range(n)]
    else:
        if dim % n:
            ctx.error(f"axis of size {dim} cannot be split evenly into {n} outputs")
        sizes = [dim // n] * n
    outputs = [ctx.out(k) for k in range(len(sizes))]
    ctx.emit("split", [x], {"axis": axis, "sizes": sizes}, outputs)


PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge"}


def convert_pad(ctx):
    x = ctx.input(0)
    rank = len(ctx.shape(x))
    mode = ctx.attr("mode", "constant")
    if mode not in PAD_MODES:
        ctx.error(f"unsupported pad mode {mode!r} (constant, reflect, edge)")
    if ctx.opset < 11:
        pads, value = list(ctx.attr("pads")), ctx.attr("value", 0.0)
    else:
        pads = _int_list(ctx.constant(1, "pads"))
        fill = ctx.constant(2, "constant_value")
        value = 0.0 if fill is None or fill.size == 0 else float(fill.reshape(-1)[0])
        axes = ctx.constant(3, "axes")
        if axes is not None:  # opset 18: pads only for the listed axes
            axes = [a % rank for a in _int_list(axes)]
            full = [0] * (2 * rank)
            for k, a in enumerate(axes):
                full[a], full[a + rank] = pads[k], pads[k + len(axes)]
            pads = full
    ctx.emit("pad", [x], {"pads": pads, "mode": PAD_MODES[mode], "value": value}, [ctx.out()])


def convert_reduce(ir_op, axes_input_since):
    def convert(ctx):
        x = ctx.input(0)
        axes = _axes(ctx, 1, axes_input_since)
        if not axes:
            if ctx.attr("noop_with_empty_axes", 0):
                ctx.alias(ctx.node.output[0], x)
                return
            axes = list(range(len(ctx.shape(x))))  # no axes: reduce over all of them
        ctx.emit(ir_op, [x], {"axes": axes, "keepdims": ctx.attr("keepdims", 1)}, [ctx.out()])
    return convert


TENSOR_CONVERTERS = {
    "Add": convert_binary("add"),
    "Sub": convert_binary("sub"),
    "Mul": convert_binary("mul"),
    "Div": convert_binary("div"),
    "Pow": convert_binary("pow"),
    "Sum": convert_sum,
    "Identity": convert_identity,
    "Dropout": convert_dropout,
    "Constant": convert_constant,
    "Shape": convert_shape,
    "Gather": convert_gather,
    "Cast": convert_cast,
    "ConstantOfShape": convert_constant_of_shape,
    "Concat": convert_concat,
    "Reshape": convert_reshape,
    "Flatten": convert_flatten,
    "Transpose": convert_transpose,
    "Squeeze": convert_squeeze,
    "Unsqueeze": convert_unsqueeze,
    "Slice": convert_slice,
    "Split": convert_split,
    "Pad": convert_pad,
    "ReduceMean": convert_reduce("reduce_mean", 18),
    "ReduceSum": convert_reduce("reduce_sum", 13),
    "ReduceMax": convert_reduce("reduce_max", 18),
}
