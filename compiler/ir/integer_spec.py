"""Yuan's integer specification in NumPy (quant/SPEC.md, whose section numbers are cited here).

The one implementation of the integer arithmetic: the compiler's integer IR ops (kernels.py),
the qdq_to_integer pass, and (through the re-export quant/spec.py) the QAT and quantized modules
all call these functions, so they agree bit for bit.
"""

import numpy as np

from .errors import QuantizationError
from .quant_params import QuantParams

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
MIN_SCALE = float(np.finfo(np.float32).eps)   # smallest scale choose_qparams returns (2^-23)


def qrange(bits=8, signed=True, narrow_range=False):
    """(qmin, qmax) of a quantized type (SPEC §1)."""
    if not 2 <= bits <= 16:
        raise QuantizationError(f"bit width must be between 2 and 16, got {bits}")
    if signed:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return (qmin + 1 if narrow_range else qmin), qmax
    return (1 if narrow_range else 0), 2 ** bits - 1


def storage_dtype(bits=8, signed=True):
    if bits <= 8:
        return np.int8 if signed else np.uint8
    return np.int16 if signed else np.uint16


def _broadcast(param, x, axis):
    """Reshape a per-axis parameter so it broadcasts along `axis` of x."""
    param = np.asarray(param)
    if axis is None or param.ndim == 0:
        return param.reshape(()) if param.size == 1 else param
    shape = [1] * np.ndim(x)
    shape[axis] = -1
    return param.reshape(shape)


def quantize(x, qp: QuantParams):
    """float32 -> integer codes: clamp(round_half_even(x / s) + z, qmin, qmax) (SPEC §3); +-inf
    saturate, NaN becomes qmin (as ONNX Runtime's QuantizeLinear)."""
    x = np.asarray(x, np.float32)
    s = _broadcast(np.asarray(qp.scale, np.float32), x, qp.axis)
    z = _broadcast(np.asarray(qp.zero_point, np.int64), x, qp.axis)
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.rint(x / s).astype(np.float64) + z   # np.rint rounds half to even; exact in float64 here
    return saturate_codes(q, qp.qmin, qp.qmax, storage_dtype(qp.bits, qp.signed))


def saturate_codes(q, qmin, qmax, dtype):
    """Rounded float codes -> integer codes: clamped to [qmin, qmax] BEFORE the cast (a float->int
    cast of inf or NaN is undefined), NaN -> qmin as ONNX Runtime does (SPEC §3)."""
    return np.where(np.isnan(q), qmin, np.clip(q, qmin, qmax)).astype(dtype)


def dequantize(q, qp: QuantParams):
    """integer codes -> float32: float32(q - z) * s (SPEC §3)."""
    q = np.asarray(q)
    s = _broadcast(np.asarray(qp.scale, np.float32), q, qp.axis)
    z = _broadcast(np.asarray(qp.zero_point, np.int64), q, qp.axis)
    return (q.astype(np.int64) - z).astype(np.float32) * s


def fake_quantize(x, qp: QuantParams):
    """dequantize(quantize(x)): the value a quantized tensor represents."""
    return dequantize(quantize(x, qp), qp)


def choose_qparams(min_val, max_val, bits=8, signed=True, symmetric=False, narrow_range=False, axis=None):
    """Scale and zero point covering [min_val, max_val] (widened to include 0, so 0 is exact)."""
    lo = np.minimum(np.asarray(min_val, np.float64), 0.0)
    hi = np.maximum(np.asarray(max_val, np.float64), 0.0)
    if np.any(~np.isfinite(lo)) or np.any(~np.isfinite(hi)):
        raise QuantizationError(f"cannot choose quantization parameters from a non-finite range [{min_val}, {max_val}]")
    qmin, qmax = qrange(bits, signed, narrow_range)
    # Floor of the scale (PyTorch's choice): an all-zero tensor still gets a scale whose requantization
    # multipliers and bias scales s_x * s_w stay in range (a zero-initialised BN gamma makes such tensors).
    tiny = MIN_SCALE
    if symmetric:
        amax = np.maximum(-lo, hi)
        scale = np.maximum(amax / ((qmax - qmin) / 2.0), tiny).astype(np.float32)
        zero = np.full(scale.shape, 0 if signed else (qmin + qmax + 1) // 2, np.int64)
    else:
        scale = np.maximum((hi - lo) / (qmax - qmin), tiny).astype(np.float32)
        zero = qmin - np.rint(lo / scale.astype(np.float64)).astype(np.int64)
        zero = np.clip(zero, qmin, qmax)
    return QuantParams(scale, zero, axis=axis, bits=bits, signed=signed, narrow_range=narrow_range)


def requant_multiplier(real_multiplier):
    """Real M > 0 -> (m, n) with M ~= m * 2^-n, m in [2^30, 2^31) (SPEC §4). Vectorised."""
    M = np.asarray(real_multiplier, np.float64)
    if np.any(~(M > 0)) or np.any(~np.isfinite(M)):
        raise QuantizationError(f"requantization multiplier must be positive and finite, got {real_multiplier}")
    f, e = np.frexp(M.reshape(-1))                       # M = f * 2^e, f in [0.5, 1), like math.frexp
    m = np.rint(f * 2.0 ** 31).astype(np.int64)          # rint: round half to even
    carry = m == 2 ** 31
    m[carry] = 2 ** 30
    n = 31 - (e.astype(np.int64) + carry)
    bad = (n < 1) | (n > 62)
    if np.any(bad):
        raise QuantizationError(f"requantization multiplier {M.reshape(-1)[bad][0]!r} is out of the supported range "
                         f"(shift {n[bad][0]} not in [1, 62]); check the scales")
    return m.reshape(M.shape), n.reshape(M.shape)


def requantize(acc, m, n):
    """(acc * m + 2^(n-1)) >> n in int64: fixed-point multiply, rounding half up (SPEC §4)."""
    acc = np.asarray(acc, np.int64)
    m = np.asarray(m, np.int64)
    n = np.asarray(n, np.int64)
    return (acc * m + (np.int64(1) << (n - 1))) >> n


# ---------------------------------------------------------------------------------------------
# SPEC §5: integer operators. Inputs are integer codes (any integer dtype); results are int64
# codes already clamped to the output range (callers cast to the storage dtype).
# ---------------------------------------------------------------------------------------------

ACTIVATIONS = (None, "relu", "relu6")


def codes_of(x, qp: QuantParams):
    """Integer codes of a fake-quantized float array: rint(x / s) + z (int64).

    Exact for values produced by `dequantize`: x / s is within a few ulps of the integer q - z.
    """
    x = np.asarray(x, np.float64)
    s = _broadcast(np.asarray(qp.scale, np.float64), x, qp.axis)
    z = _broadcast(np.asarray(qp.zero_point, np.int64), x, qp.axis)
    return np.rint(x / s).astype(np.int64) + z


def storage(codes, qp: QuantParams):
    """int64 codes (already in range) -> the storage dtype of `qp`."""
    return np.asarray(codes).astype(storage_dtype(qp.bits, qp.signed))


def activation_bounds(qp_y: QuantParams, activation=None):
    """(lo, hi) integer clamp of an output with an optional fused ReLU / ReLU6 (SPEC §5)."""
    if activation not in ACTIVATIONS:
        raise QuantizationError(f"unknown fused activation {activation!r}; expected one of {ACTIVATIONS}")
    lo, hi = qp_y.qmin, qp_y.qmax
    z = int(np.asarray(qp_y.zero_point).reshape(-1)[0])
    if activation in ("relu", "relu6"):
        lo = max(lo, z)
    if activation == "relu6":
        hi = min(hi, z + int(np.rint(6.0 / np.float64(np.asarray(qp_y.scale).reshape(-1)[0]))))
    return lo, hi


def quantize_bias(bias, s_x, s_w):
    """int32 bias codes: clamp(round_half_even(float64(b) / (float64(s_x) * float64(s_w[c]))), int32)."""
    scale = np.float64(np.asarray(s_x, np.float32)) * np.asarray(s_w, np.float32).astype(np.float64)
    q = np.rint(np.asarray(bias, np.float32).astype(np.float64) / scale)
    return np.clip(q, INT32_MIN, INT32_MAX).astype(np.int32)


def output_multipliers(s_x, s_w, s_y):
    """(m, n) of M[c] = float64(s_x) * float64(s_w[c]) / float64(s_y) (conv2d / linear)."""
    f64 = lambda s: np.asarray(s, np.float32).astype(np.float64)  # noqa: E731
    return requant_multiplier(f64(s_x) * f64(s_w) / f64(s_y))


def _check_int32(acc, op):
    if acc.size and (acc.max() > INT32_MAX or acc.min() < INT32_MIN):
        raise QuantizationError(f"{op}: int32 accumulator overflow (range [{acc.min():.0f}, {acc.max():.0f}]); "
                         f"the scales are degenerate or the bit widths too wide (SPEC §5, int32 range)")
    return acc.astype(np.int64)


def _pairs(value):
    return (int(value), int(value)) if np.ndim(value) == 0 else tuple(int(v) for v in value)


def pads4(padding):
    if np.ndim(padding) == 0:
        return (int(padding),) * 4
    padding = tuple(int(p) for p in padding)
    return padding * 2 if len(padding) == 2 else padding   # (h, w) -> (t, l, b, r)


def _taps(xp, i, j, stride, oh, ow):
    """View of padded `xp` read by kernel tap starting at (i, j): [..., oh, ow]."""
    return xp[..., i:i + stride[0] * (oh - 1) + 1:stride[0], j:j + stride[1] * (ow - 1) + 1:stride[1]]


def conv2d_accumulate(q_x, z_x, q_w, bias_q=None, stride=1, padding=0, dilation=1, groups=1):
    """acc[n, c] = Σ (q_x - z_x) · q_w[c] + bias_q[c], exact (int64 result that fits int32).

    A float64 GEMM per kernel tap: every product and partial sum is an integer below 2^53, so
    float64 is exact. Padding contributes X = 0 (the real value 0).
    """
    (sh, sw), (dh, dw), (t, l, b, r) = _pairs(stride), _pairs(dilation), pads4(padding)
    n, c, h, w = q_x.shape
    o, cg, kh, kw = q_w.shape
    oh = (h + t + b - dh * (kh - 1) - 1) // sh + 1
    ow = (w + l + r - dw * (kw - 1) - 1) // sw + 1
    X = np.zeros((n, c, h + t + b, w + l + r), np.float64)
    X[:, :, t:t + h, l:l + w] = q_x
    X[:, :, t:t + h, l:l + w] -= np.float64(z_x)
    X = X.reshape(n, groups, cg, h + t + b, w + l + r)
    W = np.asarray(q_w, np.float64).reshape(groups, o // groups, cg, kh, kw)
    acc = np.zeros((n, groups, o // groups, oh * ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = _taps(X, i * dh, j * dw, (sh, sw), oh, ow).reshape(n, groups, cg, oh * ow)
            if cg == 1:   # depthwise: an outer product per group, no GEMM needed
                acc += W[:, :, :, i, j][None] * patch
            else:
                acc += W[:, :, :, i, j] @ patch   # [G, O/G, I/G] @ [N, G, I/G, P]
    acc = acc.reshape(n, o, oh, ow)
    if bias_q is not None:
        acc += np.asarray(bias_q, np.float64).reshape(1, -1, 1, 1)
    return _check_int32(acc, "conv2d")


def linear_accumulate(q_x, z_x, q_w, bias_q=None):
    """acc[..., c] = Σ (q_x - z_x) · q_w[c] + bias_q[c], exact (float64 GEMM of integers)."""
    X = np.asarray(q_x, np.float64) - np.float64(z_x)
    acc = X @ np.asarray(q_w, np.float64).T
    if bias_q is not None:
        acc += np.asarray(bias_q, np.float64)
    return _check_int32(acc, "linear")


def requantize_output(acc, m, n, z_y, lo, hi, axis=None):
    """clamp(requantize(acc, m, n) + z_y, lo, hi); per-channel (m, n) lie along `axis` of acc."""
    m = _broadcast(np.asarray(m, np.int64), acc, axis)
    n = _broadcast(np.asarray(n, np.int64), acc, axis)
    return np.clip(requantize(acc, m, n) + int(z_y), lo, hi)


def _zero_point(qp):
    return int(np.asarray(qp.zero_point).reshape(-1)[0])


def conv2d(q_x, qp_x, q_w, qp_w, bias, qp_y, activation=None, stride=1, padding=0, dilation=1, groups=1):
    """Quantized conv2d with optional fused ReLU/ReLU6 (SPEC §5). `bias` is float (quantized here)
    or None; weights have zero point 0 (per-channel along axis 0 or per-tensor)."""
    s_w = np.broadcast_to(np.asarray(qp_w.scale), (q_w.shape[0],))
    bias_q = None if bias is None else quantize_bias(bias, qp_x.scale, s_w)
    acc = conv2d_accumulate(q_x, _zero_point(qp_x), q_w, bias_q, stride, padding, dilation, groups)
    m, n = output_multipliers(qp_x.scale, s_w, qp_y.scale)
    lo, hi = activation_bounds(qp_y, activation)
    return requantize_output(acc, m, n, _zero_point(qp_y), lo, hi, axis=1)


def linear(q_x, qp_x, q_w, qp_w, bias, qp_y, activation=None):
    """Quantized linear (y = x @ w.T + b) with optional fused ReLU/ReLU6 (SPEC §5)."""
    s_w = np.broadcast_to(np.asarray(qp_w.scale), (q_w.shape[0],))
    bias_q = None if bias is None else quantize_bias(bias, qp_x.scale, s_w)
    acc = linear_accumulate(q_x, _zero_point(qp_x), q_w, bias_q)
    m, n = output_multipliers(qp_x.scale, s_w, qp_y.scale)
    lo, hi = activation_bounds(qp_y, activation)
    return requantize_output(acc, m, n, _zero_point(qp_y), lo, hi, axis=np.ndim(acc) - 1)


def add_multipliers(s_a, s_b, s_y):
    """(m_a, m_b, n): both inputs rescaled to the output scale sharing one shift n (SPEC §5 add)."""
    M_a = np.float64(np.float32(s_a)) / np.float64(np.float32(s_y))
    M_b = np.float64(np.float32(s_b)) / np.float64(np.float32(s_y))
    _, n = requant_multiplier(max(M_a, M_b))
    n = int(n)
    return int(np.rint(M_a * 2.0 ** n)), int(np.rint(M_b * 2.0 ** n)), n


def add_int(q_a, z_a, q_b, z_b, m_a, m_b, n, z_y, lo, hi):
    """clamp(((A·m_a + B·m_b + 2^(n-1)) >> n) + z_y, lo, hi) in int64."""
    A = np.asarray(q_a, np.int64) - int(z_a)
    B = np.asarray(q_b, np.int64) - int(z_b)
    y = (A * int(m_a) + B * int(m_b) + (1 << (int(n) - 1))) >> int(n)
    return np.clip(y + int(z_y), lo, hi)


def add(q_a, qp_a, q_b, qp_b, qp_y, activation=None):
    """Quantized y = a + b with optional fused ReLU/ReLU6 (SPEC §5)."""
    m_a, m_b, n = add_multipliers(scalar_scale(qp_a), scalar_scale(qp_b), scalar_scale(qp_y))
    lo, hi = activation_bounds(qp_y, activation)
    return add_int(q_a, _zero_point(qp_a), q_b, _zero_point(qp_b), m_a, m_b, n, _zero_point(qp_y), lo, hi)


def scalar_scale(qp):
    return np.asarray(qp.scale, np.float32).reshape(-1)[0]


def _same_params(a: QuantParams, b: QuantParams):
    return scalar_scale(a) == scalar_scale(b) and _zero_point(a) == _zero_point(b)


def rescale(q, qp_x, qp_y):
    """q re-expressed with the output's parameters: copy when (s, z) agree, else
    clamp(requantize(q - z_x, m, n) + z_y, qmin, qmax) with M = s_x / s_y (SPEC §5 concat)."""
    if _same_params(qp_x, qp_y):
        return np.clip(np.asarray(q, np.int64), qp_y.qmin, qp_y.qmax)
    m, n = requant_multiplier(np.float64(scalar_scale(qp_x)) / np.float64(scalar_scale(qp_y)))
    X = np.asarray(q, np.int64) - _zero_point(qp_x)
    return requantize_output(X, m, n, _zero_point(qp_y), qp_y.qmin, qp_y.qmax)


def concat(qs, qps, qp_y, axis=1):
    """Quantized concat: each input rescaled to the output's parameters (SPEC §5)."""
    return np.concatenate([rescale(q, qp, qp_y) for q, qp in zip(qs, qps)], axis=axis)


def clamp_activation(q, qp, activation):
    """A standalone ReLU / ReLU6 on codes: parameters are kept, codes clamped (monotonic)."""
    lo, hi = activation_bounds(qp, activation)
    return np.clip(np.asarray(q, np.int64), lo, hi)


def _window(kernel, stride, padding):
    kernel = _pairs(kernel)
    return kernel, (kernel if stride is None else _pairs(stride)), pads4(padding)


def max_pool2d(q, kernel, stride=None, padding=0):
    """Max over each window, directly on codes; padded cells never win (SPEC §5)."""
    (kh, kw), stride, (t, l, b, r) = _window(kernel, stride, padding)
    q = np.asarray(q, np.int64)
    n, c, h, w = q.shape
    oh, ow = (h + t + b - kh) // stride[0] + 1, (w + l + r - kw) // stride[1] + 1
    lowest = np.iinfo(np.int64).min
    qp = np.full((n, c, h + t + b, w + l + r), lowest, np.int64)
    qp[:, :, t:t + h, l:l + w] = q
    y = np.full((n, c, oh, ow), lowest, np.int64)
    for i in range(kh):
        for j in range(kw):
            np.maximum(y, _taps(qp, i, j, stride, oh, ow), out=y)
    return y


def average_multipliers(s_x, s_y, divisor):
    """(m, n) of M = s_x / (s_y · K) in float64; K (the divisor) may vary per output cell."""
    divisor = np.asarray(divisor, np.float64)
    return requant_multiplier(np.float64(np.float32(s_x)) / (np.float64(np.float32(s_y)) * divisor))


def _average(acc, divisor, qp_x, qp_y):
    """clamp(requantize(acc, m, n) + z_y) with M = s_x / (s_y · K); K may vary per output cell."""
    m, n = average_multipliers(scalar_scale(qp_x), scalar_scale(qp_y), divisor)
    return np.clip(requantize(acc, m, n) + _zero_point(qp_y), qp_y.qmin, qp_y.qmax)


def window_sums(q, z_x, kernel, stride, pads):
    """acc[n, c, i, j] = Σ_window (q - z_x), pads adding 0, and count[i, j] = non-pad cells per window."""
    (kh, kw), stride, (t, l, b, r) = _window(kernel, stride, pads)
    n, c, h, w = np.shape(q)
    oh, ow = (h + t + b - kh) // stride[0] + 1, (w + l + r - kw) // stride[1] + 1
    X = np.zeros((n, c, h + t + b, w + l + r), np.int64)
    X[:, :, t:t + h, l:l + w] = np.asarray(q, np.int64) - int(z_x)
    inside = np.zeros((h + t + b, w + l + r), np.int64)
    inside[t:t + h, l:l + w] = 1
    acc = np.zeros((n, c, oh, ow), np.int64)
    count = np.zeros((oh, ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            acc += _taps(X, i, j, stride, oh, ow)
            count += _taps(inside, i, j, stride, oh, ow)
    return acc, count


def avg_pool_divisors(count, kernel, count_include_pad=True):
    """Divisor per output cell: the window size, or the non-pad cells when count_include_pad is False."""
    kh, kw = _pairs(kernel)
    return np.full(np.shape(count), kh * kw, np.int64) if count_include_pad else np.asarray(count, np.int64)


def avg_pool2d(q, qp_x, qp_y, kernel, stride=None, padding=0, count_include_pad=True):
    """acc = Σ_window (q - z_x) (pads add 0); divisor = window size, or the number of
    non-pad cells when count_include_pad is False (SPEC §5)."""
    acc, count = window_sums(q, _zero_point(qp_x), kernel, stride, padding)
    return _average(acc, avg_pool_divisors(count, kernel, count_include_pad), qp_x, qp_y)


def global_avg_pool2d(q, qp_x, qp_y):
    """Mean over H, W (keeps N, C, 1, 1): acc = Σ (q - z_x), K = H·W (SPEC §5)."""
    n, c, h, w = np.shape(q)
    acc = (np.asarray(q, np.int64) - _zero_point(qp_x)).reshape(n, c, h * w).sum(axis=2)
    return _average(acc, h * w, qp_x, qp_y).reshape(n, c, 1, 1)


def adaptive_bins(size, out):
    """PyTorch's adaptive bins [floor(i*size/out), ceil((i+1)*size/out)) as (starts, ends)."""
    starts = np.array([(i * size) // out for i in range(out)])
    ends = np.array([-(-((i + 1) * size) // out) for i in range(out)])
    return starts, ends


def adaptive_avg_pool2d(q, qp_x, qp_y, output_size):
    """Adaptive average pool: per-bin sums and per-bin divisors (SPEC §5)."""
    n, c, h, w = np.shape(q)
    oh, ow = _pairs(output_size)
    X = np.asarray(q, np.int64) - _zero_point(qp_x)
    # Summed-area table: every bin sum is four lookups, so no loop over bins or pixels.
    sat = np.zeros((n, c, h + 1, w + 1), np.int64)
    sat[:, :, 1:, 1:] = X.cumsum(axis=2).cumsum(axis=3)
    (r0, r1), (c0, c1) = adaptive_bins(h, oh), adaptive_bins(w, ow)
    acc = (sat[:, :, r1[:, None], c1[None, :]] - sat[:, :, r0[:, None], c1[None, :]]
           - sat[:, :, r1[:, None], c0[None, :]] + sat[:, :, r0[:, None], c0[None, :]])
    divisor = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    return _average(acc, divisor, qp_x, qp_y)


# --- element-wise nonlinear functions: lookup tables (SPEC §5) ---

def _hardswish(x):
    return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _hardsigmoid(x):
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


LUT_FUNCTIONS = {"hardswish": _hardswish, "sigmoid": _sigmoid, "hardsigmoid": _hardsigmoid, "tanh": np.tanh}


def build_lut(function, qp_x: QuantParams, qp_y: QuantParams):
    """table[q - qmin_x] = quantize(f(dequantize(q)), s_y, z_y) over every input code, in float64,
    rounded half to even. `function` is a name in LUT_FUNCTIONS or a float64 NumPy callable."""
    f = LUT_FUNCTIONS[function] if isinstance(function, str) else function
    lo, hi = qrange(qp_x.bits, qp_x.signed)   # every storable code, narrow range or not
    codes = np.arange(lo, hi + 1, dtype=np.int64)
    x = (codes - _zero_point(qp_x)).astype(np.float64) * np.float64(scalar_scale(qp_x))
    y = np.rint(f(x) / np.float64(scalar_scale(qp_y))) + _zero_point(qp_y)
    return np.clip(y, qp_y.qmin, qp_y.qmax).astype(np.int64)


def apply_lut(q, table, qp_x: QuantParams):
    """Table lookup: y = table[q - qmin] (integer only)."""
    lo, _ = qrange(qp_x.bits, qp_x.signed)
    return np.asarray(table)[np.asarray(q, np.int64) - lo]


# --- batch-norm folding (SPEC §7) ---

def fold_bn(weight, bias, mean, var, gamma, beta, eps):
    """w_fold = w · γ / sqrt(σ² + ε) per output channel; b_fold = β + (b - μ) · γ / sqrt(σ² + ε).

    Computed in float64, returned as float32. `bias`, `gamma`, `beta` may be None (0, 1, 0).
    """
    w = np.asarray(weight, np.float64)
    c = w.shape[0]
    gamma = np.ones(c) if gamma is None else np.asarray(gamma, np.float64)
    beta = np.zeros(c) if beta is None else np.asarray(beta, np.float64)
    b = np.zeros(c) if bias is None else np.asarray(bias, np.float64)
    factor = gamma / np.sqrt(np.asarray(var, np.float64) + eps)
    w_fold = w * factor.reshape((-1,) + (1,) * (w.ndim - 1))
    b_fold = beta + (b - np.asarray(mean, np.float64)) * factor
    return w_fold.astype(np.float32), b_fold.astype(np.float32)
