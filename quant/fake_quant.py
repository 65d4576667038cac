"""Fake-quantization modules: observer-driven `FakeQuantize` and the learned-scale
`LSQFakeQuantize` (Esser et al. 2020) and `TQTFakeQuantize` (Jain et al. 2020).

Each takes `observer_factory` (an Observer class, a registry name or a zero-arg
partial) plus keyword arguments for it, and owns the observer as `.observer`.
Flags are plain attributes, not buffers, so loading a checkpoint never switches
them: `fake_quant_enabled` (bool) and `observer_enabled` (a property reading and
writing `observer.enabled`, so disabling either the FakeQuantize or its observer
has the same effect).

The output Tensor carries `out.qparams` (the `QuantParams` it was quantized
with); its value is exactly `spec.fake_quantize(x, out.qparams)`. While a tracer
is active the fake quant records a `quantize` + `dequantize` pair instead, with
the scale and zero point as graph constants, and observers do not update.
"""
import numpy as np

from yuan.compiler.ir import QuantParams
from yuan.frontend import autograd
from yuan.frontend.nn import Module, Parameter
from yuan.frontend.tensor import Tensor

from .errors import QuantError
from .observers import MovingAverageMinMaxObserver
from .ste import LSQFunction, TQTFunction, fake_quantize_ste, quantize_dequantize, tqt_scale

__all__ = ["FakeQuantizeBase", "FakeQuantize", "LSQFakeQuantize", "TQTFakeQuantize", "fake_quantize_ste"]


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _build_observer(factory, kwargs, owner):
    if isinstance(factory, str):
        from .registry import get_observer  # the registry imports this module
        factory = get_observer(factory)
    observer = factory(**kwargs)
    if not isinstance(observer, Module) or not hasattr(observer, "qparams"):
        raise QuantError(f"{owner}: observer_factory must build an Observer module, "
                         f"got {type(observer).__name__}")
    return observer


def _assign(tensor, array):
    """Write `array` into `tensor`, keeping the Tensor object (optimizers and named
    buffers hold references to it); the shape may change only from the unsized state."""
    array = np.asarray(array, tensor.data.dtype)
    if tensor.shape == array.shape:
        tensor.data[...] = array
    else:
        tensor.data = array.copy()


class FakeQuantizeBase(Module):
    """Shared flags and observer plumbing; subclasses implement `forward` and `qparams`."""

    def __init__(self, observer_factory, **observer_kwargs):
        super().__init__()
        self.observer = _build_observer(observer_factory, observer_kwargs, type(self).__name__)
        self.fake_quant_enabled = True

    # --- flags --------------------------------------------------------
    @property
    def observer_enabled(self):
        return bool(self.observer.enabled)

    @observer_enabled.setter
    def observer_enabled(self, flag):
        self.observer.enable(bool(flag))

    def enable_observer(self, flag=True):
        self.observer.enable(bool(flag))
        return self

    def enable_fake_quant(self, flag=True):
        self.fake_quant_enabled = bool(flag)
        return self

    # --- the quantized type (from the observer) -------------------------
    @property
    def bits(self):
        return self.observer.bits

    @property
    def signed(self):
        return self.observer.signed

    @property
    def symmetric(self):
        return self.observer.symmetric

    @property
    def narrow_range(self):
        return self.observer.narrow_range

    @property
    def axis(self):
        return self.observer.axis

    @property
    def qmin(self):
        return self.observer.qmin

    @property
    def qmax(self):
        return self.observer.qmax

    def materialize(self, num_channels):
        """Give per-channel state its length now, e.g. before loading a checkpoint into a
        fresh model (per-channel state otherwise takes its length from the first input)."""
        self.observer.materialize(num_channels)
        return self

    def qparams(self):
        raise NotImplementedError

    def extra_repr(self):
        return f"fake_quant={'on' if self.fake_quant_enabled else 'off'}, " \
               f"observer={'on' if self.observer_enabled else 'off'}"


class FakeQuantize(FakeQuantizeBase):
    """`FakeQuantize(observer_factory=MovingAverageMinMaxObserver, **observer_kwargs)`.

    forward: observe while the observer is enabled (in train and eval mode alike),
    then, while fake quant is enabled, fake-quantize with the observer's current
    parameters and a clipped straight-through estimator; otherwise return x.
    """

    def __init__(self, observer_factory=MovingAverageMinMaxObserver, **observer_kwargs):
        super().__init__(observer_factory, **observer_kwargs)

    def qparams(self):
        return self.observer.qparams()

    def forward(self, x):
        x = _as_tensor(x)
        self.observer(x)  # records only while enabled, never while tracing
        if not self.fake_quant_enabled:
            return x
        qp = self.qparams()
        out = fake_quantize_ste(x, qp)
        out.qparams = qp
        return out


class _LearnedFakeQuantize(FakeQuantizeBase):
    """A fake quant whose scale is a Parameter, initialised from the observer.

    Until initialised, forward feeds the observer (while enabled). The first forward
    with fake quant enabled initialises the scale from the observer's statistics
    (observing that batch first if the observer has none), sets the `initialized`
    buffer, and from then on the observer is no longer consulted. So a calibration
    phase (observer on, fake quant off) decides the initial scale.
    """

    def __init__(self, observer_factory, **observer_kwargs):
        super().__init__(observer_factory, **observer_kwargs)
        self.register_buffer("initialized", Tensor(np.array(0, np.int8)))

    @property
    def is_initialized(self):
        return bool(self.initialized.data)

    def _param_shape(self):
        return () if self.axis is None else (0,)  # per channel: sized by the first batch

    def forward(self, x):
        x = _as_tensor(x)
        tracing = autograd.active_tracer() is not None
        if not self.is_initialized:
            self.observer(x)
        if not self.fake_quant_enabled:
            return x
        if not self.is_initialized:
            if tracing:
                raise QuantError(f"{type(self).__name__}: the scale is not initialised; run a batch "
                                 f"through the model (or load a checkpoint) before tracing")
            if not self.observer.has_data():
                self.observer.observe(x.data, force=True)
            self._initialize(np.asarray(x.data, np.float32))
            self.initialized.data[...] = 1
        qp = self.qparams()
        out = quantize_dequantize(x, qp, self._scale_tensor()) if tracing else self._fake_quantize(x)
        out.qparams = qp
        return out

    def _require_initialized(self):
        if not self.is_initialized:
            raise QuantError(f"{type(self).__name__}: the scale is not initialised; run a batch "
                             f"through it (or load a checkpoint) first")

    def _channel_values(self, x, reduce):
        if self.axis is None:
            return np.asarray(reduce(x.reshape(-1)))
        return reduce(np.moveaxis(x, self.axis, 0).reshape(x.shape[self.axis], -1), axis=1)

    def _scale_tensor(self):
        return None

    def _initialize(self, x):
        raise NotImplementedError

    def _fake_quantize(self, x):
        raise NotImplementedError


class LSQFakeQuantize(_LearnedFakeQuantize):
    """Learned Step Size Quantization: `scale` is a Parameter (0-d, or one per channel).

    `LSQFakeQuantize(observer_factory=MovingAverageMinMaxObserver, init="observer",
    min_scale=1e-8, **observer_kwargs)`.
    init="observer": the observer's scale and zero point (default; starts where
    FakeQuantize would). init="lsq": the paper's 2 * mean(|x|) / sqrt(qmax) per
    tensor / channel (meant for symmetric weights at low bit widths; the zero point
    still comes from the observer). The zero point (`zero_point` buffer) stays
    fixed. The value used is max(scale, min_scale), so a step that drives the
    scale negative cannot break the forward. The scale gradient is scaled by
    g = 1 / sqrt(numel * qmax), numel per channel when per channel.
    """

    def __init__(self, observer_factory=MovingAverageMinMaxObserver, init="observer", min_scale=1e-8,
                 **observer_kwargs):
        super().__init__(observer_factory, **observer_kwargs)
        if init not in ("observer", "lsq"):
            raise QuantError(f"LSQFakeQuantize: init must be 'observer' or 'lsq', got {init!r}")
        if not min_scale > 0:
            raise QuantError(f"LSQFakeQuantize: min_scale must be positive, got {min_scale}")
        self.init = init
        self.min_scale = float(min_scale)
        self.scale = Parameter(np.ones(self._param_shape(), np.float32))
        self.scale.no_weight_decay = True   # optimizers must not pull a learned scale towards zero
        self.register_buffer("zero_point", Tensor(np.zeros(self._param_shape(), np.int64)))

    def _initialize(self, x):
        qp = self.observer.qparams()
        scale = np.asarray(qp.scale, np.float32)
        if self.init == "lsq":
            mean_abs = self._channel_values(np.abs(x), np.mean)
            scale = np.maximum(2.0 * mean_abs / np.sqrt(self.qmax), self.min_scale).astype(np.float32)
        _assign(self.scale, scale.reshape(np.shape(qp.scale)))
        _assign(self.zero_point, np.broadcast_to(np.asarray(qp.zero_point, np.int64), np.shape(qp.scale)))

    def _effective_scale(self):
        return np.maximum(self.scale.data, np.float32(self.min_scale)).astype(np.float32)

    def qparams(self):
        self._require_initialized()
        return QuantParams(self._effective_scale(), self.zero_point.data.copy(), self.axis,
                           self.bits, self.signed, self.narrow_range)

    def grad_scale(self, x_shape):
        numel = int(np.prod(x_shape))
        if self.axis is not None:
            numel //= x_shape[self.axis]
        return 1.0 / np.sqrt(numel * self.qmax)

    def _scale_tensor(self):
        return self.scale

    def _fake_quantize(self, x):
        return LSQFunction.apply(x, self.scale, zero_point=self.zero_point.data, axis=self.axis,
                                 bits=self.bits, signed=self.signed, narrow_range=self.narrow_range,
                                 grad_scale=self.grad_scale(x.shape), min_scale=self.min_scale)

    def materialize(self, num_channels):
        super().materialize(num_channels)
        if self.axis is not None and self.scale.data.size == 0:
            self.scale.data = np.ones(int(num_channels), np.float32)
            self.zero_point.data = np.zeros(int(num_channels), np.int64)
        return self

    def extra_repr(self):
        return f"{super().extra_repr()}, init={self.init!r}"


class TQTFakeQuantize(_LearnedFakeQuantize):
    """Trained Quantization Thresholds: learnable `log2_t` Parameter, power-of-two scale
    s = 2^ceil(log2_t) / 2^(bits-1) (signed) or / 2^bits (unsigned), zero point 0.

    The observer is built symmetric; log2_t starts at log2 of its threshold
    t = scale * (qmax - qmin) / 2 (max |x| for a min/max observer). No gradient
    scaling (the paper trains log2_t with Adam).
    """

    def __init__(self, observer_factory=MovingAverageMinMaxObserver, **observer_kwargs):
        observer_kwargs["symmetric"] = True  # a threshold t clips to [-t, t]
        super().__init__(observer_factory, **observer_kwargs)
        self.log2_t = Parameter(np.zeros(self._param_shape(), np.float32))
        self.log2_t.no_weight_decay = True

    def _initialize(self, x):
        qp = self.observer.qparams()
        threshold = np.asarray(qp.scale, np.float64) * (self.qmax - self.qmin) / 2.0
        _assign(self.log2_t, np.log2(threshold).astype(np.float32))

    def power_of_two_scale(self):
        self._require_initialized()
        log2_t = self.log2_t.data
        if not np.all(np.isfinite(log2_t)):
            raise QuantError(f"TQTFakeQuantize: log2_t is not finite ({log2_t})")
        return tqt_scale(log2_t, self.bits, self.signed)

    def qparams(self):
        s = self.power_of_two_scale()
        return QuantParams(s, np.zeros(s.shape, np.int64), self.axis, self.bits, self.signed, self.narrow_range)

    def _fake_quantize(self, x):
        return TQTFunction.apply(x, self.log2_t, axis=self.axis, bits=self.bits, signed=self.signed,
                                 narrow_range=self.narrow_range)

    def materialize(self, num_channels):
        super().materialize(num_channels)
        if self.axis is not None and self.log2_t.data.size == 0:
            self.log2_t.data = np.zeros(int(num_channels), np.float32)
        return self
