"""Integer conv2d / linear with optional fused ReLU / ReLU6 (SPEC §5; BN already folded)."""
import numpy as np

from yuan.frontend.tensor import Tensor

from .. import spec
from ..int32_range import checked_bias_codes
from .module import (QuantizedModule, trace_activation, trace_dequantize, trace_input, trace_op, trace_output,
                     tracer)


class _Weighted(QuantizedModule):
    """Buffers: int8 `weight` (+ `weight_scale`, `weight_zero_point`), int32 `bias` (+ scale
    s_x·s_w, zero point), input / output scales and zero points, per-channel requantization
    `multiplier` (int64 m) and `shift` (n)."""
    activation = None
    op = None

    @classmethod
    def from_qat_module(cls, qat):
        module = cls()
        (qp_x,) = qat.input_qparams_for_conversion()
        weight, bias = qat.deploy_weight_bias()
        qp_w, qp_y = qat.weight_qparams(), qat.output_qparams()
        module.copy_settings(qat)
        module.qat_name, module.fusion_tag = qat.qat_name, qat.fusion_tag
        channels = weight.shape[0]
        s_w = np.broadcast_to(np.asarray(qp_w.scale, np.float32), (channels,))
        module.store_qparams("input", qp_x)
        module.store_qparams("output", qp_y)
        q_w = spec.quantize(weight, qp_w)
        bias_q = checked_bias_codes(bias, q_w, qp_x, qp_w, qat.describe())   # refused past int32
        module.register_buffer("weight", Tensor(q_w))
        module.store_qparams("weight", qp_w)
        module.has_bias = bias is not None
        if bias is not None:
            bias_scale = (np.float64(np.float32(qp_x.scale)) * s_w.astype(np.float64)).astype(np.float32)
            module.register_buffer("bias", Tensor(bias_q))
            module.register_buffer("bias_scale", Tensor(bias_scale if qp_w.axis is not None else bias_scale[:1].reshape(())))
            module.register_buffer("bias_zero_point", Tensor(np.zeros(module.bias_scale.shape, np.int32)))
        m, n = spec.output_multipliers(qp_x.scale, s_w, qp_y.scale)
        module.register_buffer("multiplier", Tensor(m))
        module.register_buffer("shift", Tensor(n))
        module.bounds = spec.activation_bounds(qp_y, cls.activation)
        return module

    def forward(self, x):
        q_x = self.input_codes(x)
        acc = self.accumulate(q_x, self.zero_point("input"), self.weight.data,
                              self.bias.data if self.has_bias else None)
        codes = spec.requantize_output(acc, self.multiplier.data, self.shift.data, self.zero_point("output"),
                                       *self.bounds, axis=1 if self.op == "conv2d" else acc.ndim - 1)
        out = self.output(codes, self.qparams("output"))
        t = tracer()
        if t is not None:
            self.trace(t, x, out)
        return out

    def trace(self, t, x, out):
        xf = trace_input(t, self, x)
        wf = trace_dequantize(t, self.weight, self.weight_scale, self.weight_zero_point, self.weight_axis())
        inputs = [xf, wf]
        if self.has_bias:
            inputs.append(trace_dequantize(t, self.bias, self.bias_scale, self.bias_zero_point,
                                           0 if self.bias_scale.ndim else None))
        y = trace_op(t, self.op, self.ir_attrs(), inputs, out.shape)
        trace_output(t, self, trace_activation(t, y, self.activation), out)

    def weight_axis(self):
        return self._qtypes["weight"][0]


class Conv2d(_Weighted):
    op = "conv2d"

    def copy_settings(self, qat):
        self.stride, self.padding = qat.stride, spec.pads4(qat.padding)
        self.dilation, self.groups = qat.dilation, qat.groups

    def accumulate(self, q_x, z_x, q_w, bias_q):
        return spec.conv2d_accumulate(q_x, z_x, q_w, bias_q, self.stride, self.padding, self.dilation, self.groups)

    def ir_attrs(self):
        return {"strides": list(self.stride), "pads": list(self.padding), "dilations": list(self.dilation),
                "group": int(self.groups)}


class ConvReLU2d(Conv2d):
    activation = "relu"


class ConvReLU62d(Conv2d):
    activation = "relu6"


class Linear(_Weighted):
    op = "linear"

    def copy_settings(self, qat):
        self.in_features, self.out_features = qat.in_features, qat.out_features

    def accumulate(self, q_x, z_x, q_w, bias_q):
        return spec.linear_accumulate(q_x, z_x, q_w, bias_q)

    def ir_attrs(self):
        return {}


class LinearReLU(Linear):
    activation = "relu"


class LinearReLU6(Linear):
    activation = "relu6"
