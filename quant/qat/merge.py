"""QAT merges of several tensors: Add (+ fused ReLU / ReLU6) and Concat."""
from frontend import functional as F

from .. import spec
from ..fused import apply_activation
from .module import QATModule


class Add(QATModule):
    activation = None

    @classmethod
    def from_float_module(cls, module, qconfig):
        qat = cls(qconfig)
        qat.fusion_tag = getattr(module, "fusion_tag", None)
        return qat

    def forward(self, a, b):
        self.record_inputs(a, b)
        if self.integer_mode():
            (q_a, qp_a), (q_b, qp_b) = self.input_codes(a, 0), self.input_codes(b, 1)
            qp_y = self.output_qparams()
            return self.integer_output(spec.add(q_a, qp_a, q_b, qp_b, qp_y, self.activation), qp_y)
        return self.quantize_output(apply_activation(a + b, self.activation))


class AddReLU(Add):
    activation = "relu"


class AddReLU6(Add):
    activation = "relu6"


class Concat(QATModule):
    @classmethod
    def from_float_module(cls, module, qconfig):
        qat = cls(qconfig)
        qat.axis = module.axis
        return qat

    def forward(self, *tensors):
        if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
            tensors = tuple(tensors[0])
        self.record_inputs(*tensors)
        if self.integer_mode():
            coded = [self.input_codes(t, i) for i, t in enumerate(tensors)]
            qp_y = self.output_qparams()
            axis = self.axis % tensors[0].ndim
            codes = spec.concat([q for q, _ in coded], [qp for _, qp in coded], qp_y, axis)
            return self.integer_output(codes, qp_y)
        return self.quantize_output(F.concat(list(tensors), self.axis))
