"""QAT average pools: they requantize (SPEC §5), so each has an output fake quant."""
from yuan.frontend import functional as F

from .. import spec
from .module import QATModule


class _AveragePool(QATModule):
    def forward(self, x):
        self.record_inputs(x)
        if self.integer_mode():
            q_x, qp_x = self.input_codes(x)
            qp_y = self.output_qparams()
            return self.integer_output(self.integer_pool(q_x, qp_x, qp_y), qp_y)
        return self.quantize_output(self.float_pool(x))


class AvgPool2d(_AveragePool):
    def copy_settings(self, module):
        self.kernel_size, self.stride, self.padding = module.kernel_size, module.stride, module.padding
        self.count_include_pad = module.count_include_pad

    def float_pool(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)

    def integer_pool(self, q, qp_x, qp_y):
        return spec.avg_pool2d(q, qp_x, qp_y, self.kernel_size, self.stride, self.padding, self.count_include_pad)


class GlobalAvgPool2d(_AveragePool):
    def float_pool(self, x):
        return F.global_avg_pool2d(x)

    def integer_pool(self, q, qp_x, qp_y):
        return spec.global_avg_pool2d(q, qp_x, qp_y)


def resolve_output_size(output_size, x_shape):
    """(oh, ow) of an adaptive pool: an int or a pair whose None entries keep the input size."""
    if isinstance(output_size, (tuple, list)):
        return tuple(x_shape[2 + i] if s is None else int(s) for i, s in enumerate(output_size))
    return int(output_size), int(output_size)


class AdaptiveAvgPool2d(_AveragePool):
    def copy_settings(self, module):
        self.output_size = module.output_size

    def float_pool(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def integer_pool(self, q, qp_x, qp_y):
        return spec.adaptive_avg_pool2d(q, qp_x, qp_y, resolve_output_size(self.output_size, q.shape))
