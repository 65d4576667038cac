"""ResNets: torchvision's ImageNet family (resnet18/34/50) and He et al.'s small CIFAR family.

Every residual join is its own `nn.Add` followed by its own `nn.ReLU`, so
quantization can observe each join and fuse each activation separately.
Attribute names follow torchvision so its state dicts load unchanged.
"""
from .. import nn
from .common import ModelConfigError, check_positive, check_positive_int, init_conv_bn, scale_channels


def conv3x3(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def downsample(in_channels, out_channels, stride):
    """Projection shortcut (conv1x1 + BN) where the block changes shape; None where identity fits."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class _ResidualBlock(nn.Module):
    """relu(branch(x) + shortcut(x)). Subclasses build the branch's layers in `build_branch`
    (registered first, so state-dict order follows torchvision) and run them in `branch`."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        out_channels = planes * self.expansion
        self.build_branch(in_channels, planes, out_channels, stride)
        self.downsample = downsample(in_channels, out_channels, stride)
        self.add = nn.Add()
        self.relu_out = nn.ReLU()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu_out(self.add(self.branch(x), identity))


class BasicBlock(_ResidualBlock):
    """Two 3x3 convs plus a shortcut (ResNet-18/34 and the CIFAR ResNets)."""

    expansion = 1

    def build_branch(self, in_channels, planes, out_channels, stride):
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    @property
    def last_bn(self):
        return self.bn2

    def branch(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(_ResidualBlock):
    """1x1 reduce, 3x3 (carries the stride, as in torchvision's ResNet v1.5), 1x1 expand x4."""

    expansion = 4

    def build_branch(self, in_channels, planes, out_channels, stride):
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)

    @property
    def last_bn(self):
        return self.bn3

    def branch(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


def make_stage(block, in_channels, planes, blocks, stride):
    """`blocks` residual blocks; only the first one changes stride/width. Returns (stage, out_channels)."""
    layers = [block(in_channels, planes, stride)]
    out_channels = planes * block.expansion
    layers += [block(out_channels, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers), out_channels


def zero_init_last_bn(model):
    """Start each residual branch at zero so every block begins as an identity: deep nets train from step one."""
    for module in model.modules():
        if isinstance(module, (BasicBlock, Bottleneck)):
            module.last_bn.weight.data[...] = 0.0


class ResNet(nn.Module):
    """torchvision's ImageNet ResNet: 7x7/2 stem, 3x3/2 max pool, four stages, global pool, fc."""

    def __init__(self, block, layers, num_classes=1000, in_channels=3, width=1.0, zero_init_residual=False):
        super().__init__()
        widths = [scale_channels(c, width) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = widths[0]
        self.layer1, channels = make_stage(block, channels, widths[0], layers[0], 1)
        self.layer2, channels = make_stage(block, channels, widths[1], layers[1], 2)
        self.layer3, channels = make_stage(block, channels, widths[2], layers[2], 2)
        self.layer4, channels = make_stage(block, channels, widths[3], layers[3], 2)
        self.avgpool = nn.GlobalAvgPool2d()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        init_conv_bn(self)
        if zero_init_residual:
            zero_init_last_bn(self)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


class SmallResNet(nn.Module):
    """He et al.'s CIFAR ResNet (depth 6n+2): 3x3 stem, three stages of n blocks at 16/32/64 channels.

    Suits 28x28 to 32x32 inputs; projection shortcuts (conv1x1 + BN) where shape changes.
    """

    def __init__(self, blocks_per_stage, num_classes=10, in_channels=3, width=1.0, zero_init_residual=True):
        super().__init__()
        widths = [scale_channels(c, width) for c in (16, 32, 64)]
        self.conv1 = conv3x3(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        channels = widths[0]
        self.layer1, channels = make_stage(BasicBlock, channels, widths[0], blocks_per_stage, 1)
        self.layer2, channels = make_stage(BasicBlock, channels, widths[1], blocks_per_stage, 2)
        self.layer3, channels = make_stage(BasicBlock, channels, widths[2], blocks_per_stage, 2)
        self.avgpool = nn.GlobalAvgPool2d()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        init_conv_bn(self)
        if zero_init_residual:
            zero_init_last_bn(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


def _imagenet_resnet(name, block, layers, num_classes, in_channels, width, zero_init_residual):
    check_positive_int(name, num_classes=num_classes, in_channels=in_channels)
    check_positive(name, width=width)
    return ResNet(block, layers, num_classes, in_channels, width, zero_init_residual)


def resnet18(num_classes=1000, in_channels=3, width=1.0, zero_init_residual=False):
    """ResNet-18 (11,689,512 parameters at width 1, 1000 classes)."""
    return _imagenet_resnet("resnet18", BasicBlock, [2, 2, 2, 2], num_classes, in_channels, width, zero_init_residual)


def resnet34(num_classes=1000, in_channels=3, width=1.0, zero_init_residual=False):
    """ResNet-34 (21,797,672 parameters at width 1, 1000 classes)."""
    return _imagenet_resnet("resnet34", BasicBlock, [3, 4, 6, 3], num_classes, in_channels, width, zero_init_residual)


def resnet50(num_classes=1000, in_channels=3, width=1.0, zero_init_residual=False):
    """ResNet-50 (25,557,032 parameters at width 1, 1000 classes)."""
    return _imagenet_resnet("resnet50", Bottleneck, [3, 4, 6, 3], num_classes, in_channels, width, zero_init_residual)


def resnet_small(depth=20, num_classes=10, in_channels=3, width=1.0, zero_init_residual=True):
    """CIFAR-style ResNet-`depth` (8, 14, 20, 32, 44, 56, ...: any 6n+2) for 28-32 px images."""
    check_positive_int("resnet_small", depth=depth, num_classes=num_classes, in_channels=in_channels)
    check_positive("resnet_small", width=width)
    if (depth - 2) % 6:
        raise ModelConfigError(f"resnet_small: depth must be 6n+2 (8, 14, 20, 32, ...), got {depth}")
    return SmallResNet((depth - 2) // 6, num_classes, in_channels, width, zero_init_residual)
