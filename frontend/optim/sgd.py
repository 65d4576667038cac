"""Stochastic gradient descent with momentum / Nesterov, PyTorch semantics."""
from __future__ import annotations

from .optimizer import Optimizer, required


class SGD(Optimizer):
    """``torch.optim.SGD``: L2 weight decay is added to the gradient; the momentum
    buffer starts as a copy of the first gradient, then ``buf = m*buf + (1-dampening)*g``;
    Nesterov uses ``g + m*buf``; finally ``p -= lr * update``."""

    def __init__(self, params, lr=required, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _check_options(self, group: dict) -> None:
        self._check_nonnegative(group, "lr", "learning rate")
        self._check_nonnegative(group, "momentum", "momentum")
        self._check_nonnegative(group, "weight_decay", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update_group(self, group: dict) -> None:
        # Python floats keep NumPy arithmetic in the parameter's dtype (NEP 50).
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        for p, grad in self._params_with_grad(group):
            data = p.data  # a local name so in-place ops never rebind p.data
            if weight_decay != 0:
                grad = grad + weight_decay * data
            if momentum != 0:
                state = self.state.setdefault(id(p), {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = grad.copy()
                else:
                    buf *= momentum
                    buf += (1.0 - dampening) * grad
                grad = grad + momentum * buf if group["nesterov"] else buf
            data -= lr * grad
