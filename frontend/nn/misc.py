"""Structural layers. Add and Concat are modules (not bare operators) because
quantization must attach an observer to each place a network merges tensors."""
from .. import functional as F
from .module import Module


class Identity(Module):
    def forward(self, x):
        return x


class Flatten(Module):
    def __init__(self, start_axis=1):
        super().__init__()
        self.start_axis = start_axis

    def forward(self, x):
        return F.flatten(x, self.start_axis)


class Dropout(Module):
    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        from ..random import generator
        return F.dropout(x, self.p, self.training, generator())

    def extra_repr(self):
        return f"p={self.p}"


class Add(Module):
    """Element-wise sum of two tensors (a residual join)."""

    def forward(self, a, b):
        return a + b


def concat_operands(tensors):
    """The tensors of a concat call: Concat modules take concat(a, b, ...) or concat([a, b, ...])."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        return tuple(tensors[0])
    return tensors


class Concat(Module):
    def __init__(self, axis=1):
        super().__init__()
        self.axis = axis

    def forward(self, *tensors):
        return F.concat(list(concat_operands(tensors)), self.axis)


class ChannelShuffle(Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return F.channel_shuffle(x, self.groups)

    def extra_repr(self):
        return f"groups={self.groups}"
