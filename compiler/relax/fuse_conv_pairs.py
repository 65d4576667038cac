"""Two float convs in a row, lowered as one kernel call, so the tensor between them never goes through memory:

* a conv whose only consumer is a grouped conv (MobileNet's 1x1 expand -> depthwise 3x3): op ``conv2d_pw_dw``,
  inputs x, w, b of the first conv, w, b of the second, attrs: the second conv's and ``pointwise``, the first's;
* a grouped conv whose only consumer is an ungrouped conv (MobileNetV2's first block, depthwise 3x3 -> 1x1
  projection): op ``conv2d_dw_pw``, the same inputs, attrs: the second conv's and ``depthwise``, the first's.

Each conv keeps the activation it may have fused (in its attrs); zeros stand for an absent bias; a float add
consuming the second conv goes into the call too where the kernel takes it (attrs ``fused_add``, the residual as
input 5: fuse_residual.py's rule). Weights and biases must be constants, activations NCHW. Tried while
lowering the first conv; the schedules registry decides (schedules/x86_pw_dw_fp32.py, x86_dw_pw_fp32.py say
which pairs they take) and when no kernel accepts the pair both convs are lowered on their own. The call binds
the second conv's output (or its activation's) ahead of time, and the nodes it computes are recorded in
``ctx.lowered_ahead`` so that lower_graph binds nothing for them.
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from ..ir.graph import node_label
from ..ir.ops import get_schema
from ..ir.values import Node
from .common import fusable_activation
from .fuse_residual import absorb_add, fusable_add, float_add_fusion

# (the first conv grouped?, the second grouped?) -> (fused op, the attrs key holding the first conv's attrs)
FUSED_OPS = {(False, True): ("conv2d_pw_dw", "pointwise"), (True, False): ("conv2d_dw_pw", "depthwise")}


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


def lower_conv_pair(ctx, node, args, attrs, activation) -> bool:
    """Emit the fused call for conv `node` (attrs with its activation, `activation` its absorbed node or None)
    and its consuming conv; False (nothing emitted) when the pair does not qualify or no kernel takes it."""
    mid = (activation or node).outputs[0]
    second = _sole_consumer(ctx, mid)
    if second is None or second.op != "conv2d" or second.inputs[0] != mid or ctx.value(mid).dtype != "float32":
        return False
    if attrs.get("layout", "NCHW") != "NCHW" or not all(_is_constant_or_absent(ctx, n, i)
                                                       for n in (node, second) for i in (1, 2)):
        return False
    schema = get_schema("conv2d")
    second_attrs = schema.normalize_attrs(second.attrs,
                                          schema.pad_optional([ctx.value(i) if i else None for i in second.inputs]),
                                          node_label(second.name, second.op))
    kind = FUSED_OPS.get((attrs.get("group", 1) > 1, second_attrs.get("group", 1) > 1))
    if kind is None:
        return False
    second_act = fusable_activation(ctx, second)
    if second_act is not None:
        second_attrs = dict(second_attrs, clip_min=second_act[1], clip_max=second_act[2])
    out = (second_act[0] if second_act else second).outputs[0]
    channels = {id(node): ctx.value(mid).shape[1], id(second): ctx.value(out).shape[1]}   # zero biases
    op, first_key = kind
    fused = Node(op, [node.inputs[0], node.inputs[1], (node.inputs + [""] * 3)[2], second.inputs[1],
                      (second.inputs + [""] * 3)[2]], [out], {}, second.name)
    call_args = [args[0]] + [_operand(ctx, n, i, channels[id(n)]) for n in (node, second) for i in (1, 2)]
    fused_attrs = dict(second_attrs, **{first_key: dict(attrs)})
    residual = None if second_act else fusable_add(ctx, second)
    lowered = None
    if residual is not None:   # the add consuming the second conv, in its write-back (when the kernel takes it)
        add, k, other = residual
        fusion, add_act = float_add_fusion(ctx, add)
        with_add = Node(op, fused.inputs + [other], [out], {}, second.name)
        lowered = ctx.try_call_kernel(with_add, call_args + [ctx.env[other]], dict(fused_attrs, fused_add=fusion))
        if lowered is not None:
            absorb_add(ctx, add, k, add_act)
    if lowered is None:
        lowered = ctx.try_call_kernel(fused, call_args, fused_attrs)
    if lowered is None:
        return False
    ctx.env[out] = lowered
    ctx.lowered_ahead.update(n.name for n in (node, activation, second, second_act and second_act[0])
                             if n is not None)
    return True


def _is_constant_or_absent(ctx, node, i):
    """Input i of `node` (weight or bias) is a compile-time constant, or an absent optional input."""
    name = node.inputs[i] if i < len(node.inputs) else ""
    return not name or ctx.constant(name) is not None
