"""Adam and AdamW, PyTorch semantics (including amsgrad)."""
from __future__ import annotations

import math

import numpy as np

from .optimizer import Optimizer


class Adam(Optimizer):
    """``torch.optim.Adam``: weight decay is L2 (added to the gradient)."""

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad)
        super().__init__(params, defaults)

    def _check_options(self, group: dict) -> None:
        beta1, beta2 = group["betas"]
        self._check_nonnegative(group, "lr", "learning rate")
        self._check_nonnegative(group, "eps", "epsilon")
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"invalid betas: {group['betas']} (each must be in [0, 1))")
        self._check_nonnegative(group, "weight_decay", "weight_decay")

    def _update_group(self, group: dict) -> None:
        # Python floats keep NumPy arithmetic in the parameter's dtype (NEP 50).
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        for p, grad in self._params_with_grad(group):
            data = p.data  # a local name so in-place ops never rebind p.data
            state = self.state.setdefault(id(p), {})
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(data)
                state["exp_avg_sq"] = np.zeros_like(data)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = np.zeros_like(data)
            state["step"] += 1
            step = state["step"]

            if weight_decay != 0:
                if self.decoupled_weight_decay:
                    data *= 1.0 - lr * weight_decay
                else:
                    grad = grad + weight_decay * data

            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg += (1.0 - beta1) * (grad - exp_avg)  # lerp towards grad, as torch does
            exp_avg_sq *= beta2
            exp_avg_sq += (1.0 - beta2) * (grad * grad)

            bias_correction1 = 1.0 - beta1 ** step
            bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** step)
            step_size = lr / bias_correction1
            if group["amsgrad"]:
                second_moment = state.setdefault("max_exp_avg_sq", np.zeros_like(data))
                np.maximum(second_moment, exp_avg_sq, out=second_moment)
            else:
                second_moment = exp_avg_sq
            denom = np.sqrt(second_moment) / bias_correction2_sqrt + eps
            data -= step_size * (exp_avg / denom)


class AdamW(Adam):
    """``torch.optim.AdamW``: decoupled weight decay ``p *= 1 - lr*wd`` before the Adam step."""

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)
