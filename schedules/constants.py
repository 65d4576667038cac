"""prepare_constants helpers: what kernel_inputs passes to a kernel besides the node's inputs (mult/shift
arrays, packed weights, a bias with the input zero point folded in), and the checks that a constant
the kernel folds really is one."""
from __future__ import annotations

import numpy as np

from .requant import requant_arrays


def prep_requant(attrs, in_types, arrays):
    """prepare_constants of a kernel taking its node inputs followed by the mult/shift arrays."""
    m, n = requant_arrays(attrs)
    return list(range(len(in_types))) + [m, n]


def constant_bias(in_types, arrays, count, kernel):
    """The node's constant int32 bias as int64 (zeros when the node has none); a bias computed at run
    time is an error, because `kernel` folds it into compile-time constants."""
    if len(arrays) > 2 and arrays[2] is not None:
        return np.asarray(arrays[2], np.int64)
    if len(in_types) > 2 and in_types[2] is not None:
        raise ValueError(f"{kernel} needs a constant bias")
    return np.zeros(count, np.int64)


def zero_point_folded_bias(bias, zero_point, w2d):
    """bias - zero_point * sum_k w[o, k] as int32: a kernel that feeds x without subtracting its zero
    point (or with an offset added) corrects the accumulator once, through the bias."""
    beff = np.asarray(bias, np.int64) - int(zero_point) * np.asarray(w2d, np.int64).sum(axis=1)
    if np.any(np.abs(beff) >= 2 ** 31):
        raise ValueError("bias correction overflows int32")
    return beff.astype(np.int32)


def constant_weight(arrays, kernel):
    """The node's weight (input 1) for a kernel that packs it at compile time."""
    if arrays[1] is None:
        raise ValueError(f"{kernel} needs a constant weight")
    return np.asarray(arrays[1])
