"""Per-shape kernel choices that override the written rule (priority order) inside ``select_kernel``.

    table = ChoiceTable(target, {shape_key: kernel name})
    with using_choices(table):
        ... schedules.select(...) ...          # a listed kernel that applies to the node is tried first
    table.calls                                 # every tunable selection seen: key, candidates, pick, source

The measuring and the cache live in the compiler (``compiler/tuning.py``); this module only holds the
key and the override, so that the registry stays the one place where a kernel is picked. A choice is
honoured only when the kernel it names is among the node's applicable kernels: a stale cache (a kernel
renamed, a rule tightened) falls back to the rule, never to a kernel that cannot compute the node.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
from dataclasses import dataclass, field

# Ops with several competing algorithms per shape (direct, GEMM, Winograd, tiles).
TUNABLE_OPS = ("conv2d", "qconv2d", "linear", "qlinear")

# Attrs holding values, not geometry: nodes that differ only in these run the same kernels equally fast,
# so they share one key (ResNet-18's 20 convs are 11 keys). Applicability is still checked per node.
_VALUE_ATTRS = frozenset({"multiplier", "shift", "x_zero_point", "y_zero_point", "out_min", "out_max",
                          "clip_min", "clip_max", "a_zero_point", "b_zero_point", "a_multiplier",
                          "b_multiplier"})


def _geometry(value):
    """`value` with the value attrs (at any depth, e.g. inside fused_add) replaced by their length."""
    if isinstance(value, dict):
        return {str(k): (_length(v) if k in _VALUE_ATTRS else _geometry(v)) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_geometry(v) for v in value]
    return value


def _length(value):
    return len(value) if isinstance(value, (list, tuple)) else 1


def types_json(in_types, out_type) -> list:
    """Normalised (shape, dtype) pairs as JSON-able lists: the node's types in every registry key."""
    return [[None if t is None else [list(t[0]), t[1]] for t in in_types], [list(out_type[0]), out_type[1]]]


def shape_key(op, attrs, in_types, out_type) -> str:
    """The key a choice is stored under: op, geometry attrs and types (normalised by the registry)."""
    return json.dumps([op, _geometry(dict(attrs))] + types_json(in_types, out_type), sort_keys=True, default=repr)


def target_fingerprint(target) -> str:
    """What a measurement is valid for: the TVM target string and the features the kernels may use."""
    return json.dumps([str(target.tvm), sorted(target.features)])


def target_digest(target) -> str:
    return hashlib.sha1(target_fingerprint(target).encode()).hexdigest()[:16]


@dataclass
class SelectCall:
    """One tunable selection: enough to build every candidate again (compiler/tuning.py measures them)."""
    key: str
    op: str
    attrs: dict
    in_types: list
    out_type: tuple
    constants: object
    candidates: list            # kernel names, rule order (highest priority first)
    kernel: str = ""            # what the registry returned
    symbol: str = ""            # its global_symbol
    source: str = "rule"        # "tuned" when the table's choice was used

    def label(self) -> str:
        """For messages: 'qconv2d NHWC int8[1, 28, 28, 128] w[128, 128, 3, 3] -> int8[1, 28, 28, 128]'."""
        (shape, dtype), (oshape, odtype) = self.in_types[0], self.out_type
        weight = f" w{list(self.in_types[1][0])}" if len(self.in_types) > 1 and self.in_types[1] else ""
        fused = " (+ residual add)" if "fused_add" in self.attrs else ""
        return (f"{self.op} {self.attrs.get('layout', 'NCHW')} {dtype}{list(shape)}{weight} -> "
                f"{odtype}{list(oshape)}{fused}")


@dataclass
class ChoiceTable:
    """Measured choices for one target (`choices`: shape_key -> kernel name), and the tunable selections
    made while it was active (`calls`). Ignored for selections on any other target."""
    target: object
    choices: dict = field(default_factory=dict)   # shape_key -> kernel name
    calls: list = field(default_factory=list)

    def order(self, op, attrs, in_types, out_type, target, constants, cands):
        """(candidates with the chosen one first, the SelectCall to complete with `record`)."""
        if op not in TUNABLE_OPS or target_fingerprint(target) != target_fingerprint(self.target):
            return cands, None
        key = shape_key(op, attrs, in_types, out_type)
        call = SelectCall(key, op, dict(attrs), list(in_types), out_type, constants, [k.name for k in cands])
        wanted = self.choices.get(key)
        chosen = [k for k in cands if k.name == wanted]
        return chosen + [k for k in cands if k.name != wanted], call

    def record(self, call, kernel, func) -> None:
        if call is None:
            return
        call.kernel = kernel.name
        call.symbol = str(func.attrs["global_symbol"])
        call.source = "tuned" if self.choices.get(call.key) == kernel.name else "rule"
        self.calls.append(call)


_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("yuan_kernel_choices", default=None)


def active_choices() -> ChoiceTable | None:
    return _ACTIVE.get()


@contextlib.contextmanager
def using_choices(table: ChoiceTable):
    """Selections inside the block consult `table` (and record themselves in it)."""
    token = _ACTIVE.set(table)
    try:
        yield table
    finally:
        _ACTIVE.reset(token)
