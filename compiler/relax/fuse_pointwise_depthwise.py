"""A float conv2d whose only consumer is a grouped conv2d (MobileNet's 1x1 expand -> depthwise 3x3), with
the activation each may have fused, lowered as one kernel call of op ``conv2d_pw_dw`` (inputs x, w, b of the
first conv, w, b of the second; zeros for an absent bias; attrs: the second conv's, and ``pointwise``, the
first's): the tensor between them, the largest of the block, never goes through memory.

Tried while lowering the first conv; the schedules registry decides (schedules/x86_pw_dw_fp32.py accepts
1x1 -> strided depthwise pairs on AVX-512) and when no kernel accepts the pair both convs are lowered on
their own. The call binds the second conv's output (or its activation's) ahead of time, and the nodes it
computes are recorded in ``ctx.lowered_ahead`` so that lower_graph binds nothing for them.
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from ..ir.graph import node_label
from ..ir.ops import get_schema
from ..ir.values import Node

FUSED_OP = "conv2d_pw_dw"


def _sole_consumer(ctx, value):
    users = ctx.consumers.get(value, [])
    return users[0] if len(users) == 1 and value not in ctx.graph.outputs else None


def _operand(ctx, node, i, channels):
    """Input i of `node` as a Relax expr: its lowered value, its constant, or zeros for an absent bias."""
    name = node.inputs[i] if i < len(node.inputs) else ""
    if name in ctx.env:
        return ctx.env[name]
    array = ctx.constant(name) if name else np.zeros(channels, np.float32)
    return relax.const(np.ascontiguousarray(array), str(array.dtype))


def lower_pointwise_into_depthwise(ctx, node, args, attrs, activation, fusable_activation) -> bool:
    """Emit the fused call for conv `node` (attrs with its activation, `activation` its absorbed node or None)
    and its consuming grouped conv; False (nothing emitted) when the pair does not qualify or no kernel takes it.
    `fusable_activation(ctx, conv)` finds the second conv's activation as ops_nn does for the first."""
    mid = (activation or node).outputs[0]
    dw = _sole_consumer(ctx, mid)
    if dw is None or dw.op != "conv2d" or dw.inputs[0] != mid or ctx.value(mid).dtype != "float32":
        return False
    if ctx.constant(node.inputs[1]) is None or ctx.constant(dw.inputs[1]) is None:
        return False
    schema = get_schema("conv2d")
    dw_attrs = schema.normalize_attrs(dw.attrs, schema.pad_optional([ctx.value(i) if i else None for i in dw.inputs]),
                                      node_label(dw.name, dw.op))
    if dw_attrs.get("group", 1) == 1:
        return False
    dw_act = fusable_activation(ctx, dw)
    if dw_act is not None:
        dw_attrs = dict(dw_attrs, clip_min=dw_act[1], clip_max=dw_act[2])
    out = (dw_act[0] if dw_act else dw).outputs[0]
    M = ctx.value(mid).shape[1]
    fused = Node(FUSED_OP, [node.inputs[0], node.inputs[1], (node.inputs + [""] * 3)[2], dw.inputs[1],
                            (dw.inputs + [""] * 3)[2]], [out], {}, dw.name)
    call_args = [args[0]] + [_operand(ctx, n, i, M) for n in (node, dw) for i in (1, 2)]
    lowered = ctx.try_call_kernel(fused, call_args, dict(dw_attrs, pointwise=dict(attrs)))
    if lowered is None:
        return False
    ctx.env[out] = lowered
    ctx.lowered_ahead.update(n.name for n in (node, activation, dw, dw_act and dw_act[0]) if n is not None)
    return True
