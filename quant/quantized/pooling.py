"""Integer pools: max (on codes, parameters kept) and the averaging pools (requantize)."""
from yuan.frontend.ops._util import pads4, pair

from .. import spec
from ..qat.pooling import resolve_output_size
from .module import QuantizedModule, trace_input, trace_op, trace_output, tracer


def _window_attrs(kernel_size, stride, padding):
    kernel = pair(kernel_size, "kernel_size")
    return {"kernel": list(kernel), "strides": list(kernel if stride is None else pair(stride, "stride")),
            "pads": list(pads4(padding)), "ceil_mode": 0}


class MaxPool2d(QuantizedModule):
    @classmethod
    def from_qat_module(cls, qat):
        module = cls.named_after(qat)
        module.kernel_size, module.stride, module.padding = qat.kernel_size, qat.stride, qat.padding
        module.store_input_qparams(qat)
        return module

    def forward(self, x):
        qp = self.qparams("input")
        out = self.output(spec.max_pool2d(self.input_codes(x), self.kernel_size, self.stride, self.padding), qp)
        t = tracer()
        if t is not None:  # dequantize -> max_pool2d -> quantize with the same parameters (exact)
            y = trace_op(t, "max_pool2d", _window_attrs(self.kernel_size, self.stride, self.padding),
                         [trace_input(t, self, x)], out.shape)
            trace_output(t, self, y, out, edge="input")
        return out


class _AveragePool(QuantizedModule):
    op = None

    @classmethod
    def from_qat_module(cls, qat):
        module = cls.named_after(qat)
        module.copy_settings(qat)
        module.store_input_qparams(qat)
        module.store_qparams("output", qat.output_qparams())
        return module

    def copy_settings(self, qat):
        pass

    def forward(self, x):
        qp_y = self.qparams("output")
        out = self.output(self.pool(self.input_codes(x), self.qparams("input"), qp_y), qp_y)
        t = tracer()
        if t is not None:
            trace_output(t, self, trace_op(t, self.op, self.ir_attrs(x), [trace_input(t, self, x)], out.shape), out)
        return out

    def ir_attrs(self, x):
        return {}


class AvgPool2d(_AveragePool):
    op = "avg_pool2d"

    def copy_settings(self, qat):
        self.kernel_size, self.stride, self.padding = qat.kernel_size, qat.stride, qat.padding
        self.count_include_pad = qat.count_include_pad

    def pool(self, q, qp_x, qp_y):
        return spec.avg_pool2d(q, qp_x, qp_y, self.kernel_size, self.stride, self.padding, self.count_include_pad)

    def ir_attrs(self, x):
        attrs = _window_attrs(self.kernel_size, self.stride, self.padding)
        attrs["count_include_pad"] = int(bool(self.count_include_pad))
        return attrs


class GlobalAvgPool2d(_AveragePool):
    op = "global_avg_pool2d"

    def pool(self, q, qp_x, qp_y):
        return spec.global_avg_pool2d(q, qp_x, qp_y)


class AdaptiveAvgPool2d(_AveragePool):
    op = "adaptive_avg_pool2d"

    def copy_settings(self, qat):
        self.output_size = qat.output_size

    def pool(self, q, qp_x, qp_y):
        return spec.adaptive_avg_pool2d(q, qp_x, qp_y, resolve_output_size(self.output_size, q.shape))

    def ir_attrs(self, x):
        return {"output_size": list(resolve_output_size(self.output_size, x.shape))}
