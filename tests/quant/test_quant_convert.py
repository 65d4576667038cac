"""Conversion QAT -> quantized: bit-exact equality with QAT eval on every layer type, stored
integer constants, per-module configuration, float islands, error messages, QDQ tracing."""
import numpy as np
import pytest

from yuan.compiler.ir import run_graph
from yuan.frontend import functional as F
from yuan.frontend import nn
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from yuan import quant
from yuan.quant import QuantError, QuantStub, DequantStub, qat, quantized, spec


def _x(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


class EveryLayer(nn.Module):
    """One of each supported layer, wired like a real network (and a functional split)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        self.grouped = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=(1, 1), dilation=1, groups=2),
                                     nn.ReLU())
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.add = nn.Add()
        self.relu6 = nn.ReLU6()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.hswish = nn.Hardswish()
        self.concat = nn.Concat(axis=1)
        self.shuffle = nn.ChannelShuffle(4)
        self.relu = nn.ReLU()
        self.sigmoid = nn.Sigmoid()
        self.adaptive = nn.AdaptiveAvgPool2d((2, 3))
        self.flatten = nn.Flatten()
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(16 * 6, 12)
        self.fc_relu = nn.ReLU()
        self.tanh = nn.Tanh()
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        x = self.stem(x)
        y = self.grouped(x)
        x = self.relu6(self.add(self.bn(self.dilated(y)), y))
        x = self.pool(x)
        left, right = F.split(x, [3, 5], axis=1)                 # functional data movement
        x = self.concat(self.hswish(self.avg(right)), left, self.sigmoid(x))
        x = self.relu(self.shuffle(x))
        x = self.drop(self.flatten(self.adaptive(x)))
        return self.head(self.tanh(self.fc_relu(self.fc(x))))


def _every_layer_qat(**kwargs):
    manual_seed(0)
    model = EveryLayer()
    q = quant.quantize_qat(model, **kwargs)
    quant.calibrate(q, [_x((2, 3, 12, 12), seed=s) for s in range(3)])
    return q


def _codes(q_model, x):
    """Final integer codes (before the output DequantStub)."""
    out = q_model.model(q_model.quant(Tensor(x)))
    return out.data.astype(np.int64) if out.data.dtype.kind in "iu" else spec.codes_of(out.data, out.qparams)


def test_every_layer_type_converts_bit_exactly():
    q = _every_layer_qat().eval()
    qmodel = quant.quantize(q)
    for seed in range(3):
        x = _x((2, 3, 12, 12), seed=20 + seed, scale=1.5)
        assert np.array_equal(_codes(q, x), _codes(qmodel, x))
        assert np.array_equal(q(Tensor(x)).data, qmodel(Tensor(x)).data)
    kinds = {type(m) for m in qmodel.modules()}
    assert {quantized.ConvReLU62d, quantized.ConvReLU2d, quantized.Conv2d, quantized.AddReLU6,
            quantized.MaxPool2d, quantized.AvgPool2d, quantized.Hardswish, quantized.Sigmoid, quantized.Tanh,
            quantized.Concat, quantized.ChannelShuffle, quantized.ReLU, quantized.AdaptiveAvgPool2d,
            quantized.Flatten, quantized.Dropout, quantized.LinearReLU, quantized.Linear} <= kinds
    assert not any(isinstance(m, qat.QATModule) for m in qmodel.modules())


def test_qat_model_is_unchanged_by_conversion_and_outputs_carry_codes():
    q = _every_layer_qat().eval()
    x = _x((2, 3, 12, 12), seed=7)
    before = q(Tensor(x)).data
    qmodel = quant.quantize(q)
    assert np.array_equal(q(Tensor(x)).data, before)
    assert isinstance(q.model.fc, qat.LinearReLU)
    inner = qmodel.model(qmodel.quant(Tensor(x)))
    assert inner.data.dtype == np.int8 and inner.qparams == qmodel.dequant.qparams("input")


def test_stored_integer_constants():
    q = _every_layer_qat().eval()
    qmodel = quant.quantize(q)
    conv = qmodel.model.stem[0]            # conv + BN folded, ReLU6 fused
    assert isinstance(conv, quantized.ConvReLU62d)
    assert conv.weight.data.dtype == np.int8 and np.abs(conv.weight.data.astype(int)).max() <= 127
    assert conv.bias.data.dtype == np.int32
    assert conv.multiplier.data.dtype == np.int64 and np.all(conv.multiplier.data >= 2 ** 30)
    qat_conv = q.model.stem[0]
    w_fold, b_fold = qat_conv.deploy_weight_bias()
    qp_w = qat_conv.weight_fake_quant.qparams()
    assert np.array_equal(conv.weight.data, spec.quantize(w_fold, qp_w))
    s_x = q.quant.act_fake_quant.qparams().scale
    assert np.array_equal(conv.bias.data, np.rint(b_fold.astype(np.float64) / (np.float64(s_x) * qp_w.scale)))
    state = qmodel.state_dict()
    assert "model.stem.0.weight_scale" in state and "model.add.multiplier_a" in state
    assert state["model.hswish.table"].shape == (256,)


def test_per_module_qconfig_and_float_skip():
    q = _every_layer_qat(qconfig_dict={"fc": "per_tensor", "": "ema"}, skip=["sigmoid"]).eval()
    assert q.model.fc.weight_fake_quant.qparams().axis is None
    assert q.model.stem[0].weight_fake_quant.qparams().axis == 0
    assert isinstance(q.model.sigmoid, qat.FloatIsland) and type(q.model.sigmoid.module) is nn.Sigmoid
    qmodel = quant.quantize(q)
    assert isinstance(qmodel.model.sigmoid, quantized.FloatIsland)
    x = _x((2, 3, 12, 12), seed=3)
    assert np.array_equal(q(Tensor(x)).data, qmodel(Tensor(x)).data)
    graph = trace(qmodel, Tensor(x))       # the float island traces as dequantize -> sigmoid -> quantize
    sigmoid = next(n for n in graph.nodes if n.op == "sigmoid")
    assert graph.producer(sigmoid.inputs[0]).op == "dequantize"
    assert [n.op for n in graph.consumers(sigmoid.outputs[0])] == ["quantize"]
    step = float(qmodel.dequant.input_scale.data)
    assert np.abs(run_graph(graph, {"input": x})["output"] - qmodel(Tensor(x)).data).max() <= 4 * step + 1e-6


def test_qconfig_none_on_a_module_leaves_it_in_float():
    manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    model[3].qconfig = None
    q = quant.quantize_qat(model)
    assert isinstance(q.model[3], qat.FloatIsland) and type(q.model[3].module) is nn.Linear
    quant.calibrate(q, [_x((2, 3, 6, 6))])
    qmodel = quant.quantize(q.eval())
    x = _x((2, 3, 6, 6), seed=1)
    assert np.array_equal(q(Tensor(x)).data, qmodel(Tensor(x)).data)


def test_user_stubs_are_kept():
    class Stubbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.fc, self.dequant = QuantStub(), nn.Linear(4, 2), DequantStub()

        def forward(self, x):
            return self.dequant(self.fc(self.quant(x)))

    q = quant.quantize_qat(Stubbed())
    assert isinstance(q.quant, qat.QuantStub) and not isinstance(q, quant.QuantWrapper)
    quant.calibrate(q, [_x((3, 4))])
    qmodel = quant.quantize(q.eval())
    x = _x((3, 4), seed=2)
    assert np.array_equal(q(Tensor(x)).data, qmodel(Tensor(x)).data)


# ------------------------------------------------------------------ errors

class _Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.extra = nn.Sequential(nn.Softmax(axis=1), nn.BatchNorm2d(3))
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.extra(self.conv(x)))


def test_unsupported_layers_are_all_named_with_paths():
    with pytest.raises(QuantError) as info:
        quant.quantize_qat(_Unsupported(), fuse=False)
    message = str(info.value)
    assert "3 module(s)" in message
    for part in ("'extra.0' (Softmax)", "'extra.1' (BatchNorm2d)", "'bn' (BatchNorm2d)"):
        assert part in message
    assert "'conv'" not in message
    quant.quantize_qat(_Unsupported(), fuse=False, skip=["extra", "bn"])    # the way out works


def test_unknown_paths_in_qconfig_dict_or_skip_are_errors():
    with pytest.raises(QuantError, match="no submodule 'nope' in Sequential"):
        quant.quantize_qat(nn.Sequential(nn.Linear(2, 2)), skip=["nope"])


def test_calibrate_errors():
    q = quant.quantize_qat(nn.Sequential(nn.Linear(4, 2)))
    with pytest.raises(QuantError, match="no batches"):
        quant.calibrate(q, [])
    bad = _x((2, 4))
    bad[1, 2] = np.nan
    with pytest.raises(QuantError, match="batch 1 contains NaN"):
        quant.calibrate(q, [(_x((2, 4)), np.zeros(2)), (bad, np.zeros(2))])
    with pytest.raises(QuantError, match="no fake-quant modules"):
        quant.calibrate(nn.Linear(2, 2), [_x((1, 2))])
    assert q.model[0].act_fake_quant.fake_quant_enabled        # flags restored after an error


def test_calibrate_uses_num_batches_and_restores_flags():
    q = quant.quantize_qat(nn.Sequential(nn.Linear(4, 2)))
    quant.disable_observer(q)
    seen = []

    def batches():
        for i in range(5):
            seen.append(i)
            yield _x((2, 4), seed=i)

    quant.calibrate(q, batches(), num_batches=2)
    assert seen == [0, 1, 2] or seen == [0, 1]
    assert q.training and not q.quant.act_fake_quant.observer_enabled
    assert q.quant.act_fake_quant.fake_quant_enabled and q.quant.act_fake_quant.observer.has_data()


def test_quantize_needs_a_qat_model_that_has_run():
    with pytest.raises(QuantError, match="no QAT modules"):
        quant.quantize(nn.Sequential(nn.Linear(2, 2)))
    q = quant.quantize_qat(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(QuantError, match="seen no data|has never run"):
        quant.quantize(q)


def test_eval_without_quantized_input_is_explained():
    q = quant.quantize_qat(nn.Sequential(nn.Linear(4, 2)))
    quant.calibrate(q, [_x((2, 4))])
    with pytest.raises(QuantError, match=r"'model.0' \(Linear\).*no quantization parameters"):
        q.model.eval()(Tensor(_x((2, 4))))


def test_quantized_module_rejects_an_input_with_other_parameters():
    q = quant.quantize_qat(nn.Sequential(nn.Linear(4, 2)))
    quant.calibrate(q, [_x((2, 4))])
    qmodel = quant.quantize(q)
    wrong = quant.qtensor.attach(Tensor(np.zeros((2, 4), np.int8)), spec.choose_qparams(-9.0, 9.0))
    with pytest.raises(QuantError, match="converted for"):
        qmodel.model(wrong)


# ------------------------------------------------------------------ QDQ tracing

def test_quantized_model_traces_to_a_readable_qdq_graph():
    q = _every_layer_qat().eval()
    qmodel = quant.quantize(q)
    x = _x((2, 3, 12, 12), seed=11)
    graph = trace(qmodel, Tensor(x))
    ops = [n.op for n in graph.nodes]
    assert ops[0] == "quantize" and ops[-1] == "dequantize"
    assert {"conv2d", "linear", "add", "concat", "max_pool2d", "avg_pool2d", "hardswish", "sigmoid", "tanh",
            "adaptive_avg_pool2d", "split", "channel_shuffle", "flatten", "clip", "relu"} <= set(ops)
    assert graph.constants["model.stem.0.weight"].dtype == np.int8
    assert graph.constants["model.stem.0.bias"].dtype == np.int32
    conv = next(n for n in graph.nodes if n.op == "conv2d")
    w_dq = graph.producer(conv.inputs[1])
    assert w_dq.op == "dequantize" and w_dq.inputs[0] == "model.stem.0.weight" and w_dq.attrs["axis"] == 0
    out = run_graph(graph, {"input": x})["output"]
    ref = qmodel(Tensor(x)).data
    step = float(qmodel.dequant.input_scale.data)
    # QDQ float semantics may differ from SPEC §5 by a few LSB after rounding differences propagate.
    assert np.abs(out - ref).max() <= 4 * step + 1e-6
    assert np.mean(np.abs(out - ref) <= step / 2) >= 0.5


def test_a_model_with_two_outputs():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
            self.a, self.b = nn.Linear(6, 2), nn.Linear(6, 3)

        def forward(self, x):
            h = self.body(x)
            return self.a(h), self.b(h)

    manual_seed(0)
    q = quant.quantize_qat(TwoHeads())
    quant.calibrate(q, [_x((4, 4), seed=s) for s in range(2)])
    qmodel = quant.quantize(q.eval())
    x = _x((3, 4), seed=9)
    for got, want in zip(qmodel(Tensor(x)), q(Tensor(x))):
        assert np.array_equal(got.data, want.data)
    graph = trace(qmodel, Tensor(x))
    assert len(graph.outputs) == 2
    for name, want in zip(graph.outputs, q(Tensor(x))):
        assert run_graph(graph, {"input": x})[name].shape == want.shape
