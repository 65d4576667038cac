"""Reading an IR node's attrs and types: conv/pool geometry, optional bias, depthwise and dense tests."""
from __future__ import annotations


def conv_attrs(attrs):
    """(strides, pads [t, l, b, r], dilations, group) with the IR defaults filled in."""
    s = list(attrs.get("strides", [1, 1]) or [1, 1])
    p = list(attrs.get("pads", [0, 0, 0, 0]) or [0, 0, 0, 0])
    d = list(attrs.get("dilations", [1, 1]) or [1, 1])
    if len(p) == 2:
        p = [p[0], p[1], p[0], p[1]]
    g = int(attrs.get("group", 1) or 1)
    return [int(v) for v in s], [int(v) for v in p], [int(v) for v in d], g


def pool_attrs(attrs):
    """(kernel, strides, pads [t, l, b, r]); strides default to the kernel."""
    k = [int(v) for v in attrs["kernel"]]
    s = [int(v) for v in (attrs.get("strides") or k)]
    p = [int(v) for v in (attrs.get("pads") or [0, 0, 0, 0])]
    if len(p) == 2:
        p = [p[0], p[1], p[0], p[1]]
    return k, s, p


def conv_out_hw(h, w, kh, kw, s, p, d):
    oh = (h + p[0] + p[2] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (w + p[1] + p[3] - d[1] * (kw - 1) - 1) // s[1] + 1
    return oh, ow


def has_bias(in_types):
    """Whether the node has its optional third input (the bias of conv/linear ops)."""
    return len(in_types) > 2 and in_types[2] is not None


def is_2d_input(attrs, in_types, out_type):
    """`applies` of the linear kernels: x is [N, K]."""
    return len(in_types[0][0]) == 2


def is_dense_int8_conv(attrs, in_types, out_type):
    """`applies` of the int8 dot-product convs: group 1 with int8 weights."""
    return conv_attrs(attrs)[3] == 1 and in_types[1][1] == "int8"


def is_depthwise_f32(attrs, in_types, out_type):
    """`applies` of the fp32 depthwise convs: group == C > 1, one input channel per group, O a multiple of C."""
    g = conv_attrs(attrs)[3]
    (_, c, _, _), xdt = in_types[0]
    (o, ipg, _, _), wdt = in_types[1]
    return g > 1 and g == c and ipg == 1 and o % c == 0 and xdt == wdt == "float32"
