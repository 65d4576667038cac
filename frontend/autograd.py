"""Reverse-mode autograd: grad mode, the tracing hook, `Function` and the backward pass.

A `Function` subclass describes one op: `forward(ctx, *arrays, **attrs)` computes
NumPy outputs, `backward(ctx, *grad_outputs)` returns one gradient per input
(None where there is none). `Function.apply` wraps the arrays in Tensors and, when
gradients are wanted, links the outputs to the call (`ctx`) so `backward` can walk
the graph. When a tracer is active every call is reported to it as a Graph IR op.
"""
from contextlib import contextmanager

import numpy as np

from .errors import TraceError

# ------------------------------------------------------------------ grad mode

_grad_enabled = True


def is_grad_enabled():
    return _grad_enabled


class set_grad_enabled:
    """Context manager (and decorator) that switches gradient recording on or off."""

    def __init__(self, enabled):
        self._enabled = bool(enabled)
        self._previous = []

    def __enter__(self):
        global _grad_enabled
        self._previous.append(_grad_enabled)
        _grad_enabled = self._enabled
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous.pop()
        return False

    def __call__(self, fn):
        enabled = self._enabled

        def wrapper(*args, **kwargs):
            with set_grad_enabled(enabled):
                return fn(*args, **kwargs)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper


class no_grad(set_grad_enabled):
    """`with no_grad():` runs ops without recording them for backward."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    def __init__(self):
        super().__init__(True)


# ------------------------------------------------------------------ tracing hook

_active_tracer = None


def active_tracer():
    """The tracer every `Function.apply` reports to, or None."""
    return _active_tracer


@contextmanager
def tracing(tracer):
    """Make `tracer` (an object with `record(op, attrs, inputs, outputs)`) active."""
    global _active_tracer
    previous, _active_tracer = _active_tracer, tracer
    try:
        yield tracer
    finally:
        _active_tracer = previous


# ------------------------------------------------------------------ Function

def _tensor_class():
    from .tensor import Tensor  # tensor.py imports this module; bind lazily
    return Tensor


class Function:
    """Base class of every differentiable op.

    Subclasses set `ir_op` (a Graph IR op name, or None when the op cannot be
    traced) and override `forward`, `backward` and, when the op has IR
    attributes, `ir_attrs`. The instance created per call is the `ctx` handed to
    `forward` and `backward`; store whatever backward needs on it.
    """

    ir_op = None

    # False for ops whose outputs carry no gradient (comparisons, argmax).
    differentiable = True

    # Set by apply on the ctx: one bool per input saying whether it needs a gradient.
    needs_input_grad = ()

    @staticmethod
    def forward(ctx, *arrays, **attrs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError

    @classmethod
    def ir_attrs(cls, **attrs):
        """The IR attributes of a call with these op attributes (design.md names)."""
        return {}

    @classmethod
    def apply(cls, *inputs, **attrs):
        Tensor = _tensor_class()
        tracer = _active_tracer
        if tracer is not None and cls.ir_op is None:
            raise TraceError(f"{cls.__name__} has no Graph IR op and cannot be traced")
        # None stays None (an omitted optional input); other non-Tensors become constants.
        tensors = [x if (x is None or isinstance(x, Tensor)) else Tensor(x) for x in inputs]
        ctx = cls()
        if _grad_enabled and cls.differentiable:
            needs = tuple(t is not None and t.requires_grad for t in tensors)
            requires_grad = any(needs)
        else:
            needs, requires_grad = (False,) * len(tensors), False
        ctx.needs_input_grad = needs
        raw = cls.forward(ctx, *[None if t is None else t.data for t in tensors], **attrs)
        multi = isinstance(raw, tuple)
        arrays = raw if multi else (raw,)
        if requires_grad:
            ctx.inputs = tensors
            ctx.num_outputs = len(arrays)
            if multi:  # backward fills the gradient of an unused output with zeros
                ctx.output_meta = [(a.shape, a.dtype) for a in arrays]
            outputs = [Tensor._from_op(a, ctx, i) for i, a in enumerate(arrays)]
        else:
            outputs = [Tensor._from_op(a, None, 0) for a in arrays]
        if tracer is not None:
            tracer.record(cls.ir_op, cls.ir_attrs(**attrs), tensors, outputs)
        return tuple(outputs) if multi else outputs[0]


# ------------------------------------------------------------------ backward pass

def _parents(ctx):
    if getattr(ctx, "inputs", None) is None:
        raise RuntimeError("backward through a graph that was already freed; "
                           "pass retain_graph=True to the first backward()")
    return [t._ctx for t in ctx.inputs if t is not None and t._ctx is not None]


def _topological_order(root_ctx):
    """Function calls reachable from root_ctx, every call before the calls that produced
    its inputs (so a call's output gradient is complete when its backward runs)."""
    # Iterative depth-first post-order: a call is appended only after all of its
    # producers are, and a visited call is either finished or on the current path.
    order, visited = [], {id(root_ctx)}
    stack = [(root_ctx, iter(_parents(root_ctx)))]
    while stack:
        ctx, pending = stack[-1]
        for parent in pending:
            if id(parent) not in visited:
                visited.add(id(parent))
                stack.append((parent, iter(_parents(parent))))
                break
        else:
            stack.pop()
            order.append(ctx)
    order.reverse()  # consumers first
    return order


def _accumulate(store, key, grad):
    previous = store.get(key)
    store[key] = grad if previous is None else previous + grad


def backward(tensor, grad=None, retain_graph=False):
    """Accumulate d(tensor)/d(leaf) into `.grad` of every leaf that requires grad."""
    if not tensor.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad")
    if grad is None:
        if tensor.size != 1:
            raise RuntimeError(f"backward() without a gradient needs a scalar, got shape {tensor.shape}")
        grad = np.ones(tensor.shape, dtype=tensor.dtype)
    else:
        grad = np.asarray(grad.data if isinstance(grad, _tensor_class()) else grad, dtype=tensor.dtype)
        if grad.shape != tensor.shape:
            raise RuntimeError(f"backward(): gradient shape {grad.shape} != tensor shape {tensor.shape}")
    if tensor._ctx is None:  # a leaf
        _store_leaf_grad(tensor, grad)
        return

    pending = {}  # (id(ctx), output index) -> gradient
    _accumulate(pending, (id(tensor._ctx), tensor._output_index), grad)
    with no_grad():
        for ctx in _topological_order(tensor._ctx):
            grad_outputs = [pending.pop((id(ctx), i), None) for i in range(ctx.num_outputs)]
            if all(g is None for g in grad_outputs):
                continue
            if ctx.num_outputs > 1:  # unused outputs of a multi-output op get zero gradient
                grad_outputs = [np.zeros(shape, dtype) if g is None else g
                                for g, (shape, dtype) in zip(grad_outputs, ctx.output_meta)]
            input_grads = type(ctx).backward(ctx, *grad_outputs)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            inputs = ctx.inputs
            if len(input_grads) != len(inputs):
                raise RuntimeError(f"{type(ctx).__name__}.backward returned {len(input_grads)} "
                                   f"gradients for {len(inputs)} inputs")
            for t, g in zip(inputs, input_grads):
                if g is None or t is None or not t.requires_grad:
                    continue
                g = _check_grad(ctx, t, g)
                if t._ctx is None:
                    _store_leaf_grad(t, g)
                else:
                    _accumulate(pending, (id(t._ctx), t._output_index), g)
            if not retain_graph:  # drop saved activations as soon as they are used
                ctx.__dict__.clear()


def _check_grad(ctx, tensor, grad):
    grad = np.asarray(grad)
    if grad.shape != tensor.shape:
        raise RuntimeError(f"{type(ctx).__name__}.backward produced a gradient of shape {grad.shape} "
                           f"for an input of shape {tensor.shape}")
    if grad.dtype != tensor.dtype:
        grad = grad.astype(tensor.dtype)
    return grad


def _store_leaf_grad(tensor, grad):
    # Copy on first store: the gradient array may alias another tensor's gradient.
    if tensor.grad is None:
        tensor.grad = np.array(grad, dtype=tensor.dtype, copy=True)
    else:
        tensor.grad = tensor.grad + grad
