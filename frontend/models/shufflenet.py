"""ShuffleNet V2 (Ma et al. 2018, torchvision layout) and ShuffleNet V1 (Zhang et al. 2017).

Merges are `nn.Concat` / `nn.Add` modules and shuffles are `nn.ChannelShuffle`
modules, so quantization sees each of them; the V2 channel split is `F.split`.
"""
from .. import functional as F
from .. import nn
from .common import ModelConfigError, check_positive, check_positive_int, make_divisible

# ---------------------------------------------------------------- V2 ----

# torchvision's stage output channels (stem, stage2, stage3, stage4, conv5) per width.
SHUFFLENET_V2_CHANNELS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
SHUFFLENET_V2_REPEATS = (4, 8, 4)


def shufflenet_v2_channels(width):
    """The torchvision table for 0.5/1.0/1.5/2.0; other widths scale x1.0's stages (multiples of 8)."""
    if width in SHUFFLENET_V2_CHANNELS:
        return SHUFFLENET_V2_CHANNELS[width]
    stages = tuple(make_divisible(c * width, 8) for c in SHUFFLENET_V2_CHANNELS[1.0][1:4])
    return (24,) + stages + (2048 if width > 1.5 else 1024,)


def depthwise_conv(channels, stride):
    return nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False)


def pointwise_conv(in_channels, out_channels, groups=1):
    return nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False)


class ShuffleV2Block(nn.Module):
    """Stride 1: split channels in half, transform one half. Stride 2: transform both copies of the input.

    Either way the halves are concatenated and shuffled so information crosses between them.
    """

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"ShuffleV2Block: out_channels must be even, got {out_channels}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"ShuffleV2Block: a stride-1 block keeps its width, got {in_channels} -> {out_channels}")
        self.stride = stride
        branch = out_channels // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                depthwise_conv(in_channels, stride), nn.BatchNorm2d(in_channels),
                pointwise_conv(in_channels, branch), nn.BatchNorm2d(branch), nn.ReLU(),
            )
        else:
            self.branch1 = None
        self.branch2 = nn.Sequential(
            pointwise_conv(in_channels if stride > 1 else branch, branch), nn.BatchNorm2d(branch), nn.ReLU(),
            depthwise_conv(branch, stride), nn.BatchNorm2d(branch),
            pointwise_conv(branch, branch), nn.BatchNorm2d(branch), nn.ReLU(),
        )
        self.concat = nn.Concat(axis=1)
        self.shuffle = nn.ChannelShuffle(2)

    def forward(self, x):
        if self.branch1 is None:
            half = x.shape[1] // 2
            kept, transformed = F.split(x, [half, x.shape[1] - half], axis=1)
            out = self.concat(kept, self.branch2(transformed))
        else:
            out = self.concat(self.branch1(x), self.branch2(x))
        return self.shuffle(out)


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes=1000, in_channels=3, width=1.0):
        super().__init__()
        stem, *stage_channels, last = shufflenet_v2_channels(width)
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = stem
        for index, (repeats, out_channels) in enumerate(zip(SHUFFLENET_V2_REPEATS, stage_channels), start=2):
            blocks = [ShuffleV2Block(channels, out_channels, 2)]
            blocks += [ShuffleV2Block(out_channels, out_channels, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{index}", nn.Sequential(*blocks))
            channels = out_channels
        self.conv5 = nn.Sequential(pointwise_conv(channels, last), nn.BatchNorm2d(last), nn.ReLU())
        self.avgpool = nn.GlobalAvgPool2d()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(last, num_classes)
        # torchvision keeps PyTorch's default layer init here, which our layers already use.

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(self.flatten(self.avgpool(self.conv5(x))))


def shufflenet_v2(num_classes=1000, in_channels=3, width=1.0):
    """ShuffleNet V2 x`width` (2,278,604 parameters at x1.0, 1000 classes)."""
    check_positive_int("shufflenet_v2", num_classes=num_classes, in_channels=in_channels)
    check_positive("shufflenet_v2", width=width)
    return ShuffleNetV2(num_classes, in_channels, width)


# ---------------------------------------------------------------- V1 ----

# Stage output channels at width 1.0 per group count (paper, Table 1).
SHUFFLENET_V1_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                          4: (272, 544, 1088), 8: (384, 768, 1536)}
SHUFFLENET_V1_REPEATS = (4, 8, 4)
SHUFFLENET_V1_STEM = 24


class ShuffleV1Block(nn.Module):
    """Grouped 1x1 -> shuffle -> 3x3 depthwise -> grouped 1x1, with a residual add (stride 1)
    or an avg-pooled input concatenated alongside (stride 2, which is how the block widens)."""

    def __init__(self, in_channels, out_channels, stride, groups, first_conv_groups):
        super().__init__()
        self.stride = stride
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        mid = out_channels // 4
        self.compress = nn.Sequential(
            pointwise_conv(in_channels, mid, first_conv_groups), nn.BatchNorm2d(mid), nn.ReLU())
        # Shuffling only helps after a grouped conv: it lets the next grouped conv see every group.
        self.shuffle = nn.ChannelShuffle(groups) if first_conv_groups > 1 else None
        self.expand = nn.Sequential(
            depthwise_conv(mid, stride), nn.BatchNorm2d(mid),
            pointwise_conv(mid, branch_out, groups), nn.BatchNorm2d(branch_out))
        if stride == 2:
            self.shortcut = nn.AvgPool2d(3, stride=2, padding=1)
            self.merge = nn.Concat(axis=1)
        else:
            self.shortcut = None
            self.merge = nn.Add()
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.compress(x)
        if self.shuffle is not None:
            out = self.shuffle(out)
        out = self.expand(out)
        if self.shortcut is None:
            return self.relu(self.merge(out, x))
        return self.relu(self.merge(self.shortcut(x), out))


class ShuffleNetV1(nn.Module):
    def __init__(self, groups=3, num_classes=1000, in_channels=3, width=1.0):
        super().__init__()
        stem = SHUFFLENET_V1_STEM
        # Multiples of 4*groups keep both the bottleneck (out/4) and the grouped convs divisible.
        stage_channels = [make_divisible(c * width, 4 * groups) for c in SHUFFLENET_V1_CHANNELS[groups]]
        if stage_channels[0] <= stem:  # stage 2's first block concatenates the stem, so it must be wider
            raise ModelConfigError(f"shufflenet_v1: width {width} is too small: stage 2 would have "
                             f"{stage_channels[0]} channels, not more than the {stem}-channel stem")
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = stem
        for index, (repeats, out_channels) in enumerate(zip(SHUFFLENET_V1_REPEATS, stage_channels), start=2):
            # The paper keeps stage 2's first 1x1 ungrouped: the 24-channel stem is too thin to split.
            blocks = [ShuffleV1Block(channels, out_channels, 2, groups, 1 if index == 2 else groups)]
            blocks += [ShuffleV1Block(out_channels, out_channels, 1, groups, groups) for _ in range(repeats - 1)]
            setattr(self, f"stage{index}", nn.Sequential(*blocks))
            channels = out_channels
        self.avgpool = nn.GlobalAvgPool2d()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(self.flatten(self.avgpool(x)))


def shufflenet_v1(groups=3, num_classes=1000, in_channels=3, width=1.0):
    """ShuffleNet V1 with `groups` in {1, 2, 3, 4, 8} (the paper's g=3 x1.0 is the usual default)."""
    if groups not in SHUFFLENET_V1_CHANNELS:
        raise ModelConfigError(f"shufflenet_v1: groups must be one of {sorted(SHUFFLENET_V1_CHANNELS)}, got {groups!r}")
    check_positive_int("shufflenet_v1", num_classes=num_classes, in_channels=in_channels)
    check_positive("shufflenet_v1", width=width)
    return ShuffleNetV1(groups, num_classes, in_channels, width)
