"""Weight initialisers (PyTorch's defaults, so results transfer between the two)."""
import math

import numpy as np

from ..random import generator


def _fan_in(shape):
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive


def kaiming_uniform(shape, a=math.sqrt(5)):
    """PyTorch's default for conv/linear weights: U(-b, b), b = gain * sqrt(3 / fan_in)."""
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = gain * math.sqrt(3.0 / _fan_in(shape))
    return generator().uniform(-bound, bound, size=shape).astype(np.float32)


def kaiming_normal(shape, mode="fan_out"):
    """He init for ReLU nets (used by the ResNet family)."""
    fan = shape[0] * int(np.prod(shape[2:])) if mode == "fan_out" else _fan_in(shape)
    return (generator().standard_normal(size=shape) * math.sqrt(2.0 / fan)).astype(np.float32)


def bias_uniform(weight_shape, size):
    bound = 1.0 / math.sqrt(_fan_in(weight_shape))
    return generator().uniform(-bound, bound, size=size).astype(np.float32)
