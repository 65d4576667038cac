"""Consistency checks for QDQ models (QuantizeLinear / DequantizeLinear and quantized biases).

The importer calls these for every QuantizeLinear / DequantizeLinear node and for every
Conv / Gemm whose bias comes from an int32 DequantizeLinear. A failed check raises
OnnxImportError through ctx.error, so the message names the file and the node. Checks on
values (scale > 0, zero point range, bias scale) run only when the parameters are constants.
"""
from __future__ import annotations

import numpy as np

BIAS_SCALE_RTOL = 1e-6


def check_quant_params(ctx, x: str, scale: str, zero_point: str, quantized_dtype: str,
                       axis) -> None:
    """Scale / zero point of a QuantizeLinear or DequantizeLinear node.

    x: the float input (QuantizeLinear) or integer input (DequantizeLinear); quantized_dtype:
    the integer type of the quantized side; axis: the node's `axis` attribute (ONNX default 1).
    A scale with more than one element is per-axis: its length must equal that axis's size."""
    scale_shape = ctx.shape(scale)
    if len(scale_shape) > 1:
        ctx.error(f"scale '{scale}' has shape {list(scale_shape)}; only a scalar (per-tensor) "
                  f"or 1-D (per-axis) scale is supported")
    size = int(np.prod(scale_shape))
    if size > 1:
        rank = len(ctx.shape(x))
        if not -rank <= axis < rank:
            ctx.error(f"axis {axis} out of range for input '{x}' of rank {rank}")
        axis_size = ctx.shape(x)[axis % rank]
        if size != axis_size:
            ctx.error(f"per-axis scale '{scale}' has {size} entries but axis {axis} of input "
                      f"'{x}' has size {axis_size}")
    if scale in ctx.graph.constants:
        _check_scale_values(ctx, scale, ctx.graph.constants[scale])
    if zero_point:
        _check_zero_point(ctx, scale, zero_point, quantized_dtype)


def _check_scale_values(ctx, name: str, scale: np.ndarray) -> None:
    if scale.dtype.kind != "f":
        ctx.error(f"scale '{name}' must be a float tensor, got {scale.dtype}")
    bad = ~(np.isfinite(scale) & (scale > 0))
    if np.any(bad):
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        ctx.error(f"scale '{name}' must be positive and finite; entry {first} is "
                  f"{scale.reshape(-1)[first]}")


def _check_zero_point(ctx, scale: str, zero_point: str, quantized_dtype: str) -> None:
    zp_shape, scale_shape = ctx.shape(zero_point), ctx.shape(scale)
    if int(np.prod(zp_shape)) != int(np.prod(scale_shape)) or len(zp_shape) > 1:
        ctx.error(f"zero point '{zero_point}' shape {list(zp_shape)} does not match scale "
                  f"'{scale}' shape {list(scale_shape)}")
    zp_dtype = ctx.dtype(zero_point)
    if zero_point in ctx.graph.constants and np.dtype(quantized_dtype).kind in "iu":
        # Checked before the dtype: an int32 zero point of 300 for uint8 data is out of range.
        info = np.iinfo(quantized_dtype)
        zp = ctx.graph.constants[zero_point]
        if zp.dtype.kind not in "iu" or np.any(zp < info.min) or np.any(zp > info.max):
            ctx.error(f"zero point '{zero_point}' = {zp.reshape(-1)[:8].tolist()} is out of "
                      f"range for {quantized_dtype} [{info.min}, {info.max}]")
    if zp_dtype != quantized_dtype:
        ctx.error(f"zero point '{zero_point}' has dtype {zp_dtype}, which does not match the "
                  f"quantized dtype {quantized_dtype}")


# ---------------------------------------------------------------- quantized bias

def _producer(graph, name: str):
    """The IR node writing `name` (searching backwards: producers are usually recent)."""
    for node in reversed(graph.nodes):
        if name in node.outputs:
            return node
    return None


def _dequantize_scale(graph, name: str, want_constant_input: bool):
    """Scale array of the `dequantize` writing `name`, or None when it is not one with a
    constant scale (and, if asked, a constant integer input)."""
    node = _producer(graph, name) if name else None
    if node is None or node.op != "dequantize" or node.inputs[1] not in graph.constants:
        return None
    if want_constant_input and node.inputs[0] not in graph.constants:
        return None
    return node, graph.constants[node.inputs[1]]


def check_bias_scale(ctx, x: str, w: str, b: str) -> None:
    """For DQ(x), DQ(w), DQ(int32 bias) -> Conv/Gemm: the bias scale must be s_x * s_w
    (per output channel), relative tolerance 1e-6; other patterns are not checked."""
    graph = ctx.graph
    bias = _dequantize_scale(graph, b, want_constant_input=True)
    xs, ws = _dequantize_scale(graph, x, False), _dequantize_scale(graph, w, False)
    if bias is None or xs is None or ws is None:
        return
    bias_node, s_b = bias
    if graph.values[bias_node.inputs[0]].dtype != "int32":
        return
    s_x, s_w = xs[1], ws[1]
    if s_x.size != 1:
        return  # per-axis activations: no single product to compare with
    expected = np.float64(s_x.reshape(-1)[0]) * s_w.astype(np.float64).reshape(-1)
    actual = s_b.astype(np.float64).reshape(-1)
    if actual.size not in (1, expected.size) or expected.size not in (1, actual.size):
        ctx.error(f"bias '{b}' scale has {actual.size} entries, weight '{w}' scale has "
                  f"{expected.size}")
    expected, actual = np.broadcast_arrays(expected, actual)
    wrong = np.abs(actual - expected) > BIAS_SCALE_RTOL * np.abs(expected)
    if np.any(wrong):
        i = int(np.flatnonzero(wrong)[0])
        ctx.error(f"int32 bias '{b}' is dequantized with scale {actual[i]:.7g} (entry {i}), "
                  f"but input scale x weight scale is {expected[i]:.7g}; the bias scale must "
                  f"equal s_x * s_w")
