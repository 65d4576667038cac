"""Fused float modules: conv+bn(+relu/relu6), conv+relu, linear+relu, add+relu.

Each one calls exactly the layers it replaces, in the same order, so a fused float model
computes bit for bit what the unfused one did. They exist so the QAT and quantized trees
have one module per fused integer kernel (fold BN, clamp in the integer domain).
"""
from yuan.frontend import functional as F
from yuan.frontend import nn

from .errors import QuantError
from .qtensor import tag_fusion

ACTIVATION_FUNCTIONS = {None: lambda x: x, "relu": F.relu, "relu6": F.relu6}


def apply_activation(x, activation):
    return ACTIVATION_FUNCTIONS[activation](x)


class FusedModule(nn.Module):
    """Base of fused float modules. `fusion_tag` (the path of the fused group) marks outputs
    so the `FusedAway` placeholders left behind can check the dataflow they assumed."""
    activation = None
    fusion_tag = None

    def finish(self, y):
        return tag_fusion(apply_activation(y, self.activation), self.fusion_tag)


class _ConvFused(FusedModule):
    has_bn = False

    def __init__(self, conv, bn=None):
        super().__init__()
        if self.has_bn != (bn is not None):
            raise QuantError(f"{type(self).__name__} needs {'a' if self.has_bn else 'no'} BatchNorm2d")
        if bn is not None and bn.num_features != conv.out_channels:
            raise QuantError(f"cannot fuse Conv2d with {conv.out_channels} output channels and "
                             f"BatchNorm2d({bn.num_features})")
        self.conv = conv
        if bn is not None:
            self.bn = bn

    def forward(self, x):
        y = self.conv(x)
        if self.has_bn:
            y = self.bn(y)
        return self.finish(y)


class ConvReLU2d(_ConvFused):
    activation = "relu"


class ConvReLU62d(_ConvFused):
    activation = "relu6"


class ConvBn2d(_ConvFused):
    has_bn = True


class ConvBnReLU2d(ConvBn2d):
    activation = "relu"


class ConvBnReLU62d(ConvBn2d):
    activation = "relu6"


class LinearReLU(FusedModule):
    activation = "relu"

    def __init__(self, linear):
        super().__init__()
        self.linear = linear

    def forward(self, x):
        return self.finish(self.linear(x))


class LinearReLU6(LinearReLU):
    activation = "relu6"


class AddReLU(FusedModule):
    activation = "relu"

    def forward(self, a, b):
        return self.finish(a + b)


class AddReLU6(AddReLU):
    activation = "relu6"


class FusedAway(nn.Module):
    """Left where a module was folded into a fused one (e.g. `bn1`, `relu1` after `conv1`).

    Passes its input through, after checking that the input is the fused module's output:
    fusion assumed that dataflow (from registration order), and a model that computes
    something else between them would silently change meaning.
    """

    def __init__(self, tag, original):
        super().__init__()
        self.tag, self.original = tag, original

    def forward(self, x):
        if getattr(x, "fusion_tag", None) != self.tag:
            raise QuantError(
                f"fusion of '{self.tag}' assumed this {self.original} consumes its output directly, but it "
                f"received another tensor; fuse explicitly with fuse_modules(model, patterns=[...]) "
                f"or pass fuse=False")
        return x

    def extra_repr(self):
        return f"fused into '{self.tag}', was {self.original}"
