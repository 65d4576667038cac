"""Errors raised by quantization: each names the module, node or tensor at fault.

`QuantError` is the compiler's QuantizationError, so errors raised by the shared integer
arithmetic (compiler.ir.integer_spec) and by quant code are caught by one `except`.
`QuantWarning` flags a setting that is legal but may cost accuracy on some inputs (e.g. an
accumulator that could leave int32, quant/int32_range.py)."""
from yuan.compiler.ir.errors import QuantizationError as QuantError


class QuantWarning(UserWarning):
    pass


__all__ = ["QuantError", "QuantWarning"]
