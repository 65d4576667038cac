"""ONNX -> IR converters for neural-net ops: Conv, Gemm, MatMul, BatchNormalization, pools,
activations, Softmax. Each takes the ImportContext (ctx.node is the ONNX node)."""
from __future__ import annotations

import math

import numpy as np


def explicit_pads(ctx, in_hw, kernel, strides, dilations) -> list[int]:
    """ONNX pads [t, l, b, r] (= IR order), resolving auto_pad SAME_UPPER/SAME_LOWER/VALID."""
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        pads = list(ctx.attr("pads", [0] * 4))
        if len(pads) != 4:
            ctx.error(f"pads {pads} must have 4 entries for 2-D windows")
        return pads
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        ctx.error(f"unsupported auto_pad {auto_pad!r} (NOTSET, VALID, SAME_UPPER, SAME_LOWER)")
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        out = math.ceil(size / s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else big)
        end.append(big if auto_pad == "SAME_UPPER" else small)
    return begin + end


def _require_4d(ctx, name, what):
    if len(ctx.shape(name)) != 4:
        ctx.error(f"only 2-D {what} (4-D NCHW input) is supported; input "
                  f"'{name}' has shape {list(ctx.shape(name))}")


def _window_attrs(ctx, kernel_default=None):
    kernel = list(ctx.attr("kernel_shape", kernel_default or []))
    if len(kernel) != 2:
        ctx.error(f"kernel_shape {kernel} must have 2 entries (only 2-D windows are supported)")
    strides = list(ctx.attr("strides", [1, 1]))
    dilations = list(ctx.attr("dilations", [1, 1]))
    return kernel, strides, dilations


def convert_conv(ctx):
    x, w, b = ctx.input(0), ctx.input(1), ctx.input(2)
    _require_4d(ctx, x, "convolution")
    kernel, strides, dilations = _window_attrs(ctx, list(ctx.shape(w)[2:]))
    if kernel != list(ctx.shape(w)[2:]):
        ctx.error(f"kernel_shape {kernel} does not match weight shape {list(ctx.shape(w))}")
    pads = explicit_pads(ctx, ctx.shape(x)[2:], kernel, strides, dilations)
    ctx.emit("conv2d", [x, w, b], {"strides": strides, "pads": pads, "dilations": dilations,
                                   "group": ctx.attr("group", 1)}, [ctx.out()])


def _as_bias(ctx, c_name, beta, n_out):
    """Gemm's C (times beta) as a linear bias [N], when C is a constant that is the same for
    every row; None when it is not, "" when there is no C."""
    if not c_name:
        return ""
    if c_name not in ctx.graph.constants:
        return None
    c = ctx.graph.constants[c_name]
    if c.ndim == 2 and c.shape[0] != 1 or c.ndim > 2 or c.size not in (1, n_out):
        return None
    bias = np.broadcast_to(c.reshape(-1), (n_out,)) * np.asarray(beta, dtype=c.dtype)
    return ctx.graph.add_constant(ctx.fresh(f"{ctx.node_name}_bias"), bias.astype(c.dtype))


def convert_gemm(ctx):
    a, b, c = ctx.input(0), ctx.input(1), ctx.input(2)
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    trans_a, trans_b = ctx.attr("transA", 0), ctx.attr("transB", 0)
    if trans_a:
        a = ctx.emit("transpose", [a], {"perm": [1, 0]})[0]
    n_out = ctx.shape(b)[0 if trans_b else 1]
    bias = _as_bias(ctx, c, beta, n_out)
    if alpha == 1.0 and bias is not None and (trans_b or b in ctx.graph.constants):
        # The common case (PyTorch Linear): y = x @ W.T + bias with W as [out, in].
        w = b if trans_b else ctx.emit("transpose", [b], {"perm": [1, 0]})[0]
        ctx.emit("linear", [a, w, bias], outputs=[ctx.out()])
        return
    if trans_b:
        b = ctx.emit("transpose", [b], {"perm": [1, 0]})[0]
    y = ctx.emit("matmul", [a, b], outputs=None if (c or alpha != 1.0) else [ctx.out()])[0]
    if alpha != 1.0:
        scale = ctx.graph.add_constant(ctx.fresh(f"{ctx.node_name}_alpha"),
                                       np.asarray(alpha, dtype=ctx.dtype(y)))
        y = ctx.emit("mul", [y, scale], outputs=None if c else [ctx.out()])[0]
    if c:
        if beta != 1.0:
            factor = ctx.graph.add_constant(ctx.fresh(f"{ctx.node_name}_beta"),
                                            np.asarray(beta, dtype=ctx.dtype(c)))
            c = ctx.emit("mul", [c, factor])[0]
        ctx.emit("add", [y, c], outputs=[ctx.out()])


def convert_matmul(ctx):
    ctx.emit("matmul", [ctx.input(0), ctx.input(1)], outputs=[ctx.out()])


def convert_batch_norm(ctx):
    if ctx.attr("spatial", 1) != 1:
        ctx.error("spatial=0 (per-activation) batch normalization is not supported")
    if ctx.attr("training_mode", 0):
        ctx.error("training_mode=1 is not supported: the IR holds inference-form batch norm")
    if sum(1 for o in ctx.node.output[1:] if o) > 0:
        ctx.error("training-mode outputs (running mean/var, saved stats) are not supported")
    ctx.emit("batch_norm", ctx.inputs()[:5], {"epsilon": ctx.attr("epsilon", 1e-5)}, [ctx.out()])


def _pool_common(ctx, what):
    x = ctx.input(0)
    _require_4d(ctx, x, what)
    kernel, strides, dilations = _window_attrs(ctx)
    if dilations != [1, 1]:
        ctx.error(f"dilations {dilations} are not supported for pooling")
    pads = explicit_pads(ctx, ctx.shape(x)[2:], kernel, strides, dilations)
    return x, {"kernel": kernel, "strides": strides, "pads": pads,
               "ceil_mode": ctx.attr("ceil_mode", 0)}


def convert_max_pool(ctx):
    if ctx.attr("storage_order", 0) and len(ctx.node.output) > 1:
        ctx.error("storage_order is only meaningful for the Indices output, which is unsupported")
    x, attrs = _pool_common(ctx, "max pooling")
    ctx.emit("max_pool2d", [x], attrs, [ctx.out()])


def convert_average_pool(ctx):
    x, attrs = _pool_common(ctx, "average pooling")
    attrs["count_include_pad"] = ctx.attr("count_include_pad", 0)
    ctx.emit("avg_pool2d", [x], attrs, [ctx.out()])


def convert_global_pool(ir_reduce):
    def convert(ctx):
        x = ctx.input(0)
        if ir_reduce == "reduce_mean" and len(ctx.shape(x)) == 4:
            ctx.emit("global_avg_pool2d", [x], outputs=[ctx.out()])
            return
        axes = list(range(2, len(ctx.shape(x))))
        ctx.emit(ir_reduce, [x], {"axes": axes, "keepdims": 1}, [ctx.out()])
    return convert


def convert_unary(ir_op):
    def convert(ctx):
        ctx.emit(ir_op, [ctx.input(0)], outputs=[ctx.out()])
    return convert


def convert_leaky_relu(ctx):
    ctx.emit("leaky_relu", [ctx.input(0)], {"alpha": ctx.attr("alpha", 0.01)}, [ctx.out()])


def convert_hardsigmoid(ctx):
    ctx.emit("hardsigmoid", [ctx.input(0)],
             {"alpha": ctx.attr("alpha", 0.2), "beta": ctx.attr("beta", 0.5)}, [ctx.out()])


def _scalar_bound(ctx, i, what):
    array = ctx.constant(i, what)
    if array is None:
        return None
    if array.size != 1:
        ctx.error(f"Clip {what} must be a scalar, got shape {list(array.shape)}")
    return float(array.reshape(-1)[0])


def convert_clip(ctx):
    if ctx.opset < 11:
        lo, hi = ctx.attr("min"), ctx.attr("max")
    else:
        lo, hi = _scalar_bound(ctx, 1, "min"), _scalar_bound(ctx, 2, "max")
    ctx.emit("clip", [ctx.input(0)], {"min": lo, "max": hi}, [ctx.out()])


def convert_softmax(ir_op):
    def convert(ctx):
        x = ctx.input(0)
        shape = ctx.shape(x)
        rank = len(shape)
        if ctx.opset >= 13:
            ctx.emit(ir_op, [x], {"axis": ctx.attr("axis", -1)}, [ctx.out()])
            return
        # Before opset 13, (Log)Softmax flattens to 2-D [prod(shape[:axis]), prod(shape[axis:])]
        # and normalises each row: over all trailing axes at once, not just `axis`.
        axis = ctx.attr("axis", 1)
        if not -rank <= axis < rank:
            ctx.error(f"axis {axis} out of range for rank {rank}")
        axis %= rank
        if axis == rank - 1:
            ctx.emit(ir_op, [x], {"axis": -1}, [ctx.out()])
            return
        rows = int(np.prod(shape[:axis], dtype=np.int64))
        flat = ctx.emit("reshape", [x], {"shape": [rows, -1]})[0]
        normalised = ctx.emit(ir_op, [flat], {"axis": 1})[0]
        ctx.emit("reshape", [normalised], {"shape": list(shape)}, [ctx.out()])
    return convert


NN_CONVERTERS = {
    "Conv": convert_conv,
    "Gemm": convert_gemm,
    "MatMul": convert_matmul,
    "BatchNormalization": convert_batch_norm,
    "MaxPool": convert_max_pool,
    "AveragePool": convert_average_pool,
    "GlobalAveragePool": convert_global_pool("reduce_mean"),
    "GlobalMaxPool": convert_global_pool("reduce_max"),
    "Relu": convert_unary("relu"),
    "Sigmoid": convert_unary("sigmoid"),
    "Tanh": convert_unary("tanh"),
    "HardSwish": convert_unary("hardswish"),
    "Neg": convert_unary("neg"),
    "Exp": convert_unary("exp"),
    "Log": convert_unary("log"),
    "Sqrt": convert_unary("sqrt"),
    "HardSigmoid": convert_hardsigmoid,
    "LeakyRelu": convert_leaky_relu,
    "Clip": convert_clip,
    "Softmax": convert_softmax("softmax"),
    "LogSoftmax": convert_softmax("log_softmax"),
}
