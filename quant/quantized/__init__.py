"""Quantized modules: integer NumPy arithmetic of quant/SPEC.md, traceable to QDQ graphs."""
from .activation import Hardsigmoid, Hardswish, LookupTable, ReLU, ReLU6, Sigmoid, Tanh
from .merge import Add, AddReLU, AddReLU6, Concat
from .module import QuantizedModule
from .passthrough import ChannelShuffle, Dropout, Flatten, Identity, Passthrough
from .pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .stubs import DequantStub, FloatIsland, QuantStub
from .weighted import Conv2d, ConvReLU2d, ConvReLU62d, Linear, LinearReLU, LinearReLU6

__all__ = [
    "QuantizedModule", "QuantStub", "DequantStub", "FloatIsland",
    "Conv2d", "ConvReLU2d", "ConvReLU62d", "Linear", "LinearReLU", "LinearReLU6",
    "Add", "AddReLU", "AddReLU6", "Concat", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "AdaptiveAvgPool2d",
    "ReLU", "ReLU6", "LookupTable", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh",
    "Passthrough", "Identity", "Flatten", "ChannelShuffle", "Dropout",
]
