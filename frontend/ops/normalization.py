"""Batch normalisation over axis 1: batch statistics in training, running statistics in eval."""
import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import as_tensor, fmt_shape, shape_error
from ..errors import ShapeError


def _channel_sum(a):
    """Sum over every axis but 1, reducing the contiguous trailing block first (fast)."""
    n, c = a.shape[:2]
    return a.reshape(n, c, -1).sum(axis=2).sum(axis=0)


def _channel_dot(a, b):
    """sum(a * b) over every axis but 1 without materialising the product."""
    n, c = a.shape[:2]
    return np.einsum("ncp,ncp->c", a.reshape(n, c, -1), b.reshape(n, c, -1))


def _per_channel(v, ndim):
    """Reshape a (C,) vector to broadcast against an (N, C, ...) tensor."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


class BatchNormTrain(Function):
    """Normalises with the batch mean and biased variance and updates the running
    statistics in place (unbiased variance, like PyTorch). Not traceable: the
    exported graph uses the inference form."""
    ir_op = None

    @staticmethod
    def forward(ctx, x, weight, bias, *, running_mean, running_var, momentum, eps):
        nd = x.ndim
        count = x.size // x.shape[1]
        mean = _channel_sum(x) / count
        xc = x - _per_channel(mean, nd)
        var = _channel_dot(xc, xc) / count
        inv_std = 1 / np.sqrt(var + eps)
        y = xc * _per_channel(weight * inv_std, nd)
        y += _per_channel(bias, nd)
        if running_mean is not None:
            stats = running_mean.data
            stats[...] = (1 - momentum) * stats + momentum * mean
        if running_var is not None:
            stats = running_var.data
            unbiased = var * (count / max(count - 1, 1))
            stats[...] = (1 - momentum) * stats + momentum * unbiased
        ctx.xc, ctx.inv_std, ctx.weight, ctx.count = xc, inv_std, weight, count
        return y

    @staticmethod
    def backward(ctx, g):
        xc, inv_std, weight, count = ctx.xc, ctx.inv_std, ctx.weight, ctx.count
        nd = g.ndim
        g_bias = _channel_sum(g)
        g_xc = _channel_dot(g, xc)           # sum(g * xhat) = inv_std * sum(g * xc)
        g_weight = g_xc * inv_std
        dx = None
        if ctx.needs_input_grad[0]:
            # dx = w / std * (g - mean(g) - xhat * mean(g * xhat)), folded into per-channel
            # coefficients so the big tensors are touched only a few times.
            scale = weight * inv_std
            dx = g * _per_channel(scale, nd)
            dx -= xc * _per_channel(scale * inv_std * g_weight / count, nd)
            dx -= _per_channel(scale * g_bias / count, nd)
        return (dx, g_weight if ctx.needs_input_grad[1] else None,
                g_bias if ctx.needs_input_grad[2] else None)


class BatchNormEval(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias with fixed statistics."""
    ir_op = "batch_norm"

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, *, eps):
        inv_std = 1 / np.sqrt(running_var + eps)
        scale = weight * inv_std
        shift = bias - running_mean * scale
        nd = x.ndim
        y = x * _per_channel(scale.astype(x.dtype, copy=False), nd)
        y += _per_channel(shift.astype(x.dtype, copy=False), nd)
        ctx.x, ctx.scale, ctx.inv_std, ctx.mean = x, scale, inv_std, running_mean
        return y

    @staticmethod
    def backward(ctx, g):
        nd = g.ndim
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = g * _per_channel(ctx.scale, nd) if need_x else None
        g_weight = None
        if need_w:
            xhat = (ctx.x - _per_channel(ctx.mean, nd)) * _per_channel(ctx.inv_std, nd)
            g_weight = _channel_sum(g * xhat)
        g_bias = _channel_sum(g) if need_b else None
        return dx, g_weight, g_bias, None, None

    @classmethod
    def ir_attrs(cls, eps):
        return {"epsilon": float(eps)}


def batch_norm(x, running_mean, running_var, weight, bias, training, momentum=0.1, eps=1e-5):
    """Batch norm over axis 1 of an (N, C, ...) tensor.

    Training: normalise with batch statistics and update `running_mean` /
    `running_var` (Tensors) in place. Eval: normalise with the running statistics.
    `weight` / `bias` may be None (scale 1, shift 0).
    """
    x = as_tensor(x)
    reference = next((t for t in (running_mean, running_var, weight, bias) if t is not None), None)
    if reference is None:
        raise ValueError("batch_norm: needs running statistics or weight/bias to know the channel count")
    channels = int(np.prod(reference.shape))
    if x.ndim < 2 or x.shape[1] != channels:
        expected = {2: f"(N, {channels})", 3: f"(N, {channels}, L)", 4: f"(N, {channels}, H, W)"}
        raise shape_error("batch_norm", expected.get(x.ndim, f"(N, {channels}, ...)"), x.shape)
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (channels,):
            raise ShapeError(f"batch_norm: expected {name} of shape ({channels},), got {fmt_shape(t.shape)}")
    if weight is None:
        weight = Tensor(np.ones(channels, dtype=x.dtype))
    if bias is None:
        bias = Tensor(np.zeros(channels, dtype=x.dtype))
    if training:
        if x.size == channels:
            raise ValueError(f"batch_norm: training needs more than one value per channel, "
                             f"got input of shape {fmt_shape(x.shape)}")
        return BatchNormTrain.apply(x, weight, bias, running_mean=running_mean, running_var=running_var,
                                    momentum=float(momentum), eps=float(eps))
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: eval mode needs running_mean and running_var")
    return BatchNormEval.apply(x, weight, bias, running_mean, running_var, eps=float(eps))
