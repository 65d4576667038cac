"""ONNX <-> Yuan Graph IR conversion (export opset 21 by default; import opsets 9..28)."""
from .errors import OnnxError, OnnxExportError, OnnxImportError
from .export import DEFAULT_OPSET, export_onnx
from .import_ import import_onnx
from .import_ops import CONVERTERS

__all__ = ["export_onnx", "import_onnx", "DEFAULT_OPSET", "CONVERTERS", "OnnxError",
           "OnnxExportError", "OnnxImportError"]
