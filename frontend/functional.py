"""Functional API (`from frontend import functional as F`), as listed in docs/design.md.

Each function validates its arguments and calls one op (a `Function`) from
`frontend.ops`; this module only gathers them in one namespace.
"""
from .ops.conv import conv2d
from .ops.dropout import dropout
from .ops.elementwise import clip, exp, hardsigmoid, hardswish, log, relu, relu6, sigmoid, sqrt, tanh
from .ops.losses import cross_entropy, mse_loss, nll_loss
from .ops.matmul import linear, matmul
from .ops.normalization import batch_norm
from .ops.pooling import adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d
from .ops.reduction import reduce_max, reduce_mean, reduce_sum
from .ops.shape import (channel_shuffle, concat, flatten, pad, reshape, split, squeeze, stack, transpose,
                        unsqueeze)
from .ops.softmax import log_softmax, softmax

__all__ = [
    "conv2d", "linear", "matmul", "batch_norm",
    "relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "tanh", "clip", "exp", "log", "sqrt",
    "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "global_avg_pool2d",
    "dropout", "softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss",
    "channel_shuffle", "concat", "stack", "split", "pad", "flatten", "reshape", "transpose",
    "squeeze", "unsqueeze", "reduce_sum", "reduce_mean", "reduce_max",
]
