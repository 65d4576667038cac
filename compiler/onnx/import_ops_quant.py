"""ONNX -> IR converters for QDQ models: QuantizeLinear / DequantizeLinear (per-tensor and
per-axis), plus Conv / Gemm wrappers that check quantized biases.

Every Q/DQ node is checked by qdq_checks (errors name the node). A DequantizeLinear of a
constant integer tensor (quantized weights, int32 biases) stays a `dequantize` node instead
of being folded to a float constant, so the imported graph keeps the integer weights, and
the constant's Value.quant is set to the node's parameters (quantize outputs get theirs from
Graph.add_node).

QUANT_CONVERTERS also holds "Conv" and "Gemm": import_ops.CONVERTERS merges this table last,
so these wrappers run the bias check, then defer to import_ops_nn.
"""
from __future__ import annotations

import numpy as np

from ..ir import QuantParams
from .dtypes import numpy_dtype_name
from .import_ops_nn import convert_conv, convert_gemm
from .qdq_checks import check_bias_scale, check_quant_params

# Storage dtype -> (bits, signed) for the IR quantize attributes.
QUANT_TYPES = {"int8": (8, 1), "uint8": (8, 0), "int16": (16, 1), "uint16": (16, 0)}
# DequantizeLinear also reads int32 (biases).
DEQUANT_TYPES = {**QUANT_TYPES, "int32": (32, 1)}
ONNX_DEFAULT_AXIS = 1


def _axis(ctx, x: str, scale: str):
    """None for per-tensor parameters, else the (non-negative) quantization axis."""
    if ctx.attr("block_size", 0):
        ctx.error("blocked quantization (block_size) is not supported")
    if int(np.prod(ctx.shape(scale))) <= 1:
        return None
    rank = len(ctx.shape(x))
    axis = ctx.attr("axis", ONNX_DEFAULT_AXIS)
    if not -rank <= axis < rank:
        ctx.error(f"axis {axis} out of range for rank {rank}")
    return axis % rank


def convert_quantize_linear(ctx):
    x, scale, zero_point = ctx.input(0), ctx.input(1), ctx.input(2)
    declared = numpy_dtype_name(ctx.attr("output_dtype")) if ctx.attr("output_dtype") else None
    if zero_point:
        dtype = declared or ctx.dtype(zero_point)
    else:
        dtype = declared or "uint8"  # ONNX default when there is no zero point
    if dtype not in QUANT_TYPES:
        ctx.error(f"quantizing to {dtype} is not supported (int8, uint8, int16, uint16)")
    axis = _axis(ctx, x, scale)
    check_quant_params(ctx, x, scale, zero_point, dtype, ctx.attr("axis", ONNX_DEFAULT_AXIS))
    bits, signed = QUANT_TYPES[dtype]
    ctx.emit("quantize", [x, scale, zero_point], {"axis": axis, "bits": bits, "signed": signed},
             [ctx.out()])


def convert_dequantize_linear(ctx):
    x, scale, zero_point = ctx.input(0), ctx.input(1), ctx.input(2)
    attrs = {"axis": _axis(ctx, x, scale)}
    check_quant_params(ctx, x, scale, zero_point, ctx.dtype(x), ctx.attr("axis", ONNX_DEFAULT_AXIS))
    graph = ctx.graph
    if x not in graph.constants:
        ctx.emit("dequantize", [x, scale, zero_point], attrs, [ctx.out()])
        return
    # Quantized weights / biases: keep the integer constant and its dequantize node.
    graph.add_node("dequantize", [x, scale, zero_point], attrs, [ctx.out()], name=ctx.node_name)
    if scale in graph.constants and (not zero_point or zero_point in graph.constants):
        _annotate_constant(ctx, x, scale, zero_point, attrs["axis"])


def _annotate_constant(ctx, x: str, scale: str, zero_point: str, axis) -> None:
    dtype = ctx.dtype(x)
    if dtype not in DEQUANT_TYPES:
        return
    bits, signed = DEQUANT_TYPES[dtype]
    c = ctx.graph.constants
    shape = (-1,) if axis is not None else ()
    zp = c[zero_point].reshape(shape) if zero_point else 0
    ctx.graph.values[x].quant = QuantParams(c[scale].reshape(shape), zp, axis, bits, signed)


# ---------------------------------------------------------------- Conv / Gemm with QDQ bias

def convert_conv_checked(ctx):
    if ctx.has_input(2):
        check_bias_scale(ctx, ctx.input(0), ctx.input(1), ctx.input(2))
    convert_conv(ctx)


def convert_gemm_checked(ctx):
    a, b, c = ctx.input(0), ctx.input(1), ctx.input(2)
    scaled = ctx.attr("alpha", 1.0) != 1.0 or ctx.attr("beta", 1.0) != 1.0
    if c and not scaled:
        # With alpha or beta the Gemm is imported as float matmul / mul / add on the dequantized
        # operands (exact whatever the bias scale; ORT quantizes such a bias with s_x*s_w*beta).
        check_bias_scale(ctx, a, b, c)
    # QDQ Linear layers (ORT, PyTorch): Gemm(transB=1) with a dequantized 1-D bias. It is a
    # plain `linear`; import_ops_nn only recognises constant biases, and would emit
    # transpose + matmul + add around the dequantized weight.
    plain = not scaled and not ctx.attr("transA", 0) and ctx.attr("transB", 0)
    if plain and c and c not in ctx.graph.constants and ctx.shape(c) == (ctx.shape(b)[0],):
        ctx.emit("linear", [a, b, c], outputs=[ctx.out()])
        return
    convert_gemm(ctx)


QUANT_CONVERTERS = {
    "QuantizeLinear": convert_quantize_linear,
    "DequantizeLinear": convert_dequantize_linear,
    "Conv": convert_conv_checked,
    "Gemm": convert_gemm_checked,
}
