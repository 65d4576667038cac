"""NumPy reference kernels for every IR op: KERNELS[op](inputs, attrs) -> array or list of arrays.

`inputs` holds one array per node input (None for an omitted optional one); `attrs` has every
attribute filled in (see ops.py). Written for clarity first, but vectorised: convolutions and
pools loop over kernel taps only, never over pixels.
"""
from __future__ import annotations

import math

import numpy as np

from . import integer_spec as ispec
from .image_ops import IMAGE_KERNELS
from .layout import LAYOUT_OPS, layout_aware_kernel
from .quant_params import quant_range, storage_dtype
from .shape_inference import conv_output_size, pool_output_size


# ---------------------------------------------------------------- helpers

def _taps(xp, i, j, sh, sw, oh, ow):
    """The strided view of padded input `xp` that kernel tap (i, j) sees: [..., oh, ow]."""
    return xp[..., i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw]


def _lowest(dtype):
    return -np.inf if np.dtype(dtype).kind == "f" else np.iinfo(dtype).min


def _along_axis(param, axis, rank):
    """Per-tensor params become scalars; per-axis ones are shaped to broadcast along `axis`."""
    param = np.asarray(param)
    if axis is None or param.size == 1:
        return param.reshape(())
    shape = [1] * rank
    shape[axis % rank] = -1
    return param.reshape(shape)


# ---------------------------------------------------------------- nn

def conv2d(inputs, attrs):
    x, w, b = inputs
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = attrs["strides"], attrs["dilations"], attrs["pads"]
    group = attrs["group"]
    n, _, h, wd = x.shape
    out_c, in_per_group, kh, kw = w.shape
    oh = conv_output_size(h, kh, sh, pt, pb, dh)
    ow = conv_output_size(wd, kw, sw, pl, pr, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    xp = xp.reshape(n, group, in_per_group, *xp.shape[2:])
    wg = w.reshape(group, out_c // group, in_per_group, kh, kw)
    acc = np.zeros((n, group, out_c // group, oh * ow), dtype=np.result_type(x, w))
    for i in range(kh):
        for j in range(kw):
            patch = _taps(xp, i * dh, j * dw, sh, sw, oh, ow).reshape(n, group, in_per_group, -1)
            acc += wg[:, :, :, i, j] @ patch  # [G, O/G, I/G] @ [N, G, I/G, P] -> [N, G, O/G, P]
    y = acc.reshape(n, out_c, oh, ow)
    return y + b.reshape(1, -1, 1, 1) if b is not None else y


def linear(inputs, attrs):
    x, w, b = inputs
    y = x @ w.T
    return y + b if b is not None else y


def batch_norm(inputs, attrs):
    x, scale, bias, mean, var = inputs
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv_std = 1.0 / np.sqrt(var.reshape(shape) + np.asarray(attrs["epsilon"], dtype=x.dtype))
    return (x - mean.reshape(shape)) * inv_std * scale.reshape(shape) + bias.reshape(shape)


def _pool_geometry(x, attrs):
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = attrs["kernel"], attrs["strides"], attrs["pads"]
    h, w = x.shape[2:]
    oh = pool_output_size(h, kh, sh, pt, pb, attrs["ceil_mode"])
    ow = pool_output_size(w, kw, sw, pl, pr, attrs["ceil_mode"])
    # ceil_mode windows may run past the end padding: extend with cells no window counts.
    extra_h = max(0, (oh - 1) * sh + kh - (h + pt + pb))
    extra_w = max(0, (ow - 1) * sw + kw - (w + pl + pr))
    return (kh, kw, sh, sw, oh, ow), ((pt, pb + extra_h), (pl, pr + extra_w)), (extra_h, extra_w)


def max_pool2d(inputs, attrs):
    x = inputs[0]
    (kh, kw, sh, sw, oh, ow), pads, _ = _pool_geometry(x, attrs)
    xp = np.pad(x, ((0, 0), (0, 0)) + pads, constant_values=_lowest(x.dtype))
    y = np.full(x.shape[:2] + (oh, ow), _lowest(x.dtype), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            np.maximum(y, _taps(xp, i, j, sh, sw, oh, ow), out=y)
    return y


def avg_pool2d(inputs, attrs):
    x = inputs[0]
    (kh, kw, sh, sw, oh, ow), pads, (extra_h, extra_w) = _pool_geometry(x, attrs)
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    # Divisor = number of counted cells under each window: real cells, plus the explicit
    # padding when count_include_pad (the ceil_mode extension never counts).
    counted = np.ones(x.shape[2:], dtype=x.dtype)
    (pt, pb), (pl, pr) = (pads[0][0], pads[0][1] - extra_h), (pads[1][0], pads[1][1] - extra_w)
    if attrs["count_include_pad"]:
        counted = np.pad(counted, ((pt, pb), (pl, pr)), constant_values=1)
        counted = np.pad(counted, ((0, extra_h), (0, extra_w)))
    else:
        counted = np.pad(counted, ((pt, pb + extra_h), (pl, pr + extra_w)))
    total = np.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
    count = np.zeros((oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            total += _taps(xp, i, j, sh, sw, oh, ow)
            count += _taps(counted, i, j, sh, sw, oh, ow)
    return total / count


def global_avg_pool2d(inputs, attrs):
    return inputs[0].mean(axis=(2, 3), keepdims=True)


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling bins: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d(inputs, attrs):
    x = inputs[0]
    oh, ow = attrs["output_size"]
    y = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i, (h0, h1) in enumerate(adaptive_bins(x.shape[2], oh)):
        for j, (w0, w1) in enumerate(adaptive_bins(x.shape[3], ow)):
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


def channel_shuffle(inputs, attrs):
    x, g = inputs[0], attrs["groups"]
    n, c = x.shape[:2]
    return x.reshape(n, g, c // g, *x.shape[2:]).swapaxes(1, 2).reshape(x.shape)


# ---------------------------------------------------------------- element-wise

def _float(value, like):
    return np.asarray(value, dtype=like.dtype)


def sigmoid(inputs, attrs):
    x = inputs[0]
    return np.exp(-np.logaddexp(_float(0, x), -x))  # stable for large |x|


def hardswish(inputs, attrs):
    x = inputs[0]
    return x * np.clip(x * _float(1 / 6, x) + _float(0.5, x), 0, 1)


def leaky_relu(inputs, attrs):
    x = inputs[0]
    return np.where(x >= 0, x, x * _float(attrs["alpha"], x))   # NaN >= 0 is false: NaN * alpha stays NaN


def hardsigmoid(inputs, attrs):
    x = inputs[0]
    return np.clip(x * _float(attrs["alpha"], x) + _float(attrs["beta"], x), 0, 1).astype(x.dtype)


def clip(inputs, attrs):
    x = inputs[0]
    lo, hi = attrs["min"], attrs["max"]
    if x.dtype.kind in "iu":  # integer tensors: round bounds inwards, keep them representable
        info = np.iinfo(x.dtype)
        lo = None if lo is None else min(max(math.ceil(lo), info.min), info.max)
        hi = None if hi is None else max(min(math.floor(hi), info.max), info.min)
    y = x
    if lo is not None:
        y = np.maximum(y, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi, dtype=x.dtype))
    return y


def div(inputs, attrs):
    a, b = inputs
    if a.dtype.kind in "iu":  # integer division truncates toward zero (C / ONNX semantics)
        q = np.abs(a) // np.abs(b)
        return (np.sign(a) * np.sign(b) * q).astype(a.dtype)
    return a / b


def softmax(inputs, attrs):
    x, axis = inputs[0], attrs["axis"]
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(inputs, attrs):
    x, axis = inputs[0], attrs["axis"]
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _unary(fn):
    return lambda inputs, attrs: fn(inputs[0])


def _binary(fn):
    return lambda inputs, attrs: fn(inputs[0], inputs[1])


# ---------------------------------------------------------------- tensor shuffling

def split(inputs, attrs):
    bounds = np.cumsum(attrs["sizes"])[:-1]
    return np.split(inputs[0], bounds, axis=attrs["axis"])


def flatten(inputs, attrs):
    x = inputs[0]
    axis = attrs["axis"] % x.ndim
    return x.reshape(x.shape[:axis] + (math.prod(x.shape[axis:]),))


def slice_(inputs, attrs):
    x = inputs[0]
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]):
        index[a % x.ndim] = slice(s, e, st)
    return x[tuple(index)]


def _reduce(fn):
    def kernel(inputs, attrs):
        x = inputs[0]
        y = fn(x, axis=tuple(attrs["axes"]), keepdims=bool(attrs["keepdims"]))
        return np.asarray(y).astype(x.dtype, copy=False)
    return kernel


def pad(inputs, attrs):
    x, pads = inputs[0], attrs["pads"]
    rank = x.ndim
    begin, end = pads[:rank], pads[rank:]
    # Negative pads crop first, then np.pad adds the positive ones.
    crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for b, e, d in zip(begin, end, x.shape))
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    x = x[crop]
    if attrs["mode"] == "constant":
        return np.pad(x, widths, mode="constant", constant_values=np.asarray(attrs["value"]).astype(x.dtype))
    return np.pad(x, widths, mode=attrs["mode"])


# ---------------------------------------------------------------- quantization

def quantize(inputs, attrs):
    x, scale, zero_point = inputs
    axis = attrs["axis"]
    qmin, qmax = quant_range(attrs["bits"], bool(attrs["signed"]), bool(attrs["narrow_range"]))
    scale = _along_axis(scale, axis, x.ndim).astype(x.dtype)
    zp = 0 if zero_point is None else _along_axis(zero_point, axis, x.ndim).astype(x.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.rint(x / scale) + zp  # np.rint rounds half to even, like ONNX QuantizeLinear
    return ispec.saturate_codes(q, qmin, qmax, storage_dtype(attrs["bits"], bool(attrs["signed"])))


def dequantize(inputs, attrs):
    x, scale, zero_point = inputs
    axis = attrs["axis"]
    scale = _along_axis(scale, axis, x.ndim)
    zp = 0 if zero_point is None else _along_axis(zero_point, axis, x.ndim).astype(np.int64)
    return (x.astype(np.int64) - zp).astype(scale.dtype) * scale


# ---------------------------------------------------------------- integer ops (SPEC §5)
# Every integer kernel delegates to integer_spec, the one implementation of the arithmetic.

def _requantized(acc, attrs, axis=1):
    """clamp(requantize(acc, m, n) + y_zero_point, out_min, out_max) cast to out_dtype."""
    y = ispec.requantize_output(acc, attrs["multiplier"], attrs["shift"], attrs["y_zero_point"],
                                attrs["out_min"], attrs["out_max"], axis=axis)
    return y.astype(attrs["out_dtype"])


def qconv2d(inputs, attrs):
    x, w, b = inputs
    acc = ispec.conv2d_accumulate(x, attrs["x_zero_point"], w, b, attrs["strides"], attrs["pads"],
                                  attrs["dilations"], attrs["group"])
    return _requantized(acc, attrs, axis=1)


def qlinear(inputs, attrs):
    x, w, b = inputs
    acc = ispec.linear_accumulate(x, attrs["x_zero_point"], w, b)
    return _requantized(acc, attrs, axis=acc.ndim - 1)


def qadd(inputs, attrs):
    a, b = inputs
    y = ispec.add_int(a, attrs["a_zero_point"], b, attrs["b_zero_point"], attrs["a_multiplier"],
                      attrs["b_multiplier"], attrs["shift"], attrs["y_zero_point"],
                      attrs["out_min"], attrs["out_max"])
    return y.astype(attrs["out_dtype"])


def requantize(inputs, attrs):
    x = inputs[0]
    return _requantized(x.astype(np.int64) - attrs["x_zero_point"], attrs, axis=min(1, x.ndim - 1))


def qavg_pool2d(inputs, attrs):
    x, m_map, n_map = inputs
    acc, _ = ispec.window_sums(x, attrs["x_zero_point"], attrs["kernel"], attrs["strides"], attrs["pads"])
    y = ispec.requantize(acc, m_map, n_map) + attrs["y_zero_point"]
    return np.clip(y, attrs["out_min"], attrs["out_max"]).astype(attrs["out_dtype"])


def qglobal_avg_pool2d(inputs, attrs):
    x = inputs[0]
    acc = (x.astype(np.int64) - attrs["x_zero_point"]).sum(axis=(2, 3), keepdims=True)
    return _requantized(acc, attrs, axis=1)


def lut(inputs, attrs):
    x, table = inputs
    return table[x.astype(np.int64) - np.iinfo(x.dtype).min]


KERNELS = {
    "conv2d": conv2d,
    "linear": linear,
    "matmul": _binary(np.matmul),
    "batch_norm": batch_norm,
    "relu": _unary(lambda x: np.maximum(x, np.zeros((), x.dtype))),
    "sigmoid": sigmoid,
    "tanh": _unary(np.tanh),
    "hardswish": hardswish,
    "identity": _unary(lambda x: x),
    "neg": _unary(np.negative),
    "exp": _unary(np.exp),
    "log": _unary(np.log),
    "sqrt": _unary(np.sqrt),
    "hardsigmoid": hardsigmoid,
    "leaky_relu": leaky_relu,
    "clip": clip,
    "max_pool2d": max_pool2d,
    "avg_pool2d": avg_pool2d,
    "global_avg_pool2d": global_avg_pool2d,
    "adaptive_avg_pool2d": adaptive_avg_pool2d,
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "div": div,
    "pow": _binary(np.power),
    "concat": lambda inputs, attrs: np.concatenate(inputs, axis=attrs["axis"]),
    "split": split,
    "reshape": lambda inputs, attrs: inputs[0].reshape(attrs["shape"]),
    "flatten": flatten,
    "transpose": lambda inputs, attrs: np.transpose(inputs[0], attrs["perm"]),
    "squeeze": lambda inputs, attrs: np.squeeze(inputs[0], axis=tuple(attrs["axes"])),
    "unsqueeze": lambda inputs, attrs: np.expand_dims(inputs[0], axis=tuple(attrs["axes"])),
    "slice": slice_,
    "reduce_mean": _reduce(np.mean),
    "reduce_sum": _reduce(np.sum),
    "reduce_max": _reduce(np.max),
    "softmax": softmax,
    "log_softmax": log_softmax,
    "pad": pad,
    "channel_shuffle": channel_shuffle,
    "quantize": quantize,
    "dequantize": dequantize,
    "qconv2d": qconv2d,
    "qlinear": qlinear,
    "qadd": qadd,
    "requantize": requantize,
    "qavg_pool2d": qavg_pool2d,
    "qglobal_avg_pool2d": qglobal_avg_pool2d,
    "lut": lut,
}
# Ops with a `layout` attr run their NCHW rule on transposed data (ir/layout.py).
KERNELS.update({op: layout_aware_kernel(KERNELS[op]) for op in LAYOUT_OPS})
KERNELS.update(IMAGE_KERNELS)
