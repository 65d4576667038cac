"""Shape/dtype inference for every IR op: f(inputs: list[Value | None], attrs) -> [(shape, dtype)].

Shapes are always concrete. Each function raises ShapeInferenceError saying what is wrong;
Graph.add_node adds the node name and op to the message.
"""
from __future__ import annotations

import numpy as np

from .errors import ShapeInferenceError
from .quant_params import storage_dtype

FLOAT_DTYPES = ("float32", "float16", "float64")


def fail(msg: str):
    raise ShapeInferenceError(msg)


def require(cond: bool, msg: str) -> None:
    if not cond:
        fail(msg)


def require_rank(v, rank: int, what: str) -> None:
    require(len(v.shape) == rank, f"{what} '{v.name}' must be {rank}-D, got shape {list(v.shape)}")


def require_float(v, what: str) -> None:
    require(v.dtype in FLOAT_DTYPES, f"{what} '{v.name}' must be a float tensor, got {v.dtype}")


def require_same_dtype(values, what: str) -> str:
    dtypes = {v.dtype for v in values if v is not None}
    require(len(dtypes) == 1,
            f"{what}: inputs must share one dtype, got " +
            ", ".join(f"'{v.name}': {v.dtype}" for v in values if v is not None))
    return dtypes.pop()


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    require(-rank <= axis < rank, f"{what} {axis} out of range for rank {rank}")
    return axis % rank


def require_len(values, n: int, what: str) -> None:
    require(len(values) == n, f"{what} must have {n} entries, got {values}")


# ---------------------------------------------------------------- element-wise

def same_as_input(inputs, attrs):
    return [(inputs[0].shape, inputs[0].dtype)]


def float_unary(inputs, attrs):
    require_float(inputs[0], "input")
    return same_as_input(inputs, attrs)


def clip(inputs, attrs):
    lo, hi = attrs["min"], attrs["max"]
    require(lo is None or hi is None or lo <= hi, f"clip min {lo} > max {hi}")
    return same_as_input(inputs, attrs)


def broadcast(inputs, attrs):
    dtype = require_same_dtype(inputs, "element-wise op")
    try:
        shape = np.broadcast_shapes(*(v.shape for v in inputs))
    except ValueError:
        fail("cannot broadcast shapes " + " and ".join(str(list(v.shape)) for v in inputs))
    return [(tuple(shape), dtype)]


# ---------------------------------------------------------------- nn

def conv_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                     dilation: int) -> int:
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                     ceil_mode: int) -> int:
    """PyTorch/ONNX Runtime rule: in ceil mode the last window must start inside input or left pad."""
    span = size + pad_begin + pad_end - kernel
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _check_window_attrs(attrs, has_kernel=True):
    for key, n in (("kernel", 2), ("strides", 2), ("dilations", 2), ("pads", 4)):
        if key in attrs:
            require_len(attrs[key], n, key)
    for key in ("kernel", "strides", "dilations"):
        if key in attrs:
            require(all(v >= 1 for v in attrs[key]), f"{key} must be >= 1, got {attrs[key]}")
    require(all(p >= 0 for p in attrs["pads"]), f"pads must be >= 0, got {attrs['pads']}")


def conv2d(inputs, attrs):
    x, w, b = inputs
    require_rank(x, 4, "conv2d input")
    require_rank(w, 4, "conv2d weight")
    require_float(x, "conv2d input")
    dtype = require_same_dtype([x, w, b], "conv2d")
    _check_window_attrs(attrs)
    group = attrs["group"]
    out_c, in_per_group, kh, kw = w.shape
    require(group >= 1 and out_c % group == 0,
            f"conv2d: out channels {out_c} not divisible by group {group}")
    require(x.shape[1] == in_per_group * group,
            f"conv2d: input has {x.shape[1]} channels, weight {list(w.shape)} with group {group} "
            f"expects {in_per_group * group}")
    if b is not None:
        require(b.shape == (out_c,), f"conv2d: bias shape {list(b.shape)} != [{out_c}]")
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = attrs["strides"], attrs["dilations"], attrs["pads"]
    oh = conv_output_size(x.shape[2], kh, sh, pt, pb, dh)
    ow = conv_output_size(x.shape[3], kw, sw, pl, pr, dw)
    require(oh >= 1 and ow >= 1, f"conv2d: kernel {[kh, kw]} larger than padded input {list(x.shape)}")
    return [((x.shape[0], out_c, oh, ow), dtype)]


def linear(inputs, attrs):
    x, w, b = inputs
    require(len(x.shape) >= 1, "linear input must be at least 1-D")
    require_rank(w, 2, "linear weight")
    dtype = require_same_dtype([x, w, b], "linear")
    require(x.shape[-1] == w.shape[1],
            f"linear: input features {x.shape[-1]} != weight in-features {w.shape[1]} "
            f"(weight {list(w.shape)} is [out, in])")
    if b is not None:
        require(b.shape == (w.shape[0],), f"linear: bias shape {list(b.shape)} != [{w.shape[0]}]")
    return [(x.shape[:-1] + (w.shape[0],), dtype)]


def matmul(inputs, attrs):
    a, b = inputs
    dtype = require_same_dtype(inputs, "matmul")
    require(len(a.shape) >= 1 and len(b.shape) >= 1, "matmul inputs must be at least 1-D")
    a_shape = (1,) + a.shape if len(a.shape) == 1 else a.shape
    b_shape = b.shape + (1,) if len(b.shape) == 1 else b.shape
    require(a_shape[-1] == b_shape[-2],
            f"matmul: inner dims differ: {list(a.shape)} @ {list(b.shape)}")
    try:
        batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        fail(f"matmul: batch dims do not broadcast: {list(a.shape)} @ {list(b.shape)}")
    shape = tuple(batch) + (a_shape[-2], b_shape[-1])
    if len(a.shape) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b.shape) == 1:
        shape = shape[:-1]
    return [(shape, dtype)]


def batch_norm(inputs, attrs):
    x = inputs[0]
    require(len(x.shape) >= 2, f"batch_norm input must be at least 2-D, got {list(x.shape)}")
    require_float(x, "batch_norm input")
    dtype = require_same_dtype(inputs, "batch_norm")
    for v, what in zip(inputs[1:], ("scale", "bias", "mean", "var")):
        require(v.shape == (x.shape[1],),
                f"batch_norm {what} shape {list(v.shape)} != [{x.shape[1]}] (channels)")
    return [(x.shape, dtype)]


def hardsigmoid(inputs, attrs):
    return float_unary(inputs, attrs)


def _pool(inputs, attrs):
    x = inputs[0]
    require_rank(x, 4, "pool input")
    _check_window_attrs(attrs)
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = attrs["kernel"], attrs["strides"], attrs["pads"]
    require(pt < kh and pb < kh and pl < kw and pr < kw,
            f"pool pads {attrs['pads']} must be smaller than kernel {attrs['kernel']}")
    oh = pool_output_size(x.shape[2], kh, sh, pt, pb, attrs["ceil_mode"])
    ow = pool_output_size(x.shape[3], kw, sw, pl, pr, attrs["ceil_mode"])
    require(oh >= 1 and ow >= 1, f"pool kernel {[kh, kw]} larger than padded input {list(x.shape)}")
    return [((x.shape[0], x.shape[1], oh, ow), x.dtype)]


def max_pool2d(inputs, attrs):
    return _pool(inputs, attrs)


def avg_pool2d(inputs, attrs):
    require_float(inputs[0], "avg_pool2d input")
    return _pool(inputs, attrs)


def global_avg_pool2d(inputs, attrs):
    x = inputs[0]
    require_rank(x, 4, "global_avg_pool2d input")
    require_float(x, "global_avg_pool2d input")
    return [((x.shape[0], x.shape[1], 1, 1), x.dtype)]


def adaptive_avg_pool2d(inputs, attrs):
    x = inputs[0]
    require_rank(x, 4, "adaptive_avg_pool2d input")
    require_float(x, "adaptive_avg_pool2d input")
    size = attrs["output_size"]
    require_len(size, 2, "output_size")
    require(all(s >= 1 for s in size), f"output_size must be >= 1, got {size}")
    return [((x.shape[0], x.shape[1], size[0], size[1]), x.dtype)]


def softmax(inputs, attrs):
    x = inputs[0]
    require_float(x, "softmax input")
    normalize_axis(attrs["axis"], len(x.shape))
    return [(x.shape, x.dtype)]


def channel_shuffle(inputs, attrs):
    x = inputs[0]
    require(len(x.shape) >= 2, f"channel_shuffle input must be at least 2-D, got {list(x.shape)}")
    g = attrs["groups"]
    require(g >= 1 and x.shape[1] % g == 0,
            f"channel_shuffle: {x.shape[1]} channels not divisible by groups {g}")
    return [(x.shape, x.dtype)]


# ---------------------------------------------------------------- tensor shuffling

def concat(inputs, attrs):
    dtype = require_same_dtype(inputs, "concat")
    rank = len(inputs[0].shape)
    require(all(len(v.shape) == rank for v in inputs),
            "concat inputs must share rank, got " + ", ".join(str(list(v.shape)) for v in inputs))
    axis = normalize_axis(attrs["axis"], rank)
    for v in inputs:
        same = all(a == b for i, (a, b) in enumerate(zip(v.shape, inputs[0].shape)) if i != axis)
        require(same, f"concat: shapes differ outside axis {axis}: "
                + ", ".join(str(list(v.shape)) for v in inputs))
    shape = list(inputs[0].shape)
    shape[axis] = sum(v.shape[axis] for v in inputs)
    return [(tuple(shape), dtype)]


def split(inputs, attrs):
    x = inputs[0]
    axis = normalize_axis(attrs["axis"], len(x.shape))
    sizes = attrs["sizes"]
    require(len(sizes) >= 1 and all(s >= 0 for s in sizes), f"split sizes must be >= 0, got {sizes}")
    require(sum(sizes) == x.shape[axis],
            f"split sizes {sizes} sum to {sum(sizes)}, axis {axis} has {x.shape[axis]}")
    outs = []
    for s in sizes:
        shape = list(x.shape)
        shape[axis] = s
        outs.append((tuple(shape), x.dtype))
    return outs


def reshape_target(in_shape, target) -> tuple[int, ...]:
    """Resolve a reshape target holding at most one -1 (0 is a literal zero-sized dim)."""
    total = int(np.prod(in_shape, dtype=np.int64))
    require(sum(d == -1 for d in target) <= 1, f"reshape shape {target} has more than one -1")
    require(all(d >= -1 for d in target), f"reshape shape {target} has a dim < -1")
    known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
    if -1 in target:
        require(known > 0 and total % known == 0,
                f"cannot reshape {list(in_shape)} ({total} elements) to {target}")
        return tuple(total // known if d == -1 else d for d in target)
    require(known == total, f"cannot reshape {list(in_shape)} ({total} elements) to {target}")
    return tuple(target)


def reshape(inputs, attrs):
    x = inputs[0]
    return [(reshape_target(x.shape, attrs["shape"]), x.dtype)]


def flatten(inputs, attrs):
    """Keeps dims before `axis` and flattens the rest into one (torch.flatten(x, axis))."""
    x = inputs[0]
    require(len(x.shape) >= 1, "flatten input must be at least 1-D")
    axis = normalize_axis(attrs["axis"], len(x.shape))
    return [(x.shape[:axis] + (int(np.prod(x.shape[axis:], dtype=np.int64)),), x.dtype)]


def transpose(inputs, attrs):
    x = inputs[0]
    perm = attrs["perm"]
    require(sorted(perm) == list(range(len(x.shape))),
            f"transpose perm {perm} is not a permutation of {len(x.shape)} axes")
    return [(tuple(x.shape[p] for p in perm), x.dtype)]


def _unique_axes(axes, rank, what):
    norm = [normalize_axis(a, rank, f"{what} axis") for a in axes]
    require(len(set(norm)) == len(norm), f"{what} axes {axes} repeat an axis")
    return norm


def squeeze(inputs, attrs):
    x = inputs[0]
    axes = _unique_axes(attrs["axes"], len(x.shape), "squeeze")
    for a in axes:
        require(x.shape[a] == 1, f"squeeze axis {a} has size {x.shape[a]}, not 1")
    return [(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype)]


def unsqueeze(inputs, attrs):
    x = inputs[0]
    out_rank = len(x.shape) + len(attrs["axes"])
    axes = _unique_axes(attrs["axes"], out_rank, "unsqueeze")
    dims = iter(x.shape)
    return [(tuple(1 if i in axes else next(dims) for i in range(out_rank)), x.dtype)]


def slice_(inputs, attrs):
    x = inputs[0]
    starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]
    require(len(starts) == len(ends) == len(axes) == len(steps),
            f"slice starts/ends/axes/steps lengths differ: {starts}, {ends}, {axes}, {steps}")
    require(all(s != 0 for s in steps), f"slice steps must be non-zero, got {steps}")
    norm_axes = _unique_axes(axes, len(x.shape), "slice")
    shape = list(x.shape)
    for a, s, e, st in zip(norm_axes, starts, ends, steps):
        shape[a] = len(range(*slice(s, e, st).indices(x.shape[a])))
    return [(tuple(shape), x.dtype)]


def reduce(inputs, attrs):
    x = inputs[0]
    axes = _unique_axes(attrs["axes"], len(x.shape), "reduce")
    if attrs["keepdims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return [(shape, x.dtype)]


PAD_MODES = ("constant", "reflect", "edge")


def pad(inputs, attrs):
    x = inputs[0]
    rank = len(x.shape)
    pads = attrs["pads"]
    require(len(pads) == 2 * rank, f"pad needs {2 * rank} pads [begin..., end...] for rank {rank}, "
            f"got {pads}")
    require(attrs["mode"] in PAD_MODES, f"pad mode {attrs['mode']!r} not in {PAD_MODES}")
    shape = tuple(d + pads[i] + pads[i + rank] for i, d in enumerate(x.shape))
    require(all(d >= 0 for d in shape), f"pads {pads} crop {list(x.shape)} below zero")
    if attrs["mode"] == "reflect":
        require(all(max(pads[i], pads[i + rank]) < d
                    for i, d in enumerate(x.shape) if max(pads[i], pads[i + rank]) > 0),
                f"reflect pads {pads} must be smaller than the dims {list(x.shape)}")
    return [(shape, x.dtype)]


# ---------------------------------------------------------------- quantization

def _check_quant_axis(x, scale, zero_point, axis, op):
    if axis is None:
        require(scale.size == 1, f"{op}: per-tensor (axis None) needs one scale, got {list(scale.shape)}")
    else:
        a = normalize_axis(axis, len(x.shape), f"{op} axis")
        require(len(scale.shape) <= 1 and scale.size in (1, x.shape[a]),
                f"{op}: per-axis scale shape {list(scale.shape)} does not match "
                f"axis {axis} of size {x.shape[a]}")
    if zero_point is not None:
        require(zero_point.size in (1, scale.size),
                f"{op}: zero_point shape {list(zero_point.shape)} does not match scale {list(scale.shape)}")
        require(np.dtype(zero_point.dtype).kind in "iu",
                f"{op}: zero_point must be an integer tensor, got {zero_point.dtype}")
    require_float(scale, f"{op} scale")


def quantize(inputs, attrs):
    x, scale, zero_point = inputs
    require_float(x, "quantize input")
    require(2 <= attrs["bits"] <= 32, f"quantize bits must be in [2, 32], got {attrs['bits']}")
    _check_quant_axis(x, scale, zero_point, attrs["axis"], "quantize")
    return [(x.shape, storage_dtype(attrs["bits"], bool(attrs["signed"])))]


def dequantize(inputs, attrs):
    x, scale, zero_point = inputs
    require(np.dtype(x.dtype).kind in "iu", f"dequantize input '{x.name}' must be integer, got {x.dtype}")
    _check_quant_axis(x, scale, zero_point, attrs["axis"], "dequantize")
    return [(x.shape, scale.dtype)]


def all_axes(attrs, inputs) -> list[int]:
    return list(range(len(inputs[0].shape)))



# ---------------------------------------------------------------- integer ops (design.md, "Integer IR ops")

INT8_DTYPES = ("int8", "uint8")


def require_int8(v, what: str) -> None:
    require(v.dtype in INT8_DTYPES, f"{what} '{v.name}' must be int8 or uint8, got {v.dtype}")


def _out_dtype(attrs) -> str:
    dtype = attrs["out_dtype"]
    require(dtype in INT8_DTYPES, f"out_dtype must be int8 or uint8, got {dtype!r}")
    require(attrs["out_min"] <= attrs["out_max"],
            f"out_min {attrs['out_min']} > out_max {attrs['out_max']}")
    info = np.iinfo(dtype)
    require(info.min <= attrs["out_min"] and attrs["out_max"] <= info.max,
            f"[out_min, out_max] = [{attrs['out_min']}, {attrs['out_max']}] does not fit {dtype}")
    return dtype


def _check_multipliers(attrs, channels: int) -> None:
    m, n = attrs["multiplier"], attrs["shift"]
    require(len(m) == len(n) and len(m) in (1, channels),
            f"multiplier / shift must both have length 1 or {channels}, got {len(m)} and {len(n)}")
    require(all(1 <= s <= 62 for s in n), f"shift must be in [1, 62], got {n}")


def _check_int_weight_bias(w, b, out_c: int, op: str) -> None:
    require(w.dtype == "int8", f"{op} weight '{w.name}' must be int8, got {w.dtype}")
    if b is not None:
        require(b.dtype == "int32", f"{op} bias '{b.name}' must be int32, got {b.dtype}")


def qconv2d(inputs, attrs):
    x, w, b = inputs
    require_int8(x, "qconv2d input")
    _check_int_weight_bias(w, b, w.shape[0], "qconv2d")
    _check_multipliers(attrs, w.shape[0])
    float_like = [type(v)(v.name, v.shape, "float32") if v is not None else None for v in inputs]
    ((shape, _),) = conv2d(float_like, attrs)
    return [(shape, _out_dtype(attrs))]


def qlinear(inputs, attrs):
    x, w, b = inputs
    require_int8(x, "qlinear input")
    require_rank(w, 2, "qlinear weight")
    _check_int_weight_bias(w, b, w.shape[0], "qlinear")
    _check_multipliers(attrs, w.shape[0])
    float_like = [type(v)(v.name, v.shape, "float32") if v is not None else None for v in inputs]
    ((shape, _),) = linear(float_like, attrs)
    return [(shape, _out_dtype(attrs))]


def qadd(inputs, attrs):
    a, b = inputs
    require_int8(a, "qadd input a")
    require_int8(b, "qadd input b")
    require(1 <= attrs["shift"] <= 62, f"shift must be in [1, 62], got {attrs['shift']}")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        fail(f"cannot broadcast shapes {list(a.shape)} and {list(b.shape)}")
    return [(tuple(shape), _out_dtype(attrs))]


def requantize(inputs, attrs):
    x = inputs[0]
    require(x.dtype in INT8_DTYPES + ("int32",),
            f"requantize input '{x.name}' must be int8, uint8 or int32, got {x.dtype}")
    channels = x.shape[1] if len(x.shape) >= 2 else 1
    _check_multipliers(attrs, channels)
    return [(x.shape, _out_dtype(attrs))]


def qavg_pool2d(inputs, attrs):
    """Window sums with a per-output-cell (multiplier, shift): divisors live in the maps, so
    padding may be wider than the kernel (a ceil_mode tail becomes extra end padding)."""
    x, m_map, n_map = inputs
    require_int8(x, "qavg_pool2d input")
    require_rank(x, 4, "qavg_pool2d input")
    _check_window_attrs(attrs)
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = attrs["kernel"], attrs["strides"], attrs["pads"]
    oh = conv_output_size(x.shape[2], kh, sh, pt, pb, 1)
    ow = conv_output_size(x.shape[3], kw, sw, pl, pr, 1)
    require(oh >= 1 and ow >= 1, f"pool kernel {[kh, kw]} larger than padded input {list(x.shape)}")
    for v, what in ((m_map, "multiplier_map"), (n_map, "shift_map")):
        require(v.shape == (oh, ow) and v.dtype == "int32",
                f"qavg_pool2d {what} must be int32[{oh}, {ow}], got {v.dtype}{list(v.shape)}")
    return [((x.shape[0], x.shape[1], oh, ow), _out_dtype(attrs))]


def qglobal_avg_pool2d(inputs, attrs):
    x = inputs[0]
    require_int8(x, "qglobal_avg_pool2d input")
    require_rank(x, 4, "qglobal_avg_pool2d input")
    _check_multipliers(attrs, 1)
    return [((x.shape[0], x.shape[1], 1, 1), _out_dtype(attrs))]


def lut(inputs, attrs):
    x, table = inputs
    require_int8(x, "lut input")
    require(table.shape == (256,) and table.dtype in INT8_DTYPES,
            f"lut table '{table.name}' must be int8/uint8[256], got {table.dtype}{list(table.shape)}")
    return [(x.shape, table.dtype)]
