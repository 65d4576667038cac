"""Graph IR -> Relax IRModule (docs/design.md, "Kernels and lowering").

    mod, info = lower_graph(graph, target=None)

`mod["main"]` takes the graph inputs (in `graph.inputs` order) and returns a tuple of the
graph outputs (in `graph.outputs` order). Constants become Relax constants (they travel
inside the exported library). Heavy ops (conv2d, linear, qconv2d, qlinear) go through
`call_tir` of a kernel from `schedules.select(...)`; light ops use Relax ops or `emit_te`.
The per-op rules live in ops_*.py tables: LOWERINGS[op](ctx, node, args, attrs) -> expr(s).
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from ..ir import Graph
from ..ir.graph import node_label
from ..ir.ops import get_schema
from . import kernels as _kernels
from .common import dtype_of, shape_of


class LoweringError(ValueError):
    """The graph holds something the Relax lowering cannot express."""


def _tensor_type(shape, dtype):
    return relax.TensorType(tuple(int(d) for d in shape), dtype)


class LowerContext:
    """What a lowering rule sees: the BlockBuilder, the graph and the (resolved yuan) target."""

    def __init__(self, graph: Graph, bb: relax.BlockBuilder, target):
        self.graph = graph
        self.bb = bb
        self.target = target
        self.kernel_names: dict[str, int] = {}
        self.kernels_used: list[str] = []
        self.kernel_info: dict[str, dict] = {}   # symbol -> what it computes (for profilers)
        self.consumers = graph.consumer_map()
        self.absorbed: dict[str, int] = {}   # nodes a producer's kernel already computes (fused epilogues)
        self.lowered_ahead: set[str] = set()   # nodes an earlier node's kernel computed, binding a later value itself
        self.env: dict = {}   # value name -> Relax expr, for the values lowered so far

    def absorb(self, node, source: int = 0) -> None:
        """`node` (one output) is fused into its producer, its input `source`: it lowers to that input."""
        self.absorbed[node.name] = source

    def value(self, name):
        return self.graph.values[name]

    def constant(self, name) -> np.ndarray | None:
        """The NumPy array of a constant input, or None when it is computed at run time."""
        return self.graph.constants.get(name) if name else None

    def emit(self, expr, name_hint: str = ""):
        return self.bb.emit(expr, name_hint)

    def emit_te(self, func, *args, name: str = "te_op", **kwargs):
        return self.bb.emit_te(func, *args, primfunc_name_hint=name, **kwargs)

    def call_kernel(self, node, args, attrs, arrays=None, out_type=None, op=None):
        """call_tir into the kernel schedules.select picks for `node` (heavy and integer ops).
        `args` has one entry per node input (None for an omitted optional one). The kernel may
        ask for extra constant inputs (packed weights, requantization multipliers) through
        schedules.kernel_inputs; they become Relax constants. `op`, `arrays` (one per arg: the NumPy
        value of a constant, else None) and `out_type` ((shape, dtype)) replace what the graph says, for
        a node lowered as another op (compiler/relax/qlinear_as_conv.py)."""
        op = op or node.op
        if out_type is None:
            out = self.value(node.outputs[0])
            out_type = (tuple(out.shape), out.dtype)
        in_types = [None if a is None else (shape_of(a), dtype_of(a)) for a in args]
        if arrays is None:
            names = list(node.inputs) + [""] * (len(args) - len(node.inputs))
            arrays = [self.constant(n) for n in names]
        constants = {i for i, a in enumerate(arrays) if a is not None}
        try:
            prim, call_args = _kernels.select(op, attrs, in_types, out_type, self.target, constants,
                                              arrays, args)
        except (NotImplementedError, RuntimeError) as exc:   # no kernel for this node on this target
            raise LoweringError(str(exc).splitlines()[0]) from None
        symbol = str(prim.attrs["global_symbol"]) if prim.attrs and "global_symbol" in prim.attrs \
            and str(prim.attrs["global_symbol"]) != "main" else op
        symbol = self._unique_symbol(symbol)
        gv = self.bb.add_func(prim.with_attr("global_symbol", symbol), symbol)
        self.kernels_used.append(symbol)
        self.kernel_info[symbol] = _describe_call(node, op, attrs, in_types, out_type, prim)
        call_args = [a if isinstance(a, relax.Expr) else _const_expr(np.asarray(a)) for a in call_args]
        return self.bb.emit(relax.call_tir(gv, call_args, _tensor_type(*out_type)))

    def try_call_kernel(self, node, args, attrs, **overrides):
        """call_kernel, or None when no kernel on this target takes the node (the caller has another way)."""
        try:
            return self.call_kernel(node, args, attrs, **overrides)
        except LoweringError:
            return None

    def _unique_symbol(self, base: str) -> str:
        k = self.kernel_names.get(base, 0)
        self.kernel_names[base] = k + 1
        return f"{base}_{k}" if k else base


def _lowerings():
    from .ops_nn import LOWERINGS as nn
    from .ops_quant import LOWERINGS as quant
    from .ops_image import LOWERINGS as image
    from .ops_tensor import LOWERINGS as tensor
    table = {}
    for part in (tensor, nn, quant, image):
        table.update(part)
    return table


LOWERINGS = _lowerings()


def supported_ops() -> list[str]:
    return sorted(LOWERINGS)


def _const_expr(array: np.ndarray):
    # not np.ascontiguousarray: it turns a 0-d array (a scalar constant) into shape [1]
    return relax.const(np.require(array, requirements="C"), str(array.dtype))


def lower_graph(graph: Graph, target):
    """Lower `graph` to a Relax IRModule. `target` is a resolved yuan Target (compiler/targets.py):
    kernel selection depends on its features. Returns (mod, info) where info lists the kernels
    called through call_tir."""
    unsupported = sorted({n.op for n in graph.nodes if n.op not in LOWERINGS})
    if unsupported:
        raise LoweringError(f"graph '{graph.name}': no Relax lowering for op(s) {unsupported}; "
                            f"supported: {', '.join(supported_ops())}")
    bb = relax.BlockBuilder()
    ctx = LowerContext(graph, bb, target)
    params = [relax.Var(_var_name(name), _tensor_type(graph.values[name].shape,
                                                       graph.values[name].dtype))
              for name in graph.inputs]
    env: dict[str, relax.Expr] = dict(zip(graph.inputs, params))
    ctx.env = env

    def lookup(name):
        if not name:
            return None
        if name not in env:
            if name in graph.constants:
                env[name] = _const_expr(graph.constants[name])
            else:
                raise LoweringError(f"value '{name}' is used before it is defined")
        return env[name]

    with bb.function("main", params):
        with bb.dataflow():
            for node in graph.nodes:
                if node.name in ctx.lowered_ahead:   # computed by an earlier node's kernel
                    continue
                where = node_label(node.name, node.op)
                schema = get_schema(node.op)
                in_values = schema.pad_optional([graph.values.get(i) if i else None
                                                 for i in node.inputs])
                attrs = schema.normalize_attrs(node.attrs, in_values, where)
                args = schema.pad_optional([lookup(i) for i in node.inputs])
                try:
                    if node.name in ctx.absorbed:
                        result = args[ctx.absorbed[node.name]]
                    else:
                        result = LOWERINGS[node.op](ctx, node, args, attrs)
                except LoweringError as exc:
                    raise LoweringError(f"{where}: {exc}") from None
                if node.name in ctx.lowered_ahead:   # its kernel bound a later node's value instead
                    continue
                results = list(result) if isinstance(result, (list, tuple)) else [result]
                if len(results) != len(node.outputs):
                    raise LoweringError(f"{where}: lowering gave {len(results)} outputs, "
                                        f"node has {len(node.outputs)}")
                for out, expr in zip(node.outputs, results):
                    expr = _check_type(ctx, expr, graph.values[out], where)
                    env[out] = expr
            outs = [lookup(o) for o in graph.outputs]
            # A graph output that is an input or a constant still needs a dataflow binding.
            outs = [bb.emit(relax.op.add(o, relax.const(0, dtype_of(o))))
                    if not isinstance(o, relax.Var) or o in params else o for o in outs]
            result = bb.emit_output(relax.Tuple(outs))
        bb.emit_func_output(result)
    return bb.get(), {"kernels": list(ctx.kernels_used), "kernel_info": dict(ctx.kernel_info)}


def _describe_call(node, op, attrs, in_types, out_type, prim) -> dict:
    """What one kernel call computes: the node, op, kernel, layout, shapes and multiply-adds."""
    shapes = [list(t[0]) if t is not None else None for t in in_types]
    out_shape = list(out_type[0])
    macs = 0
    if op in ("conv2d", "qconv2d") and len(in_types) > 1:        # w: [O, C/g, kh, kw]
        macs = int(np.prod(out_shape)) * int(np.prod(in_types[1][0][1:]))
    elif op in ("linear", "qlinear") and len(in_types) > 1:      # w: [O, K]
        macs = int(np.prod(out_shape)) * int(in_types[1][0][1])
    elif op == "conv2d_pw_dw":   # the 1x1 over the whole input map, then the depthwise taps
        (n, c, h, w), m = in_types[0][0], in_types[1][0][0]
        macs = int(n * m * h * w * c) + int(np.prod(out_shape)) * int(np.prod(in_types[3][0][2:]))
    elif op == "conv2d_dw_pw":   # the depthwise taps over the output map, then the 1x1
        c, taps = in_types[0][0][1], int(np.prod(in_types[1][0][2:]))
        macs = int(np.prod(out_shape)) // out_shape[1] * c * (taps + out_shape[1])
    kernel = str(prim.attrs["yuan.kernel"]) if prim.attrs is not None and "yuan.kernel" in prim.attrs else op
    layout = attrs.get("layout", "NCHW") if "conv2d" in op else ""   # linear: no layout
    return {"node": node.name, "op": op, "kernel": kernel, "layout": layout,
            "inputs": shapes, "output": out_shape, "dtype": str(out_type[1]), "macs": macs}


def _check_type(ctx, expr, value, where):
    """Every lowered value must have exactly the shape/dtype the IR inferred."""
    if not isinstance(expr, relax.Var):
        expr = ctx.bb.emit(expr)
    shape, dtype = shape_of(expr), dtype_of(expr)
    if shape != tuple(value.shape):
        raise LoweringError(f"{where}: lowered output '{value.name}' has shape {list(shape)}, "
                            f"IR says {list(value.shape)}")
    if dtype != value.dtype:
        expr = ctx.bb.emit(relax.op.astype(expr, value.dtype))
    return expr


def _var_name(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    return safe if safe and not safe[0].isdigit() else f"v_{safe}"


__all__ = ["lower_graph", "LoweringError", "LowerContext", "supported_ops", "LOWERINGS"]
