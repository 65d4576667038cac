"""Finite-difference gradient checks (float64) for every functional op."""
import numpy as np
import pytest

from yuan.frontend import functional as F
from yuan.frontend.ops import conv_kernels
from yuan.frontend.tensor import Tensor

from tests.conftest import gradcheck

rng = np.random.default_rng(1234)


def randn(*shape):
    return rng.standard_normal(shape)


def away_from(values, points, margin=0.05):
    """Move entries within `margin` of a kink (e.g. relu's 0) out of the way."""
    values = values.copy()
    for p in points:
        close = np.abs(values - p) < margin
        values[close] = p + margin * np.where(values[close] >= p, 2, -2)
    return values


# ------------------------------------------------------------------ convolution

CONV_CASES = {
    "3x3 pad1": dict(x=(2, 3, 5, 5), w=(4, 3, 3, 3), stride=1, padding=1),
    "stride2": dict(x=(2, 3, 6, 7), w=(2, 3, 3, 3), stride=2, padding=1),
    "asym pad 4-tuple": dict(x=(1, 2, 5, 4), w=(3, 2, 3, 2), stride=(1, 2), padding=(0, 1, 2, 1)),
    "dilation2": dict(x=(1, 2, 7, 7), w=(2, 2, 3, 3), padding=2, dilation=2),
    "groups2": dict(x=(2, 4, 5, 5), w=(6, 2, 3, 3), padding=1, groups=2),
    "depthwise": dict(x=(2, 3, 5, 5), w=(3, 1, 3, 3), padding=1, groups=3),
    "depthwise stride2": dict(x=(1, 3, 6, 6), w=(3, 1, 3, 3), stride=2, padding=1, groups=3),
    "depthwise mult2": dict(x=(1, 2, 5, 5), w=(4, 1, 3, 3), padding=(1, 0), groups=2),
    "1x1": dict(x=(2, 4, 3, 3), w=(5, 4, 1, 1)),
    "1x1 stride2": dict(x=(2, 3, 5, 5), w=(2, 3, 1, 1), stride=2),
    "1x1 groups": dict(x=(1, 4, 3, 3), w=(4, 2, 1, 1), groups=2),
    "1x1 padded": dict(x=(1, 2, 3, 3), w=(2, 2, 1, 1), padding=1),
    "over-padded": dict(x=(1, 2, 3, 3), w=(2, 2, 3, 3), padding=(3, 0, 2, 1)),
    "strided grouped dilated": dict(x=(2, 4, 7, 7), w=(4, 2, 2, 3), stride=2, padding=1, dilation=(2, 1), groups=2),
}


@pytest.fixture(params=["one block", "many blocks"])
def conv_blocks(request, monkeypatch):
    """Run conv tests both with the whole batch in one column block and one image per block."""
    if request.param == "many blocks":
        monkeypatch.setattr(conv_kernels, "BLOCK_BYTES", 1)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv2d(case, bias, conv_blocks):
    spec = dict(CONV_CASES[case])
    x, w = randn(*spec.pop("x")), randn(*spec.pop("w"))
    if bias:
        gradcheck(lambda x, w, b: F.conv2d(x, w, b, **spec), x, w, randn(w.shape[0]))
    else:
        gradcheck(lambda x, w: F.conv2d(x, w, None, **spec), x, w)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape", [(3, 4), (2, 3, 4), (4,)])
def test_linear(x_shape, bias):
    w = randn(5, 4)
    if bias:
        gradcheck(lambda x, w, b: F.linear(x, w, b), randn(*x_shape), w, randn(5))
    else:
        gradcheck(lambda x, w: F.linear(x, w), randn(*x_shape), w)


def test_matmul():
    gradcheck(F.matmul, randn(2, 3, 4), randn(4, 2))


# ------------------------------------------------------------------ batch norm


@pytest.mark.parametrize("shape", [(3, 2, 3, 3), (5, 3), (2, 2, 4)])
def test_batch_norm_train(shape):
    c = shape[1]
    stats = [Tensor(np.zeros(c)), Tensor(np.ones(c))]
    gradcheck(lambda x, w, b: F.batch_norm(x, stats[0], stats[1], w, b, training=True),
              randn(*shape) * 2 + 1, randn(c), randn(c))


def test_batch_norm_eval():
    mean, var = Tensor(randn(3)), Tensor(np.abs(randn(3)) + 0.5)
    gradcheck(lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False),
              randn(2, 3, 3, 3), randn(3), randn(3))


# ------------------------------------------------------------------ activations

ACTIVATIONS = {
    "relu": (F.relu, [0.0]),
    "relu6": (F.relu6, [0.0, 6.0]),
    "hardswish": (F.hardswish, [-3.0, 3.0]),
    "hardsigmoid": (F.hardsigmoid, [-3.0, 3.0]),
    "sigmoid": (F.sigmoid, []),
    "tanh": (F.tanh, []),
    "clip": (lambda x: F.clip(x, -1.0, 2.0), [-1.0, 2.0]),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation(name):
    fn, kinks = ACTIVATIONS[name]
    x = away_from(randn(3, 4) * 4, kinks)
    gradcheck(fn, x)


# ------------------------------------------------------------------ pooling


@pytest.mark.parametrize("kernel,stride,padding,shape", [
    (2, None, 0, (2, 2, 4, 4)),
    (3, 2, 1, (1, 2, 5, 5)),
    (3, 1, 0, (1, 2, 4, 5)),
    ((2, 3), (1, 2), (1, 1, 0, 1), (1, 1, 4, 5)),
])
def test_max_pool2d(kernel, stride, padding, shape):
    # A permutation keeps values distinct, so the max never ties.
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.1
    gradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding), x)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 2, 1), ((3, 2), 1, (1, 0, 1, 1))])
def test_avg_pool2d(kernel, stride, padding, count_include_pad):
    gradcheck(lambda x: F.avg_pool2d(x, kernel, stride, padding, count_include_pad), randn(2, 2, 5, 5))


@pytest.mark.parametrize("out", [(3, 2), (2, 2), 1, (5, 7)])
def test_adaptive_avg_pool2d(out):
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, out), randn(2, 2, 5, 7))


def test_global_avg_pool2d():
    gradcheck(F.global_avg_pool2d, randn(2, 3, 3, 4))


# ------------------------------------------------------------------ dropout, softmax, losses


def test_dropout_fixed_rng():
    gradcheck(lambda x: F.dropout(x, 0.4, True, np.random.default_rng(7)), randn(4, 5))


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax(fn, axis):
    gradcheck(lambda x: fn(x, axis), randn(3, 4, 2))


TARGET = np.array([1, 0, 3, 3, 2])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy(smoothing, reduction):
    gradcheck(lambda z: F.cross_entropy(z, TARGET, label_smoothing=smoothing, reduction=reduction),
              randn(5, 4))


def test_cross_entropy_spatial():
    target = rng.integers(0, 3, size=(2, 2, 2))
    gradcheck(lambda z: F.cross_entropy(z, target, label_smoothing=0.1), randn(2, 3, 2, 2))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(reduction):
    gradcheck(lambda z: F.nll_loss(z, TARGET, reduction=reduction), randn(5, 4))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), randn(3, 4), randn(3, 4))


# ------------------------------------------------------------------ data movement


def test_channel_shuffle():
    gradcheck(lambda x: F.channel_shuffle(x, 3), randn(2, 6, 2, 2))


@pytest.mark.parametrize("pads", [[0, 1, 2, 1, 0, 3], [(1, 0), (2, 2), (0, 1)]])
def test_pad(pads):
    gradcheck(lambda x: F.pad(x, pads, value=1.5), randn(2, 3, 2))


def test_concat_and_split():
    gradcheck(lambda a, b: F.concat([a, b, a], axis=1), randn(2, 3), randn(2, 1))
    gradcheck(lambda x: F.split(x, [1, 3, 2], axis=1), randn(2, 6))
    gradcheck(lambda x: F.split(x, 2, axis=0)[1], randn(4, 3))  # an unused output gets zeros


def test_stack():
    gradcheck(lambda a, b: F.stack([a, b], axis=1), randn(2, 3), randn(2, 3))


@pytest.mark.parametrize("start", [0, 1, 2])
def test_flatten(start):
    gradcheck(lambda x: F.flatten(x, start), randn(2, 3, 2, 2))
