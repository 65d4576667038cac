"""ONNX -> IR converters for QuantizeLinear / DequantizeLinear (per-tensor and per-axis)."""
from __future__ import annotations

import numpy as np

from .dtypes import numpy_dtype_name

# Storage dtype -> (bits, signed) for the IR quantize attributes.
QUANT_TYPES = {"int8": (8, 1), "uint8": (8, 0), "int16": (16, 1), "uint16": (16, 0)}


def _axis(ctx, x: str, scale: str):
    """None for per-tensor parameters, else the (non-negative) quantization axis."""
    if ctx.attr("block_size", 0):
        ctx.error("blocked quantization (block_size) is not supported")
    if int(np.prod(ctx.shape(scale))) <= 1:
        return None
    rank = len(ctx.shape(x))
    axis = ctx.attr("axis", 1)
    if not -rank <= axis < rank:
        ctx.error(f"axis {axis} out of range for rank {rank}")
    return axis % rank


def convert_quantize_linear(ctx):
    x, scale, zero_point = ctx.input(0), ctx.input(1), ctx.input(2)
    if zero_point:
        dtype = ctx.dtype(zero_point)
    elif ctx.attr("output_dtype"):
        dtype = numpy_dtype_name(ctx.attr("output_dtype"))
    else:
        dtype = "uint8"  # ONNX default when there is no zero point
    if dtype not in QUANT_TYPES:
        ctx.error(f"quantizing to {dtype} is not supported (int8, uint8, int16, uint16)")
    bits, signed = QUANT_TYPES[dtype]
    ctx.emit("quantize", [x, scale, zero_point],
             {"axis": _axis(ctx, x, scale), "bits": bits, "signed": signed}, [ctx.out()])


def convert_dequantize_linear(ctx):
    x, scale, zero_point = ctx.input(0), ctx.input(1), ctx.input(2)
    ctx.emit("dequantize", [x, scale, zero_point], {"axis": _axis(ctx, x, scale)}, [ctx.out()])


QUANT_CONVERTERS = {
    "QuantizeLinear": convert_quantize_linear,
    "DequantizeLinear": convert_dequantize_linear,
}
