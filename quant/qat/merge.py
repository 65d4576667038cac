"""QAT merges of several tensors: Add (+ fused ReLU / ReLU6) and Concat."""
from yuan.frontend import functional as F
from yuan.frontend.nn.misc import concat_operands

from .. import spec
from ..fused import apply_activation
from .module import QATModule


class Add(QATModule):
    activation = None

    def copy_settings(self, module):
        self.fusion_tag = getattr(module, "fusion_tag", None)

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
    def copy_settings(self, module):
        self.axis = module.axis

    def forward(self, *tensors):
        tensors = concat_operands(tensors)
        self.record_inputs(*tensors)
        if self.integer_mode():
            coded = [self.input_codes(t, i) for i, t in enumerate(tensors)]
            qp_y = self.output_qparams()
            axis = self.axis % tensors[0].ndim
            codes = spec.concat([q for q, _ in coded], [qp for _, qp in coded], qp_y, axis)
            return self.integer_output(codes, qp_y)
        return self.quantize_output(F.concat(list(tensors), self.axis))
