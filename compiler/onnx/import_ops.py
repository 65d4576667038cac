"""The ONNX op type -> converter table used by import_.import_onnx."""
from .import_ops_image import IMAGE_CONVERTERS
from .import_ops_nn import NN_CONVERTERS
from .import_ops_quant import QUANT_CONVERTERS
from .import_ops_tensor import TENSOR_CONVERTERS

CONVERTERS = {**NN_CONVERTERS, **TENSOR_CONVERTERS, **QUANT_CONVERTERS, **IMAGE_CONVERTERS}
