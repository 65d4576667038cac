"""Forward values of the functional ops against independent NumPy / SciPy references,
plus argument validation (ShapeError messages)."""
import numpy as np
import pytest
from scipy import signal, special

from yuan.frontend import functional as F
from yuan.frontend.errors import ShapeError
from yuan.frontend.tensor import Tensor

rng = np.random.default_rng(2024)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(actual, expected, tol=1e-5):
    actual = actual.data if isinstance(actual, Tensor) else actual
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


# ------------------------------------------------------------------ references (plain loops)


def naive_conv2d(x, w, b, stride, pads, dilation, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    t, l, bt, r = pads
    xp = np.zeros((n, c, h + t + bt, wd + l + r))
    xp[:, :, t:t + h, l:l + wd] = x
    oh = (h + t + bt - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + l + r - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for ni in range(n):
        for oc in range(o):
            g = oc // og
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0 if b is None else b[oc]
                    for ci in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                acc += (w[oc, ci, p, q] *
                                        xp[ni, g * cg + ci, i * stride[0] + p * dilation[0], j * stride[1] + q * dilation[1]])
                    out[ni, oc, i, j] = acc
    return out


def naive_pool(x, kernel, stride, pads, reduce, pad_value, count_include_pad=True):
    n, c, h, w = x.shape
    t, l, b, r = pads
    xp = np.full((n, c, h + t + b, w + l + r), pad_value)
    xp[:, :, t:t + h, l:l + w] = x
    real = np.zeros(xp.shape[2:])
    real[t:t + h, l:l + w] = 1
    oh = (h + t + b - kernel[0]) // stride[0] + 1
    ow = (w + l + r - kernel[1]) // stride[1] + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * stride[0], i * stride[0] + kernel[0])
            cols = slice(j * stride[1], j * stride[1] + kernel[1])
            window = xp[:, :, rows, cols]
            if reduce == "max":
                out[:, :, i, j] = window.max(axis=(2, 3))
            else:
                count = kernel[0] * kernel[1] if count_include_pad else real[rows, cols].sum()
                out[:, :, i, j] = window.sum(axis=(2, 3)) / count
    return out


# ------------------------------------------------------------------ convolution and linear

CONV_CASES = [
    dict(x=(2, 3, 6, 6), w=(4, 3, 3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), groups=1),
    dict(x=(1, 2, 7, 6), w=(3, 2, 3, 2), stride=(2, 1), pads=(0, 1, 2, 0), dilation=(1, 1), groups=1),
    dict(x=(1, 2, 7, 7), w=(2, 2, 3, 3), stride=(1, 2), pads=(2, 2, 2, 2), dilation=(2, 1), groups=1),
    dict(x=(2, 4, 5, 5), w=(6, 2, 3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), groups=2),
    dict(x=(2, 3, 6, 5), w=(3, 1, 3, 3), stride=(2, 2), pads=(1, 1, 1, 1), dilation=(1, 1), groups=3),
    dict(x=(1, 2, 5, 5), w=(6, 1, 3, 3), stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=2),
    dict(x=(2, 5, 4, 4), w=(3, 5, 1, 1), stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1),
    dict(x=(2, 4, 5, 5), w=(4, 2, 1, 1), stride=(2, 2), pads=(0, 0, 0, 0), dilation=(1, 1), groups=2),
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d_matches_naive_loops(case):
    spec = CONV_CASES[case]
    x, w, b = randn(*spec["x"]), randn(*spec["w"]), randn(spec["w"][0])
    y = F.conv2d(Tensor(x), Tensor(w), Tensor(b), spec["stride"], spec["pads"], spec["dilation"], spec["groups"])
    assert y.dtype == np.float32
    close(y, naive_conv2d(x, w, b, spec["stride"], spec["pads"], spec["dilation"], spec["groups"]), 1e-4)


def einsum_conv2d(x, w, stride, pads, dilation, groups):
    """Reference conv via sliding windows + einsum (independent of the im2col code)."""
    t, l, b, r = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (l, r)))
    kh, kw = w.shape[2:]
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(2, 3))
    win = win[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]
    n, c, oh, ow = win.shape[:4]
    o, cg = w.shape[:2]
    win = win.reshape(n, groups, cg, oh, ow, kh, kw)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    return np.einsum("ngchwij,gocij->ngohw", win, wg).reshape(n, o, oh, ow)


@pytest.mark.parametrize("spec", [
    dict(x=(6, 16, 20, 20), w=(24, 16, 3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), groups=1),
    dict(x=(6, 16, 21, 19), w=(8, 16, 3, 3), stride=(2, 2), pads=(1, 1, 1, 1), dilation=(1, 1), groups=1),
    dict(x=(6, 16, 20, 20), w=(16, 4, 5, 5), stride=(1, 1), pads=(2, 2, 2, 2), dilation=(1, 1), groups=4),
    dict(x=(6, 64, 20, 20), w=(64, 1, 3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), groups=64),
    dict(x=(6, 64, 21, 21), w=(64, 1, 3, 3), stride=(2, 2), pads=(1, 1, 1, 1), dilation=(1, 1), groups=64),
    dict(x=(6, 32, 20, 20), w=(32, 32, 3, 3), stride=(1, 1), pads=(2, 2, 2, 2), dilation=(2, 2), groups=1),
], ids=["dense", "strided", "grouped 5x5", "depthwise", "depthwise strided", "dilated"])
def test_conv2d_multi_block_sizes_forward_and_backward(spec):
    """Shapes big enough to be processed in several column blocks; the backward is
    checked through the adjoint identity <conv(x), g> = <x, dx(g)> = <w, dw(g)>."""
    x, w = randn(*spec["x"]), randn(*spec["w"])
    args = (spec["stride"], spec["pads"], spec["dilation"], spec["groups"])
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    y = F.conv2d(xt, wt, None, *args)
    close(y, einsum_conv2d(x, w, *args), 2e-3)
    g = randn(*y.shape)
    y.backward(g)
    inner = float(np.sum(y.data.astype(np.float64) * g))
    assert float(np.sum(xt.grad.astype(np.float64) * x)) == pytest.approx(inner, rel=1e-4, abs=1e-2)
    assert float(np.sum(wt.grad.astype(np.float64) * w)) == pytest.approx(inner, rel=1e-4, abs=1e-2)


def test_conv2d_matches_scipy_correlate():
    x, w = randn(1, 1, 9, 8), randn(1, 1, 3, 3)
    expected = signal.correlate2d(x[0, 0], w[0, 0], mode="same")
    close(F.conv2d(Tensor(x), Tensor(w), padding=1)[0, 0], expected, 1e-4)


def test_linear_and_matmul_values():
    x, w, b = randn(4, 3), randn(5, 3), randn(5)
    close(F.linear(Tensor(x), Tensor(w), Tensor(b)), x @ w.T + b)
    close(F.linear(Tensor(x[None]), Tensor(w)), (x @ w.T)[None])
    a, c = randn(2, 3, 4), randn(4, 5)
    close(Tensor(a) @ Tensor(c), np.einsum("bij,jk->bik", a, c))


# ------------------------------------------------------------------ batch norm


def test_batch_norm_training_updates_running_stats_like_pytorch():
    x = randn(4, 3, 5, 5) * 3 + 2
    w, b = randn(3), randn(3)
    mean, var = Tensor(np.zeros(3, np.float32)), Tensor(np.ones(3, np.float32))
    mean_array = mean.data
    y = F.batch_norm(Tensor(x), mean, var, Tensor(w), Tensor(b), training=True, momentum=0.1, eps=1e-5)
    mu = x.mean(axis=(0, 2, 3))
    biased = x.var(axis=(0, 2, 3))
    unbiased = x.var(axis=(0, 2, 3), ddof=1)
    expected = (x - mu[:, None, None]) / np.sqrt(biased[:, None, None] + 1e-5) * w[:, None, None] + b[:, None, None]
    close(y, expected, 1e-4)
    assert mean.data is mean_array  # updated in place
    close(mean, 0.1 * mu, 1e-5)
    close(var, 0.9 + 0.1 * unbiased, 1e-5)


def test_batch_norm_eval_uses_running_stats():
    x = randn(2, 3, 4, 4)
    mean, var, w, b = randn(3), np.abs(randn(3)) + 0.1, randn(3), randn(3)
    y = F.batch_norm(Tensor(x), Tensor(mean), Tensor(var), Tensor(w), Tensor(b), training=False, eps=1e-3)
    shape = (1, 3, 1, 1)
    expected = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-3) * w.reshape(shape) + b.reshape(shape)
    close(y, expected, 1e-5)
    close(F.batch_norm(Tensor(x[:, :, 0, 0]), Tensor(mean), Tensor(var), None, None, training=False),
          (x[:, :, 0, 0] - mean) / np.sqrt(var + 1e-5), 1e-5)


# ------------------------------------------------------------------ activations


def test_activation_values():
    x = np.linspace(-8, 8, 33).astype(np.float32)
    t = Tensor(x)
    relu6 = np.minimum(np.maximum(x, 0), 6)
    close(F.relu(t), np.maximum(x, 0))
    close(F.relu6(t), relu6)
    close(F.hardswish(t), x * relu6_of(x + 3) / 6)
    close(F.hardsigmoid(t), relu6_of(x + 3) / 6)
    close(F.sigmoid(t), special.expit(x))
    close(F.tanh(t), np.tanh(x))
    assert F.sigmoid(Tensor(np.array([-1000.0, 1000.0]))).data.tolist() == [0.0, 1.0]


def relu6_of(v):
    return np.minimum(np.maximum(v, 0), 6)


# ------------------------------------------------------------------ pooling


@pytest.mark.parametrize("kernel,stride,pads", [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (2, 2), (1, 1, 1, 1)),
                                                ((3, 2), (1, 2), (1, 0, 0, 1)), ((2, 2), (1, 1), (0, 0, 0, 0))])
def test_pools_match_naive_loops(kernel, stride, pads):
    x = randn(2, 3, 7, 6)
    close(F.max_pool2d(Tensor(x), kernel, stride, pads), naive_pool(x, kernel, stride, pads, "max", -np.inf))
    close(F.avg_pool2d(Tensor(x), kernel, stride, pads), naive_pool(x, kernel, stride, pads, "avg", 0.0))
    close(F.avg_pool2d(Tensor(x), kernel, stride, pads, count_include_pad=False),
          naive_pool(x, kernel, stride, pads, "avg", 0.0, count_include_pad=False))


def test_max_pool_backward_routes_to_the_max():
    x = Tensor(np.array([[[[1.0, 5.0], [2.0, 3.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [[[[0, 1], [0, 0]]]])
    ties = Tensor(np.zeros((1, 1, 3, 3)), requires_grad=True)  # ties: the first max takes it all
    F.max_pool2d(ties, 2, stride=1).sum().backward()
    np.testing.assert_array_equal(ties.grad[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("out", [(1, 1), (2, 3), (3, 3), (5, 4), (7, 2)])
def test_adaptive_avg_pool_matches_pytorch_bins(out):
    x = randn(2, 3, 5, 7)
    expected = np.zeros((2, 3) + out)
    for i in range(out[0]):
        for j in range(out[1]):
            r0, r1 = (i * 5) // out[0], -(-((i + 1) * 5) // out[0])
            c0, c1 = (j * 7) // out[1], -(-((j + 1) * 7) // out[1])
            expected[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    y = F.adaptive_avg_pool2d(Tensor(x), out)
    assert y.dtype == np.float32
    close(y, expected)


def test_global_avg_pool_keeps_dims():
    x = randn(2, 3, 4, 5)
    y = F.global_avg_pool2d(Tensor(x))
    assert y.shape == (2, 3, 1, 1)
    close(y, x.mean(axis=(2, 3), keepdims=True))


# ------------------------------------------------------------------ dropout, softmax, losses


def test_dropout():
    x = Tensor(np.ones((200, 100), np.float32))
    assert F.dropout(x, 0.3, training=False) is x
    assert F.dropout(x, 0.0, training=True) is x
    y1 = F.dropout(x, 0.3, True, np.random.default_rng(5)).data
    y2 = F.dropout(x, 0.3, True, np.random.default_rng(5)).data
    np.testing.assert_array_equal(y1, y2)
    assert y1.dtype == np.float32
    np.testing.assert_allclose(np.unique(y1), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((y1 == 0).mean() - 0.3) < 0.02
    assert abs(y1.mean() - 1.0) < 0.03


def test_softmax_values_and_stability():
    x = randn(3, 5) * 50
    x[0, 0] = 1e4
    close(F.softmax(Tensor(x), -1), special.softmax(x.astype(np.float64), axis=-1))
    close(F.log_softmax(Tensor(x), 0), special.log_softmax(x.astype(np.float64), axis=0), 1e-4)
    assert np.isfinite(F.log_softmax(Tensor(x)).data).all()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_values(smoothing):
    logits, target = randn(6, 4) * 3, np.array([0, 3, 1, 1, 2, 0])
    logp = special.log_softmax(logits.astype(np.float64), axis=1)
    q = np.full((6, 4), smoothing / 4)
    q[np.arange(6), target] += 1 - smoothing
    per_sample = -(q * logp).sum(axis=1)
    close(F.cross_entropy(Tensor(logits), target, label_smoothing=smoothing), per_sample.mean(), 1e-5)
    close(F.cross_entropy(Tensor(logits), Tensor(target), label_smoothing=smoothing, reduction="sum"),
          per_sample.sum(), 1e-4)
    close(F.cross_entropy(Tensor(logits), target, label_smoothing=smoothing, reduction="none"), per_sample, 1e-5)
    assert F.cross_entropy(Tensor(logits), target).dtype == np.float32


def test_cross_entropy_spatial_matches_flattened():
    logits, target = randn(2, 4, 3, 3), rng.integers(0, 4, size=(2, 3, 3))
    flat = F.cross_entropy(Tensor(logits.transpose(0, 2, 3, 1).reshape(-1, 4)), target.reshape(-1), reduction="none")
    spatial = F.cross_entropy(Tensor(logits), target, reduction="none")
    assert spatial.shape == (2, 3, 3)
    close(spatial, flat.data.reshape(2, 3, 3))


def test_nll_and_mse_values():
    lp, target = randn(4, 3), np.array([2, 0, 1, 2])
    close(F.nll_loss(Tensor(lp), target), -lp[np.arange(4), target].mean())
    a, b = randn(3, 4), randn(3, 4)
    close(F.mse_loss(Tensor(a), b), ((a - b) ** 2).mean())
    close(F.mse_loss(Tensor(a), Tensor(b), reduction="sum"), ((a - b) ** 2).sum(), 1e-4)


def test_loss_argument_errors():
    with pytest.raises(ValueError):
        F.cross_entropy(Tensor(randn(2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError):
        F.cross_entropy(Tensor(randn(2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError):
        F.mse_loss(Tensor(randn(2)), randn(2), reduction="avg")


# ------------------------------------------------------------------ data movement


def test_channel_shuffle_values():
    x = np.arange(2 * 6 * 2).reshape(2, 6, 2).astype(np.float32)
    y = F.channel_shuffle(Tensor(x), 2).data
    np.testing.assert_array_equal(y[:, :, 0], x[:, [0, 3, 1, 4, 2, 5], 0])


def test_pad_values():
    x = randn(2, 3, 4)
    close(F.pad(Tensor(x), [0, 1, 2, 1, 0, 3], value=-2.0),
          np.pad(x, [(0, 1), (1, 0), (2, 3)], constant_values=-2.0))
    close(F.pad(Tensor(x), [(1, 1), (0, 0), (0, 2)]), np.pad(x, [(1, 1), (0, 0), (0, 2)]))
    with pytest.raises(ShapeError):
        F.pad(Tensor(x), [1, 1, 1, 1])


def test_concat_stack_split_flatten_values():
    a, b = randn(2, 3), randn(2, 2)
    close(F.concat([Tensor(a), Tensor(b)], axis=1), np.concatenate([a, b], axis=1))
    close(F.stack([Tensor(a), Tensor(a)], axis=2), np.stack([a, a], axis=2))
    parts = F.split(Tensor(randn(6, 4)), 3, axis=0)
    assert [p.shape for p in parts] == [(2, 4)] * 3
    assert [p.shape for p in F.split(Tensor(a), [1, 2], axis=1)] == [(2, 1), (2, 2)]
    assert F.flatten(Tensor(randn(2, 3, 4, 5))).shape == (2, 60)
    assert F.flatten(Tensor(randn(2, 3, 4, 5)), 2).shape == (2, 3, 20)
    with pytest.raises(ShapeError):
        F.split(Tensor(a), [1, 1], axis=1)
    with pytest.raises(ShapeError):
        F.concat([Tensor(a), Tensor(randn(3, 3))], axis=1)


# ------------------------------------------------------------------ validation messages


def test_conv2d_shape_errors_name_op_expected_and_actual():
    w = Tensor(randn(8, 3, 3, 3))
    with pytest.raises(ShapeError, match=r"conv2d: expected input of shape \(N, 3, H, W\), got \(2, 4, 8, 8\)"):
        F.conv2d(Tensor(randn(2, 4, 8, 8)), w)
    with pytest.raises(ShapeError, match=r"conv2d: expected input of shape \(N, 3, H, W\), got \(3, 8, 8\)"):
        F.conv2d(Tensor(randn(3, 8, 8)), w)
    with pytest.raises(ShapeError, match=r"conv2d: expected input of shape \(N, 6, H, W\)"):
        F.conv2d(Tensor(randn(1, 3, 8, 8)), Tensor(randn(4, 3, 3, 3)), groups=2)
    with pytest.raises(ShapeError, match="bias"):
        F.conv2d(Tensor(randn(1, 3, 8, 8)), w, Tensor(randn(4)))
    with pytest.raises(ShapeError, match="does not fit"):
        F.conv2d(Tensor(randn(1, 3, 2, 2)), w)
    assert issubclass(ShapeError, ValueError)


def test_linear_batch_norm_and_pool_shape_errors():
    with pytest.raises(ShapeError, match=r"linear: expected input of shape \(N, 4\), got \(2, 5\)"):
        F.linear(Tensor(randn(2, 5)), Tensor(randn(3, 4)))
    stats = [Tensor(np.ones(16, np.float32)) for _ in range(4)]
    with pytest.raises(ShapeError, match=r"batch_norm: expected input of shape \(N, 16, H, W\), got \(2, 8, 4, 4\)"):
        F.batch_norm(Tensor(randn(2, 8, 4, 4)), *stats, training=True)
    with pytest.raises(ShapeError, match=r"batch_norm: expected input of shape \(N, 16\), got \(2, 8\)"):
        F.batch_norm(Tensor(randn(2, 8)), *stats, training=False)
    for pool in (lambda x: F.max_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2), F.global_avg_pool2d,
                 lambda x: F.adaptive_avg_pool2d(x, 2)):
        with pytest.raises(ShapeError, match=r"pool2d: expected input of shape \(N, C, H, W\), got \(3, 4, 4\)"):
            pool(Tensor(randn(3, 4, 4)))
    with pytest.raises(ShapeError, match="max_pool2d"):
        F.max_pool2d(Tensor(randn(1, 1, 2, 2)), 3)
