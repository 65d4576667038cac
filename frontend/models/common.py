"""Building blocks, argument checks and initialisers shared by the model families."""
import numbers

import numpy as np

from .. import nn
from ..nn.init import kaiming_normal
from ..random import generator


def make_divisible(value, divisor=8, min_value=None):
    """Round a channel count to a multiple of `divisor` (torchvision's `_make_divisible`).

    Never rounds down by more than 10%, so width multipliers keep their meaning.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def scale_channels(channels, width):
    """`channels * width`, rounded, at least 1 (for families without a rounding rule)."""
    return max(1, int(round(channels * width)))


class ModelConfigError(ValueError, TypeError):
    """A bad model name or argument. A ValueError for config checks, a TypeError like any bad keyword."""


def check_positive(model, **values):
    """Reject zero, negative or non-numeric scale factors (e.g. `width`) before any layer is built,
    with a message that names the model and the argument."""
    for name, value in values.items():
        if not (_is_real(value) and value > 0):
            raise ModelConfigError(f"{model}: {name} must be a number > 0, got {value!r}")


def check_positive_int(model, **values):
    """Reject sizes and counts (channels, classes, depth) that are not whole numbers >= 1: a
    zero or fractional size would otherwise fail deep inside a layer with an unrelated message."""
    for name, value in values.items():
        if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1):
            raise ModelConfigError(f"{model}: {name} must be an integer >= 1, got {value!r}")


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


class ConvBNAct(nn.Sequential):
    """conv -> BN -> activation, kept in one Sequential so quantization can fuse it.

    Children are numbered 0, 1, 2 like torchvision's Conv2dNormActivation, so
    state-dict keys line up with torchvision checkpoints.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1, activation=nn.ReLU):
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                         padding=(kernel_size - 1) // 2, groups=groups, bias=False)
        layers = [conv, nn.BatchNorm2d(out_channels)]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


def init_conv_bn(model):
    """He (fan_out) conv weights, zero conv bias, BN gamma=1 beta=0, as torchvision does for ReLU nets."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data[...] = kaiming_normal(module.weight.data.shape, mode="fan_out")
            if module.bias is not None:
                module.bias.data[...] = 0.0
        elif isinstance(module, nn.BatchNorm2d) and module.weight is not None:
            module.weight.data[...] = 1.0
            module.bias.data[...] = 0.0


def init_linear_normal(model, std=0.01):
    """Small-normal classifier weights (MobileNetV2's choice): logits start near uniform."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight.data[...] = (generator().standard_normal(module.weight.data.shape) * std).astype(np.float32)
            if module.bias is not None:
                module.bias.data[...] = 0.0
