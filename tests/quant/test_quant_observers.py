"""Observers: statistics, qparams, per-channel, histogram searches, errors, state dicts."""

import numpy as np
import pytest

from yuan.compiler.ir import QuantParams
from yuan.frontend import nn
from yuan.frontend.nn import StateDictError
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from yuan.quant import spec
from yuan.quant.errors import QuantError
from yuan.quant.observers import (HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
                             PassiveObserver, PercentileObserver, entropy_divergences,
                             expected_sq_error)


def _rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _mse(x, qp):
    return float(np.mean((spec.fake_quantize(x, qp).astype(np.float64) - x) ** 2))


def _affine_by_hand(lo, hi, qmin=-128, qmax=127):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = np.float32((hi - lo) / (qmax - qmin))
    zero = int(np.clip(qmin - np.rint(lo / np.float64(scale)), qmin, qmax))
    return scale, zero


# ---------------------------------------------------------------- min/max family

def test_minmax_running_min_max_and_affine_qparams():
    obs = MinMaxObserver()
    obs(Tensor(np.array([-1.0, 0.5, 2.0], np.float32)))
    obs(Tensor(np.array([[-0.25, 3.0]], np.float32)))
    obs.observe(np.array([-2.5, 1.0], np.float32))
    assert float(obs.min_val.data) == -2.5 and float(obs.max_val.data) == 3.0
    qp = obs.qparams()
    scale, zero = _affine_by_hand(-2.5, 3.0)
    assert qp.scale == scale and int(qp.zero_point) == zero and qp.axis is None
    assert (qp.bits, qp.signed, qp.narrow_range) == (8, True, False)


def test_minmax_positive_data_keeps_zero_exact():
    obs = MinMaxObserver()
    obs.observe(np.array([1.0, 4.0], np.float32))  # range widened to [0, 4]
    qp = obs.qparams()
    assert qp.scale == np.float32(4.0 / 255) and int(qp.zero_point) == -128
    assert spec.fake_quantize(np.float32(0.0), qp) == 0.0


def test_moving_average_matches_hand_ema():
    obs = MovingAverageMinMaxObserver(momentum=0.75)
    batches = [np.array([-1.0, 2.0]), np.array([-3.0, 1.0]), np.array([0.5, 4.0])]
    for b in batches:
        obs(Tensor(b.astype(np.float32)))
    lo, hi = -1.0, 2.0                     # first batch initialises
    for b in batches[1:]:
        lo, hi = 0.75 * lo + 0.25 * b.min(), 0.75 * hi + 0.25 * b.max()
    assert np.isclose(lo, -1.0) and np.isclose(hi, 2.3125)   # -1 -> -1.5 -> -1.0; 2 -> 1.75 -> 2.3125
    assert np.isclose(float(obs.min_val.data), lo, rtol=1e-6)
    assert np.isclose(float(obs.max_val.data), hi, rtol=1e-6)


def test_default_momentum_is_0_9():
    obs = MovingAverageMinMaxObserver()
    obs.observe(np.array([0.0, 1.0], np.float32))
    obs.observe(np.array([0.0, 2.0], np.float32))
    assert np.isclose(float(obs.max_val.data), 1.1)


def test_per_channel_min_max_over_other_axes():
    x = _rand(3, 2, 4)
    obs = MinMaxObserver(symmetric=True, narrow_range=True, axis=0)
    obs(Tensor(x))
    np.testing.assert_array_equal(obs.min_val.data, [x[c].min() for c in range(3)])
    np.testing.assert_array_equal(obs.max_val.data, [x[c].max() for c in range(3)])
    qp = obs.qparams()
    amax = np.abs(x).reshape(3, -1).max(axis=1).astype(np.float64)
    np.testing.assert_array_equal(qp.scale, (amax / 127).astype(np.float32))
    assert qp.axis == 0 and qp.scale.shape == (3,) and np.all(qp.zero_point == 0)

    obs1 = MovingAverageMinMaxObserver(axis=1)
    obs1.observe(x)
    np.testing.assert_array_equal(obs1.max_val.data, [x[:, c].max() for c in range(2)])


def test_per_channel_running_update_and_channel_mismatch():
    obs = MinMaxObserver(axis=0)
    a, b = _rand(2, 5, seed=1), _rand(2, 5, seed=2)
    obs.observe(a)
    obs.observe(b)
    np.testing.assert_array_equal(obs.max_val.data, np.maximum(a.max(1), b.max(1)))
    with pytest.raises(QuantError, match="3 channels"):
        obs.observe(_rand(3, 5))
    with pytest.raises(QuantError, match="axis"):
        MinMaxObserver(axis=2).observe(_rand(4, 4))


def test_four_bit_observer_range():
    obs = MinMaxObserver(bits=4, symmetric=True, narrow_range=True)
    obs.observe(np.array([-0.7, 0.35], np.float32))
    qp = obs.qparams()
    assert (qp.qmin, qp.qmax) == (-7, 7) and qp.scale == np.float32(0.7 / 7)
    obs2 = MinMaxObserver(bits=4)
    obs2.observe(np.array([-1.0, 2.0], np.float32))
    assert obs2.qparams().qmin == -8 and obs2.qparams().scale == np.float32(3.0 / 15)


def test_all_zero_input_gives_usable_qparams():
    for obs in (MinMaxObserver(), HistogramObserver(), PercentileObserver()):
        obs.observe(np.zeros(10, np.float32))
        qp = obs.qparams()
        assert qp.scale > 0 and np.all(spec.fake_quantize(np.zeros(3, np.float32), qp) == 0)


# ---------------------------------------------------------------- forward, flags, errors

def test_forward_returns_input_and_records_nothing_when_traced():
    class Watch(nn.Module):
        def __init__(self):
            super().__init__()
            self.obs = MinMaxObserver()

        def forward(self, x):
            return self.obs(x)

    m = Watch()
    t = Tensor(_rand(2, 3), requires_grad=True)
    assert m(t) is t
    before = m.obs.state_dict()
    graph = trace(m, Tensor(_rand(2, 3, seed=5) * 100))
    assert [n.op for n in graph.nodes] == ["identity"]
    for k, v in m.obs.state_dict().items():  # tracing does not update the statistics
        np.testing.assert_array_equal(v, before[k])


def test_enable_disable_and_reset():
    obs = MinMaxObserver()
    obs.enable(False)
    assert not obs.enabled
    obs(Tensor(np.ones(3, np.float32)))
    obs.observe(np.ones(3, np.float32))
    assert not obs.has_data()
    obs.observe(np.ones(3, np.float32), force=True)
    assert obs.has_data()
    obs.enable()
    obs.reset()
    with pytest.raises(QuantError, match="MinMaxObserver has seen no data"):
        obs.qparams()


@pytest.mark.parametrize("make", [MinMaxObserver, MovingAverageMinMaxObserver, HistogramObserver,
                                  PercentileObserver, lambda: MinMaxObserver(axis=0),
                                  lambda: PassiveObserver(0.1)])
def test_nan_inf_and_empty_inputs_raise(make):
    obs = make()
    name = type(obs).__name__
    for bad in (np.array([1.0, np.nan], np.float32), np.array([[np.inf, 0.0]], np.float32)):
        with pytest.raises(QuantError, match=f"{name}.*NaN/inf"):
            obs(Tensor(bad))
    with pytest.raises(QuantError, match=f"{name}.*empty"):
        obs.observe(np.zeros((0, 3), np.float32))


def test_no_data_raises_for_every_statistical_observer():
    for obs in (MinMaxObserver(), MovingAverageMinMaxObserver(axis=0), HistogramObserver(), PercentileObserver()):
        with pytest.raises(QuantError, match="seen no data"):
            obs.qparams()


def test_bad_configuration_raises():
    with pytest.raises(QuantError):
        MinMaxObserver(bits=1)
    with pytest.raises(QuantError, match="per-tensor only"):
        HistogramObserver(axis=0)
    with pytest.raises(QuantError, match="method"):
        HistogramObserver(method="l1")
    with pytest.raises(QuantError, match="momentum"):
        MovingAverageMinMaxObserver(momentum=1.0)
    with pytest.raises(QuantError, match="percentile"):
        PercentileObserver(percentile=20)
    with pytest.raises(QuantError, match="PassiveObserver"):
        PassiveObserver(scale=-1.0)


# ---------------------------------------------------------------- state dict

def _round_trip(make, data, materialize=None):
    obs = make()
    for d in data:
        obs.observe(d)
    fresh = make()
    if materialize:
        fresh.materialize(materialize)
    fresh.load_state_dict(obs.state_dict())
    assert fresh.qparams() == obs.qparams()
    return obs, fresh


def test_state_dict_round_trip():
    data = [_rand(4, 6, seed=1), _rand(4, 6, seed=2, scale=3.0)]
    _round_trip(MinMaxObserver, data)
    _round_trip(lambda: MovingAverageMinMaxObserver(symmetric=True), data)
    obs, fresh = _round_trip(HistogramObserver, data)
    np.testing.assert_array_equal(fresh.histogram.data, obs.histogram.data)
    assert fresh.histogram.dtype == np.float64
    _round_trip(lambda: PercentileObserver(percentile=99.0), data)
    _round_trip(lambda: MinMaxObserver(axis=0, symmetric=True), data, materialize=4)
    assert set(MinMaxObserver().state_dict()) == {"min_val", "max_val"}


def test_per_channel_state_needs_its_length_before_loading():
    src = MinMaxObserver(axis=0)
    src.observe(_rand(4, 3))
    with pytest.raises(StateDictError, match="min_val"):
        MinMaxObserver(axis=0).load_state_dict(src.state_dict())
    with pytest.raises(QuantError, match="already has 4"):
        src.materialize(5)


def test_passive_observer_returns_user_parameters():
    obs = PassiveObserver(scale=0.05, zero_point=3)
    obs.observe(_rand(5))
    qp = obs.qparams()
    assert qp.scale == np.float32(0.05) and int(qp.zero_point) == 3 and qp.axis is None
    per_channel = PassiveObserver(scale=[0.1, 0.2], axis=0, symmetric=True, narrow_range=True)
    qp = per_channel.qparams()
    np.testing.assert_array_equal(qp.scale, np.float32([0.1, 0.2]))
    np.testing.assert_array_equal(qp.zero_point, [0, 0])
    assert qp.axis == 0 and qp.narrow_range
    other = PassiveObserver(scale=1.0)
    other.load_state_dict(PassiveObserver(scale=0.25, zero_point=-2).state_dict())
    assert other.qparams().scale == np.float32(0.25) and int(other.qparams().zero_point) == -2


# ---------------------------------------------------------------- histogram math

def test_expected_sq_error_matches_monte_carlo():
    """The closed-form per-bin integral vs sampling a piecewise-uniform density."""
    rng = np.random.default_rng(3)
    edges = np.linspace(-2.0, 3.0, 65)
    counts = rng.integers(0, 50, 64).astype(np.float64)
    scale = np.array([0.02, 0.05, 0.011], np.float32)
    zero = np.array([-30, 10, 0])
    exact = expected_sq_error(edges, counts, scale, zero, -128, 127)
    which = rng.choice(64, size=400_000, p=counts / counts.sum())
    x = (edges[which] + rng.random(which.size) * (edges[1] - edges[0])).astype(np.float32)
    for k in range(3):
        assert np.isclose(exact[k], _mse(x, QuantParams(scale[k], zero[k])), rtol=0.02), k


def _brute_symmetric(x, bits=8, count=400):
    amax = float(np.abs(x).max())
    return min(_mse(x, spec.choose_qparams(-t, t, bits, symmetric=True)) for t in np.linspace(amax / count, amax, count))


def _brute_asymmetric(x, bits=8):
    lo, hi = float(x.min()), float(x.max())
    return min(_mse(x, spec.choose_qparams(a * lo, b * hi, bits))
               for a in np.linspace(0.05, 1, 20) for b in np.linspace(0.02, 1, 50))


@pytest.mark.parametrize("bits", [8, 4])
def test_histogram_mse_symmetric_matches_brute_force(bits):
    x = np.random.default_rng(0).standard_t(3, size=20000).astype(np.float32)
    obs = HistogramObserver(bits=bits, symmetric=True)
    obs.observe(x[:10000])
    obs.observe(x[10000:])
    best = _brute_symmetric(x, bits)
    full = _mse(x, spec.choose_qparams(x.min(), x.max(), bits, symmetric=True))
    assert full > 1.05 * best  # clipping matters on this data, so the check below is meaningful
    assert _mse(x, obs.qparams()) <= 1.005 * best


@pytest.mark.parametrize("bits", [8, 4])
def test_histogram_mse_asymmetric_matches_brute_force(bits):
    x = (np.random.default_rng(1).gamma(2.0, 1.0, 20000) - 0.5).astype(np.float32)
    obs = HistogramObserver(bits=bits)
    obs.observe(x)
    best = _brute_asymmetric(x, bits)
    assert _mse(x, obs.qparams()) <= 1.005 * best
    if bits == 4:  # clipping matters here, so the check above is meaningful
        assert _mse(x, spec.choose_qparams(x.min(), x.max(), bits)) > 2 * best


def test_histogram_rebin_keeps_counts_when_range_grows():
    obs = HistogramObserver(bins=64)
    a, b = _rand(1000, seed=1), _rand(3000, seed=2, scale=4.0)
    obs.observe(a)
    obs.observe(b)
    hist = obs.histogram.data
    assert np.isclose(hist.sum(), 4000)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    direct = np.histogram(np.concatenate([a, b]), bins=64, range=(lo, hi))[0]
    # Re-binning spreads old counts by at most one bin: compare cumulative counts.
    assert np.abs(np.cumsum(hist) - np.cumsum(direct)).max() <= np.histogram(a, 64, (lo, hi))[0].max() + 1


def test_histogram_qparams_covers_every_method():
    # Speed of the threshold search is measured in bench/, never asserted here.
    x = np.random.default_rng(0).laplace(size=200_000).astype(np.float32)
    for method in ("mse", "kl"):
        for symmetric in (False, True):
            obs = HistogramObserver(bins=2048, method=method, symmetric=symmetric)
            obs.observe(x)
            qp = obs.qparams()
            # A clipping search never widens the observed range.
            assert 0 < float(np.max(qp.scale)) * (qp.qmax - qp.qmin) <= (x.max() - x.min()) * 1.001, (method, symmetric)


def _kl_reference(counts, stop, levels, eps=1e-4):
    """TensorRT entropy calibration written as the plain loop."""
    p = counts[:stop].copy()
    p[-1] += counts[stop:].sum()
    merged = max(stop // levels, 1)
    q = np.zeros(stop)
    for g in range(levels):
        a = min(g * merged, stop)
        b = stop if g == levels - 1 else min(a + merged, stop)
        positive = p[a:b] > 0
        if b > a and positive.any():
            total = counts[a:b].sum()
            q[a:b][positive] = total / positive.sum() if total > 0 else eps
    p, q = p / p.sum(), q / q.sum()
    keep = p > 0
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


def test_entropy_divergences_match_loop_reference():
    rng = np.random.default_rng(2)
    counts = rng.poisson(3, 512).astype(np.float64)
    counts[50:70] = 0
    counts[-10:] = 0
    stops = np.arange(30, 513)
    fast = entropy_divergences(counts, stops, 32)
    slow = [_kl_reference(counts, s, 32) for s in stops]
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_kl_on_gaussian_clips_below_max():
    # The 8-bit entropy threshold of a Gaussian is about 4.5 sigma, so the sample
    # must be large enough for its maximum to lie clearly beyond that.
    x = _rand(2_000_000, seed=0)
    amax = float(np.abs(x).max())                        # 5.35
    obs = HistogramObserver(method="kl", symmetric=True)
    obs.observe(x)
    threshold = float(obs.qparams().scale) * 127.5
    assert 3.5 < threshold < 0.95 * amax
    asym = HistogramObserver(method="kl")
    asym.observe(x)
    lo, hi = asym._range()
    assert -0.95 * amax < lo < 0 < hi < 0.95 * amax
    four_bit = HistogramObserver(method="kl", symmetric=True, bits=4)
    four_bit.observe(x[:200_000])
    t4 = float(four_bit.qparams().scale) * 7.5
    assert 2.0 < t4 < 0.8 * amax
    assert _mse(x[:200_000], four_bit.qparams()) < _mse(x[:200_000], spec.choose_qparams(-amax, amax, 4, symmetric=True))


def test_kl_on_relu_output_uses_positive_range():
    x = np.maximum(_rand(50000, seed=6), 0)
    obs = HistogramObserver(method="kl")
    obs.observe(x)
    lo, hi = obs._range()
    assert lo == 0 and 1.5 < hi < x.max()


# ---------------------------------------------------------------- percentile

def test_percentile_observer_matches_numpy_percentiles():
    x = _rand(100_000, seed=7) + 0.5
    obs = PercentileObserver(percentile=99.9, bins=2048)
    obs.observe(x[:50000])
    obs.observe(x[50000:])
    width = (x.max() - min(x.min(), 0)) / 2048
    lo, hi = obs._range()
    assert abs(lo - np.percentile(x, 0.1)) < 2 * width
    assert abs(hi - np.percentile(x, 99.9)) < 2 * width
    qp = obs.qparams()
    assert qp == spec.choose_qparams(lo, hi)

    sym = PercentileObserver(percentile=99.0, symmetric=True)
    sym.observe(x)
    t = np.percentile(np.abs(x), 99.0)
    lo, hi = sym._range()
    assert lo == -hi and abs(hi - t) < 2 * np.abs(x).max() / 2048


def test_percentile_100_is_the_full_range():
    x = _rand(1000, seed=8)
    obs = PercentileObserver(percentile=100.0)
    obs.observe(x)
    lo, hi = obs._range()
    assert np.isclose(lo, x.min()) and np.isclose(hi, x.max())
