"""Inverted dropout: zero each element with probability p and scale survivors by 1/(1-p)."""
import numpy as np

from ..autograd import Function
from ._util import as_tensor

_default_rng = np.random.default_rng()


class Dropout(Function):
    ir_op = None  # only training-mode dropout reaches here; eval mode returns its input

    @staticmethod
    def forward(ctx, x, p, rng):
        keep = rng.random(x.shape, dtype=np.float32) >= p
        mask = keep.astype(x.dtype)
        mask *= 1 / (1 - p)
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, g):
        return g * ctx.mask


def dropout(x, p, training, rng=None):
    """`rng` is a numpy.random.Generator (a fixed one makes the mask reproducible)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    x = as_tensor(x)
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, p=float(p), rng=rng if rng is not None else _default_rng)
