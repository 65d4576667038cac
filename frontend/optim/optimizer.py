"""Optimizer base: parameter groups, per-parameter state and its (de)serialisation.

Parameters are duck-typed: anything with ``.data`` (np.ndarray, updated in place,
never rebound) and ``.grad`` (np.ndarray or None) works, so the optimizers do not
depend on the Tensor class.
"""
from __future__ import annotations

import copy

import numpy as np


class _Required:
    """Sentinel for a hyper-parameter that has no default (e.g. SGD's lr)."""

    def __repr__(self) -> str:
        return "<required>"


required = _Required()


class Optimizer:
    """Base class. Subclasses implement ``_update_group(group)``.

    ``params`` is an iterable of parameters or of dicts ``{"params": [...], **options}``;
    options missing from a group fall back to ``defaults``.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        # State is keyed by id(param): params need not be hashable (Tensor may
        # overload __eq__), and param_groups keeps every param alive.
        self.state: dict[int, dict] = {}
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a parameter group must be a dict with a 'params' entry")
        params = group["params"]
        params = [params] if hasattr(params, "data") else list(params)
        for p in params:
            if not isinstance(getattr(p, "data", None), np.ndarray):
                raise TypeError(f"optimizer params need an np.ndarray .data, got {type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        new_group = {**group, "params": params}
        for key, default in self.defaults.items():
            if default is required and key not in new_group:
                raise ValueError(f"parameter group didn't specify a value of required option '{key}'")
            new_group.setdefault(key, default)
        self._check_options(new_group)
        self.param_groups.append(new_group)

    def _check_options(self, group: dict) -> None:
        """Subclasses validate hyper-parameters here (raise ValueError)."""

    @staticmethod
    def _check_nonnegative(group: dict, key: str, what: str) -> None:
        if group[key] < 0:
            raise ValueError(f"invalid {what}: {group[key]}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad[...] = 0

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure()'s loss."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: dict) -> None:
        raise NotImplementedError

    @staticmethod
    def _grad_of(p) -> np.ndarray | None:
        """The gradient in the parameter's dtype (never upcast float32 math)."""
        if p.grad is None:
            return None
        return np.asarray(p.grad, dtype=p.data.dtype)

    def _params_with_grad(self, group: dict):
        """(param, gradient) for each parameter of the group that has a gradient; params
        without one are left untouched (no state, no weight decay)."""
        for p in group["params"]:
            grad = self._grad_of(p)
            if grad is not None:
                yield p, grad

    # ---- serialisation ----------------------------------------------------------

    def _all_params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        """``{"state": {index: {name: array|number}}, "param_groups": [...]}``, deep-copied.

        Parameters are named by their position across all groups, as in PyTorch.
        """
        index_of = {id(p): i for i, p in enumerate(self._all_params())}
        state = {index_of[pid]: _copy_state(s) for pid, s in self.state.items() if pid in index_of}
        groups, start = [], 0
        for g in self.param_groups:
            options = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            options["params"] = list(range(start, start + len(g["params"])))
            start += len(g["params"])
            groups.append(options)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, "
                f"optimizer has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"parameter group {i}: loaded state dict has {len(saved['params'])} params, "
                    f"optimizer has {len(group['params'])}")
        params = self._all_params()
        self.state = {}
        for index, s in state_dict["state"].items():
            index = int(index)
            if not 0 <= index < len(params):
                raise ValueError(f"loaded state refers to parameter {index}, optimizer has {len(params)}")
            self.state[id(params[index])] = _copy_state(s)
        for saved, group in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = copy.deepcopy(v)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            opts = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} params, {opts}")
        return "\n".join(lines + [")"])


def _copy_state(state: dict) -> dict:
    return {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else copy.deepcopy(v))
            for k, v in state.items()}
