"""Residual add fused into the conv that produces it: one kernel call whose write-back computes the conv's
output, then the add with the other add input (the residual) read at the same index: bit for bit the unfused
graph, one pass over the output in memory less.

* int8: qconv2d -> qadd (with its fused ReLU, out_min): the conv's int8 code, then the qadd of SPEC §5.
* float: conv2d -> add (and the add's relu / clip when that is its only consumer): bias (+ the conv's own
  activation, none here: the add is its only consumer), then + residual, then the add's activation — the
  unfused float operations in their order (a + b == b + a exactly in IEEE arithmetic).

Applies when the conv's only consumer is that add, taking it once, the conv output is no graph output, the
residual is already lowered (computed earlier in node order), and the residual, conv output and add output
have the same shape (no broadcasting) and the conv and add the same dtype. The kernel selected must accept
attrs ``fused_add`` (the residual is its node input 3: schedules.requant.RequantEpilogue for the dot-product
convs, schedules.fp32_packed_conv.residual_input for the x86 fp32 convs); when none does, the conv is lowered
unfused.
"""
from __future__ import annotations

from ..ir.graph import node_label
from ..ir.ops import get_schema
from .common import fusable_activation

QADD_ATTRS = ("a_zero_point", "b_zero_point", "a_multiplier", "b_multiplier", "shift", "y_zero_point",
              "out_min", "out_max", "out_dtype")
ADD_OPS = {"qconv2d": "qadd", "conv2d": "add"}


def fusable_add(ctx, node):
    """(add node, which of its inputs the conv is, residual value name) or None."""
    y = node.outputs[0]
    users = ctx.consumers.get(y, [])
    if len(users) != 1 or y in ctx.graph.outputs or users[0].op != ADD_OPS.get(node.op):
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


def _qadd_fusion(ctx, add, k, conv_dtype, residual_dtype):
    schema = get_schema("qadd")
    qattrs = schema.normalize_attrs(add.attrs, [ctx.value(i) for i in add.inputs], node_label(add.name, add.op))
    return {"qadd": {key: qattrs[key] for key in QADD_ATTRS if key in qattrs},
            "conv_input": k, "conv_dtype": conv_dtype, "residual_dtype": residual_dtype}


def lower_conv_with_residual_add(ctx, node, args, attrs):
    """The fused call (the conv's output value then holds the add's result, or its activation's, which the
    absorbed nodes forward), or None when the conv is lowered on its own. A float add takes its activation
    along (common.fusable_activation)."""
    found = fusable_add(ctx, node)
    if found is None:
        return None
    add, k, other = found
    conv_dtype, residual_dtype = ctx.value(node.outputs[0]).dtype, ctx.value(other).dtype
    activation = None
    if node.op == "qconv2d":
        fusion = _qadd_fusion(ctx, add, k, conv_dtype, residual_dtype)
    else:
        fusion, activation = float_add_fusion(ctx, add)
    conv_args = list(args) + [None] * (3 - len(args)) + [ctx.env[other]]
    out = ctx.try_call_kernel(node, conv_args, dict(attrs, fused_add=fusion))
    if out is None:   # no kernel for this target fuses the add
        return None
    absorb_add(ctx, add, k, activation)
    return out


def float_add_fusion(ctx, add):
    """(attrs fused_add of a float add: its activation's bounds, that activation node's match or None)."""
    activation = fusable_activation(ctx, add)
    lo, hi = activation[1:] if activation else (None, None)
    return {"clip_min": lo, "clip_max": hi}, activation


def absorb_add(ctx, add, k, activation):
    """The fused add (the conv is its input k) and its activation lower to the kernel call's value."""
    ctx.absorb(add, source=k)
    if activation is not None:
        ctx.absorb(activation[0])
