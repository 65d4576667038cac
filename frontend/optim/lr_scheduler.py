"""Learning-rate schedules. Each computes the LR of step ``t`` in closed form from the
base LRs (so wrapping and resuming are exact) and writes it into ``param_groups``.

As in PyTorch, constructing a schedule applies the LR of step 0, and each ``step()``
(call it after ``optimizer.step()``) advances one step.
"""
from __future__ import annotations

import bisect
import copy
import math


class LRScheduler:
    """Base class; subclasses implement ``lr_at(step) -> list[float]`` (one per group)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            # setdefault: a second schedule on the same optimizer (e.g. LinearWarmup's
            # ``after``) shares the original base LR, not one already scheduled.
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_epoch = -1
        self._last_lr: list[float] = []
        self.step()

    def lr_at(self, step: int) -> list[float]:
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        self._apply(self.lr_at(self.last_epoch))

    def _apply(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    # Attributes that are wiring, not state.
    _not_state = ("optimizer",)

    def state_dict(self) -> dict:
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in self._not_state}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update({k: copy.deepcopy(v) for k, v in state_dict.items()
                              if k not in self._not_state})
        self._apply(self.lr_at(self.last_epoch))


class StepLR(LRScheduler):
    """``lr = base * gamma ** (step // step_size)``."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if step_size <= 0:
            raise ValueError(f"step_size must be positive, got {step_size}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, step: int) -> list[float]:
        return [base * self.gamma ** (step // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """``lr = base * gamma ** (number of milestones <= step)``."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1):
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, step: int) -> list[float]:
        passed = bisect.bisect_right(self.milestones, step)
        return [base * self.gamma ** passed for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base - eta_min) * (1 + cos(pi * step / T_max)) / 2``
    (PyTorch's closed form; past ``T_max`` it rises again, as PyTorch's does)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        if T_max <= 0:
            raise ValueError(f"T_max must be positive, got {T_max}")
        self.T_max = int(T_max)
        self.eta_min = float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, step: int) -> list[float]:
        cos_factor = (1.0 + math.cos(math.pi * step / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * cos_factor for base in self.base_lrs]


class LinearWarmup(LRScheduler):
    """Linear ramp from ``start_factor * base`` to ``base`` over ``warmup_steps`` steps,
    then ``after`` (a schedule on the same optimizer, run from its own step 0) or a
    constant ``base``."""

    def __init__(self, optimizer, warmup_steps: int, start_factor: float,
                 after: LRScheduler | None = None):
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if not 0.0 <= start_factor <= 1.0:
            raise ValueError(f"start_factor must be in [0, 1], got {start_factor}")
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup's `after` schedule must drive the same optimizer")
        self.warmup_steps = int(warmup_steps)
        self.start_factor = float(start_factor)
        self.after = after
        super().__init__(optimizer)

    def lr_at(self, step: int) -> list[float]:
        if step < self.warmup_steps:
            factor = self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps
            return [base * factor for base in self.base_lrs]
        if self.after is None:
            return list(self.base_lrs)
        return self.after.lr_at(step - self.warmup_steps)

    def step(self) -> None:
        super().step()
        if self.after is not None:  # keep the wrapped schedule's own counters in sync
            self.after.last_epoch = self.last_epoch - self.warmup_steps
            self.after._last_lr = self.get_last_lr()

    _not_state = ("optimizer", "after")

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["after"] = self.after.state_dict() if self.after is not None else None
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        after_state = state_dict.get("after")
        if self.after is not None and after_state is not None:
            # Restore counters only: during warm-up `after` sits at a negative step
            # whose LR must not be applied.
            self.after.__dict__.update({k: copy.deepcopy(v) for k, v in after_state.items()
                                        if k not in self.after._not_state})
        super().load_state_dict(state_dict)
