"""Pooling: max / average (windowed, looping over kernel offsets only), global and adaptive average."""
import numpy as np

from ..autograd import Function
from ..errors import ShapeError
from ._util import as_tensor, fmt_shape, pads4, pair, shape_error
from .conv_kernels import crop2d, offset_view, out_size


def _pad_with(x, pads, value):
    t, l, b, r = pads
    if not (t or l or b or r):
        return x
    n, c, h, w = x.shape
    xp = np.full((n, c, h + t + b, w + l + r), value, dtype=x.dtype)
    xp[:, :, t:t + h, l:l + w] = x
    return xp


class _WindowPool(Function):
    @classmethod
    def ir_attrs(cls, kernel, stride, padding, **extra):
        attrs = {"kernel": list(kernel), "strides": list(stride), "pads": list(padding), "ceil_mode": 0}
        attrs.update({k: int(v) for k, v in extra.items()})
        return attrs

    @staticmethod
    def geometry(x_shape, kernel, stride, padding):
        oh = out_size(x_shape[2], kernel[0], stride[0], padding[0], padding[2], 1)
        ow = out_size(x_shape[3], kernel[1], stride[1], padding[1], padding[3], 1)
        return stride, (1, 1), (oh, ow)


class MaxPool2d(_WindowPool):
    ir_op = "max_pool2d"

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        geometry = _WindowPool.geometry(x.shape, kernel, stride, padding)
        xp = _pad_with(x, padding, -np.inf)
        y = offset_view(xp, 0, 0, geometry).copy()
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                if i or j:
                    np.maximum(y, offset_view(xp, i, j, geometry), out=y)
        ctx.xp, ctx.y, ctx.x_shape = xp, y, x.shape
        ctx.kernel, ctx.padding, ctx.geometry = kernel, padding, geometry
        return y

    @staticmethod
    def backward(ctx, g):
        xp, y, geometry = ctx.xp, ctx.y, ctx.geometry
        (kh, kw), stride = ctx.kernel, geometry[0]
        disjoint = stride[0] >= kh and stride[1] >= kw  # each input pixel is in <= 1 window
        dxp = np.zeros(xp.shape, dtype=g.dtype)
        # Like PyTorch, the first offset (row-major) holding the max takes the gradient.
        taken = np.zeros(y.shape, dtype=bool)
        hit = np.empty(y.shape, dtype=bool)
        free = np.empty(y.shape, dtype=bool)
        for i in range(kh):
            for j in range(kw):
                np.equal(offset_view(xp, i, j, geometry), y, out=hit)
                np.logical_not(taken, out=free)
                np.logical_and(hit, free, out=hit)
                np.logical_or(taken, hit, out=taken)
                target = offset_view(dxp, i, j, geometry)
                if disjoint:
                    np.multiply(g, hit, out=target)
                else:
                    target += g * hit
        return crop2d(dxp, ctx.padding, *ctx.x_shape[2:])


class AvgPool2d(_WindowPool):
    ir_op = "avg_pool2d"

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, count_include_pad=True):
        geometry = _WindowPool.geometry(x.shape, kernel, stride, padding)
        xp = _pad_with(x, padding, 0)
        y = offset_view(xp, 0, 0, geometry).copy()
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                if i or j:
                    y += offset_view(xp, i, j, geometry)
        if count_include_pad or not any(padding):
            scale = np.asarray(1 / (kernel[0] * kernel[1]), dtype=x.dtype)
        else:  # per-position count of real (unpadded) pixels, computed on one H x W plane
            ones = _pad_with(np.ones((1, 1) + x.shape[2:], dtype=x.dtype), padding, 0)
            count = sum(offset_view(ones, i, j, geometry) for i in range(kernel[0]) for j in range(kernel[1]))
            scale = (1 / count).astype(x.dtype)
        y *= scale
        ctx.scale, ctx.x_shape, ctx.padded_shape = scale, x.shape, xp.shape
        ctx.kernel, ctx.padding, ctx.geometry = kernel, padding, geometry
        return y

    @staticmethod
    def backward(ctx, g):
        gs = g * ctx.scale
        dxp = np.zeros(ctx.padded_shape, dtype=g.dtype)
        for i in range(ctx.kernel[0]):
            for j in range(ctx.kernel[1]):
                offset_view(dxp, i, j, ctx.geometry)[...] += gs
        return crop2d(dxp, ctx.padding, *ctx.x_shape[2:])


class GlobalAvgPool2d(Function):
    """Mean over H and W, keeping N, C, 1, 1."""
    ir_op = "global_avg_pool2d"

    @staticmethod
    def forward(ctx, x):
        n, c, h, w = x.shape
        ctx.x_shape = x.shape
        return x.reshape(n, c, h * w).mean(axis=2).reshape(n, c, 1, 1)

    @staticmethod
    def backward(ctx, g):
        n, c, h, w = ctx.x_shape
        dx = np.empty(ctx.x_shape, dtype=g.dtype)
        dx[...] = g * (1 / (h * w))
        return dx


def _bin_matrix(size, out, dtype):
    """(out, size) matrix averaging PyTorch's adaptive bins [floor(i*size/out), ceil((i+1)*size/out))."""
    m = np.zeros((out, size), dtype=dtype)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1 / (end - start)
    return m


def _separable(x, rows, cols):
    """rows @ x @ cols.T over the last two axes, as two plain 2-D GEMMs."""
    lead = x.shape[:-2]
    h, w = x.shape[-2:]
    u = x.reshape(-1, w) @ cols.T                       # (M*H, ow)
    u = u.reshape(-1, h, cols.shape[0]).transpose(0, 2, 1).reshape(-1, h)
    v = (u @ rows.T).reshape(-1, cols.shape[0], rows.shape[0]).transpose(0, 2, 1)
    return np.ascontiguousarray(v).reshape(lead + (rows.shape[0], cols.shape[0]))


class AdaptiveAvgPool2d(Function):
    ir_op = "adaptive_avg_pool2d"

    @staticmethod
    def forward(ctx, x, output_size):
        rows = _bin_matrix(x.shape[2], output_size[0], x.dtype)
        cols = _bin_matrix(x.shape[3], output_size[1], x.dtype)
        ctx.rows, ctx.cols = rows, cols
        return _separable(x, rows, cols)

    @staticmethod
    def backward(ctx, g):
        return _separable(g, ctx.rows.T, ctx.cols.T)

    @classmethod
    def ir_attrs(cls, output_size):
        return {"output_size": [int(s) for s in output_size]}


# ------------------------------------------------------------------ functional wrappers


def _check_nchw(op, x):
    if x.ndim != 4:
        raise shape_error(op, "(N, C, H, W)", x.shape)


def _window_args(op, x, kernel_size, stride, padding):
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding = pads4(padding)
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"{op}: bad kernel {kernel}, stride {stride} or padding {padding}")
    if max(padding[0], padding[2]) > kernel[0] // 2 or max(padding[1], padding[3]) > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    oh = out_size(x.shape[2], kernel[0], stride[0], padding[0], padding[2], 1)
    ow = out_size(x.shape[3], kernel[1], stride[1], padding[1], padding[3], 1)
    if oh < 1 or ow < 1:
        raise ShapeError(f"{op}: kernel {kernel} does not fit input {fmt_shape(x.shape)} padded by {padding}")
    return kernel, stride, padding


def max_pool2d(x, kernel_size, stride=None, padding=0):
    x = as_tensor(x)
    _check_nchw("max_pool2d", x)
    kernel, stride, padding = _window_args("max_pool2d", x, kernel_size, stride, padding)
    return MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    x = as_tensor(x)
    _check_nchw("avg_pool2d", x)
    kernel, stride, padding = _window_args("avg_pool2d", x, kernel_size, stride, padding)
    return AvgPool2d.apply(x, kernel=kernel, stride=stride, padding=padding,
                           count_include_pad=bool(count_include_pad))


def global_avg_pool2d(x):
    x = as_tensor(x)
    _check_nchw("global_avg_pool2d", x)
    return GlobalAvgPool2d.apply(x)


def adaptive_avg_pool2d(x, output_size):
    """PyTorch's adaptive average pooling; `output_size` is an int or an (oh, ow) pair
    (None keeps that input dim). A 1x1 output is a global average pool."""
    x = as_tensor(x)
    _check_nchw("adaptive_avg_pool2d", x)
    if isinstance(output_size, (tuple, list)):
        output_size = tuple(x.shape[2 + i] if s is None else int(s) for i, s in enumerate(output_size))
    size = pair(output_size, "output_size")
    if min(size) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be >= 1, got {size}")
    if size == (1, 1):
        return GlobalAvgPool2d.apply(x)
    return AdaptiveAvgPool2d.apply(x, output_size=size)
