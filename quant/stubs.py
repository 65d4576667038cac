"""Float-model markers of where quantization starts and ends.

`QuantStub` / `DequantStub` are identities in a float model; `quantize_qat` turns them into
the model input's quantizer and the output's dequantizer. `QuantWrapper(model)` puts one
of each around a model (quantize_qat does this when the model has no stubs of its own).
"""
from yuan.frontend import nn


class QuantStub(nn.Module):
    """Float tensor -> quantized tensor (float model: identity)."""

    def forward(self, x):
        return x


class DequantStub(nn.Module):
    """Quantized tensor -> float tensor (float model: identity)."""

    def forward(self, x):
        return x


class QuantWrapper(nn.Module):
    """quant -> model -> dequant; every output of the model (a tensor, tuple or list) is dequantized."""

    def __init__(self, model):
        super().__init__()
        self.quant = QuantStub()
        self.model = model
        self.dequant = DequantStub()

    def forward(self, *inputs):
        out = self.model(*[self.quant(x) for x in inputs])
        if isinstance(out, (tuple, list)):
            return type(out)(self.dequant(o) for o in out)
        return self.dequant(out)
