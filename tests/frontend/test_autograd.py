"""Tensor, the autograd engine, Tensor-method gradients and the tracing hook."""
import numpy as np
import pytest

from yuan.frontend import autograd
from yuan.frontend import functional as F
from yuan.frontend.autograd import Function, no_grad, is_grad_enabled, tracing
from yuan.frontend.errors import ShapeError, TraceError
from yuan.frontend.tensor import Tensor

from tests.conftest import gradcheck

rng = np.random.default_rng(99)


def randn(*shape):
    return rng.standard_normal(shape)


# ------------------------------------------------------------------ construction and dtypes


def test_default_dtypes():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.zeros(3, np.float64)).dtype == np.float32
    assert Tensor(3.5).dtype == np.float32
    assert Tensor(np.arange(3)).dtype == np.int64
    assert Tensor(np.arange(3, dtype=np.int32)).dtype == np.int32
    assert Tensor(np.zeros(2), dtype=np.float64).dtype == np.float64
    t = Tensor(np.ones((2, 3)), requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and t.requires_grad and t.is_leaf


def test_int_tensor_cannot_require_grad():
    with pytest.raises(TypeError):
        Tensor(np.arange(3), requires_grad=True)


def test_scalars_and_arrays_are_wrapped_in_the_tensor_dtype():
    x = Tensor(np.ones(3, np.float32))
    for y in (x + 1, 1 + x, x * 2.5, 2.5 * x, x - np.float64(1), x / 3, 3 / x, x ** 2, 2 ** x,
              x + np.ones(3), np.ones(3) + x, np.ones(3) * x):
        assert isinstance(y, Tensor) and y.dtype == np.float32
    x64 = Tensor(np.ones(3), dtype=np.float64)
    assert (x64 * 0.5).dtype == np.float64
    ints = Tensor(np.arange(3))
    assert (ints + 1).dtype == np.int64
    assert (ints * 0.5).dtype == np.float32


def test_numpy_item_detach_astype_repr():
    x = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    assert x.numpy() is x.data
    assert Tensor(4.0).item() == 4.0
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf and np.array_equal(d.data, x.data * 2)
    assert x.astype(np.float64).dtype == np.float64
    assert x.astype(np.float32) is x
    assert "requires_grad=True" in repr(x) and repr(Tensor(np.arange(2))).startswith("Tensor(")
    assert len(x) == 2 and np.asarray(x).shape == (2, 3)
    assert len({x: 1, d: 2}) == 2  # tensors stay hashable although == is element-wise


def test_comparisons_return_bool_without_grad():
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    for r, expected in ((a < 2, [1, 0, 0]), (a <= 2, [1, 1, 0]), (a > 2, [0, 0, 1]), (a >= 2, [0, 1, 1]),
                        (a == 2, [0, 1, 0]), (a != 2, [1, 0, 1])):
        assert r.dtype == np.bool_ and not r.requires_grad
        assert r.data.tolist() == [bool(e) for e in expected]
    assert (a > 1).astype(np.float32).mean().item() == pytest.approx(2 / 3)


# ------------------------------------------------------------------ the engine


def test_backward_accumulates_and_non_leaf_grads_are_dropped():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * x
    y = (h + x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)
    assert h.grad is None
    (x * 3).sum().backward()  # a second graph adds to .grad
    np.testing.assert_allclose(x.grad, 2 * x.data + 4)
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [3, 3])


def test_diamond_graph_and_same_input_twice():
    x = Tensor(np.array([0.5, -1.5]), requires_grad=True, dtype=np.float64)
    a = x.exp()
    y = (a * a + a.tanh() * x).sum()
    y.backward()
    ea = np.exp(x.data)
    expected = 2 * ea * ea + (1 - np.tanh(ea) ** 2) * ea * x.data + np.tanh(ea)
    np.testing.assert_allclose(x.grad, expected)


def test_shared_subexpressions_get_complete_gradients():
    """Residual joins and reused intermediates: every call's backward must run only after
    all of its consumers (a wrong topological order silently drops gradient)."""
    def f(x):
        a = x * 0.5
        b = a.tanh()
        c = a + b
        d = c.sigmoid()
        e = d * b + c
        return (e.tanh() + a) * d
    gradcheck(f, randn(3, 2))

    def residual_chain(x):
        for _ in range(6):
            x = x + (x * 0.7).tanh() * x.sigmoid()
        return x
    gradcheck(residual_chain, randn(4))


def test_backward_needs_scalar_or_gradient():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError):
        y.backward()
    y.backward(np.array([1.0, 0.0, 2.0]))
    np.testing.assert_allclose(x.grad, [2, 0, 4])
    with pytest.raises(RuntimeError):
        Tensor(np.ones(1)).backward()


def test_graph_is_freed_unless_retained():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, [4, 4])
    with pytest.raises(RuntimeError, match="freed"):
        y.backward()


def test_no_grad_and_requires_grad_propagation():
    x = Tensor(np.ones(2), requires_grad=True)
    c = Tensor(np.ones(2))
    assert (x + c).requires_grad and not (c * 2).requires_grad
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2
    assert is_grad_enabled() and not y.requires_grad and y.is_leaf

    @no_grad()
    def f(t):
        return t * 2
    assert not f(x).requires_grad and is_grad_enabled()


def test_gradients_stay_float32():
    x = Tensor(randn(2, 3, 6, 6), requires_grad=True)
    w = Tensor(randn(4, 3, 3, 3), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    y = F.batch_norm(y, Tensor(np.zeros(4)), Tensor(np.ones(4)), Tensor(np.ones(4)), Tensor(np.zeros(4)), True)
    y = F.max_pool2d(F.relu(y) * 0.5 + 1, 2)
    y = F.hardswish(y).mean(axis=(2, 3)) ** 2
    loss = F.cross_entropy(y, np.array([0, 3]), label_smoothing=0.1)
    assert y.dtype == np.float32 and loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


FLOAT32_OPS = {
    "conv": lambda x: F.conv2d(x, Tensor(randn(4, 3, 3, 3)), Tensor(randn(4)), padding=1),
    "conv strided grouped": lambda x: F.conv2d(x, Tensor(randn(3, 1, 3, 3)), stride=2, groups=3),
    "conv 1x1": lambda x: F.conv2d(x, Tensor(randn(2, 3, 1, 1))),
    "linear": lambda x: F.linear(x.reshape(2, -1), Tensor(randn(5, 48)), Tensor(randn(5))),
    "bn train": lambda x: F.batch_norm(x, Tensor(np.zeros(3)), Tensor(np.ones(3)), Tensor(randn(3)),
                                       Tensor(randn(3)), True),
    "bn eval": lambda x: F.batch_norm(x, Tensor(np.zeros(3)), Tensor(np.ones(3)), None, None, False),
    "activations": lambda x: F.hardswish(F.hardsigmoid(F.relu6(F.sigmoid(F.tanh(F.relu(x)))))),
    "pools": lambda x: F.max_pool2d(x, 2) + F.avg_pool2d(x, 3, 2, 1, False) + F.adaptive_avg_pool2d(x, 2),
    "global pool": lambda x: F.global_avg_pool2d(x) * 2.5,
    "dropout": lambda x: F.dropout(x, 0.3, True, np.random.default_rng(0)),
    "softmax": lambda x: F.softmax(x, 1) + F.log_softmax(x, -1),
    "losses": lambda x: F.cross_entropy(x.reshape(6, -1), np.arange(6) % 8, label_smoothing=0.1)
                        + F.mse_loss(x, np.zeros(x.shape)) + F.nll_loss(x.reshape(6, -1), np.arange(6)),
    "shape ops": lambda x: F.concat(F.split(F.pad(F.channel_shuffle(x, 3), [0, 0, 1, 1, 0, 0, 1, 1]), [1, 2], 1), 1),
    "tensor math": lambda x: ((x * 2 - 1) / 3) ** 2 + x.exp().mean(axis=1, keepdims=True) + x.abs().sqrt()
                             + (x + 3).log() + x.max(axis=0) + x.sum() + x.clip(-1, 1) + x[0, 1:, ::2].mean(),
    "matmul": lambda x: x @ Tensor(randn(4, 4)),
}


@pytest.mark.parametrize("name", list(FLOAT32_OPS))
def test_float32_everywhere(name, monkeypatch):
    """float32 in, float32 out, and no backward hands the engine a float64 gradient
    (the engine would cast it back, hiding a slow upcast)."""
    original = autograd._check_grad

    def strict(ctx, tensor, grad):
        assert np.asarray(grad).dtype == tensor.dtype, f"{type(ctx).__name__} returned {np.asarray(grad).dtype}"
        return original(ctx, tensor, grad)
    monkeypatch.setattr(autograd, "_check_grad", strict)
    x = Tensor(randn(2, 3, 4, 4), requires_grad=True)
    y = FLOAT32_OPS[name](x)
    assert y.dtype == np.float32
    y.backward(np.ones(y.shape, np.float32))
    assert x.grad.dtype == np.float32


def test_custom_function_multi_output_and_none_grads():
    class SplitHalves(Function):
        ir_op = None

        @staticmethod
        def forward(ctx, x, unused, scale):
            ctx.scale = scale
            return x[:2] * scale, x[2:] * scale

        @staticmethod
        def backward(ctx, ga, gb):
            return np.concatenate([ga, gb]) * ctx.scale, None

    x = Tensor(np.arange(4.0), requires_grad=True)
    a, b = SplitHalves.apply(x, Tensor(np.ones(1)), scale=3.0)
    a.sum().backward()  # b unused: its gradient arrives as zeros
    np.testing.assert_allclose(x.grad, [3, 3, 0, 0])


# ------------------------------------------------------------------ Tensor-method gradients

BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b,
}
SHAPE_PAIRS = [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (3, 1)), ((1, 4), (3, 1)), ((3,), (2, 1, 3)), ((2, 3), ())]


@pytest.mark.parametrize("shapes", SHAPE_PAIRS)
@pytest.mark.parametrize("op", list(BINARY))
def test_broadcasting_binary_ops(op, shapes):
    a, b = randn(*shapes[0]), randn(*shapes[1])
    if op == "pow":
        a = np.abs(a) + 0.5
    if op == "div":
        b = np.sign(b) * (np.abs(b) + 0.5)
    gradcheck(BINARY[op], a, b)


@pytest.mark.parametrize("fn", [lambda x: 2.0 - x, lambda x: 3.0 / x, lambda x: x ** 3, lambda x: 2.0 ** x,
                                lambda x: -x, lambda x: x * 4 + 1])
def test_scalar_operands(fn):
    gradcheck(fn, np.abs(randn(3, 2)) + 0.5)


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (3, 4, 2)),
                                    ((4,), (4, 3)), ((2, 3, 4), (4,)), ((4,), (4,))])
def test_matmul(shapes):
    gradcheck(lambda a, b: a @ b, randn(*shapes[0]), randn(*shapes[1]))


UNARY = {
    "exp": lambda x: x.exp(), "log": lambda x: x.log(), "sqrt": lambda x: x.sqrt(),
    "tanh": lambda x: x.tanh(), "sigmoid": lambda x: x.sigmoid(), "relu": lambda x: x.relu(),
    "abs": lambda x: x.abs(), "clip": lambda x: x.clip(0.2, 1.0), "clip_low": lambda x: x.clip(min=0.3),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_methods(name):
    x = np.abs(randn(3, 4)) + 0.05
    x[0] *= -1 if name in ("relu", "abs", "tanh", "sigmoid", "exp") else 1
    gradcheck(UNARY[name], x)


@pytest.mark.parametrize("axis,keepdims", [(None, False), (1, False), ((0, 2), True), (-1, True)])
@pytest.mark.parametrize("method", ["sum", "mean", "max"])
def test_reductions(method, axis, keepdims):
    x = rng.permutation(24).reshape(2, 3, 4) * 0.1  # distinct values: no tied maxima
    gradcheck(lambda t: getattr(t, method)(axis=axis, keepdims=keepdims), x)


def test_max_splits_gradient_between_ties():
    x = Tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad, [0, 0.5, 0.5])


SHAPE_OPS = {
    "reshape": lambda t: t.reshape(4, -1),
    "reshape tuple": lambda t: t.reshape((3, 8)),
    "transpose perm": lambda t: t.transpose(2, 0, 1),
    "transpose swap": lambda t: t.transpose(0, 2),
    "transpose reverse": lambda t: t.transpose(),
    "permute": lambda t: t.permute(1, 2, 0),
    "T": lambda t: t.T,
    "flatten": lambda t: t.flatten(),
    "squeeze/unsqueeze": lambda t: t.unsqueeze(1).unsqueeze(-1).squeeze(1),
    "index int+slice": lambda t: t[1, :, 1:3],
    "index negative step": lambda t: t[:, ::-2, -1],
    "index ellipsis+newaxis": lambda t: t[..., None, 0],
    "index fancy repeated": lambda t: t[np.array([0, 1, 0]), 1],
    "index bool mask": lambda t: t[t.data > 0],
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops(name):
    gradcheck(SHAPE_OPS[name], randn(2, 3, 4))


@pytest.mark.parametrize("key", [(0,), (slice(None), 1), (Ellipsis, slice(1, None, 2)), (-1, None, slice(3, 0, -1)),
                                 (slice(None, None, -1),), (slice(-2, None), Ellipsis, 2)])
def test_basic_indexing_matches_numpy(key):
    a = randn(3, 4, 5)
    np.testing.assert_array_equal(Tensor(a)[key].data, a.astype(np.float32)[key])


def test_squeeze_error():
    with pytest.raises(ShapeError):
        Tensor(np.ones((2, 3))).squeeze(0)


# ------------------------------------------------------------------ tracing hook


class RecordingTracer:
    def __init__(self):
        self.calls = []

    def record(self, op, attrs, inputs, outputs):
        assert all(isinstance(t, Tensor) for t in inputs + outputs)
        self.calls.append((op, attrs, inputs, outputs))

    @property
    def ops(self):
        return [c[0] for c in self.calls]


def trace(fn, *args):
    tracer = RecordingTracer()
    with tracing(tracer):
        assert autograd.active_tracer() is tracer
        out = fn(*args)
    assert autograd.active_tracer() is None
    return tracer, out


def test_tracer_gets_conv_attrs_and_exact_input_tensors():
    x, w, b = Tensor(randn(1, 4, 6, 6)), Tensor(randn(4, 2, 3, 3)), Tensor(randn(4))
    tracer, y = trace(lambda: F.conv2d(x, w, b, stride=2, padding=(1, 0, 2, 1), dilation=1, groups=2))
    (op, attrs, inputs, outputs), = tracer.calls
    assert op == "conv2d"
    assert attrs == {"strides": [2, 2], "pads": [1, 0, 2, 1], "dilations": [1, 1], "group": 2}
    assert inputs[0] is x and inputs[1] is w and inputs[2] is b and outputs[0] is y
    tracer, _ = trace(lambda: F.conv2d(x, w, None, padding=1, groups=2))
    assert len(tracer.calls[0][2]) == 2


def test_tracer_activation_attrs():
    x = Tensor(randn(2, 3))
    tracer, _ = trace(lambda: F.hardsigmoid(F.relu6(F.hardswish(F.sigmoid(F.tanh(F.relu(x)))))))
    assert tracer.ops == ["relu", "tanh", "sigmoid", "hardswish", "clip", "hardsigmoid"]
    assert tracer.calls[4][1] == {"min": 0.0, "max": 6.0}
    assert tracer.calls[5][1] == {"alpha": pytest.approx(1 / 6), "beta": 0.5}


def test_tracer_batch_norm_eval_inputs_and_train_refusal():
    x = Tensor(randn(2, 3, 4, 4))
    stats = [Tensor(np.ones(3)) for _ in range(4)]
    tracer, _ = trace(lambda: F.batch_norm(x, stats[0], stats[1], stats[2], stats[3], training=False, eps=1e-3))
    (op, attrs, inputs, _), = tracer.calls
    assert op == "batch_norm" and attrs == {"epsilon": 1e-3}
    assert inputs[0] is x and inputs[1] is stats[2] and inputs[2] is stats[3]
    assert inputs[3] is stats[0] and inputs[4] is stats[1]
    with pytest.raises(TraceError, match="BatchNormTrain"):
        trace(lambda: F.batch_norm(x, stats[0], stats[1], stats[2], stats[3], training=True))


def test_tracer_pool_attrs():
    x = Tensor(randn(1, 2, 8, 8))
    tracer, _ = trace(lambda: (F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 2, count_include_pad=False),
                               F.adaptive_avg_pool2d(x, 1), F.adaptive_avg_pool2d(x, (2, 4)),
                               F.global_avg_pool2d(x)))
    assert tracer.ops == ["max_pool2d", "avg_pool2d", "global_avg_pool2d", "adaptive_avg_pool2d",
                          "global_avg_pool2d"]
    assert tracer.calls[0][1] == {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 0}
    assert tracer.calls[1][1] == {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "ceil_mode": 0,
                                  "count_include_pad": 0}
    assert tracer.calls[3][1] == {"output_size": [2, 4]}


def test_tracer_scalar_constants_are_tensors_of_matching_dtype():
    x = Tensor(randn(2, 3))
    tracer, _ = trace(lambda: 1.0 - x * 2)
    assert tracer.ops == ["mul", "sub"]
    const = tracer.calls[0][2][1]
    assert isinstance(const, Tensor) and const.dtype == np.float32 and const.item() == 2
    assert tracer.calls[1][2][0].item() == 1.0 and tracer.calls[1][2][1] is tracer.calls[0][3][0]


def test_tracer_shape_ops():
    x = Tensor(randn(2, 6, 3, 3))
    tracer, _ = trace(lambda: (x.reshape(2, -1), F.flatten(x), x.transpose(0, 2, 3, 1), x.mean(axis=(2, 3)),
                               x.sum(axis=1, keepdims=True), x.max(), F.softmax(x, 1), F.log_softmax(x),
                               F.concat([x, x], 1), F.split(x, [2, 4], axis=1), F.channel_shuffle(x, 3),
                               F.pad(x, [0, 0, 1, 2, 0, 0, 3, 4]), x @ Tensor(randn(3, 5)),
                               F.linear(x, Tensor(randn(4, 3)))))
    expected = [("reshape", {"shape": [2, -1]}), ("flatten", {"axis": 1}), ("transpose", {"perm": [0, 2, 3, 1]}),
                ("reduce_mean", {"axes": [2, 3], "keepdims": 0}), ("reduce_sum", {"axes": [1], "keepdims": 1}),
                ("reduce_max", {"axes": [0, 1, 2, 3], "keepdims": 0}), ("softmax", {"axis": 1}),
                ("log_softmax", {"axis": 3}), ("concat", {"axis": 1}), ("split", {"axis": 1, "sizes": [2, 4]}),
                ("channel_shuffle", {"groups": 3}),
                ("pad", {"pads": [0, 0, 1, 2, 0, 0, 3, 4], "mode": "constant", "value": 0.0}),
                ("matmul", {}), ("linear", {})]
    assert [(c[0], c[1]) for c in tracer.calls] == expected
    assert len(tracer.calls[9][3]) == 2  # split: one output per size


def test_tracer_indexing():
    x = Tensor(randn(2, 3, 4))
    tracer, y = trace(lambda: x[0, 1:, ::-1])
    assert tracer.ops == ["slice", "squeeze"]
    assert tracer.calls[0][1] == {"starts": [0, 1, 3], "ends": [1, 3, -5], "axes": [0, 1, 2], "steps": [1, 1, -1]}
    assert tracer.calls[1][1] == {"axes": [0]}
    # The IR's Python-slice semantics reproduce the eager result.
    starts, ends, axes, steps = (tracer.calls[0][1][k] for k in ("starts", "ends", "axes", "steps"))
    key = [slice(None)] * 3
    for s, e, a, st in zip(starts, ends, axes, steps):
        key[a] = slice(s, e, st)
    np.testing.assert_array_equal(x.data[tuple(key)][0], y.data)
    tracer, _ = trace(lambda: x[:, None])
    assert tracer.ops == ["unsqueeze"] and tracer.calls[0][1] == {"axes": [1]}
    with pytest.raises(TraceError):
        trace(lambda: x[np.array([0, 1])])


def test_identity_like_calls_record_nothing():
    x = Tensor(randn(2, 3))
    tracer, y = trace(lambda: F.dropout(x, 0.5, training=False))
    assert y is x and tracer.calls == []
    tracer, y = trace(lambda: (x[:], F.pad(x, [0, 0, 0, 0]), x.astype(np.float32)))
    assert all(t is x for t in y) and tracer.calls == []


def test_untraceable_ops_raise_trace_error_naming_the_op():
    x = Tensor(randn(4, 3))
    for fn, name in ((lambda: F.dropout(x, 0.5, training=True), "Dropout"), (lambda: x.abs(), "Abs"),
                     (lambda: F.cross_entropy(x, np.zeros(4, np.int64)), "CrossEntropy"),
                     (lambda: x > 0, "Less")):
        with pytest.raises(TraceError, match=name):
            trace(fn)
    assert autograd.active_tracer() is None
