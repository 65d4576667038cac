"""QAT model edges: QuantStub (input quantizer), DequantStub, and FloatIsland (a subtree
left in float between quantized layers: dequantize in, float module, quantize out)."""
import numpy as np

from yuan.frontend.tensor import Tensor

from .. import spec
from ..errors import QuantError
from ..qtensor import attach
from .module import KeepsInputQParams, QATModule


class QuantStub(QATModule):
    """Quantizes the float input with its own activation fake quant."""

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, np.float32))
        self.record_inputs()
        if self.integer_mode():
            qp = self.output_qparams()
            return self.integer_output(spec.quantize(x.data, qp), qp)
        return self.quantize_output(x)


class DequantStub(KeepsInputQParams):
    """The values are already real numbers; only the quantization labels are dropped."""

    def forward(self, x):
        self.record_inputs(x)
        out = Tensor._from_op(x.data, x._ctx, x._output_index) if not (x.requires_grad and x._ctx is None) else x
        return attach(out, None, None)


class FloatIsland(QATModule):
    """A subtree with qconfig None: runs in float on the (fake-quantized) input values and
    quantizes its output again, so quantized layers can follow it. Single-output modules."""

    def __init__(self, module, qconfig):
        super().__init__(qconfig)
        self.module = module
        self.fusion_tag = getattr(module, "fusion_tag", None)   # a fused float module keeps its role

    def forward(self, *inputs):
        self.record_inputs(*inputs)
        y = self.module(*inputs)
        if not isinstance(y, Tensor):
            raise QuantError(f"{self.describe()}: a float subtree inside a quantized model must return one "
                             f"tensor, got {type(y).__name__}")
        if self.integer_mode():
            qp = self.output_qparams()
            return self.integer_output(spec.quantize(y.data, qp), qp)
        return self.quantize_output(y)
