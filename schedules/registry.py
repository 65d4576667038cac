"""Kernel registry: (op, dtype class, required target features, priority) -> kernel builder.

``select(op, attrs, in_types, out_type, target)`` returns a scheduled ``tvm.tirx.PrimFunc`` for one IR
node.  Every returned PrimFunc is built with ``te.create_prim_func(..., index_dtype_override="int64")``,
scheduled, and carries the attrs ``tirx.is_scheduled=True``, ``op_pattern=8`` (kOpaque),
``global_symbol=<unique descriptive name>`` and ``yuan.kernel=<registered kernel name>``.

The PrimFunc's parameters are the kernel inputs followed by the output.  The kernel inputs are the
node's inputs (omitted optional inputs dropped) possibly rewritten / extended by the kernel's
``prepare_constants`` hook (extra multiplier/shift arrays, pre-packed weights).  Use
``kernel_inputs(func, attrs, in_types, arrays)`` to get the list the PrimFunc must be called with.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Callable

import tvm

from .choices import active_choices, types_json

_log = logging.getLogger(__name__)

def target_features(target) -> frozenset:
    """The feature set a target promises (see compiler/target_features.py for the vocabulary:
    "cpu", "x86", "avx2", "avx512", "avx512_vnni", "aarch64", "neon", "dotprod", "cuda", "gpu", ...).

    `target` is a resolved yuan Target (compiler/targets.py): anything with `.features` (a
    frozenset) and `.tvm` (a tvm.target.Target). Kernel builders receive the same object."""
    feats = getattr(target, "features", None)
    if not isinstance(feats, frozenset):
        raise TypeError(f"schedules: expected a resolved yuan Target (with .features and .tvm), got "
                        f"{type(target).__name__}; use yuan.compiler.targets.resolve_target(name) or "
                        f"Target.from_tvm(tvm_target)")
    return feats


def dtype_class(op: str, in_types) -> str:
    """The dtype class a kernel is keyed by: dtype of the first (data) input."""
    return str(in_types[0][1])


@dataclass
class Kernel:
    name: str
    op: str
    dtypes: tuple
    requires: frozenset
    priority: int
    builder: Callable            # builder(attrs, in_types, out_type, target) -> te tensors list or PrimFunc
    applies: Callable = None     # applies(attrs, in_types, out_type) -> bool
    prepare_constants: Callable = None   # (attrs, in_types, arrays) -> list of (int | np.ndarray)
    needs_constant: tuple = ()   # node input indices that must be compile-time constants
    doc: str = ""
    layouts: tuple = ("NCHW",)   # activation layouts (attr "layout") the kernel implements

    def accepts(self, attrs, in_types, out_type) -> bool:
        if self.applies is None:
            return True
        try:
            return bool(self.applies(attrs, in_types, out_type))
        except Exception:
            return False


_REGISTRY: dict[str, list[Kernel]] = {}
_BY_NAME: dict[str, Kernel] = {}


def register_kernel(op, dtypes, requires=(), priority=0, applies=None, prepare_constants=None,
                    needs_constant=(), name=None, layouts=("NCHW",)):
    """Decorator: ``@register_kernel("qconv2d", ("int8", "uint8"), requires={"avx512_vnni"}, priority=10)``.

    The builder is ``builder(attrs, in_types, out_type, target) -> tvm.tirx.PrimFunc`` (scheduled, any
    attrs; ``select`` adds the standard attrs and the global symbol); ``target`` is the resolved yuan
    Target (``target.tvm`` is the TVM target, ``target.features`` what it offers). ``layouts``: the values of the
    node attr ``layout`` the kernel implements (ops without that attr count as "NCHW")."""
    if isinstance(dtypes, str):
        dtypes = (dtypes,)

    def deco(builder):
        kname = name or builder.__name__
        k = Kernel(kname, op, tuple(dtypes), frozenset(requires), priority, builder, applies,
                   prepare_constants, tuple(needs_constant), (builder.__doc__ or "").strip(), tuple(layouts))
        lst = [x for x in _REGISTRY.setdefault(op, []) if x.name != kname]
        lst.append(k)
        lst.sort(key=lambda x: -x.priority)
        _REGISTRY[op] = lst
        _BY_NAME[kname] = k
        builder.kernel = k
        return builder

    return deco


def kernels(op=None):
    _ensure_loaded()
    if op is None:
        return {o: list(v) for o, v in _REGISTRY.items()}
    return list(_REGISTRY.get(op, []))


def get_kernel(name_or_func) -> Kernel:
    _ensure_loaded()
    if isinstance(name_or_func, tvm.tirx.PrimFunc):
        name_or_func = str(name_or_func.attrs["yuan.kernel"])
    return _BY_NAME[name_or_func]


def _norm_types(in_types):
    out = []
    for t in in_types:
        if t is None:
            out.append(None)
        else:
            shape, dt = t
            out.append((tuple(int(s) for s in shape), str(dt)))
    # drop trailing omitted optional inputs
    while out and out[-1] is None:
        out.pop()
    return out


def _norm_attrs(attrs):
    return dict(attrs or {})


def applicable(op, attrs, in_types, out_type, target, constants=None):
    """All kernels that could serve this node on this target, best first."""
    _ensure_loaded()
    feats = target_features(target)
    in_types = _norm_types(in_types)
    out_type = (tuple(int(s) for s in out_type[0]), str(out_type[1]))
    dt = dtype_class(op, in_types)
    layout = (attrs or {}).get("layout", "NCHW")
    res = []
    for k in _REGISTRY.get(op, []):
        if k.dtypes and dt not in k.dtypes and "*" not in k.dtypes:
            continue
        if layout not in k.layouts:
            continue
        if not k.requires <= feats:
            continue
        if constants is not None and any(i not in constants for i in k.needs_constant if i < len(in_types)):
            continue
        if k.accepts(_norm_attrs(attrs), in_types, out_type):
            res.append(k)
    return res


# Ops a target's fast kernels want channels-last, keyed by the feature that provides them. The layout
# planning pass (compiler/passes/layout_plan.py) keeps activations NHWC between these ops.
_CHANNELS_LAST = {"avx512_vnni": ("qconv2d",), "avx2": ("qconv2d",), "dotprod": ("qconv2d",), "neon": ("qconv2d",)}


def preferred_layouts(target) -> dict:
    """{op: "NHWC"} for the ops whose best kernels on `target` read and write channels-last."""
    feats = target_features(target)
    return {op: "NHWC" for feat, ops in _CHANNELS_LAST.items() if feat in feats for op in ops}


def _unique_name(kernel: Kernel, op, attrs, in_types, out_type, target):
    key = json.dumps([op, kernel.name, sorted((str(k), repr(v)) for k, v in (attrs or {}).items())]
                     + types_json(in_types, out_type) + [str(target.tvm), sorted(target.features)],
                     sort_keys=True)
    h = hashlib.sha1(key.encode()).hexdigest()[:10]
    return f"{kernel.name}_{h}"


# built PrimFuncs by kernel and node (the name above): a process compiles each node's kernel once. An experiment
# that patches a schedule function in-process must call clear_built_kernels(), or it measures the old code.
_CACHE: dict = {}


def clear_built_kernels():
    """Forget the built PrimFuncs, so the next selection runs the builders again (after patching a schedule)."""
    _CACHE.clear()


def select_kernel(op, attrs, in_types, out_type, target, constants=None):
    """Like ``select`` but returns ``(kernel, prim_func)``."""
    in_types = _norm_types(in_types)
    out_type = (tuple(int(s) for s in out_type[0]), str(out_type[1]))
    attrs = _norm_attrs(attrs)
    cands = applicable(op, attrs, in_types, out_type, target, constants)
    if not cands:
        layout = attrs.get("layout", "NCHW")
        raise NotImplementedError(f"schedules: no kernel for op {op!r}"
                                  f"{'' if layout == 'NCHW' else f' in layout {layout}'} with inputs {in_types} "
                                  f"-> {out_type} on target {getattr(target, 'name', target)} "
                                  f"(features {sorted(target_features(target))})")
    table = active_choices()     # per-shape choices measured by `yuan compile --tune` (choices.py)
    call = None
    if table is not None:
        cands, call = table.order(op, attrs, in_types, out_type, target, constants, cands)
    errors = []
    for k in cands:
        try:
            f = build_kernel(k, op, attrs, in_types, out_type, target)
        except Exception as e:  # a fast path that cannot handle this case falls back to the next one
            if os.environ.get("YUAN_STRICT_KERNELS"):   # while writing a kernel: see its error, not a fallback
                raise
            _log.info("kernel %s failed for %s %s, trying the next: %s: %s", k.name, op, in_types,
                      type(e).__name__, e)
            errors.append(f"{k.name}: {type(e).__name__}: {e}")
            continue
        if table is not None:
            table.record(call, k, f)
        return k, f
    raise RuntimeError("schedules: every applicable kernel failed:\n" + "\n".join(errors))


def build_kernel(kernel: Kernel, op, attrs, in_types, out_type, target):
    """The finalized PrimFunc of this one kernel for the node (cached); raises what its builder raises.
    `in_types`/`out_type`/`attrs` normalised as select_kernel does."""
    name = _unique_name(kernel, op, attrs, in_types, out_type, target)
    if name not in _CACHE:
        _CACHE[name] = finalize(kernel.builder(attrs, in_types, out_type, target), name, kernel.name)
    return _CACHE[name]


def select(op, attrs, in_types, out_type, target, constants=None) -> tvm.tirx.PrimFunc:
    """Best registered kernel for one IR node as a scheduled PrimFunc.

    op: IR op name ("conv2d", "linear", "qconv2d", "qlinear", "qadd", "requantize",
        "qglobal_avg_pool2d", "qavg_pool2d", "lut").
    attrs: the node's attrs dict (IR conventions, defaults filled in here if missing).
    in_types: list of (shape, dtype) for the node inputs (None / omitted for absent optional inputs).
    out_type: (shape, dtype) of the output.
    target: the resolved yuan Target (compiler/targets.py): kernels are matched on target.features.
    constants: optional set/dict of node input indices that are compile-time constants; when given,
        kernels that need a constant input that is not listed are skipped.  When None, weight inputs
        (input 1 of conv/linear ops) are assumed constant.
    The PrimFunc's parameters: see ``kernel_inputs``.
    """
    return select_kernel(op, attrs, in_types, out_type, target, constants)[1]


def kernel_inputs(func_or_kernel, attrs, in_types, arrays):
    """What to pass to the PrimFunc, in order (the output buffer comes last and is not listed).

    arrays: one entry per node input (omitted optional inputs dropped): the np.ndarray for constants,
    None for run-time tensors.  Returns a list whose entries are either an int ``i`` (pass node input
    ``i`` unchanged) or an np.ndarray (a new constant to pass, e.g. packed weights or multipliers).
    """
    k = get_kernel(func_or_kernel) if not isinstance(func_or_kernel, Kernel) else func_or_kernel
    in_types = _norm_types(in_types)
    arrays = list(arrays)[:len(in_types)]
    if k.prepare_constants is None:
        return list(range(len(in_types)))
    return k.prepare_constants(_norm_attrs(attrs), in_types, arrays)


def finalize(f, symbol, kernel_name):
    f = f.with_attr("global_symbol", symbol)
    f = f.with_attr("tirx.is_scheduled", True)
    f = f.with_attr("op_pattern", 8)
    f = f.with_attr("yuan.kernel", kernel_name)
    return f


# The one list of kernel modules: importing a module registers its kernels (register_kernel).
# A new kernel file is added here and nowhere else.
KERNEL_MODULES = ("generic", "generic_nhwc", "cpu_int8", "x86_int8", "x86_avx2_int8", "x86_avx2_winograd_int8", "x86_vnni_winograd_int8", "x86_fp32", "x86_pw_dw_fp32", "x86_dw_pw_fp32", "x86_pointwise_flat_fp32", "x86_small_c_fp32", "x86_pool_fp32", "x86_winograd_fp32", "x86_avx2_fp32", "aarch64_int8", "aarch64_nchw44_int8", "aarch64_winograd_int8", "aarch64_fp32", "aarch64_winograd_fp32", "aarch64_depthwise", "cuda", "cuda_dp4a", "cuda_imma", "cuda_imma_tiled", "cuda_fp32", "cuda_fp32_gemm", "cuda_depthwise", "image")

_LOADED = False


def _ensure_loaded():
    global _LOADED
    if not _LOADED:
        # marked loaded only when every module imported: a failing kernel file must raise its own
        # error on every lookup, not leave a half-filled registry that answers "no kernel"
        for module in KERNEL_MODULES:
            importlib.import_module(f"{__package__}.{module}")   # cached in sys.modules after success
        _LOADED = True
