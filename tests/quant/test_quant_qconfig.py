"""QConfig presets, make_qconfig and the observer / fake-quant registry."""
import numpy as np
import pytest

from yuan.frontend.tensor import Tensor
from yuan.quant import registry
from yuan.quant.errors import QuantError
from yuan.quant.fake_quant import FakeQuantize, LSQFakeQuantize, TQTFakeQuantize
from yuan.quant.observers import (HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver, Observer,
                             PercentileObserver)
from yuan.quant.qconfig import QCONFIGS, QConfig, default_qconfig, get_qconfig, make_qconfig

# name -> (activation observer class, fake-quant class, weight bits, activation bits, weight axis)
PRESETS = {
    "ema": (MovingAverageMinMaxObserver, FakeQuantize, 8, 8, 0),
    "minmax": (MinMaxObserver, FakeQuantize, 8, 8, 0),
    "histogram": (HistogramObserver, FakeQuantize, 8, 8, 0),
    "entropy": (HistogramObserver, FakeQuantize, 8, 8, 0),
    "percentile": (PercentileObserver, FakeQuantize, 8, 8, 0),
    "lsq": (MovingAverageMinMaxObserver, LSQFakeQuantize, 8, 8, 0),
    "tqt": (MovingAverageMinMaxObserver, TQTFakeQuantize, 8, 8, None),
    "ema_4bit": (MovingAverageMinMaxObserver, FakeQuantize, 4, 4, 0),
    "lsq_4bit": (MovingAverageMinMaxObserver, LSQFakeQuantize, 4, 4, 0),
    "per_tensor": (MovingAverageMinMaxObserver, FakeQuantize, 8, 8, None),
}


def test_every_preset_is_listed():
    assert set(QCONFIGS) == set(PRESETS)
    assert default_qconfig is QCONFIGS["ema"] is get_qconfig("ema")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_modules_of_the_right_kind(name):
    act_cls, fq_cls, w_bits, a_bits, w_axis = PRESETS[name]
    qc = get_qconfig(name)
    assert isinstance(qc, QConfig)

    w_obs = qc.weight_observer()
    assert type(w_obs) is MinMaxObserver
    assert (w_obs.bits, w_obs.signed, w_obs.symmetric, w_obs.narrow_range, w_obs.axis) == \
        (w_bits, True, True, True, w_axis)

    a_obs = qc.act_observer()
    assert type(a_obs) is act_cls
    assert (a_obs.bits, a_obs.signed, a_obs.narrow_range, a_obs.axis) == (a_bits, True, False, None)
    assert a_obs.symmetric == (name == "tqt")

    w_fq, a_fq = qc.weight_fake_quant(), qc.act_fake_quant()
    assert type(w_fq) is fq_cls and type(a_fq) is fq_cls
    assert type(w_fq.observer) is MinMaxObserver and type(a_fq.observer) is act_cls
    assert (w_fq.bits, w_fq.axis, w_fq.symmetric, w_fq.narrow_range) == (w_bits, w_axis, True, True)
    assert (a_fq.bits, a_fq.axis, a_fq.narrow_range) == (a_bits, None, False)
    assert qc.act_fake_quant() is not a_fq  # factories build fresh modules


def test_preset_specifics():
    assert get_qconfig("histogram").act_observer().method == "mse"
    assert get_qconfig("entropy").act_observer().method == "kl"
    assert get_qconfig("lsq_4bit").weight_fake_quant().init == "lsq"
    assert get_qconfig("lsq").weight_fake_quant().init == "observer"


def test_preset_fake_quants_run_on_data():
    rng = np.random.default_rng(0)
    for name in PRESETS:
        qc = get_qconfig(name)
        w_fq, a_fq = qc.weight_fake_quant(), qc.act_fake_quant()
        w = w_fq(Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32)))
        a = a_fq(Tensor(rng.standard_normal((2, 4, 5, 5)).astype(np.float32)))
        assert w.qparams.bits == PRESETS[name][2] and a.qparams.bits == PRESETS[name][3]
        assert w.qparams.axis == PRESETS[name][4]
        assert np.all(w.qparams.zero_point == 0)


def test_make_qconfig_options():
    qc = make_qconfig(weight="ema", act="minmax", bits=6, act_bits=8, per_channel=False, act_signed=False,
                      symmetric_act=True, act_kwargs={}, weight_kwargs={"momentum": 0.5},
                      act_fake_quant="lsq", act_fq_kwargs={"min_scale": 1e-6})
    w = qc.weight_observer()
    assert type(w) is MovingAverageMinMaxObserver and w.bits == 6 and w.axis is None and w.momentum == 0.5
    a = qc.act_fake_quant()
    assert type(a) is LSQFakeQuantize and a.min_scale == 1e-6
    assert (a.bits, a.signed, a.symmetric) == (8, False, True)
    assert QConfig.create(act="minmax").act_observer().__class__ is MinMaxObserver
    assert make_qconfig(act=PercentileObserver).act_observer().__class__ is PercentileObserver


def test_unknown_names_raise_with_known_names():
    with pytest.raises(QuantError, match="unknown observer 'nope'.*ema.*histogram.*minmax"):
        make_qconfig(act="nope")
    with pytest.raises(QuantError, match="unknown fake quant 'nope'.*fake_quant.*lsq.*tqt"):
        make_qconfig(act_fake_quant="nope")
    with pytest.raises(QuantError, match="unknown qconfig 'nope'.*ema.*lsq_4bit"):
        get_qconfig("nope")
    assert get_qconfig(default_qconfig) is default_qconfig


def test_builtin_registry_names():
    assert set(registry.list_observers()) >= {"minmax", "ema", "histogram", "percentile", "passive"}
    assert set(registry.list_fake_quants()) >= {"fake_quant", "lsq", "tqt"}
    assert registry.get_observer("ema") is MovingAverageMinMaxObserver
    assert registry.get_fake_quant("tqt") is TQTFakeQuantize


class AbsMaxObserver(Observer):
    """A user-defined observer: running max |x|, symmetric range. Not part of Yuan."""

    def __init__(self, bits=8, signed=True, symmetric=False, narrow_range=False, axis=None, headroom=1.0):
        super().__init__(bits, signed, symmetric, narrow_range, axis)
        self.headroom = headroom
        self.register_buffer("amax", Tensor(np.array(-1.0, np.float32)))

    def _update(self, x):
        self.amax.data[...] = max(float(self.amax.data), float(np.abs(x).max()))

    def _range(self):
        a = float(self.amax.data) * self.headroom
        return None if a < 0 else (np.asarray(-a), np.asarray(a))

    def _reset(self):
        self.amax.data[...] = -1.0


def test_user_observer_registered_and_used_by_name():
    registry.register_observer("test_absmax", AbsMaxObserver)
    assert "test_absmax" in registry.list_observers()
    qc = make_qconfig(act="test_absmax", act_kwargs={"headroom": 2.0}, symmetric_act=True)
    fq = qc.act_fake_quant()
    assert type(fq.observer) is AbsMaxObserver
    y = fq(Tensor(np.array([-0.5, 1.5], np.float32)))
    assert float(y.qparams.scale) == np.float32(3.0 / 127.5)     # symmetric over [-3, 3]
    assert set(fq.state_dict()) == {"observer.amax"}
    assert type(FakeQuantize("test_absmax").observer) is AbsMaxObserver
    # NaN checking and the enable flag come from the base class.
    with pytest.raises(QuantError, match="AbsMaxObserver"):
        fq(Tensor(np.array([np.nan], np.float32)))


def test_registration_as_decorator_and_conflicts():
    @registry.register_fake_quant("test_plain_fq")
    class PlainFakeQuantize(FakeQuantize):
        pass

    qc = make_qconfig(weight_fake_quant="test_plain_fq")
    assert type(qc.weight_fake_quant()) is PlainFakeQuantize
    registry.register_fake_quant("test_plain_fq", PlainFakeQuantize)  # same class: fine
    with pytest.raises(QuantError, match="already registered"):
        registry.register_fake_quant("test_plain_fq", FakeQuantize)
    registry.register_fake_quant("test_plain_fq", FakeQuantize, override=True)
    assert registry.get_fake_quant("test_plain_fq") is FakeQuantize
    with pytest.raises(QuantError, match="not a class"):
        registry.register_observer("test_bad", 42)
    with pytest.raises(QuantError, match="already registered"):
        registry.register_observer("minmax", AbsMaxObserver)
