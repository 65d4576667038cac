"""Post-training quantization of an ONNX file: the file-level wrapper around quant.graph_ptq."""
from __future__ import annotations

from yuan.compiler.ir import Graph
from yuan.compiler.onnx import import_onnx
from yuan.quant.graph_ptq import quantize_graph


def calibrate_onnx(path_or_model, calibration_batches, *, input_shapes=None, **options) -> Graph:
    """PTQ of a float ONNX model: import_onnx(path_or_model, input_shapes) then
    quantize_graph(graph, calibration_batches, **options) -> QDQ Graph."""
    return quantize_graph(import_onnx(path_or_model, input_shapes), calibration_batches, **options)
