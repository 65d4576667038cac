"""A qlinear lowered as the 1x1 channels-last qconv2d it equals, where the target has a fast qconv2d kernel but
only the generic qlinear (x86: MobileNetV2's int8 classifier, 1280 -> 1000, took 72 us in qlinear_generic and
20 us in the VNNI conv on the same data, Zen4, 1 thread).

x [N, K] viewed as [N, 1, 1, K] (NHWC), w [O, K] as [O, K, 1, 1], the same bias and requantize attrs: the same
integer sums and per-output-channel requantization (the channel axis is the last in both), so bit for bit the
qlinear's result; the output [N, 1, 1, O] viewed back as [N, O]. The views are VM reshapes (no copy).
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from yuan import schedules

from .common import shape_of

CONV_ATTRS = dict(layout="NHWC", strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
MIN_WEIGHTS = 1 << 15   # K * O below this: no gain measured (256 x 5: 0.6 us either way; 1024 x 100: 4.6 -> 2.2 us)


def _best_priority(op, attrs, in_types, out_type, target) -> int:
    found = schedules.applicable(op, attrs, in_types, out_type, target, constants={1, 2})
    return found[0].priority if found else -1


def lower_qlinear_as_pointwise_conv(ctx, node, args, attrs):
    """The [N, O] result of the qconv2d call, or None when the qlinear keeps its own kernel."""
    x, w_name = args[0], node.inputs[1]
    w = ctx.constant(w_name)
    if w is None or len(shape_of(x)) != 2 or w.size < MIN_WEIGHTS:
        return None
    (n, k), o = shape_of(x), w.shape[0]
    out_dtype = ctx.value(node.outputs[0]).dtype
    bias = args[2] if len(args) > 2 else None
    lin_types = [(shape_of(x), str(ctx.value(node.inputs[0]).dtype)), (w.shape, str(w.dtype))]
    conv_types = [((n, 1, 1, k), lin_types[0][1]), ((o, k, 1, 1), str(w.dtype))]
    if bias is not None:
        b_type = (shape_of(bias), str(ctx.value(node.inputs[2]).dtype))
        lin_types.append(b_type)
        conv_types.append(b_type)
    conv_attrs = dict(attrs, **CONV_ATTRS)
    conv_out = ((n, 1, 1, o), out_dtype)
    # only where a kernel better than the generic ones (priority 0) serves the conv but none the qlinear
    if _best_priority("qlinear", attrs, lin_types, ((n, o), out_dtype), ctx.target) > 0 or \
            _best_priority("qconv2d", conv_attrs, conv_types, conv_out, ctx.target) <= 0:
        return None
    w4 = np.ascontiguousarray(w.reshape(o, k, 1, 1))
    b_array = ctx.constant(node.inputs[2]) if bias is not None else None
    x4 = ctx.emit(relax.op.reshape(x, (n, 1, 1, k)))
    conv_args = [x4, relax.const(w4, str(w4.dtype)), bias]
    y4 = ctx.try_call_kernel(node, conv_args, conv_attrs, arrays=[None, w4, b_array], out_type=conv_out,
                             op="qconv2d")
    return None if y4 is None else relax.op.reshape(y4, (n, o))
