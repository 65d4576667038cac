"""Op schema machinery: how an op's inputs, attributes and outputs are described and checked.

The table of IR ops itself lives in ops.py; this file only knows how to read it.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import GraphError

REQUIRED = object()  # attribute default meaning "the caller must give it"


@dataclass(frozen=True)
class Derived:
    """Attribute default computed from the other attributes and the input Values."""
    compute: Callable[[dict, list], Any]
    doc: str = ""


@dataclass(frozen=True)
class AttrSpec:
    kind: str  # "int", "float", "str", "ints", "floats"
    default: Any = REQUIRED
    optional: bool = False  # None is an accepted value

    def coerce(self, value, where: str):
        if value is None:
            if self.optional:
                return None
            raise GraphError(f"{where}: attribute may not be None")
        try:
            return _COERCE[self.kind](value)
        except (TypeError, ValueError) as exc:
            raise GraphError(f"{where}: expected {self.kind}, got {value!r}") from exc


def _as_int(v) -> int:
    if isinstance(v, bool) or isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real) and float(v).is_integer():
        return int(v)
    raise TypeError(f"not an int: {v!r}")


def _as_float(v) -> float:
    if isinstance(v, numbers.Real):
        return float(v)
    raise TypeError(f"not a float: {v!r}")


def _as_str(v) -> str:
    if isinstance(v, str):
        return v
    raise TypeError(f"not a str: {v!r}")


def _as_list(item):
    def coerce(v):
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
            raise TypeError(f"not a list: {v!r}")
        return [item(x) for x in v]
    return coerce


_COERCE = {"int": _as_int, "float": _as_float, "str": _as_str,
           "ints": _as_list(_as_int), "floats": _as_list(_as_float)}


@dataclass(frozen=True)
class OpSchema:
    """Inputs are names; 'b?' marks an optional input, 'xs*' a variadic tail (at least one)."""
    name: str
    inputs: tuple[str, ...]
    infer: Callable  # (inputs: list[Value | None], attrs: dict) -> list[(shape, dtype)]
    attrs: dict[str, AttrSpec] = field(default_factory=dict)
    num_outputs: int | Callable[[dict], int] = 1
    doc: str = ""

    @property
    def variadic(self) -> bool:
        return bool(self.inputs) and self.inputs[-1].endswith("*")

    def output_count(self, attrs: dict) -> int:
        return self.num_outputs(attrs) if callable(self.num_outputs) else self.num_outputs

    def check_inputs(self, inputs: list[str], where: str) -> None:
        """Arity and optional-input rules; `inputs` are names, "" means omitted."""
        if self.variadic:
            fixed = len(self.inputs) - 1
            if len(inputs) < fixed + 1:
                raise GraphError(f"{where}: expects at least {fixed + 1} inputs, got {len(inputs)}")
        else:
            required = sum(not n.endswith("?") for n in self.inputs)
            if not required <= len(inputs) <= len(self.inputs):
                raise GraphError(f"{where}: expects {required}..{len(self.inputs)} inputs "
                                 f"({', '.join(self.inputs)}), got {len(inputs)}")
        for i, name in enumerate(inputs):
            if name == "" and not self.input_is_optional(i):
                raise GraphError(f"{where}: input {i} ({self.input_name(i)}) is required but omitted")

    def pad_optional(self, items: list) -> list:
        """Append None for trailing optional inputs the node left out."""
        missing = 0 if self.variadic else len(self.inputs) - len(items)
        return list(items) + [None] * missing

    def input_name(self, i: int) -> str:
        if self.variadic and i >= len(self.inputs) - 1:
            return self.inputs[-1].rstrip("*")
        return self.inputs[i].rstrip("?")

    def input_is_optional(self, i: int) -> bool:
        return not (self.variadic and i >= len(self.inputs) - 1) and self.inputs[i].endswith("?")

    def normalize_attrs(self, attrs: dict | None, input_values: list, where: str) -> dict:
        """Reject unknown attributes, coerce types, fill defaults; returns a new dict."""
        attrs = dict(attrs or {})
        unknown = sorted(set(attrs) - set(self.attrs))
        if unknown:
            raise GraphError(f"{where}: unknown attribute(s) {unknown}; "
                             f"'{self.name}' accepts {sorted(self.attrs) or 'none'}")
        out = {}
        for key, spec in self.attrs.items():  # plain defaults first: Derived ones may read them
            if key in attrs:
                out[key] = spec.coerce(attrs[key], f"{where} attribute '{key}'")
            elif spec.default is REQUIRED:
                raise GraphError(f"{where}: missing required attribute '{key}'")
            elif not isinstance(spec.default, Derived):
                out[key] = _copy_default(spec.default)
        for key, spec in self.attrs.items():
            if key not in out:
                out[key] = spec.coerce(spec.default.compute(out, input_values),
                                       f"{where} attribute '{key}'")
        return {key: out[key] for key in self.attrs}


def _copy_default(value):
    return list(value) if isinstance(value, list) else value
