"""QAT fully connected layers: Linear, LinearReLU, LinearReLU6."""
from yuan.frontend import functional as F

from .. import spec
from ..fused import apply_activation
from ..int32_range import check_bias_fits
from .module import FromFusedFloat, QATModule, check_symmetric_weights


class Linear(QATModule):
    activation = None

    @classmethod
    def from_float_module(cls, linear, qconfig):
        module = cls(qconfig)
        module.in_features, module.out_features = linear.in_features, linear.out_features
        module.weight, module.bias = linear.weight, linear.bias
        module.weight_fake_quant = qconfig.weight_fake_quant()
        return module

    def deploy_weight_bias(self):
        return self.weight.data, (None if self.bias is None else self.bias.data)

    def weight_qparams(self):
        return check_symmetric_weights(self.weight_fake_quant.qparams(), self.describe())

    def forward(self, x):
        self.record_inputs(x)
        if self.integer_mode():
            q_x, qp_x = self.input_codes(x)
            qp_w, qp_y = self.weight_qparams(), self.output_qparams()
            weight, bias = self.deploy_weight_bias()
            q_w = spec.quantize(weight, qp_w)
            check_bias_fits(bias, qp_x, qp_w, q_w.shape[0])   # spec.linear would clip it silently; conversion refuses it
            codes = spec.linear(q_x, qp_x, q_w, qp_w, bias, qp_y, self.activation)
            return self.integer_output(codes, qp_y)
        y = F.linear(x, self.weight_fake_quant(self.weight), self.bias)
        return self.quantize_output(apply_activation(y, self.activation))


class LinearReLU(FromFusedFloat, Linear):
    activation = "relu"
    fused_layer = "linear"


class LinearReLU6(LinearReLU):
    activation = "relu6"
