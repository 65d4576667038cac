"""QAT activations. Standalone ReLU / ReLU6 clamp codes and keep their input's parameters;
the smooth functions (hardswish, sigmoid, ...) are lookup tables with an output fake quant."""
from yuan.frontend import autograd
from yuan.frontend import functional as F
from yuan.frontend.tensor import Tensor

from .. import spec
from ..qtensor import provider_of, qparams_of
from .module import KeepsInputQParams, QATModule


class ReLU(KeepsInputQParams):
    """max(q, z) (ReLU6: also min(q, z + round(6 / s))): the input's parameters are kept, so
    there is no observer. In eval mode with a quantized input the clamp is done on codes."""
    activation = "relu"

    def forward(self, x):
        self.record_inputs(x)
        qp_x = None if self.training or autograd.active_tracer() is not None else qparams_of(x)
        if qp_x is not None:
            codes = spec.clamp_activation(spec.codes_of(x.data, qp_x), qp_x, self.activation)
            return self.finish(Tensor(spec.dequantize(codes, qp_x)), qp_x, provider_of(x))
        y = F.relu(x) if self.activation == "relu" else F.relu6(x)
        return self.finish(y, None, provider_of(x))


class ReLU6(ReLU):
    activation = "relu6"


class LookupTable(QATModule):
    """f(x) through a table over every input code (SPEC §5); `function` names spec.LUT_FUNCTIONS."""
    function = None

    def forward(self, x):
        self.record_inputs(x)
        if self.integer_mode():
            q_x, qp_x = self.input_codes(x)
            qp_y = self.output_qparams()
            table = spec.build_lut(self.function, qp_x, qp_y)
            return self.integer_output(spec.apply_lut(q_x, table, qp_x), qp_y)
        return self.quantize_output(getattr(F, self.function)(x))


class Hardswish(LookupTable):
    function = "hardswish"


class Hardsigmoid(LookupTable):
    function = "hardsigmoid"


class Sigmoid(LookupTable):
    function = "sigmoid"


class Tanh(LookupTable):
    function = "tanh"
