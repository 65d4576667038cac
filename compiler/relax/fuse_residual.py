"""Residual add fused into the int8 conv that produces it: qconv2d -> qadd (with its fused ReLU, out_min)
becomes one kernel call whose write-back computes the conv's int8 code, then the qadd of SPEC §5 with
the other qadd input (the residual) read at the same index: bit for bit the unfused graph, one pass over
the output in memory less.

Applies when the conv's only consumer is a qadd that takes it once, the conv output is no graph output,
the residual is already lowered (computed earlier in node order), and the residual, conv output and
qadd output have the same shape and the conv and qadd the same dtype. The kernel selected must accept
attrs ``fused_add`` (schedules.requant.RequantEpilogue: the dot-product convs do); when none does, the
conv is lowered unfused.
"""
from __future__ import annotations

from ..ir.graph import node_label
from ..ir.ops import get_schema

QADD_ATTRS = ("a_zero_point", "b_zero_point", "a_multiplier", "b_multiplier", "shift", "y_zero_point",
              "out_min", "out_max", "out_dtype")


def _fusable_qadd(ctx, node):
    """(qadd node, which of its inputs the conv is, residual value name) or None."""
    y = node.outputs[0]
    users = ctx.consumers.get(y, [])
    if len(users) != 1 or y in ctx.graph.outputs or users[0].op != "qadd":
        return None
    add = users[0]
    inputs = list(add.inputs)
    if len(inputs) != 2 or inputs.count(y) != 1:
        return None
    k = inputs.index(y)
    other = inputs[1 - k]
    conv_out, res, add_out = ctx.value(y), ctx.value(other), ctx.value(add.outputs[0])
    if other not in ctx.env or other in ctx.graph.constants:
        return None
    if not (tuple(conv_out.shape) == tuple(res.shape) == tuple(add_out.shape)) or conv_out.dtype != add_out.dtype:
        return None
    return add, k, other


def lower_conv_with_residual_add(ctx, node, args, attrs):
    """The fused call (the conv's output value then holds the qadd's result, which the absorbed qadd
    forwards), or None when the conv is lowered on its own."""
    found = _fusable_qadd(ctx, node)
    if found is None:
        return None
    add, k, other = found
    schema = get_schema("qadd")
    qattrs = schema.normalize_attrs(add.attrs, [ctx.value(i) for i in add.inputs], node_label(add.name, add.op))
    fused = dict(attrs, fused_add={"qadd": {key: qattrs[key] for key in QADD_ATTRS if key in qattrs},
                                   "conv_input": k, "conv_dtype": ctx.value(node.outputs[0]).dtype,
                                   "residual_dtype": ctx.value(other).dtype})
    conv_args = list(args) + [None] * (3 - len(args)) + [ctx.env[other]]
    out = ctx.try_call_kernel(node, conv_args, fused)
    if out is None:   # no kernel for this target fuses the add
        return None
    ctx.absorb(add, source=k)
    return out
