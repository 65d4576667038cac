"""QAT convolutions: Conv2d, ConvReLU2d, ConvReLU62d and the BN-folded ConvBn2d family."""
import numpy as np

from yuan.frontend import functional as F
from yuan.frontend.tensor import Tensor

from .. import spec
from ..fused import apply_activation
from ..int32_range import check_bias_fits
from .module import FromFusedFloat, QATModule, check_symmetric_weights


class _QATConvBase(QATModule):
    """What every QAT conv shares: geometry, weight fake quant, the two forward paths."""
    activation = None

    def _init_geometry(self, conv):
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation, self.groups = conv.padding, conv.dilation, conv.groups
        self.weight_fake_quant = self.qconfig.weight_fake_quant()

    def convolve(self, x, weight, bias=None):
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x):
        self.record_inputs(x)
        if self.integer_mode():
            return self.forward_integer(x)
        return self.quantize_output(apply_activation(self.forward_float(x), self.activation))

    def deploy_weight_bias(self):
        """(weight, bias) float32 NumPy arrays exactly as deployment quantizes them."""
        raise NotImplementedError

    def weight_qparams(self):
        return check_symmetric_weights(self.weight_fake_quant.qparams(), self.describe())

    def forward_integer(self, x):
        q_x, qp_x = self.input_codes(x)
        w, b = self.deploy_weight_bias()
        qp_w = self.weight_qparams()
        qp_y = self.output_qparams()
        q_w = spec.quantize(w, qp_w)
        check_bias_fits(b, qp_x, qp_w, q_w.shape[0])   # spec.conv2d would clip it silently; conversion refuses it
        codes = spec.conv2d(q_x, qp_x, q_w, qp_w, b, qp_y, self.activation,
                            self.stride, self.padding, self.dilation, self.groups)
        return self.integer_output(codes, qp_y)


class Conv2d(_QATConvBase):
    @classmethod
    def from_float_module(cls, conv, qconfig):
        module = cls(qconfig)
        module._init_geometry(conv)
        module.weight, module.bias = conv.weight, conv.bias
        return module

    def deploy_weight_bias(self):
        return self.weight.data, (None if self.bias is None else self.bias.data)

    def forward_float(self, x):
        return self.convolve(x, self.weight_fake_quant(self.weight), self.bias)


class ConvReLU2d(FromFusedFloat, Conv2d):
    activation = "relu"
    fused_layer = "conv"


class ConvReLU62d(ConvReLU2d):
    activation = "relu6"


class ConvBn2d(_QATConvBase):
    """Conv2d + BatchNorm2d folded the way deployment folds them (SPEC §7).

    Training (PyTorch's / Jacob et al.'s scheme): the weight fake quant sees
    w · γ / sqrt(running_var + ε); the conv output is scaled back by that factor and
    batch-normalised with the batch statistics (which updates the running statistics).
    Where some γ is exactly 0 (zero-initialised residual branches) the scale-back would
    divide by 0, so the batch statistics come from a float conv instead and the folded
    conv is corrected by σ_running / σ_batch. Eval: running statistics, folded weights.
    """

    @classmethod
    def from_float_module(cls, module, qconfig):
        qat = cls(qconfig)
        qat._init_geometry(module.conv)
        qat.conv, qat.bn = module.conv, module.bn
        qat.fusion_tag = module.fusion_tag
        return qat

    def _gamma_beta(self):
        bn, c = self.bn, self.out_channels
        gamma = bn.weight if bn.weight is not None else Tensor(np.ones(c, np.float32))
        beta = bn.bias if bn.bias is not None else Tensor(np.zeros(c, np.float32))
        return gamma, beta

    def deploy_weight_bias(self):
        bn, conv = self.bn, self.conv
        return spec.fold_bn(conv.weight.data, None if conv.bias is None else conv.bias.data,
                            bn.running_mean.data, bn.running_var.data,
                            None if bn.weight is None else bn.weight.data,
                            None if bn.bias is None else bn.bias.data, bn.eps)

    def forward_float(self, x):
        if not self.training:
            w, b = self.deploy_weight_bias()
            return self.convolve(x, self.weight_fake_quant(Tensor(w)), Tensor(b))
        bn, conv = self.bn, self.conv
        gamma, beta = self._gamma_beta()
        running_std = Tensor(np.sqrt(bn.running_var.data.astype(np.float64) + bn.eps).astype(np.float32))
        factor = gamma / running_std
        w_q = self.weight_fake_quant(conv.weight * factor.reshape(-1, 1, 1, 1))
        if np.all(factor.data != 0):
            y = self.convolve(x, w_q) / factor.reshape(1, -1, 1, 1)
            if conv.bias is not None:
                y = y + conv.bias.reshape(1, -1, 1, 1)
            return F.batch_norm(y, bn.running_mean, bn.running_var, gamma, beta, training=True,
                                momentum=bn.momentum, eps=bn.eps)
        return self._batch_stats_fold(x, w_q, gamma, beta, running_std)

    def _batch_stats_fold(self, x, w_q, gamma, beta, running_std):
        bn, conv = self.bn, self.conv
        y_float = self.convolve(x, conv.weight, conv.bias)
        mean = y_float.mean(axis=(0, 2, 3))
        centered = y_float - mean.reshape(1, -1, 1, 1)
        var = (centered * centered).mean(axis=(0, 2, 3))
        count = y_float.size // y_float.shape[1]
        m = bn.momentum
        bn.running_mean.data[...] = (1 - m) * bn.running_mean.data + m * mean.data
        bn.running_var.data[...] = (1 - m) * bn.running_var.data + m * var.data * (count / max(count - 1, 1))
        sigma = (var + bn.eps).sqrt()
        bias = conv.bias if conv.bias is not None else Tensor(np.zeros(self.out_channels, np.float32))
        shift = beta + gamma * (bias - mean) / sigma
        return self.convolve(x, w_q) * (running_std / sigma).reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


class ConvBnReLU2d(ConvBn2d):
    activation = "relu"


class ConvBnReLU62d(ConvBn2d):
    activation = "relu6"
