"""Losses: cross-entropy from logits (with label smoothing), NLL, mean squared error."""
import numpy as np

from ..autograd import Function
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import as_tensor, fmt_shape
from .softmax import log_softmax_array

REDUCTIONS = ("mean", "sum", "none")


def _reduce(losses, reduction):
    if reduction == "mean":
        return np.asarray(losses.mean())
    if reduction == "sum":
        return np.asarray(losses.sum())
    return losses


def _grad_scale(g, n, reduction, dtype):
    """Per-sample factor (N, 1) the reduced loss's gradient applies to each row."""
    if reduction == "none":
        return g.reshape(n, 1)
    return np.asarray(g / n if reduction == "mean" else g, dtype=dtype)


class CrossEntropy(Function):
    """-sum_c q_c log softmax(logits)_c with q = (1 - eps) one_hot(target) + eps / C."""
    ir_op = None

    @staticmethod
    def forward(ctx, logits, target, label_smoothing, reduction):
        n, c = logits.shape
        logp = log_softmax_array(logits, axis=1)
        rows = np.arange(n)
        losses = -logp[rows, target]
        if label_smoothing:
            losses *= 1 - label_smoothing
            losses -= label_smoothing * logp.mean(axis=1)
        ctx.logp, ctx.target, ctx.eps, ctx.reduction = logp, target, label_smoothing, reduction
        return _reduce(losses, reduction)

    @staticmethod
    def backward(ctx, g):
        logp, target, eps = ctx.logp, ctx.target, ctx.eps
        n, c = logp.shape
        grad = np.exp(logp)  # softmax
        if eps:
            grad -= eps / c
        grad[np.arange(n), target] -= 1 - eps
        grad *= _grad_scale(g, n, ctx.reduction, grad.dtype)
        return grad


class NLLLoss(Function):
    ir_op = None

    @staticmethod
    def forward(ctx, log_probs, target, reduction):
        n = log_probs.shape[0]
        ctx.shape, ctx.target, ctx.reduction = log_probs.shape, target, reduction
        return _reduce(-log_probs[np.arange(n), target], reduction)

    @staticmethod
    def backward(ctx, g):
        n = ctx.shape[0]
        grad = np.zeros(ctx.shape, dtype=g.dtype)
        grad[np.arange(n), ctx.target] = -1
        grad *= _grad_scale(g, n, ctx.reduction, grad.dtype)
        return grad


def _class_targets(op, scores, target):
    """Validate (N, C) scores against int targets (N,), returning the target array."""
    target = np.asarray(target.data if isinstance(target, Tensor) else target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got {target.dtype}")
    if scores.ndim != 2:
        raise ShapeError(f"{op}: expected input of shape (N, C), got {fmt_shape(scores.shape)}")
    if target.shape != (scores.shape[0],):
        raise ShapeError(f"{op}: expected target of shape ({scores.shape[0]},), got {fmt_shape(target.shape)}")
    if target.size and (target.min() < 0 or target.max() >= scores.shape[1]):
        raise ValueError(f"{op}: target values must be in [0, {scores.shape[1]}), "
                         f"got range [{target.min()}, {target.max()}]")
    return target.astype(np.intp, copy=False)


def _check_reduction(op, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _classes_last(op, scores, target):
    """(N, C, d1, ...) scores -> (N*d1*..., C) rows; returns the reshaped pair and the row shape."""
    if scores.ndim <= 2:
        return scores, target, None
    target = np.asarray(target.data if isinstance(target, Tensor) else target)
    spatial = (scores.shape[0],) + scores.shape[2:]
    if target.shape != spatial:
        raise ShapeError(f"{op}: expected target of shape {fmt_shape(spatial)}, got {fmt_shape(target.shape)}")
    perm = (0,) + tuple(range(2, scores.ndim)) + (1,)
    rows = scores.transpose(*perm).reshape(-1, scores.shape[1])
    return rows, target.reshape(-1), spatial


def cross_entropy(logits, target, label_smoothing=0.0, reduction="mean"):
    """Cross-entropy of logits (N, C) [or (N, C, d...)] against integer targets."""
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    logits, target, spatial = _classes_last("cross_entropy", as_tensor(logits), target)
    target = _class_targets("cross_entropy", logits, target)
    loss = CrossEntropy.apply(logits, target=target, label_smoothing=float(label_smoothing),
                              reduction=reduction)
    return loss.reshape(spatial) if (spatial and reduction == "none") else loss


def nll_loss(log_probs, target, reduction="mean"):
    """Negative log-likelihood of log-probabilities (N, C) [or (N, C, d...)] at integer targets."""
    _check_reduction("nll_loss", reduction)
    log_probs, target, spatial = _classes_last("nll_loss", as_tensor(log_probs), target)
    target = _class_targets("nll_loss", log_probs, target)
    loss = NLLLoss.apply(log_probs, target=target, reduction=reduction)
    return loss.reshape(spatial) if (spatial and reduction == "none") else loss


def mse_loss(input, target, reduction="mean"):
    _check_reduction("mse_loss", reduction)
    input = as_tensor(input)
    if tuple(np.shape(target.data if isinstance(target, Tensor) else target)) != tuple(input.shape):
        raise ShapeError(f"mse_loss: expected target of shape {fmt_shape(input.shape)}, "
                         f"got {fmt_shape(np.shape(target.data if isinstance(target, Tensor) else target))}")
    diff = input - target
    squared = diff * diff
    if reduction == "mean":
        return squared.mean()
    if reduction == "sum":
        return squared.sum()
    return squared
