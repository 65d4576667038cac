"""Yuan quant package (see docs/design.md, quant/SPEC.md).

    from yuan.quant import quantize_qat, quantize, calibrate
    qat = quantize_qat(model)      # train as usual (or calibrate(qat, batches))
    qmodel = quantize(qat)         # integer model; equals qat.eval() bit for bit
"""
from . import spec
from .errors import QuantError, QuantWarning
from .fake_quant import FakeQuantize, FakeQuantizeBase, LSQFakeQuantize, TQTFakeQuantize
from .fuse import FUSION_PATTERNS, find_fusable, fuse_known_patterns, fuse_modules
from .observers import (HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver, Observer,
                        PassiveObserver, PercentileObserver)
from .qconfig import QCONFIGS, QConfig, default_qconfig, get_qconfig, make_qconfig
from .quantize import (QAT_MODULES, QUANTIZED_MODULES, calibrate, disable_fake_quant, disable_observer,
                       enable_fake_quant, enable_observer, propagate_qconfig, quantize, quantize_qat)
from .registry import get_fake_quant, get_observer, register_fake_quant, register_observer
from .stubs import DequantStub, QuantStub, QuantWrapper

__all__ = [
    "spec", "QuantError", "QuantWarning",
    "Observer", "MinMaxObserver", "MovingAverageMinMaxObserver", "HistogramObserver", "PercentileObserver",
    "PassiveObserver", "FakeQuantizeBase", "FakeQuantize", "LSQFakeQuantize", "TQTFakeQuantize",
    "QConfig", "QCONFIGS", "default_qconfig", "get_qconfig", "make_qconfig",
    "register_observer", "register_fake_quant", "get_observer", "get_fake_quant",
    "QuantStub", "DequantStub", "QuantWrapper",
    "fuse_modules", "fuse_known_patterns", "find_fusable", "FUSION_PATTERNS",
    "quantize_qat", "quantize", "calibrate", "propagate_qconfig", "QAT_MODULES", "QUANTIZED_MODULES",
    "enable_observer", "disable_observer", "enable_fake_quant", "disable_fake_quant",
]
