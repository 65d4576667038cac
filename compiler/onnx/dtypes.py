"""NumPy dtype names <-> ONNX TensorProto element types."""
from __future__ import annotations

import numpy as np
from onnx import helper


def onnx_elem_type(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def numpy_dtype_name(elem_type: int) -> str:
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
