"""Errors raised by quantization: each names the module, node or tensor at fault."""


class QuantError(ValueError):
    pass
