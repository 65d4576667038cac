"""Errors raised while converting between ONNX and the Graph IR."""


class OnnxError(ValueError):
    """Base class for ONNX conversion errors."""


class OnnxExportError(OnnxError):
    """An IR graph cannot be expressed as a valid ONNX model."""


class OnnxImportError(OnnxError):
    """An ONNX model cannot be read or converted to the IR (the message names the file/node)."""
