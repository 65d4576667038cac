"""Every zoo model, tiny: quantize_qat -> calibrate -> eval; the converted integer model's
output equals the QAT model's eval output bit for bit (codes and dequantized floats)."""
import numpy as np
import pytest

from yuan.frontend import nn
from yuan.frontend.models import get_model
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan import quant
from yuan.quant import qat, quantized, spec

ZOO = [  # (name, kwargs, input size): width 0.25 (0.125 for resnet50), 16-32 px, batch 2
    ("mlp", dict(in_features=3 * 8 * 8, hidden=(16, 8)), 8),
    ("small_cnn", dict(in_channels=3, width=0.25, input_size=16), 16),
    ("resnet_small", dict(depth=8, width=0.25), 16),          # zero-initialised residual gammas
    ("resnet18", dict(width=0.25), 32),
    ("resnet50", dict(width=0.125), 32),
    ("mobilenet_v2", dict(width=0.25, input_size=32), 32),
    ("shufflenet_v2", dict(width=0.25), 32),                  # F.split, Concat, ChannelShuffle
    ("shufflenet_v1", dict(width=0.25, groups=3), 32),        # grouped 1x1, AvgPool + Concat, Add
]


def _x(size, seed):
    return np.random.default_rng(seed).standard_normal((2, 3, size, size)).astype(np.float32)


def _final_codes(model, x):
    """The integer codes of the last layer's output, before the wrapper's DequantStub."""
    out = model.model(model.quant(Tensor(x)))
    if out.data.dtype.kind in "iu":
        return out.data.astype(np.int64), out.qparams
    return spec.codes_of(out.data, out.qparams), out.qparams


@pytest.mark.parametrize("name,kwargs,size", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_model_converts_bit_exactly(name, kwargs, size):
    manual_seed(0)
    model = get_model(name, num_classes=5, **kwargs).eval()
    qat_model = quant.quantize_qat(model)
    quant.calibrate(qat_model, [_x(size, seed) for seed in (1, 2)])
    qat_model.eval()
    qmodel = quant.quantize(qat_model)
    assert not any(isinstance(m, qat.QATModule) for m in qmodel.modules())
    assert not any(type(m) in (nn.Conv2d, nn.Linear, nn.BatchNorm2d) for m in qmodel.modules())
    for seed in (3, 4):
        x = _x(size, seed)
        codes_qat, qp_qat = _final_codes(qat_model, x)
        codes_int, qp_int = _final_codes(qmodel, x)
        assert qp_qat == qp_int
        assert np.array_equal(codes_qat, codes_int)
        out_qat, out_int = qat_model(Tensor(x)).data, qmodel(Tensor(x)).data
        assert out_qat.dtype == out_int.dtype == np.float32
        assert np.array_equal(out_qat, out_int)
    # sanity: the integer model approximates the float model (a loose bound; random weights)
    ref = model(Tensor(x)).data
    assert np.abs(out_int - ref).max() <= 0.25 * np.abs(ref).max() + 10 * float(qp_int.scale)


def test_zoo_conversion_uses_the_expected_integer_layers():
    manual_seed(0)
    qat_model = quant.quantize_qat(get_model("shufflenet_v2", num_classes=5, width=0.25))
    quant.calibrate(qat_model, [_x(32, 1)])
    kinds = {type(m) for m in quant.quantize(qat_model).modules()}
    assert {quantized.QuantStub, quantized.DequantStub, quantized.ConvReLU2d, quantized.Conv2d,
            quantized.Concat, quantized.ChannelShuffle, quantized.MaxPool2d, quantized.GlobalAvgPool2d,
            quantized.Flatten, quantized.Linear} <= kinds
