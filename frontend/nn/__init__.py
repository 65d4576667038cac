"""Layers and containers (PyTorch/MegEngine style)."""
from .activation import Hardsigmoid, Hardswish, ReLU, ReLU6, Sigmoid, Softmax, Tanh
from .container import ModuleList, Sequential
from .conv import Conv2d
from .linear import Linear
from .misc import Add, ChannelShuffle, Concat, Dropout, Flatten, Identity
from .module import Module, Parameter, StateDictError
from .norm import BatchNorm2d
from .pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d

__all__ = [
    "Module", "Parameter", "StateDictError", "Sequential", "ModuleList",
    "Conv2d", "Linear", "BatchNorm2d",
    "ReLU", "ReLU6", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh", "Softmax",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "GlobalAvgPool2d",
    "Identity", "Flatten", "Dropout", "Add", "Concat", "ChannelShuffle",
]
