"""Integer activations: standalone ReLU / ReLU6 (clamp codes, parameters kept) and lookup tables."""
import numpy as np

from yuan.frontend.tensor import Tensor

from .. import spec
from .module import QuantizedModule, trace_activation, trace_input, trace_op, trace_output, tracer


class ReLU(QuantizedModule):
    activation = "relu"

    @classmethod
    def from_qat_module(cls, qat):
        module = cls.named_after(qat)
        qp = module.store_input_qparams(qat)
        module.bounds = spec.activation_bounds(qp, cls.activation)
        return module

    def forward(self, x):
        codes = np.clip(self.input_codes(x).astype(np.int64), *self.bounds)
        out = self.output(codes, self.qparams("input"))
        t = tracer()
        if t is not None:
            trace_output(t, self, trace_activation(t, trace_input(t, self, x), self.activation), out, edge="input")
        return out


class ReLU6(ReLU):
    activation = "relu6"


class LookupTable(QuantizedModule):
    """Buffer `table`: output code for every input code (built at conversion, SPEC §5)."""
    function = None
    ir_attrs = {}

    @classmethod
    def from_qat_module(cls, qat):
        module = cls.named_after(qat)
        qp_x, qp_y = module.store_input_qparams(qat), qat.output_qparams()
        module.store_qparams("output", qp_y)
        module.register_buffer("table", Tensor(spec.storage(spec.build_lut(cls.function, qp_x, qp_y), qp_y)))
        return module

    def forward(self, x):
        qp_y = self.qparams("output")
        out = self.output(spec.apply_lut(self.input_codes(x), self.table.data, self.qparams("input")), qp_y)
        t = tracer()
        if t is not None:
            trace_output(t, self, trace_op(t, self.function, dict(self.ir_attrs), [trace_input(t, self, x)],
                                           out.shape), out)
        return out


class Hardswish(LookupTable):
    function = "hardswish"


class Hardsigmoid(LookupTable):
    function = "hardsigmoid"
    ir_attrs = {"alpha": 1.0 / 6.0, "beta": 0.5}


class Sigmoid(LookupTable):
    function = "sigmoid"


class Tanh(LookupTable):
    function = "tanh"
