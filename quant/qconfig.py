"""QConfig: how to quantize a layer's weight and its output activation.

A `QConfig` holds four zero-argument factories (functools.partial), each
returning a fresh module: `weight_observer`, `act_observer` (PTQ) and
`weight_fake_quant`, `act_fake_quant` (QAT; each builds its own observer from
the matching observer factory).

Weights: signed, symmetric, narrow range, per output channel (axis 0) unless
per_channel=False. Activations: per tensor, asymmetric, signed int8 unless told
otherwise (SPEC §1).
"""
import numbers
from collections import namedtuple
from functools import partial

from .errors import QuantError
from .registry import get_fake_quant, get_observer


class QConfig(namedtuple("QConfig", ["weight_observer", "act_observer", "weight_fake_quant", "act_fake_quant"])):
    __slots__ = ()

    @classmethod
    def create(cls, **kwargs):
        """Same as make_qconfig(**kwargs)."""
        return make_qconfig(**kwargs)


MIN_BITS, MAX_BITS = 2, 16   # SPEC §1 code ranges; storage int8 up to 8 bits, int16 above


def check_bits(who, **widths):
    """Refuse a bit width outside [2, 16] (or not an integer) when it is given, not when the first
    observer is built from it."""
    for name, bits in widths.items():
        if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not MIN_BITS <= bits <= MAX_BITS:
            raise QuantError(f"{who}: {name} must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")


def _resolve(spec, lookup):
    return lookup(spec) if isinstance(spec, str) else spec


def make_qconfig(weight="minmax", act="ema", weight_fake_quant="fake_quant", act_fake_quant="fake_quant",
                 bits=8, act_bits=None, per_channel=True, act_signed=True, symmetric_act=False,
                 weight_kwargs=None, act_kwargs=None, weight_fq_kwargs=None, act_fq_kwargs=None):
    """Build a QConfig from registry names (or classes).

    weight / act: observer names ("minmax", "ema", "histogram", "percentile", "passive",
    or any registered name); weight_fake_quant / act_fake_quant: fake-quant names
    ("fake_quant", "lsq", "tqt", ...). bits: weight bit width; act_bits: activation bit
    width (default: bits). *_kwargs: extra keyword arguments for the weight / activation
    observer (e.g. {"method": "kl"}) and fake quant (e.g. {"init": "lsq"}).
    Unknown names and bit widths outside [2, 16] raise QuantError here, not when a module is
    built. Whether a layer's int32 bias and accumulator fit these widths depends on its weights
    and scales: calibrate() and quantize() check that per layer (SPEC §5).
    """
    check_bits("make_qconfig", bits=bits, act_bits=bits if act_bits is None else act_bits)
    weight_cls = _resolve(weight, get_observer)
    act_cls = _resolve(act, get_observer)
    weight_fq_cls = _resolve(weight_fake_quant, get_fake_quant)
    act_fq_cls = _resolve(act_fake_quant, get_fake_quant)
    act_bits = bits if act_bits is None else act_bits
    weight_observer = partial(weight_cls, bits=bits, signed=True, symmetric=True, narrow_range=True,
                              axis=0 if per_channel else None, **(weight_kwargs or {}))
    act_observer = partial(act_cls, bits=act_bits, signed=act_signed, symmetric=symmetric_act,
                           narrow_range=False, axis=None, **(act_kwargs or {}))
    return QConfig(
        weight_observer=weight_observer,
        act_observer=act_observer,
        weight_fake_quant=partial(weight_fq_cls, observer_factory=weight_observer, **(weight_fq_kwargs or {})),
        act_fake_quant=partial(act_fq_cls, observer_factory=act_observer, **(act_fq_kwargs or {})),
    )


# Presets. Weights: MinMax, per-channel symmetric narrow-range int8, except where named.
EMA_QCONFIG = make_qconfig()                                  # activations: EMA min/max, asymmetric int8
MINMAX_QCONFIG = make_qconfig(act="minmax")
HISTOGRAM_QCONFIG = make_qconfig(act="histogram", act_kwargs={"method": "mse"})
ENTROPY_QCONFIG = make_qconfig(act="histogram", act_kwargs={"method": "kl"})
PERCENTILE_QCONFIG = make_qconfig(act="percentile")
LSQ_QCONFIG = make_qconfig(weight_fake_quant="lsq", act_fake_quant="lsq")
# TQT: power-of-two scales for shift-only hardware, so per-tensor and symmetric throughout.
TQT_QCONFIG = make_qconfig(weight_fake_quant="tqt", act_fake_quant="tqt", per_channel=False, symmetric_act=True)
EMA_4BIT_QCONFIG = make_qconfig(bits=4)                       # 4-bit weights and activations
# LSQ's own initialisation suits 4-bit weights better than min/max.
LSQ_4BIT_QCONFIG = make_qconfig(bits=4, weight_fake_quant="lsq", act_fake_quant="lsq",
                                weight_fq_kwargs={"init": "lsq"})
PER_TENSOR_QCONFIG = make_qconfig(per_channel=False)

QCONFIGS = {
    "ema": EMA_QCONFIG,
    "minmax": MINMAX_QCONFIG,
    "histogram": HISTOGRAM_QCONFIG,
    "entropy": ENTROPY_QCONFIG,
    "percentile": PERCENTILE_QCONFIG,
    "lsq": LSQ_QCONFIG,
    "tqt": TQT_QCONFIG,
    "ema_4bit": EMA_4BIT_QCONFIG,
    "lsq_4bit": LSQ_4BIT_QCONFIG,
    "per_tensor": PER_TENSOR_QCONFIG,
}

default_qconfig = EMA_QCONFIG


def get_qconfig(name):
    """A preset by name (a QConfig passes through unchanged)."""
    if isinstance(name, QConfig):
        return name
    try:
        return QCONFIGS[name]
    except (KeyError, TypeError):
        raise QuantError(f"unknown qconfig {name!r}; known: {', '.join(sorted(QCONFIGS))}") from None
