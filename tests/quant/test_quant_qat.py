"""Fusion, BN folding and QAT modules: float equivalence, exact eval arithmetic, training."""
import copy

import numpy as np
import pytest

from yuan.compiler.ir import run_graph
from yuan.frontend import functional as F
from yuan.frontend import nn
from yuan.frontend.models import get_model
from yuan.frontend.optim import SGD, Adam
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from yuan import quant
from yuan.quant import QuantError, fused, spec
from yuan.quant.fuse import find_fusable, fuse_known_patterns, fuse_modules

ZOO = [
    ("small_cnn", dict(in_channels=3, width=0.25, input_size=16), 16),
    ("resnet_small", dict(depth=8, width=0.25, zero_init_residual=False), 16),
    ("resnet50", dict(width=0.125), 32),
    ("mobilenet_v2", dict(width=0.25, input_size=32), 32),
    ("shufflenet_v2", dict(width=0.25), 32),
    ("shufflenet_v1", dict(width=0.25), 32),
]


def _x(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _randomize_bn(model, seed=0):
    """Non-trivial BN statistics and affine parameters, so folding has something to fold."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.data[...] = rng.normal(0, 0.2, c)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, c)
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.normal(0, 0.1, c)
    return model


def _zoo(name, kwargs):
    manual_seed(0)
    return _randomize_bn(get_model(name, num_classes=5, **kwargs))


# ------------------------------------------------------------------ fusion

@pytest.mark.parametrize("name,kwargs,size", ZOO, ids=[z[0] for z in ZOO])
def test_fused_float_model_computes_exactly_the_unfused_model(name, kwargs, size):
    model = _zoo(name, kwargs)
    fused_model = fuse_known_patterns(model)
    assert any(isinstance(m, fused.FusedModule) for m in fused_model.modules())
    x = Tensor(_x((2, 3, size, size)))
    assert np.array_equal(fused_model.eval()(x).data, model.eval()(x).data)
    # training mode too (batch statistics; running statistics updated identically)
    a, b = copy.deepcopy(model).train(), copy.deepcopy(fused_model).train()
    manual_seed(3)          # the same dropout masks
    out_a = a(x).data
    manual_seed(3)
    assert np.array_equal(out_a, b(x).data)
    stats_a = [t.data for n, t in a.named_buffers() if "running" in n]
    stats_b = [t.data for n, t in b.named_buffers() if "running" in n]
    assert all(np.array_equal(u, v) for u, v in zip(stats_a, stats_b)) and len(stats_a) == len(stats_b)


def test_known_patterns_in_a_residual_block():
    model = get_model("resnet_small", depth=8, width=0.25)
    groups = find_fusable(model)
    assert ["conv1", "bn1", "relu"] in groups
    assert ["layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu1"] in groups
    assert ["layer1.0.conv2", "layer1.0.bn2"] in groups
    assert ["layer1.0.add", "layer1.0.relu_out"] in groups
    assert ["layer2.0.downsample.0", "layer2.0.downsample.1"] in groups
    fused_model = fuse_known_patterns(model)
    block = fused_model.layer1[0]
    assert type(block.conv1) is fused.ConvBnReLU2d and type(block.conv2) is fused.ConvBn2d
    assert type(block.add) is fused.AddReLU and isinstance(block.relu_out, fused.FusedAway)
    assert type(model.layer1[0].conv1) is nn.Conv2d     # not in place by default
    mobilenet = fuse_known_patterns(get_model("mobilenet_v2", width=0.25, input_size=32))
    assert type(mobilenet.features[0][0]) is fused.ConvBnReLU62d
    assert type(mobilenet.features[2].conv[2]) is fused.ConvBn2d      # the linear bottleneck


def test_explicit_fusion_and_bad_patterns():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    fused_model = fuse_modules(model, [["0", "1"]])
    assert type(fused_model[0]) is fused.LinearReLU
    x = Tensor(_x((2, 4)))
    assert np.array_equal(fused_model(x).data, model(x).data)
    with pytest.raises(QuantError, match=r"'1' \(ReLU\) \+ '2' \(Linear\)"):
        fuse_modules(model, [["1", "2"]])
    with pytest.raises(QuantError, match="not a submodule"):
        fuse_modules(model, [["0", "nope"]])


class _OutOfOrder(nn.Module):
    """Registers conv, bn in order but does not apply bn to conv's output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        return self.conv(self.bn(x))


def test_fusion_guard_reports_a_dataflow_that_is_not_a_chain():
    model = fuse_known_patterns(_OutOfOrder())
    with pytest.raises(QuantError, match="fusion of 'conv'"):
        model(Tensor(_x((1, 2, 3, 3))))


# ------------------------------------------------------------------ BN folding

def _calibrated(model, size, batches=2, **kwargs):
    q = quant.quantize_qat(model, **kwargs)
    quant.calibrate(q, [_x((2, 3, size, size), seed=10 + i) for i in range(batches)])
    return q


@pytest.mark.parametrize("name,kwargs,size", ZOO[:4], ids=[z[0] for z in ZOO[:4]])
def test_qat_eval_without_fake_quant_equals_float_eval(name, kwargs, size):
    model = _zoo(name, kwargs).eval()
    q = _calibrated(model, size).eval()
    quant.disable_fake_quant(q)
    x = Tensor(_x((2, 3, size, size)))
    ref = model(x).data
    np.testing.assert_allclose(q(x).data, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def _conv_bn(gamma):
    manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4))
    model[1].weight.data[...] = gamma
    model[1].bias.data[...] = [0.1, -0.2, 0.3, 0.0]
    model[1].running_var.data[...] = [1.5, 0.7, 1.0, 2.0]
    return model


@pytest.mark.parametrize("gamma", [[1.2, 0.8, -0.5, 1.0], [1.2, 0.0, -0.5, 0.0]], ids=["gamma", "zero-gamma"])
def test_conv_bn_training_with_fake_quant_off_is_conv_then_batch_norm(gamma):
    model = _conv_bn(gamma).train()
    q = quant.quantize_qat(model).train()
    quant.disable_fake_quant(q)
    x = _x((4, 3, 5, 5))
    ref, out = model(Tensor(x)), q(Tensor(x))
    np.testing.assert_allclose(out.data, ref.data, rtol=1e-4, atol=1e-4)
    bn, qbn = model[1], q.model[0].bn
    np.testing.assert_allclose(qbn.running_mean.data, bn.running_mean.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(qbn.running_var.data, bn.running_var.data, rtol=1e-5, atol=1e-6)
    # gradients reach the conv weight and BN gamma (also where gamma is 0)
    g = _x(ref.shape, seed=3)
    (ref * Tensor(g)).sum().backward()
    (out * Tensor(g)).sum().backward()
    np.testing.assert_allclose(q.model[0].bn.weight.grad, bn.weight.grad, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(q.model[0].conv.weight.grad, model[0].weight.grad, rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------ eval = exact integer arithmetic

def test_qat_conv_bn_relu_eval_is_the_integer_computation_written_out():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    _randomize_bn(model)
    q = _calibrated(model, 7).eval()
    layer, stub = q.model[0], q.quant
    x = _x((2, 3, 7, 7))
    out = q.model(q.quant(Tensor(x)))
    # every step by hand
    qp_x, qp_w, qp_y = stub.act_fake_quant.qparams(), layer.weight_fake_quant.qparams(), layer.act_fake_quant.qparams()
    bn = model[1]
    factor = bn.weight.data.astype(np.float64) / np.sqrt(bn.running_var.data.astype(np.float64) + bn.eps)
    w_fold = (model[0].weight.data * factor[:, None, None, None]).astype(np.float32)
    b_fold = (bn.bias.data - bn.running_mean.data * factor).astype(np.float32)
    q_x = np.clip(np.rint(x / qp_x.scale) + qp_x.zero_point, -128, 127)
    s_w = qp_w.scale.astype(np.float64)
    q_w = np.clip(np.rint(w_fold / qp_w.scale[:, None, None, None]), -127, 127)
    acc = F.conv2d(Tensor(q_x - qp_x.zero_point, dtype=np.float64), Tensor(q_w, dtype=np.float64),
                   stride=2, padding=1).data + np.rint(b_fold / (float(qp_x.scale) * s_w))[None, :, None, None]
    acc = acc.astype(np.int64)
    M = float(qp_x.scale) * s_w / float(qp_y.scale)
    e = np.floor(np.log2(M)).astype(np.int64) + 1
    m = np.rint(M / 2.0 ** e * 2 ** 31).astype(np.int64)
    n = 31 - e
    y = (acc * m[None, :, None, None] + (1 << (n - 1))[None, :, None, None]) >> n[None, :, None, None]
    codes = np.clip(y + int(qp_y.zero_point), max(-128, int(qp_y.zero_point)), 127)
    assert out.qparams == qp_y
    assert np.array_equal(spec.codes_of(out.data, qp_y), codes)
    assert np.array_equal(out.data, spec.dequantize(codes, qp_y))


def test_eval_mode_freezes_observers_and_calibration_moves_them():
    q = _calibrated(_zoo("small_cnn", ZOO[0][1]), 16)
    before = {k: v.copy() for k, v in q.state_dict().items()}
    q.eval()(Tensor(_x((2, 3, 16, 16), seed=5, scale=3.0)))
    assert all(np.array_equal(before[k], v) for k, v in q.state_dict().items())
    quant.calibrate(q, [_x((2, 3, 16, 16), seed=6, scale=3.0)])
    assert not np.array_equal(before["quant.act_fake_quant.observer.max_val"],
                              q.state_dict()["quant.act_fake_quant.observer.max_val"])


def test_training_forward_is_close_to_eval_forward():
    q = _calibrated(_zoo("small_cnn", ZOO[0][1]), 16)
    quant.disable_observer(q)
    x = Tensor(_x((2, 3, 16, 16), seed=10))
    q.eval()
    ref = q(x).data
    # eval with observers frozen but through the float fake-quant path (as in training)
    with quant.qat.module.float_path():
        float_path = q(x).data
    step = float(q.model.fc.act_fake_quant.qparams().scale)
    assert np.abs(float_path - ref).max() <= 2 * step


# ------------------------------------------------------------------ training

def _toy_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    y = (x[:, 0].mean(axis=(1, 2)) > 0).astype(np.int64) + 2 * (x[:, 1].mean(axis=(1, 2)) > 0)
    return x, y


@pytest.mark.parametrize("qconfig", ["ema", "lsq", "tqt"])
def test_a_few_qat_steps_reduce_the_loss(qconfig):
    manual_seed(0)
    model = get_model("small_cnn", in_channels=3, width=0.5, input_size=8, num_classes=4)
    x, y = _toy_problem()
    q = quant.quantize_qat(model, qconfig=qconfig)
    quant.calibrate(q, [x[:8]])
    q.train()
    learned = {id(p) for n, p in q.named_parameters() if n.endswith(("scale", "log2_t"))}
    # Learned scales take a smaller step, as usual for LSQ / TQT with Adam.
    opt = Adam([{"params": [p for p in q.parameters() if id(p) not in learned]},
                {"params": [p for p in q.parameters() if id(p) in learned], "lr": 1e-4}], lr=3e-3)
    losses = []
    for _ in range(6):
        loss = F.cross_entropy(q(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        if not losses:
            assert np.abs(q.model.features[0][0].conv.weight.grad).max() > 0
            learned = [p for n, p in q.named_parameters() if n.endswith(("scale", "log2_t"))]
            assert (len(learned) > 0) == (qconfig != "ema")
            assert all(p.grad is not None and np.abs(p.grad).max() > 0 for p in learned)
        opt.step()
        losses.append(float(loss.data))
    assert losses[-1] < losses[0]
    qmodel = quant.quantize(q.eval())      # and it still converts bit-exactly after training
    assert np.array_equal(q(Tensor(x)).data, qmodel(Tensor(x)).data)


def test_zero_initialised_residual_gamma_learns():
    manual_seed(0)
    model = get_model("resnet_small", depth=8, width=0.25, num_classes=4, zero_init_residual=True)
    x, y = _toy_problem(1)
    x = np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)
    q = quant.quantize_qat(model)
    q.train()
    gamma = q.model.layer1[0].conv2.bn.weight
    assert np.all(gamma.data == 0)
    opt = SGD(q.parameters(), lr=0.05)
    for _ in range(2):
        loss = F.cross_entropy(q(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert np.all(np.isfinite(gamma.data)) and np.abs(gamma.data).max() > 0


# ------------------------------------------------------------------ tracing the QAT model

def test_traced_qat_model_is_a_qdq_graph_close_to_eval():
    q = _calibrated(_zoo("resnet_small", ZOO[1][1]), 16).eval()
    x = _x((2, 3, 16, 16))
    graph = trace(q, Tensor(x))
    ops = [n.op for n in graph.nodes]
    assert "quantize" in ops and "dequantize" in ops and "conv2d" in ops
    out = run_graph(graph, {"input": x})["output"]
    step = float(q.model.fc.act_fake_quant.qparams().scale)
    assert np.abs(out - q(Tensor(x)).data).max() <= 2 * step


def test_a_qconfig_set_on_a_fused_layer_survives_fusion():
    model = get_model("resnet_small", depth=8, width=0.25)
    model.layer1[0].conv1.qconfig = None
    q = quant.quantize_qat(model)
    island = q.model.layer1[0].conv1
    assert isinstance(island, quant.qat.FloatIsland) and type(island.module) is fused.ConvBnReLU2d
    quant.calibrate(q, [_x((2, 3, 16, 16))])
    qmodel = quant.quantize(q.eval())
    x = Tensor(_x((2, 3, 16, 16), seed=1))
    assert np.array_equal(q(x).data, qmodel(x).data)
