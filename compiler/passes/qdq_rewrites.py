"""One rewrite per QDQ pattern: `DQ(inputs) -> float op -> [relu | clip] -> Q(y)` becomes the
integer op of design.md ("Integer IR ops") computing SPEC §5 exactly.

Each rewrite checks that its pattern really holds before emitting anything, and returns
False (the float nodes then stay) when it does not. REWRITES is the table the pass reads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, QuantParams
from ..ir import integer_spec as ispec
from .qdq_matching import IntTensor, QDQView


@dataclass
class Match:
    """`node` (plus fused activation `act`) feeds the quantize writing `out` with `qp_y`;
    `source` is the float value the quantize reads (one of node's / act's outputs)."""
    node: object
    act: object
    qp_y: QuantParams
    out: str
    source: str


class Emitter:
    """Appends integer nodes and constants to the graph being built."""

    def __init__(self, graph: Graph, view: QDQView):
        self.graph, self.view = graph, view

    def node(self, op, inputs, attrs, outputs=None, name=None) -> list[str]:
        outputs = outputs or [self.graph.unique_name(f"{name or op}_q")]
        return self.graph.add_node(op, inputs, attrs, outputs, name=name).outputs

    def constant(self, base: str, array) -> str:
        return self.graph.add_constant(self.graph.unique_name(base), array)


# ---------------------------------------------------------------- shared arithmetic

def _zp(qp: QuantParams) -> int:
    return int(qp.zero_point.reshape(-1)[0])


def _scale(qp: QuantParams):
    return np.float32(qp.scale.reshape(-1)[0])


def output_attrs(qp_y: QuantParams, lo: int, hi: int) -> dict:
    return dict(y_zero_point=_zp(qp_y), out_min=int(lo), out_max=int(hi), out_dtype=qp_y.dtype)


def output_bounds(act, qp_y: QuantParams) -> tuple[int, int]:
    """Integer clamp equal to the float activation before Q: Q is monotonic, so
    Q(clip(y, a, b)) = clip(Q(y), Q(a), Q(b)). relu / relu6 use SPEC §5's activation_bounds."""
    if act is None:
        return qp_y.qmin, qp_y.qmax
    if act.op == "relu":
        return ispec.activation_bounds(qp_y, "relu")
    lo, hi = act.attrs["min"], act.attrs["max"]
    if (lo, hi) == (0.0, 6.0):
        return ispec.activation_bounds(qp_y, "relu6")
    q = lambda v, default: default if v is None else int(ispec.quantize(np.float32(v), qp_y))  # noqa: E731
    return max(qp_y.qmin, q(lo, qp_y.qmin)), min(qp_y.qmax, q(hi, qp_y.qmax))


def _same_params(x: IntTensor, qp_y: QuantParams) -> bool:
    return x.scale == _scale(qp_y) and x.zero_point == _zp(qp_y) and x.dtype == qp_y.dtype


def needs_rescale(x: IntTensor, qp_y: QuantParams, lo: int, hi: int) -> bool:
    info = np.iinfo(x.dtype)
    return not (_same_params(x, qp_y) and (lo, hi) == (info.min, info.max))


def emit_rescale(em: Emitter, x: IntTensor, qp_y: QuantParams, lo: int, hi: int, out=None) -> str:
    """x re-expressed with qp_y and clamped to [lo, hi] (SPEC §5 concat's rescale): the codes
    themselves, a clip when only the range shrinks, else requantize with M = s_x / s_y."""
    if not needs_rescale(x, qp_y, lo, hi):
        return x.name if out is None else em.node("identity", [x.name], {}, [out])[0]
    if _same_params(x, qp_y):
        return em.node("clip", [x.name], {"min": float(lo), "max": float(hi)}, [out] if out else None)[0]
    m, n = ispec.requant_multiplier(np.float64(x.scale) / np.float64(_scale(qp_y)))
    attrs = dict(x_zero_point=x.zero_point, multiplier=[int(m)], shift=[int(n)], **output_attrs(qp_y, lo, hi))
    return em.node("requantize", [x.name], attrs, [out] if out else None)[0]


# ---------------------------------------------------------------- rewrites

def rewrite_weighted(em: Emitter, m: Match) -> bool:
    """DQ(x), DQ(w int8), DQ(bias int32)? -> conv2d / linear -> [act] -> Q  =>  qconv2d / qlinear."""
    node, view = m.node, em.view
    x, w = view.dequantized(node.inputs[0]), view.dequantized_weight(node.inputs[1])
    if x is None or w is None:
        return False
    bias = _bias_codes(em, node, x, w)
    if bias is None:
        return False
    mult, shift = ispec.output_multipliers(x.scale, w.scale, _scale(m.qp_y))
    attrs = dict(x_zero_point=x.zero_point, multiplier=mult.tolist(), shift=shift.tolist(),
                 **output_attrs(m.qp_y, *output_bounds(m.act, m.qp_y)))
    if node.op == "conv2d":
        attrs.update({k: node.attrs[k] for k in ("strides", "pads", "dilations", "group")})
    em.node("q" + node.op, [x.name, w.name, bias], attrs, [m.out], name=node.name + "_int")
    return True


def _bias_codes(em: Emitter, node, x: IntTensor, w) -> str | None:
    """Name of int32 bias codes at scale s_x * s_w[c] ("" without bias; None if unusable).
    Codes already at that scale are used as they are; others are requantized once (SPEC §5)."""
    name = (node.inputs + ["", ""])[2]
    if not name:
        return ""
    view = em.view
    channels = view.graph.values[node.inputs[1]].shape[0]
    s_w = np.broadcast_to(w.scale, (channels,))
    parts = view.dequantize_parts(name)
    if parts is not None:
        codes_name, scale, zero, _ = parts
        codes = view.constant(codes_name)
        if codes is None or codes.dtype.kind not in "iu" or np.any(zero != 0):
            return None
        expected = (np.float64(x.scale) * s_w.astype(np.float64)).astype(np.float32)
        if codes.dtype == np.int32 and np.array_equal(np.broadcast_to(scale.reshape(-1), (channels,)), expected):
            return codes_name
        real = codes.astype(np.float32) * np.broadcast_to(scale.reshape(-1), (channels,))
    else:
        real = view.constant(name)
        if real is None or real.dtype.kind != "f":
            return None
    return em.constant(f"{node.name}_bias_q", ispec.quantize_bias(real, x.scale, s_w))


def rewrite_add(em: Emitter, m: Match) -> bool:
    """DQ(a), DQ(b) -> add -> [act] -> Q  =>  qadd (one shared shift, SPEC §5 add)."""
    a, b = (em.view.dequantized(i) for i in m.node.inputs)
    if a is None or b is None:
        return False
    m_a, m_b, n = ispec.add_multipliers(a.scale, b.scale, _scale(m.qp_y))
    attrs = dict(a_zero_point=a.zero_point, b_zero_point=b.zero_point, a_multiplier=m_a,
                 b_multiplier=m_b, shift=n, **output_attrs(m.qp_y, *output_bounds(m.act, m.qp_y)))
    em.node("qadd", [a.name, b.name], attrs, [m.out], name=m.node.name + "_int")
    return True


def rewrite_movement(em: Emitter, m: Match) -> bool:
    """DQ -> max_pool2d / reshape / flatten / ... -> Q: the op on the codes (SPEC §5: max is
    monotonic, data movement keeps values), then a rescale only if Q's parameters differ.
    relu / clip / a bare DQ -> Q are the same with no op: a clamp or a rescale."""
    node = m.node
    x = em.view.dequantized(m.source if node.op == "dequantize" else node.inputs[0])
    if x is None:
        return False
    lo, hi = output_bounds(node if node.op in ("relu", "clip") else None, m.qp_y)
    if node.op in ("relu", "clip", "dequantize"):
        emit_rescale(em, x, m.qp_y, lo, hi, out=m.out)
        return True
    index = node.outputs.index(m.source)
    direct = not needs_rescale(x, m.qp_y, lo, hi) and len(node.outputs) == 1
    names = [m.out] if direct else [em.graph.unique_name(f"{o}_q") for o in node.outputs]
    em.node(node.op, [x.name], node.attrs, names, name=node.name + "_int")
    if not direct:
        emit_rescale(em, IntTensor(names[index], x.qp), m.qp_y, lo, hi, out=m.out)
    return True


def rewrite_concat(em: Emitter, m: Match) -> bool:
    """DQ(x_i) -> concat -> Q  =>  each input rescaled to Q's parameters, then concat."""
    xs = [em.view.dequantized(i) for i in m.node.inputs]
    if any(x is None for x in xs):
        return False
    parts = [emit_rescale(em, x, m.qp_y, m.qp_y.qmin, m.qp_y.qmax) for x in xs]
    em.node("concat", parts, {"axis": m.node.attrs["axis"]}, [m.out], name=m.node.name + "_int")
    return True


def _lut_function(node):
    """integer_spec's named function, or a float64 NumPy callable for ops with attributes."""
    if node.op == "leaky_relu":
        alpha = node.attrs["alpha"]
        return lambda v: np.where(v >= 0, v, alpha * v)
    if node.op != "hardsigmoid":
        return node.op
    alpha, beta = node.attrs["alpha"], node.attrs["beta"]
    if (alpha, beta) == (1.0 / 6.0, 0.5):
        return "hardsigmoid"   # integer_spec's own formula: the quantized modules' tables
    return lambda v: np.clip(alpha * v + beta, 0.0, 1.0)


def rewrite_lut(em: Emitter, m: Match) -> bool:
    """DQ -> hardswish / sigmoid / hardsigmoid / tanh / leaky_relu -> Q  =>  lut over all 256 codes."""
    x = em.view.dequantized(m.node.inputs[0])
    if x is None:
        return False
    function = _lut_function(m.node)
    table = ispec.storage(ispec.build_lut(function, x.qp, m.qp_y), m.qp_y)
    em.node("lut", [x.name, em.constant(f"{m.node.name}_table", table)], {}, [m.out],
            name=m.node.name + "_int")
    return True


def rewrite_average(em: Emitter, m: Match) -> bool:
    """DQ -> avg / adaptive / global average pool -> Q  =>  qavg_pool2d with per-cell
    multiplier / shift maps (divisors as integer_spec.avg_pool2d), or qglobal_avg_pool2d."""
    node = m.node
    x = em.view.dequantized(node.inputs[0])
    if x is None:
        return False
    _, _, h, w = em.view.graph.values[x.name].shape
    window = _average_window(node, h, w)
    if window is None:
        return False
    s_y, out = _scale(m.qp_y), output_attrs(m.qp_y, m.qp_y.qmin, m.qp_y.qmax)
    if window == "global":
        mult, shift = ispec.average_multipliers(x.scale, s_y, h * w)
        em.node("qglobal_avg_pool2d", [x.name], dict(x_zero_point=x.zero_point, multiplier=[int(mult)],
                                                     shift=[int(shift)], **out), [m.out], name=node.name + "_int")
        return True
    kernel, strides, pads, count_include_pad = window
    _, count = ispec.window_sums(np.zeros((1, 1, h, w), np.int64), 0, kernel, strides, pads)
    mult, shift = ispec.average_multipliers(
        x.scale, s_y, ispec.avg_pool_divisors(count, kernel, count_include_pad))
    maps = [em.constant(f"{node.name}_{what}_map", a.astype(np.int32))
            for what, a in (("multiplier", mult), ("shift", shift))]
    em.node("qavg_pool2d", [x.name] + maps, dict(kernel=kernel, strides=strides, pads=pads,
                                                 x_zero_point=x.zero_point, **out), [m.out], name=node.name + "_int")
    return True


def _average_window(node, h, w):
    """"global", (kernel, strides, pads, count_include_pad), or None (no integer form here)."""
    if node.op == "global_avg_pool2d":
        return "global"
    if node.op == "adaptive_avg_pool2d":
        oh, ow = node.attrs["output_size"]
        if (oh, ow) == (1, 1):
            return "global"
        if h % oh or w % ow:
            return None   # uneven bins are not one sliding window
        return [h // oh, w // ow], [h // oh, w // ow], [0, 0, 0, 0], True
    if node.attrs["ceil_mode"]:
        return None
    return node.attrs["kernel"], node.attrs["strides"], node.attrs["pads"], bool(node.attrs["count_include_pad"])


MOVEMENT_OPS = ("max_pool2d", "reshape", "flatten", "transpose", "squeeze", "unsqueeze", "identity",
                "channel_shuffle", "split", "relu", "clip", "dequantize")

# float op -> rewrite. Ops in FUSES_ACTIVATION also absorb a following relu / clip.
REWRITES = {
    "conv2d": rewrite_weighted,
    "linear": rewrite_weighted,
    "add": rewrite_add,
    "concat": rewrite_concat,
    "avg_pool2d": rewrite_average,
    "adaptive_avg_pool2d": rewrite_average,
    "global_avg_pool2d": rewrite_average,
    **{op: rewrite_lut for op in ("hardswish", "sigmoid", "hardsigmoid", "tanh", "leaky_relu")},
    **{op: rewrite_movement for op in MOVEMENT_OPS},
}
FUSES_ACTIVATION = frozenset({"conv2d", "linear", "add"})
ACTIVATIONS = frozenset({"relu", "clip"})
