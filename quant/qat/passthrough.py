"""QAT modules that move data without arithmetic: the quantization parameters of the
input are kept (SPEC §5: flatten / identity / channel_shuffle / max_pool2d / dropout)."""
from yuan.frontend import functional as F

from ..qtensor import provider_of, qparams_of
from .module import KeepsInputQParams


class Passthrough(KeepsInputQParams):
    """Base: `move(x)` computes the output; parameters and provider follow the input."""
    keeps_values = True     # False where training changes values (dropout): no qparams then

    def forward(self, x):
        self.record_inputs(x)
        y = self.move(x)
        keeps = self.keeps_values or not self.training
        return self.finish(y, qparams_of(x) if keeps else None, provider_of(x))

    def move(self, x):
        return x


class Identity(Passthrough):
    pass


class Flatten(Passthrough):
    def copy_settings(self, module):
        self.start_axis = module.start_axis

    def move(self, x):
        return F.flatten(x, self.start_axis)


class ChannelShuffle(Passthrough):
    def copy_settings(self, module):
        self.groups = module.groups

    def move(self, x):
        return F.channel_shuffle(x, self.groups)


class Dropout(Passthrough):
    keeps_values = False

    def copy_settings(self, module):
        self.p = module.p

    def move(self, x):
        from yuan.frontend.random import generator
        return F.dropout(x, self.p, self.training, generator())


class MaxPool2d(Passthrough):
    """Max over windows of fake-quantized values equals dequantize(max of the codes): exact."""
    def copy_settings(self, module):
        self.kernel_size, self.stride, self.padding = module.kernel_size, module.stride, module.padding

    def move(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)
