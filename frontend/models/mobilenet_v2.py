"""MobileNetV2 (Sandler et al. 2018), laid out like torchvision so its state dicts load unchanged."""
from .. import nn
from .common import (ConvBNAct, ModelConfigError, check_positive, check_positive_int, init_conv_bn,
                     init_linear_normal, make_divisible)

# expand ratio t, output channels c, repeats n, first stride s (torchvision's table)
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
DOWNSAMPLINGS = 1 + sum(1 for *_, s in INVERTED_RESIDUAL_SETTING if s == 2)  # stem + stages: 32x at 224


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection, plus a skip when shapes match."""

    def __init__(self, in_channels, out_channels, stride, expand_ratio):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.stride = stride
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, kernel_size=1, activation=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, stride=stride, groups=hidden, activation=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),  # no activation: a ReLU would destroy information in the narrow output
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_channels
        if self.use_res_connect:
            self.add = nn.Add()

    def forward(self, x):
        if self.use_res_connect:
            return self.add(x, self.conv(x))
        return self.conv(x)


def kept_downsamplings(input_size, min_final_size=4):
    """How many stride-2 layers to keep so the last feature map is at least `min_final_size` wide.

    224 keeps all 5 (torchvision's network, 7x7 at the end); 32 keeps 3 (4x4),
    like the usual CIFAR variant that drops the stem's and the first stage's stride.
    """
    kept = DOWNSAMPLINGS
    while kept > 0 and input_size / 2 ** kept < min_final_size:
        kept -= 1
    return kept


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=1000, in_channels=3, width=1.0, input_size=224, dropout=0.2, round_nearest=8):
        super().__init__()
        # The earliest strides are dropped first: small images need resolution most at the start.
        drop = DOWNSAMPLINGS - kept_downsamplings(input_size)
        strides_left = iter([1] * drop + [2] * (DOWNSAMPLINGS - drop))

        channels = make_divisible(32 * width, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width), round_nearest)
        features = [ConvBNAct(in_channels, channels, stride=next(strides_left), activation=nn.ReLU6)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out_channels = make_divisible(c * width, round_nearest)
            for i in range(n):
                stride = (next(strides_left) if s == 2 else 1) if i == 0 else 1
                features.append(InvertedResidual(channels, out_channels, stride, t))
                channels = out_channels
        features.append(ConvBNAct(channels, self.last_channel, kernel_size=1, activation=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.GlobalAvgPool2d()
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        init_conv_bn(self)
        init_linear_normal(self, std=0.01)

    def forward(self, x):
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


def mobilenet_v2(num_classes=1000, in_channels=3, width=1.0, input_size=224, dropout=0.2):
    """MobileNetV2 (3,504,872 parameters at width 1, 1000 classes).

    `input_size` only chooses strides (never parameter shapes): at 224 and up
    the network is torchvision's; smaller images drop the earliest strides.
    """
    check_positive_int("mobilenet_v2", num_classes=num_classes, in_channels=in_channels, input_size=input_size)
    check_positive("mobilenet_v2", width=width)
    if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
        raise ModelConfigError(f"mobilenet_v2: dropout must be in [0, 1), got {dropout}")
    return MobileNetV2(num_classes, in_channels, width, input_size, dropout)
