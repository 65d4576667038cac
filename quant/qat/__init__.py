"""QAT modules (fake-quant training, exact SPEC §5 integer arithmetic in eval mode)."""
from .activation import Hardsigmoid, Hardswish, LookupTable, ReLU, ReLU6, Sigmoid, Tanh
from .conv import Conv2d, ConvBn2d, ConvBnReLU2d, ConvBnReLU62d, ConvReLU2d, ConvReLU62d
from .linear import Linear, LinearReLU, LinearReLU6
from .merge import Add, AddReLU, AddReLU6, Concat
from .module import QATModule
from .passthrough import ChannelShuffle, Dropout, Flatten, Identity, MaxPool2d, Passthrough
from .pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d
from .stubs import DequantStub, FloatIsland, QuantStub

__all__ = [
    "QATModule", "QuantStub", "DequantStub", "FloatIsland",
    "Conv2d", "ConvReLU2d", "ConvReLU62d", "ConvBn2d", "ConvBnReLU2d", "ConvBnReLU62d",
    "Linear", "LinearReLU", "LinearReLU6", "Add", "AddReLU", "AddReLU6", "Concat",
    "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "AdaptiveAvgPool2d",
    "ReLU", "ReLU6", "LookupTable", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh",
    "Passthrough", "Identity", "Flatten", "ChannelShuffle", "Dropout",
]
