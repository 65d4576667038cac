"""Observers: modules that watch tensors and choose their quantization parameters.

An observer's `forward(x)` returns `x` untouched and updates statistics from
`x.data` (never through an autograd Function, so tracing records nothing; while
a tracer is active it does not even update). The statistics are buffers, so
they travel in the state dict. `qparams()` turns them into `QuantParams` with
`spec.choose_qparams`.

Writing a new observer: subclass `Observer`, implement `_update(x)` (x is a
validated, finite, non-empty float32 array), `_range()` (-> `(lo, hi)` arrays,
or None before any data) and `_reset()`; register it with
`quant.registry.register_observer(name)` to use it from a QConfig by name.

Per-channel (`axis` not None): statistics are taken over every axis except
`axis` and have one entry per channel. The channel count is learnt from the
first observed tensor (or fixed earlier with `materialize(num_channels)`).
"""
import numpy as np

from yuan.compiler.ir import GraphError, QuantParams
from yuan.frontend import autograd
from yuan.frontend.nn import Module
from yuan.frontend.tensor import Tensor

from . import spec
from .errors import QuantError


class Observer(Module):
    """Base: `Observer(bits=8, signed=True, symmetric=False, narrow_range=False, axis=None)`."""

    supports_per_channel = True

    def __init__(self, bits=8, signed=True, symmetric=False, narrow_range=False, axis=None):
        super().__init__()
        spec.qrange(bits, signed, narrow_range)  # raises QuantError on a bad bit width
        if axis is not None and not self.supports_per_channel:
            raise QuantError(f"{type(self).__name__} is per-tensor only (got axis={axis}); "
                             f"use MinMaxObserver or MovingAverageMinMaxObserver per channel")
        self.bits = int(bits)
        self.signed = bool(signed)
        self.symmetric = bool(symmetric)
        self.narrow_range = bool(narrow_range)
        self.axis = None if axis is None else int(axis)
        self.enabled = True

    # --- flags --------------------------------------------------------
    @property
    def qmin(self):
        return spec.qrange(self.bits, self.signed, self.narrow_range)[0]

    @property
    def qmax(self):
        return spec.qrange(self.bits, self.signed, self.narrow_range)[1]

    def enable(self, flag=True):
        self.enabled = bool(flag)
        return self

    # --- observing ----------------------------------------------------
    def forward(self, x):
        if self.enabled and autograd.active_tracer() is None:
            self._record(x.data if isinstance(x, Tensor) else x)
        return x

    def observe(self, array, force=False):
        """Update the statistics from a NumPy array (while enabled, or always with force=True)."""
        if self.enabled or force:
            self._record(array.data if isinstance(array, Tensor) else array)
        return array

    def _record(self, array):
        self._update(self._validate(array))

    def _validate(self, array):
        name = type(self).__name__
        x = np.asarray(array)
        if x.dtype.kind not in "fiu":
            raise QuantError(f"{name}: cannot observe a tensor of dtype {x.dtype}")
        if x.size == 0:
            raise QuantError(f"{name}: cannot observe an empty tensor (shape {x.shape})")
        x = x.astype(np.float32, copy=False)  # fake quantization works in float32 (SPEC §3)
        finite = np.isfinite(x)
        if not finite.all():
            bad = x.size - int(finite.sum())
            raise QuantError(f"{name}: input of shape {x.shape} has {bad} NaN/inf value(s); "
                             f"cannot choose quantization parameters from it")
        if self.axis is not None:
            if x.ndim == 0 or not -x.ndim <= self.axis < x.ndim:
                raise QuantError(f"{name}: per-channel axis {self.axis} does not exist in an input "
                                 f"of shape {x.shape}")
        return x

    def _channel_min_max(self, x):
        """(min, max): 0-d arrays per tensor, or one value per channel along `axis`."""
        if self.axis is None:
            return np.asarray(x.min()), np.asarray(x.max())
        flat = np.moveaxis(x, self.axis, 0).reshape(x.shape[self.axis], -1)
        return flat.min(axis=1), flat.max(axis=1)

    # --- results ------------------------------------------------------
    def has_data(self):
        return self._range() is not None

    def qparams(self):
        bounds = self._range()
        if bounds is None:
            raise QuantError(f"{type(self).__name__} has seen no data: run calibration batches "
                             f"through it before asking for quantization parameters")
        lo, hi = bounds
        return spec.choose_qparams(lo, hi, self.bits, self.signed, self.symmetric,
                                   self.narrow_range, self.axis)

    def reset(self):
        self._reset()
        return self

    def materialize(self, num_channels):
        """Give per-channel statistics their length now (a fresh model can then load a
        checkpoint); no-op per tensor."""
        return self

    # --- subclass hooks ---------------------------------------------------
    def _update(self, x):
        raise NotImplementedError(f"{type(self).__name__} must implement _update(x)")

    def _range(self):
        raise NotImplementedError(f"{type(self).__name__} must implement _range()")

    def _reset(self):
        raise NotImplementedError(f"{type(self).__name__} must implement _reset()")

    def extra_repr(self):
        kind = f"{'int' if self.signed else 'uint'}{self.bits}"
        flags = [kind, "symmetric" if self.symmetric else "asymmetric"]
        if self.narrow_range:
            flags.append("narrow_range")
        if self.axis is not None:
            flags.append(f"axis={self.axis}")
        return ", ".join(flags)


class _MinMaxStats(Observer):
    """Observers whose statistics are `min_val` / `max_val` buffers (+inf / -inf = no data)."""

    def __init__(self, bits=8, signed=True, symmetric=False, narrow_range=False, axis=None):
        super().__init__(bits, signed, symmetric, narrow_range, axis)
        shape = () if self.axis is None else (0,)  # per channel: length set by the first tensor
        self.register_buffer("min_val", Tensor(np.full(shape, np.inf, np.float32)))
        self.register_buffer("max_val", Tensor(np.full(shape, -np.inf, np.float32)))

    def _seen(self):
        lo = self.min_val.data
        return lo.size > 0 and bool(np.all(np.isfinite(lo)))

    def _range(self):
        if not self._seen():
            return None
        return self.min_val.data.copy(), self.max_val.data.copy()

    def _store(self, lo, hi):
        lo = np.asarray(lo, np.float32)
        hi = np.asarray(hi, np.float32)
        if lo.shape != self.min_val.shape:
            if self.min_val.data.size:  # only an unsized per-channel buffer may change shape
                raise QuantError(f"{type(self).__name__}: input has {lo.size} channels along axis "
                                 f"{self.axis}, but earlier inputs had {self.min_val.data.size}")
            # Rebind .data on the same Tensor object so references (named buffers) stay valid.
            self.min_val.data, self.max_val.data = lo.copy(), hi.copy()
        else:
            self.min_val.data[...] = lo
            self.max_val.data[...] = hi

    def _reset(self):
        self.min_val.data[...] = np.inf
        self.max_val.data[...] = -np.inf

    def materialize(self, num_channels):
        if self.axis is None:
            return self
        n = int(num_channels)
        if self.min_val.data.size == 0:
            self.min_val.data = np.full(n, np.inf, np.float32)
            self.max_val.data = np.full(n, -np.inf, np.float32)
        elif self.min_val.data.size != n:
            raise QuantError(f"{type(self).__name__}: already has {self.min_val.data.size} channels, "
                             f"cannot materialize {n}")
        return self


class MinMaxObserver(_MinMaxStats):
    """Running minimum and maximum of everything observed."""

    def _update(self, x):
        lo, hi = self._channel_min_max(x)
        if self._seen() and self.min_val.shape == lo.shape:
            lo, hi = np.minimum(lo, self.min_val.data), np.maximum(hi, self.max_val.data)
        self._store(lo, hi)


class MovingAverageMinMaxObserver(_MinMaxStats):
    """Exponential moving average of each batch's min and max; the first batch initialises.

    `momentum` is the weight of the old value: new = momentum * old + (1 - momentum) * batch.
    """

    def __init__(self, bits=8, signed=True, symmetric=False, narrow_range=False, axis=None, momentum=0.9):
        super().__init__(bits, signed, symmetric, narrow_range, axis)
        if not 0.0 <= momentum < 1.0:
            raise QuantError(f"MovingAverageMinMaxObserver: momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)

    def _update(self, x):
        lo, hi = self._channel_min_max(x)
        if self._seen() and self.min_val.shape == lo.shape:
            m = self.momentum
            lo = m * self.min_val.data + (1.0 - m) * lo
            hi = m * self.max_val.data + (1.0 - m) * hi
        self._store(lo, hi)

    def extra_repr(self):
        return f"{super().extra_repr()}, momentum={self.momentum}"


class PassiveObserver(Observer):
    """User-set parameters: `qparams()` returns `scale` and `zero_point` as given.

    Observing only validates the input (NaN/inf still raise). The parameters are
    buffers (`scale`, `zero_point`), so they are saved with the model.
    """

    def __init__(self, scale, zero_point=0, bits=8, signed=True, symmetric=False, narrow_range=False, axis=None):
        super().__init__(bits, signed, symmetric, narrow_range, axis)
        scale = np.asarray(scale, np.float32)
        zero_point = np.asarray(zero_point, np.int64)
        if self.axis is not None:
            scale = scale.reshape(-1)
            zero_point = np.broadcast_to(zero_point.reshape(-1), scale.shape).copy()
        try:  # validate once, here, with the IR's rules
            QuantParams(scale, zero_point, self.axis, self.bits, self.signed, self.narrow_range)
        except GraphError as exc:
            raise QuantError(f"PassiveObserver: invalid parameters: {exc}") from None
        self.register_buffer("scale", Tensor(scale))
        self.register_buffer("zero_point", Tensor(zero_point))

    def _update(self, x):
        pass

    def has_data(self):
        return True

    def _reset(self):
        pass  # the parameters are user-set; there is nothing observed to forget

    def qparams(self):
        return QuantParams(self.scale.data.copy(), self.zero_point.data.copy(), self.axis,
                           self.bits, self.signed, self.narrow_range)


# ---------------------------------------------------------------- histogram observers

class _HistogramStats(_MinMaxStats):
    """Per-tensor histogram over [min(min_val, 0), max(max_val, 0)] (0 is always inside,
    as every quantization range holds it). Buffers: `histogram` (float64 counts),
    `min_val`, `max_val`. When a batch widens the range, the old counts are re-binned
    onto the new bins assuming a uniform density inside each old bin."""

    supports_per_channel = False

    def __init__(self, bits=8, signed=True, symmetric=False, narrow_range=False, axis=None, bins=2048):
        super().__init__(bits, signed, symmetric, narrow_range, axis)
        if int(bins) < 8:
            raise QuantError(f"{type(self).__name__}: bins must be at least 8, got {bins}")
        self.bins = int(bins)
        self.register_buffer("histogram", Tensor(np.zeros(self.bins), dtype=np.float64))
        self._cache = None  # (key, chosen range): the search runs once per new statistics

    def _hist_range(self):
        return min(float(self.min_val.data), 0.0), max(float(self.max_val.data), 0.0)

    def _update(self, x):
        lo, hi = float(x.min()), float(x.max())
        counts = self.histogram.data
        if self._seen():
            old_lo, old_hi = self._hist_range()
            lo, hi = min(lo, float(self.min_val.data)), max(hi, float(self.max_val.data))
            new_lo, new_hi = min(lo, 0.0), max(hi, 0.0)
            if (new_lo, new_hi) != (old_lo, old_hi):
                counts[...] = _rebin(counts, old_lo, old_hi, new_lo, new_hi)
        else:
            counts[...] = 0.0
            new_lo, new_hi = min(lo, 0.0), max(hi, 0.0)
        counts += _histogram(x, new_lo, new_hi, self.bins)
        self._store(lo, hi)

    def _reset(self):
        super()._reset()
        self.histogram.data[...] = 0.0

    def _range(self):
        if not self._seen():
            return None
        lo, hi = self._hist_range()
        key = (lo, hi, self.histogram.data.tobytes())
        if self._cache is None or self._cache[0] != key:
            if hi - lo <= 0:  # all zeros so far
                chosen = (0.0, 0.0)
            else:
                chosen = self._choose_range(_edges(lo, hi, self.bins), self.histogram.data)
            self._cache = (key, chosen)
        lo_c, hi_c = self._cache[1]
        return np.asarray(lo_c, np.float64), np.asarray(hi_c, np.float64)

    def _choose_range(self, edges, counts):
        raise NotImplementedError

    def extra_repr(self):
        return f"{super().extra_repr()}, bins={self.bins}"


class HistogramObserver(_HistogramStats):
    """Histogram of the observed values, then a search for the clipping range.

    method="mse": the range whose quantization minimises the expected squared error,
    computed exactly for a density that is uniform inside each bin. Symmetric
    observers search one threshold; asymmetric ones shrink both ends together, then
    each end alone (coarse grid + a finer grid around the best point each time).
    method="kl": TensorRT-style entropy calibration on the |x| histogram: the
    threshold whose clipped-and-requantized distribution is closest (KL divergence)
    to the clipped one. Per tensor only.
    """

    def __init__(self, bits=8, signed=True, symmetric=False, narrow_range=False, axis=None,
                 bins=2048, method="mse"):
        super().__init__(bits, signed, symmetric, narrow_range, axis, bins)
        if method not in ("mse", "kl"):
            raise QuantError(f"HistogramObserver: method must be 'mse' or 'kl', got {method!r}")
        self.method = method

    def _choose_range(self, edges, counts):
        if self.method == "kl":
            return self._kl_range(edges, counts)
        return self._mse_range(edges, counts)

    def _mse_of(self, edges, counts, lo, hi):
        qp = spec.choose_qparams(lo, hi, self.bits, self.signed, self.symmetric, self.narrow_range, axis=0)
        return expected_sq_error(edges, counts, qp.scale, qp.zero_point, self.qmin, self.qmax)

    def _mse_range(self, edges, counts):
        lo, hi = edges[0], edges[-1]

        def search(make_range):
            return _search_fraction(lambda f: self._mse_of(edges, counts, *make_range(f)))

        if self.symmetric:
            amax = max(-lo, hi)
            f = search(lambda f: (-f * amax, f * amax))
            return -f * amax, f * amax
        a = b = search(lambda f: (f * lo, f * hi))
        if hi > 0:
            b = search(lambda f: (a * lo, f * hi))
        if lo < 0:
            a = search(lambda f: (f * lo, b * hi))
        return a * lo, b * hi

    def _kl_range(self, edges, counts):
        lo, hi = edges[0], edges[-1]
        one_sided = lo == 0 or hi == 0
        levels = self.qmax - self.qmin + 1
        if self.symmetric or not one_sided:
            levels = levels // 2  # |x| only fills half the grid
        abs_edges, abs_counts = _fold_abs(edges, counts, self.bins)
        stops = np.arange(min(levels, self.bins), self.bins + 1)
        divergences = entropy_divergences(abs_counts, stops, levels)
        t = abs_edges[stops[int(np.argmin(divergences))]]
        if self.symmetric:
            return -t, t
        return max(lo, -t), min(hi, t)

    def extra_repr(self):
        return f"{super().extra_repr()}, method={self.method!r}"


class PercentileObserver(_HistogramStats):
    """Clips at a percentile: of |x| when symmetric, else the (100 - p)th and p-th
    percentiles of x. Percentiles are read from the histogram (linear inside a bin),
    so they are exact to within one bin width. Per tensor only."""

    def __init__(self, bits=8, signed=True, symmetric=False, narrow_range=False, axis=None,
                 percentile=99.99, bins=2048):
        super().__init__(bits, signed, symmetric, narrow_range, axis, bins)
        if not 50.0 < percentile <= 100.0:
            raise QuantError(f"PercentileObserver: percentile must be in (50, 100], got {percentile}")
        self.percentile = float(percentile)

    def _choose_range(self, edges, counts):
        p = self.percentile / 100.0
        if self.symmetric:
            t = _quantile(*_fold_abs(edges, counts, self.bins), p)
            return -t, t
        return _quantile(edges, counts, 1.0 - p), _quantile(edges, counts, p)

    def extra_repr(self):
        return f"{super().extra_repr()}, percentile={self.percentile}"


# ---------------------------------------------------------------- histogram math (NumPy)

def _edges(lo, hi, bins):
    return np.linspace(lo, hi, bins + 1)


def _histogram(x, lo, hi, bins):
    if hi - lo <= 0:  # the range is the single point 0, and so is every value
        counts = np.zeros(bins)
        counts[0] = x.size
        return counts
    return np.histogram(x, bins=bins, range=(lo, hi))[0].astype(np.float64)


def _rebin(counts, old_lo, old_hi, new_lo, new_hi):
    """Counts over [old_lo, old_hi] moved onto the same number of bins over the wider
    [new_lo, new_hi], interpolating the cumulative count linearly inside old bins."""
    bins = counts.size
    new_edges = _edges(new_lo, new_hi, bins)
    if old_hi - old_lo <= 0:  # a point mass at 0
        moved = np.zeros(bins)
        moved[min(int((0.0 - new_lo) / (new_hi - new_lo) * bins), bins - 1)] = counts.sum()
        return moved
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    return np.diff(np.interp(new_edges, _edges(old_lo, old_hi, bins), cumulative))


def _fold_abs(edges, counts, bins):
    """Histogram of |x| over [0, max|x|] from a histogram of x (uniform inside bins)."""
    amax = max(-edges[0], edges[-1])
    abs_edges = _edges(0.0, amax, bins)
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    within = np.interp(abs_edges, edges, cumulative) - np.interp(-abs_edges, edges, cumulative)
    return abs_edges, np.maximum(np.diff(within), 0.0)


def _quantile(edges, counts, q):
    cumulative = np.cumsum(counts)
    target = q * cumulative[-1]
    if target <= 0:
        return float(edges[np.argmax(counts > 0)])
    if target >= cumulative[-1]:
        return float(edges[len(counts) - np.argmax(counts[::-1] > 0)])
    j = int(np.searchsorted(cumulative, target, side="left"))  # first bin reaching the target
    before = cumulative[j - 1] if j > 0 else 0.0
    return float(edges[j] + (target - before) / counts[j] * (edges[j + 1] - edges[j]))


def _search_fraction(error_of, points=64):
    """argmin over f in (0, 1] of error_of(f_array): a coarse grid, then a finer one around
    the best point (ties go to the larger range)."""
    coarse = np.arange(1, points + 1) / points
    errors = error_of(coarse)
    best = coarse[len(coarse) - 1 - int(np.argmin(errors[::-1]))]
    step = 1.0 / points
    fine = np.linspace(max(best - step, step / points), min(best + step, 1.0), points)
    fine_errors = error_of(fine)
    i = len(fine) - 1 - int(np.argmin(fine_errors[::-1]))
    return float(fine[i]) if fine_errors[i] < errors.min() else float(best)


def expected_sq_error(edges, counts, scale, zero_point, qmin, qmax):
    """Mean squared fake-quantization error of a histogram, one value per candidate.

    `scale`, `zero_point`: 1-D arrays (one candidate each). The density is taken as
    uniform inside each bin and the error integrated exactly: inside the grid the
    error is the sawtooth x - s*round(x/s) (levels are multiples of s because z is
    an integer), outside it is the distance to the clamped end.
    """
    s = np.asarray(scale, np.float64).reshape(-1, 1)
    z = np.asarray(zero_point, np.float64).reshape(-1, 1)
    e = np.asarray(edges, np.float64).reshape(1, -1)
    # Antiderivative of the squared error (continuous in x, up to a per-candidate
    # constant that the per-bin differences cancel). x**3 as x*x*x: pow is slow.
    clamped = np.clip(e, (qmin - z) * s, (qmax - z) * s)
    outside = e - clamped                     # <= 0 below the grid, >= 0 above, 0 inside
    u = clamped / s
    k = np.rint(u)
    f = u - k                                 # sawtooth, in [-0.5, 0.5]
    antiderivative = (s * s * s) * (k * (1.0 / 12.0) + f * f * f * (1.0 / 3.0))
    antiderivative += outside * outside * outside * (1.0 / 3.0)
    integral = np.diff(antiderivative, axis=1)
    counts = np.asarray(counts, np.float64)
    density = counts / np.diff(np.asarray(edges, np.float64))
    return integral @ density / counts.sum()


def entropy_divergences(counts, stops, num_levels, eps=1e-4):
    """KL(P || Q) for each candidate clip after bin `stop` (TensorRT entropy calibration).

    P: the first `stop` bins, with the mass beyond them added to the last kept bin.
    Q: those `stop` bins (without that mass) merged into `num_levels` groups of
    stop // num_levels bins (the last group takes the remainder); each group's count
    is spread evenly over the bins of the group where P is non-zero, and a group
    whose count is zero gives those bins `eps`. Both are normalised.

    Q is constant inside a group, so KL = sum(p log p)/N - log N - sum_g P_g log q_g / N
    + log sum(Q) needs only per-group sums: O(candidates x levels), not x bins.
    """
    counts = np.asarray(counts, np.float64)
    stops = np.asarray(stops, np.int64).reshape(-1, 1)
    zero = np.zeros(1)
    total_of = np.concatenate([zero, np.cumsum(counts)])                 # prefix sums
    plogp_of = np.concatenate([zero, np.cumsum(counts * np.log(np.where(counts > 0, counts, 1.0)))])
    nonzero_of = np.concatenate([zero, np.cumsum(counts > 0)])
    total = total_of[-1]
    outliers = total - total_of[stops]                                     # (K, 1)
    last_bin = counts[stops - 1] + outliers                                # P's last kept bin
    merged = np.maximum(stops // num_levels, 1)
    g = np.arange(num_levels).reshape(1, -1)
    start = np.minimum(g * merged, stops)
    end = np.where(g == num_levels - 1, stops, np.minimum(start + merged, stops))
    holds_last = g == np.minimum((stops - 1) // merged, num_levels - 1)   # the group of bin stop-1
    group_sum = total_of[end] - total_of[start]                            # Q's mass, no outliers
    group_p = group_sum + np.where(holds_last, outliers, 0.0)              # P's mass
    gains_bin = holds_last & (counts[stops - 1] == 0) & (outliers > 0)
    group_n = nonzero_of[end] - nonzero_of[start] + gains_bin              # bins where P > 0
    q = np.where(group_sum > 0, group_sum / np.maximum(group_n, 1), eps)   # Q per positive bin
    q_total = np.sum(np.where(group_n > 0, group_n * q, 0.0), axis=1)
    p_log_q = np.sum(np.where(group_p > 0, group_p * np.log(q), 0.0), axis=1)
    p_log_p = plogp_of[stops[:, 0] - 1] + last_bin[:, 0] * np.log(np.maximum(last_bin[:, 0], 1e-300))
    return (p_log_p - p_log_q) / total - np.log(total) + np.log(q_total)
