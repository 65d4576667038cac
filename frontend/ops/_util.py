"""Small helpers shared by the op modules."""
import numpy as np

from ..errors import ShapeError
from ..tensor import Tensor


def as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    kept_ones = tuple(i for i, d in enumerate(shape) if d == 1 and grad.shape[i] != 1)
    if kept_ones:
        grad = grad.sum(axis=kept_ones, keepdims=True)
    return grad.reshape(shape)


def pair(value, what):
    """(a, b) from an int or a 2-sequence of ints."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{what} must be an int or a pair, got {value}")
    return value


def pads4(padding, what="padding"):
    """[top, left, bottom, right] from an int, a (h, w) pair or a 4-tuple (t, l, b, r)."""
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        return p, p, p, p
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[1], padding[0], padding[1]
    if len(padding) == 4:
        return padding
    raise ValueError(f"{what} must be an int, a pair or (top, left, bottom, right), got {padding}")


def fmt_shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def shape_error(op, expected, actual):
    return ShapeError(f"{op}: expected input of shape {expected}, got {fmt_shape(actual)}")


def normalize_axis(axis, ndim):
    if not -ndim <= axis < ndim:
        raise ShapeError(f"axis {axis} out of range for a {ndim}-d tensor")
    return axis % ndim


def normalize_axes(axis, ndim):
    """Sorted tuple of non-negative axes; None means all."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    return tuple(sorted(normalize_axis(int(a), ndim) for a in axis))
