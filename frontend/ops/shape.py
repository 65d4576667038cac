"""Ops that move data without arithmetic: reshape, flatten, transpose, (un)squeeze,
concat/stack/split, pad, channel shuffle, copy. Indexing lives in indexing.py."""
import numbers

import numpy as np

from ..autograd import Function
from ..errors import ShapeError
from ._util import as_tensor, fmt_shape, normalize_axes, normalize_axis


class Identity(Function):
    """A copy (so later in-place writes to either array do not leak)."""
    ir_op = "identity"

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        return g


class _Regroup(Function):
    """Base of ops that keep the elements in order and only change the shape: the
    gradient is the output gradient viewed in the input shape. Subclasses give `regroup`."""

    @classmethod
    def forward(cls, ctx, x, **attrs):
        ctx.in_shape = x.shape
        return cls.regroup(x, **attrs)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape)


def _ints(values):
    return [int(v) for v in values]


class Reshape(_Regroup):
    ir_op = "reshape"

    @staticmethod
    def regroup(x, shape):
        return x.reshape(shape)

    @classmethod
    def ir_attrs(cls, shape):
        return {"shape": _ints(shape)}


class Flatten(_Regroup):
    """Keeps the dims before `axis` and flattens the rest into one."""
    ir_op = "flatten"

    @staticmethod
    def regroup(x, axis):
        return x.reshape(x.shape[:axis] + (-1,))

    @classmethod
    def ir_attrs(cls, axis):
        return {"axis": int(axis)}


class Transpose(Function):
    ir_op = "transpose"

    @staticmethod
    def forward(ctx, x, perm):
        ctx.inverse = tuple(np.argsort(perm))
        return np.transpose(x, perm)

    @staticmethod
    def backward(ctx, g):
        return np.transpose(g, ctx.inverse)

    @classmethod
    def ir_attrs(cls, perm):
        return {"perm": _ints(perm)}


class _AxesRegroup(_Regroup):
    """Squeeze / unsqueeze: an `axes` attribute, traced as a list of ints."""

    @classmethod
    def ir_attrs(cls, axes):
        return {"axes": _ints(axes)}


class Squeeze(_AxesRegroup):
    ir_op = "squeeze"

    @staticmethod
    def regroup(x, axes):
        return np.squeeze(x, axis=axes)


class Unsqueeze(_AxesRegroup):
    """`axes` index the output."""
    ir_op = "unsqueeze"

    @staticmethod
    def regroup(x, axes):
        return np.expand_dims(x, axes)


class Concat(Function):
    ir_op = "concat"

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        ctx.bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        parts = np.split(g, ctx.bounds, axis=ctx.axis)
        return tuple(p if need else None for p, need in zip(parts, ctx.needs_input_grad))

    @classmethod
    def ir_attrs(cls, axis):
        return {"axis": int(axis)}


class Split(Function):
    ir_op = "split"

    @staticmethod
    def forward(ctx, x, axis, sizes):
        ctx.axis = axis
        return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))

    @staticmethod
    def backward(ctx, *grads):
        return np.concatenate(grads, axis=ctx.axis)

    @classmethod
    def ir_attrs(cls, axis, sizes):
        return {"axis": int(axis), "sizes": _ints(sizes)}


class Pad(Function):
    """Constant padding; `pads` in ONNX order [begin_0, ..., begin_n, end_0, ..., end_n]."""
    ir_op = "pad"

    @staticmethod
    def forward(ctx, x, pads, value=0.0):
        n = x.ndim
        out_shape = tuple(d + pads[i] + pads[i + n] for i, d in enumerate(x.shape))
        y = np.full(out_shape, value, dtype=x.dtype)
        key = tuple(slice(pads[i], pads[i] + d) for i, d in enumerate(x.shape))
        y[key] = x
        ctx.key = key
        return y

    @staticmethod
    def backward(ctx, g):
        return g[ctx.key]

    @classmethod
    def ir_attrs(cls, pads, value=0.0):
        return {"pads": _ints(pads), "mode": "constant", "value": float(value)}


class ChannelShuffle(Function):
    """ShuffleNet shuffle: view channels as (groups, C/groups), transpose, flatten."""
    ir_op = "channel_shuffle"

    @staticmethod
    def _shuffle(x, groups):
        n, c = x.shape[:2]
        rest = x.shape[2:]
        y = x.reshape((n, groups, c // groups) + rest).swapaxes(1, 2)
        return np.ascontiguousarray(y).reshape(x.shape)

    @staticmethod
    def forward(ctx, x, groups):
        ctx.groups = groups
        return ChannelShuffle._shuffle(x, groups)

    @staticmethod
    def backward(ctx, g):
        return ChannelShuffle._shuffle(g, g.shape[1] // ctx.groups)  # the inverse permutation

    @classmethod
    def ir_attrs(cls, groups):
        return {"groups": int(groups)}


# ------------------------------------------------------------------ functional wrappers


def copy(x):
    return Identity.apply(x)


def reshape(x, shape):
    x = as_tensor(x)
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(int(d) for d in shape)
    try:
        np.empty(x.shape, dtype=np.bool_).reshape(shape)  # cheap validity check, clear error
    except ValueError:
        raise ShapeError(f"reshape: cannot reshape {fmt_shape(x.shape)} into {fmt_shape(shape)}") from None
    return Reshape.apply(x, shape=shape)


def flatten(x, start_axis=1):
    """Keep dims before `start_axis`, flatten the rest (torch.flatten(x, start_axis))."""
    x = as_tensor(x)
    return Flatten.apply(x, axis=normalize_axis(start_axis, max(x.ndim, 1)))


def transpose(x, axes=()):
    """No axes: reverse. A full permutation: permute. Two axes of a tensor with another
    rank: swap them (PyTorch's transpose(dim0, dim1))."""
    x = as_tensor(x)
    axes = tuple(int(a) for a in axes)
    if not axes:
        perm = tuple(reversed(range(x.ndim)))
    elif len(axes) == x.ndim:
        perm = tuple(normalize_axis(a, x.ndim) for a in axes)
        if sorted(perm) != list(range(x.ndim)):
            raise ShapeError(f"transpose: {axes} is not a permutation of {x.ndim} axes")
    elif len(axes) == 2:
        a, b = (normalize_axis(v, x.ndim) for v in axes)
        perm = list(range(x.ndim))
        perm[a], perm[b] = perm[b], perm[a]
        perm = tuple(perm)
    else:
        raise ShapeError(f"transpose: axes {axes} do not fit a tensor of shape {fmt_shape(x.shape)}")
    return Transpose.apply(x, perm=perm)


def squeeze(x, axis=None):
    x = as_tensor(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = normalize_axes(axis, x.ndim)
        for a in axes:
            if x.shape[a] != 1:
                raise ShapeError(f"squeeze: axis {a} of {fmt_shape(x.shape)} has size {x.shape[a]}, not 1")
    return Squeeze.apply(x, axes=axes) if axes else x


def unsqueeze(x, axis):
    x = as_tensor(x)
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out_ndim = x.ndim + len(axes)
    axes = tuple(sorted(normalize_axis(int(a), out_ndim) for a in axes))
    return Unsqueeze.apply(x, axes=axes)


def concat(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concat: needs at least one tensor")
    ndim = tensors[0].ndim
    axis = normalize_axis(axis, ndim)
    for t in tensors:
        if t.ndim != ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, tensors[0].shape))
                                 if i != axis):
            raise ShapeError("concat: shapes differ outside axis {}: {}".format(
                axis, ", ".join(fmt_shape(t.shape) for t in tensors)))
    return Concat.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    axis = normalize_axis(axis, tensors[0].ndim + 1)
    return concat([unsqueeze(t, axis) for t in tensors], axis)


def split(x, sizes_or_sections, axis=0):
    """An int splits into that many equal parts (NumPy); a sequence gives the part sizes."""
    x = as_tensor(x)
    axis = normalize_axis(axis, x.ndim)
    dim = x.shape[axis]
    if isinstance(sizes_or_sections, numbers.Integral):
        sections = int(sizes_or_sections)
        if sections < 1 or dim % sections:
            raise ShapeError(f"split: axis {axis} of size {dim} cannot be split into {sections} equal parts")
        sizes = (dim // sections,) * sections
    else:
        sizes = tuple(int(s) for s in sizes_or_sections)
        if sum(sizes) != dim or any(s < 0 for s in sizes):
            raise ShapeError(f"split: sizes {list(sizes)} do not add up to axis {axis} of size {dim}")
    return list(Split.apply(x, axis=axis, sizes=sizes))


def pad(x, pads, value=0.0):
    """Constant padding. `pads` is ONNX order [begin..., end...] (2 * ndim ints) or
    NumPy order, one (begin, end) pair per axis."""
    x = as_tensor(x)
    pads = list(pads)
    n = x.ndim
    if len(pads) == n and all(isinstance(p, (tuple, list)) for p in pads):
        pads = [int(p[0]) for p in pads] + [int(p[1]) for p in pads]
    else:
        pads = [int(p) for p in pads]
    if len(pads) != 2 * n:
        raise ShapeError(f"pad: expected {2 * n} pads [begin..., end...] for a tensor of shape "
                         f"{fmt_shape(x.shape)}, got {pads}")
    if any(p < 0 for p in pads):
        raise ValueError(f"pad: pads must be >= 0, got {pads}")
    if not any(pads):
        return x
    return Pad.apply(x, pads=tuple(pads), value=float(value))


def channel_shuffle(x, groups):
    x = as_tensor(x)
    if x.ndim < 2 or x.shape[1] % groups:
        raise ShapeError(f"channel_shuffle: expected input of shape (N, C, ...) with C divisible by "
                         f"{groups}, got {fmt_shape(x.shape)}")
    if groups == 1:
        return x
    return ChannelShuffle.apply(x, groups=int(groups))
