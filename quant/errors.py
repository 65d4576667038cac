"""Errors raised by quantization: each names the module, node or tensor at fault.

`QuantError` is the compiler's QuantizationError, so errors raised by the shared integer
arithmetic (compiler.ir.integer_spec) and by quant code are caught by one `except`."""
from yuan.compiler.ir.errors import QuantizationError as QuantError

__all__ = ["QuantError"]
