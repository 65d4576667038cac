"""Fake quantization: exact forward values, STE / LSQ / TQT gradients, flags, state, tracing."""
import math

import numpy as np
import pytest

from yuan.compiler.ir import run_graph
from yuan.frontend import functional as F
from yuan.frontend import nn
from yuan.frontend.optim import SGD
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from yuan.quant import spec
from yuan.quant.errors import QuantError
from yuan.quant.fake_quant import FakeQuantize, LSQFakeQuantize, TQTFakeQuantize
from yuan.quant.observers import MinMaxObserver, MovingAverageMinMaxObserver, PassiveObserver


def _rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# Hand-worked example shared by the LSQ and TQT tests: 4-bit signed, s = 0.5, z = 0,
# grid [-8, 7] * 0.5 = [-4, 3.5].
HAND_X = np.array([0.2, 0.74, -3.3, 5.0, -4.2, 1.25], np.float32)
HAND_G = np.array([1, 2, 3, 4, 5, 6], np.float32)
HAND_Y = np.array([0.0, 0.5, -3.5, 3.5, -4.0, 1.0], np.float32)       # 2.5 rounds to 2 (half even)
HAND_INSIDE = np.array([1, 1, 1, 0, 0, 1], np.float32)
# round(x/s) - x/s inside, qmin / qmax at the clamps, weighted by HAND_G:
# -0.4*1 - 0.48*2 - 0.4*3 + 7*4 - 8*5 - 0.5*6 = -17.56
HAND_GRID_SUM = -17.56


# ---------------------------------------------------------------- FakeQuantize

@pytest.mark.parametrize("kwargs", [
    {},                                                                  # EMA, asymmetric int8
    {"symmetric": True, "narrow_range": True, "axis": 0},               # weight style
    {"bits": 4},
    {"bits": 4, "symmetric": True, "narrow_range": True, "axis": 1},
    {"signed": False},
])
def test_forward_is_exactly_spec_fake_quantize(kwargs):
    fq = FakeQuantize(MovingAverageMinMaxObserver, **kwargs)
    for seed in range(3):
        x = _rand(4, 3, 5, seed=seed, scale=2.0)
        y = fq(Tensor(x))
        qp = fq.qparams()
        assert y.qparams == qp
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y.data, spec.fake_quantize(x, qp))
    assert fq.bits == kwargs.get("bits", 8) and fq.axis == kwargs.get("axis")


def test_ste_passes_gradient_only_inside_the_grid():
    fq = FakeQuantize(PassiveObserver, scale=0.1, zero_point=-3)   # grid [(-128+3)*0.1, (127+3)*0.1]
    x = np.array([-12.6, -12.5, -12.4, 0.0, 12.95, 13.0, 13.05, 20.0], np.float32)
    t = Tensor(x, requires_grad=True)
    w = np.arange(1, 9, dtype=np.float32)
    (fq(t) * Tensor(w)).sum().backward()
    low, high = (-128 + 3) * 0.1, (127 + 3) * 0.1
    inside = (x >= np.float32(low)) & (x <= np.float32(high))
    np.testing.assert_array_equal(inside, [0, 1, 1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(t.grad, w * inside)


def test_per_channel_ste_mask():
    fq = FakeQuantize(PassiveObserver, scale=[0.01, 1.0], axis=0, symmetric=True, narrow_range=True)
    x = np.array([[0.5, 2.0], [0.5, 200.0]], np.float32)   # channel 0 clips at 1.27, channel 1 at 127
    t = Tensor(x, requires_grad=True)
    fq(t).sum().backward()
    np.testing.assert_array_equal(t.grad, [[1, 0], [1, 0]])


def test_flags_disable_fake_quant_and_observer():
    fq = FakeQuantize(MinMaxObserver)
    fq.enable_fake_quant(False)
    x = Tensor(_rand(8))
    assert fq(x) is x                      # unchanged ...
    assert fq.observer.has_data()          # ... but observed
    fq.enable_fake_quant()
    fq.enable_observer(False)
    assert not fq.observer_enabled and not fq.observer.enabled
    before = fq.observer.state_dict()
    fq(Tensor(_rand(8, seed=1, scale=10.0)))
    for k, v in fq.observer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    fq.observer_enabled = True
    assert fq.observer.enabled


def test_observes_in_eval_mode_while_enabled():
    fq = FakeQuantize(MinMaxObserver).eval()
    fq(Tensor(np.array([-1.0, 1.0], np.float32)))
    fq(Tensor(np.array([-3.0, 1.0], np.float32)))
    assert float(fq.observer.min_val.data) == -3.0


def test_observer_by_registry_name_and_state_dict():
    fq = FakeQuantize("minmax", bits=4, symmetric=True)
    assert isinstance(fq.observer, MinMaxObserver) and fq.bits == 4
    fq(Tensor(_rand(10)))
    assert set(fq.state_dict()) == {"observer.min_val", "observer.max_val"}
    other = FakeQuantize("minmax", bits=4, symmetric=True)
    other.load_state_dict(fq.state_dict())
    assert other.qparams() == fq.qparams()


def test_float64_input_keeps_dtype_and_values():
    fq = FakeQuantize(PassiveObserver, scale=0.25)
    x = np.array([0.3, -1.1, 9.0], np.float64)
    y = fq(Tensor(x, dtype=np.float64))
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y.data, spec.fake_quantize(x, fq.qparams()))


# ---------------------------------------------------------------- LSQ

def _lsq_with_scale(scale, **kwargs):
    fq = LSQFakeQuantize(MinMaxObserver, **kwargs)
    fq(Tensor(np.ones(1, np.float32)))  # initialises (observer range [0, 1]), then override
    fq.scale.data[...] = scale
    return fq


def test_lsq_hand_computed_gradients():
    fq = _lsq_with_scale(0.5, bits=4, symmetric=True)
    x = Tensor(HAND_X, requires_grad=True)
    y = fq(x)
    np.testing.assert_array_equal(y.data, HAND_Y)
    np.testing.assert_array_equal(y.data, spec.fake_quantize(HAND_X, fq.qparams()))
    (y * Tensor(HAND_G)).sum().backward()
    np.testing.assert_array_equal(x.grad, HAND_G * HAND_INSIDE)
    expected = HAND_GRID_SUM / math.sqrt(6 * 7)          # grad scale 1 / sqrt(numel * qmax)
    assert np.isclose(float(fq.scale.grad), expected, rtol=1e-6)


def test_lsq_asymmetric_gradient_uses_zero_point():
    fq = _lsq_with_scale(0.5, bits=4)                     # observer on ones: z = qmin = -8
    assert int(fq.zero_point.data) == -8                  # grid [0, 15] * 0.5 = [0, 7.5]
    x = np.array([-1.0, 0.3, 8.0], np.float32)
    t = fq.scale
    (fq(Tensor(x))).sum().backward()
    # below: qmin - z = 0; inside: round(0.6) - 0.6 = 0.4; above: qmax - z = 15
    assert np.isclose(float(t.grad), (0 + 0.4 + 15) / math.sqrt(3 * 7), rtol=1e-6)


def test_lsq_per_channel_gradient_vs_finite_differences_of_surrogate():
    """LSQ's scale gradient is the derivative of the surrogate s * clamp(x/s + d0) with
    d0 = round(x/s0) - x/s0 held fixed (the straight-through round); check it with
    central differences, channel by channel."""
    x = _rand(3, 40, seed=3, scale=1.5)
    w = _rand(3, 40, seed=4)
    s0 = np.array([0.3, 0.25, 0.4], np.float32)
    fq = LSQFakeQuantize(MinMaxObserver, bits=4, symmetric=True, narrow_range=True, axis=0)
    fq(Tensor(x))
    fq.scale.data[...] = s0
    (fq(Tensor(x)) * Tensor(w)).sum().backward()

    x64, s64 = x.astype(np.float64), s0.astype(np.float64)[:, None]
    d0 = np.rint(x64 / s64) - x64 / s64
    below, above = x64 / s64 < -7, x64 / s64 > 7

    def surrogate(s):
        s = s[:, None]
        value = np.where(below, -7 * s, np.where(above, 7 * s, x64 + s * d0))
        return float(np.sum(value * w))

    eps = 1e-4
    numeric = np.array([(surrogate(s64[:, 0] + eps * np.eye(3)[c]) - surrogate(s64[:, 0] - eps * np.eye(3)[c]))
                        / (2 * eps) for c in range(3)])
    grad_scale = 1 / np.sqrt(40 * 7)                      # numel per channel
    np.testing.assert_allclose(fq.scale.grad, numeric * grad_scale, rtol=1e-4, atol=1e-7)
    assert fq.scale.grad.shape == (3,)


def test_lsq_initialisation_options():
    x = _rand(2, 50, seed=5)
    from_observer = LSQFakeQuantize(MinMaxObserver, symmetric=True, narrow_range=True, axis=0)
    from_observer(Tensor(x))
    expected = (np.abs(x).max(axis=1).astype(np.float64) / 127).astype(np.float32)
    np.testing.assert_array_equal(from_observer.scale.data, expected)

    paper = LSQFakeQuantize(MinMaxObserver, init="lsq", bits=4, symmetric=True, narrow_range=True, axis=0)
    paper(Tensor(x))
    np.testing.assert_allclose(paper.scale.data, 2 * np.abs(x).mean(axis=1) / np.sqrt(7), rtol=1e-6)
    with pytest.raises(QuantError, match="init"):
        LSQFakeQuantize(init="max")


def test_lsq_initialises_from_calibration_then_learns():
    fq = LSQFakeQuantize(MinMaxObserver, symmetric=True)
    fq.enable_fake_quant(False)
    fq(Tensor(np.array([-1.0, 1.0], np.float32)))
    fq(Tensor(np.array([-4.0, 2.0], np.float32)))         # calibration: max |x| = 4
    assert not fq.is_initialized
    fq.enable_fake_quant()
    fq(Tensor(np.array([0.1], np.float32)))
    assert fq.is_initialized and float(fq.scale.data) == np.float32(4.0 / 127.5)
    fq(Tensor(np.array([100.0], np.float32)))             # later batches do not move the scale
    assert float(fq.scale.data) == np.float32(4.0 / 127.5)


def test_lsq_sgd_reduces_quantization_error():
    x = _rand(2000, seed=6)
    fq = LSQFakeQuantize(MinMaxObserver, bits=4, symmetric=True)
    fq(Tensor(x))
    fq.scale.data[...] = 1.0                              # far too coarse
    opt = SGD([fq.scale], lr=20.0)  # large: the LSQ gradient scale is 1/sqrt(2000 * 7)
    errors = []
    for _ in range(30):
        opt.zero_grad()
        diff = fq(Tensor(x)) - Tensor(x)
        loss = (diff * diff).mean()
        loss.backward()
        opt.step()
        errors.append(loss.item())
    assert errors[-1] < 0.5 * errors[0]
    np.testing.assert_array_equal(fq(Tensor(x)).data, spec.fake_quantize(x, fq.qparams()))


def test_lsq_state_dict_round_trip_does_not_reinitialise():
    fq = LSQFakeQuantize(MovingAverageMinMaxObserver, axis=0, symmetric=True)
    fq(Tensor(_rand(3, 4)))
    fq.scale.data[...] = [0.1, 0.2, 0.3]
    state = fq.state_dict()
    assert set(state) == {"scale", "zero_point", "initialized", "observer.min_val", "observer.max_val"}
    fresh = LSQFakeQuantize(MovingAverageMinMaxObserver, axis=0, symmetric=True).materialize(3)
    fresh.load_state_dict(state)
    fresh(Tensor(_rand(3, 4, seed=9, scale=50.0)))
    np.testing.assert_array_equal(fresh.scale.data, np.float32([0.1, 0.2, 0.3]))
    assert fresh.qparams() == fq.qparams()


def test_lsq_scale_is_clamped_positive():
    fq = _lsq_with_scale(-1.0, symmetric=True)
    y = fq(Tensor(np.array([1e-9, 1.0], np.float32)))
    assert float(fq.qparams().scale) == np.float32(1e-8)
    np.testing.assert_array_equal(y.data, spec.fake_quantize(np.array([1e-9, 1.0], np.float32), fq.qparams()))


# ---------------------------------------------------------------- TQT

def test_tqt_power_of_two_scale_and_hand_gradient():
    fq = TQTFakeQuantize(MinMaxObserver, bits=4)
    fq(Tensor(np.array([1.0], np.float32)))
    fq.log2_t.data[...] = 1.3                              # ceil -> 2: s = 2^2 / 2^3 = 0.5
    assert float(fq.qparams().scale) == 0.5 and int(fq.qparams().zero_point) == 0
    x = Tensor(HAND_X, requires_grad=True)
    y = fq(x)
    np.testing.assert_array_equal(y.data, HAND_Y)
    (y * Tensor(HAND_G)).sum().backward()
    np.testing.assert_array_equal(x.grad, HAND_G * HAND_INSIDE)
    assert np.isclose(float(fq.log2_t.grad), 0.5 * math.log(2) * HAND_GRID_SUM, rtol=1e-6)


def test_tqt_initialises_from_max_abs():
    fq = TQTFakeQuantize(MovingAverageMinMaxObserver)      # made symmetric by TQT
    fq(Tensor(np.array([-3.0, 1.0], np.float32)))
    assert fq.symmetric
    assert np.isclose(float(fq.log2_t.data), np.log2(3.0), rtol=1e-6)
    assert float(fq.qparams().scale) == 4.0 / 128          # 2^ceil(log2 3) / 2^7


def test_tqt_gradient_vs_finite_differences_of_surrogate():
    x = _rand(200, seed=8, scale=2.0)
    w = _rand(200, seed=9)
    fq = TQTFakeQuantize(MinMaxObserver, bits=4, narrow_range=True)
    fq(Tensor(x))
    l0 = 0.6                                               # s = 2^1 / 8 = 0.25, grid [-1.75, 1.75]
    fq.log2_t.data[...] = l0
    (fq(Tensor(x)) * Tensor(w)).sum().backward()
    x64 = x.astype(np.float64)
    s0 = 2.0 ** math.ceil(l0) / 8
    d0 = np.rint(x64 / s0) - x64 / s0
    below, above = x64 / s0 < -7, x64 / s0 > 7

    def surrogate(l):  # ceil replaced by a straight-through shift
        s = 2.0 ** (l + math.ceil(l0) - l0) / 8
        return float(np.sum(np.where(below, -7 * s, np.where(above, 7 * s, x64 + s * d0)) * w))

    eps = 1e-5
    numeric = (surrogate(l0 + eps) - surrogate(l0 - eps)) / (2 * eps)
    assert below.any() and above.any()
    assert np.isclose(float(fq.log2_t.grad), numeric, rtol=1e-4)


# ---------------------------------------------------------------- low bit widths

@pytest.mark.parametrize("make", [
    lambda: FakeQuantize(MovingAverageMinMaxObserver, bits=4),
    lambda: LSQFakeQuantize(MinMaxObserver, bits=4, symmetric=True, narrow_range=True, axis=0, init="lsq"),
    lambda: TQTFakeQuantize(MinMaxObserver, bits=4, axis=0),
])
def test_four_bit_values_lie_on_the_grid(make):
    fq = make()
    x = _rand(3, 64, seed=10)
    t = Tensor(x, requires_grad=True)
    y = fq(t)
    qp = y.qparams
    np.testing.assert_array_equal(y.data, spec.fake_quantize(x, qp))
    codes = spec.quantize(x, qp).astype(np.int64)
    assert codes.min() >= qp.qmin >= -8 and codes.max() <= qp.qmax <= 7
    assert len(np.unique(codes)) <= 16
    y.sum().backward()
    assert t.grad is not None


# ---------------------------------------------------------------- tracing

class _QLinear(nn.Module):
    def __init__(self, act_fq, weight_fq):
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.in_fq = act_fq()
        self.w_fq = weight_fq()
        self.out_fq = act_fq()

    def forward(self, x):
        return self.out_fq(F.linear(self.in_fq(x), self.w_fq(self.fc.weight), self.fc.bias))


def _calibrated(act_fq, weight_fq):
    m = _QLinear(act_fq, weight_fq)
    for seed in range(3):
        m(Tensor(_rand(5, 6, seed=seed)))
    return m


def _set_observers(model, flag):
    for module in model.modules():
        if hasattr(module, "enable_observer"):
            module.enable_observer(flag)


@pytest.mark.parametrize("bits", [8, 4])
def test_traced_fake_quant_is_a_qdq_graph_with_identical_numbers(bits):
    def act():
        return FakeQuantize(MovingAverageMinMaxObserver, bits=bits)

    def weight():
        return FakeQuantize(MinMaxObserver, bits=bits, symmetric=True, narrow_range=True, axis=0)

    m = _calibrated(act, weight)
    _set_observers(m, False)
    m.eval()
    x = _rand(5, 6, seed=11, scale=1.5)
    eager = m(Tensor(x)).data
    graph = trace(m, Tensor(x))
    assert [n.op for n in graph.nodes] == ["quantize", "dequantize", "quantize", "dequantize",
                                           "linear", "quantize", "dequantize"]
    w_quant = graph.nodes[2]
    assert w_quant.attrs == {"axis": 0, "bits": bits, "signed": 1, "narrow_range": 1}
    np.testing.assert_array_equal(graph.constants[w_quant.inputs[1]], m.w_fq.qparams().scale)
    assert graph.nodes[0].attrs["axis"] is None and graph.nodes[0].attrs["narrow_range"] == 0
    assert graph.values[graph.nodes[0].outputs[0]].quant == m.in_fq.qparams()
    np.testing.assert_array_equal(run_graph(graph, {"input": x})["output"], eager)


def test_tracing_leaves_enabled_observers_untouched():
    m = _calibrated(lambda: FakeQuantize(MovingAverageMinMaxObserver),
                    lambda: FakeQuantize(MinMaxObserver, symmetric=True, narrow_range=True, axis=0))
    before = m.state_dict()
    graph = trace(m, Tensor(_rand(5, 6, seed=12, scale=30.0)))
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    x = _rand(5, 6, seed=13)
    _set_observers(m, False)
    np.testing.assert_array_equal(run_graph(graph, {"input": x})["output"], m.eval()(Tensor(x)).data)


@pytest.mark.parametrize("fq_class", [LSQFakeQuantize, TQTFakeQuantize])
def test_traced_learned_fake_quant_matches_eager(fq_class):
    m = _calibrated(lambda: fq_class(MovingAverageMinMaxObserver),
                    lambda: fq_class(MinMaxObserver, symmetric=True, narrow_range=True, axis=0))
    m.eval()
    x = _rand(5, 6, seed=14)
    graph = trace(m, Tensor(x))
    np.testing.assert_array_equal(run_graph(graph, {"input": x})["output"], m(Tensor(x)).data)
    if fq_class is LSQFakeQuantize:  # the learned scale is the named graph constant
        assert graph.nodes[0].inputs[1] == "in_fq.scale"


def test_tracing_an_uninitialised_learned_fake_quant_raises():
    m = _QLinear(LSQFakeQuantize, lambda: LSQFakeQuantize(MinMaxObserver, symmetric=True, axis=0))
    with pytest.raises(QuantError, match="not initialised"):
        trace(m, Tensor(_rand(5, 6)))
