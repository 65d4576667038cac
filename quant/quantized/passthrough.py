"""Integer data movement: the codes move unchanged and keep their parameters (SPEC §5)."""
from yuan.frontend import functional as F

from ..qtensor import attach, qparams_of, tag_fusion
from .module import QuantizedModule


class Passthrough(QuantizedModule):
    @classmethod
    def from_qat_module(cls, qat):
        module = cls.named_after(qat)
        module.copy_settings(qat)
        return module

    def copy_settings(self, qat):
        pass

    def forward(self, x):
        y = self.move(x)
        if y is not x:   # frontend ops (traced by themselves) return fresh, unlabelled tensors
            attach(y, qparams_of(x))
        return tag_fusion(y, self.fusion_tag)

    def move(self, x):
        return x


class Identity(Passthrough):
    pass


class Dropout(Passthrough):
    """Eval-mode dropout: the identity."""


class Flatten(Passthrough):
    def copy_settings(self, qat):
        self.start_axis = qat.start_axis

    def move(self, x):
        return F.flatten(x, self.start_axis)


class ChannelShuffle(Passthrough):
    def copy_settings(self, qat):
        self.groups = qat.groups

    def move(self, x):
        return F.channel_shuffle(x, self.groups)
