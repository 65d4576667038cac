"""Activation layers: thin wrappers so that quantization can find and fuse them."""
from .. import functional as F
from .module import Module


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class ReLU6(Module):
    def forward(self, x):
        return F.relu6(x)


class Hardswish(Module):
    def forward(self, x):
        return F.hardswish(x)


class Hardsigmoid(Module):
    def forward(self, x):
        return F.hardsigmoid(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Softmax(Module):
    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        return F.softmax(x, self.axis)
