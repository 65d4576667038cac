"""Where quantize/dequantize pairs go in a float Graph, and the rewrite that inserts them.

Placement follows ONNX Runtime's QDQ format: every activation that a quantizable op reads
or writes is stored quantized, i.e. is followed by `quantize` -> `dequantize`, and every
consumer reads the dequantized value. Exceptions (quant/SPEC.md §5):

* relu / clip right after conv2d / linear / add (sole consumer) are fused into it: the pair
  goes after the activation only, so the producer's raw output stays internal.
* max_pool2d, flatten, reshape and the other data-movement ops keep their input's
  parameters: their output pair reuses the input's scale and zero point constants.
* conv2d / linear weights become int8 constants (symmetric, narrow range, per output
  channel on axis 0 by default) + `dequantize`; biases become int32 constants with scale
  s_x * s_w + `dequantize`.
* float constants read by other quantizable ops (e.g. add(x, const)) become integer constants
  + `dequantize`, with per-tensor parameters covering their own range.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from yuan.compiler.ir import Graph, QuantParams

from . import spec
from .errors import QuantError
from .int32_range import checked_bias_codes

WEIGHTED_OPS = frozenset({"conv2d", "linear"})
FUSED_ACTIVATIONS = frozenset({"relu", "clip"})
FUSING_PRODUCERS = frozenset({"conv2d", "linear", "add"})
# Outputs keep the input's parameters (the integer data only moves, SPEC §5).
PARAM_PRESERVING_OPS = frozenset({"max_pool2d", "flatten", "reshape", "identity", "transpose",
                                  "squeeze", "unsqueeze", "channel_shuffle", "split"})
QUANTIZED_OPS = WEIGHTED_OPS | FUSED_ACTIVATIONS | PARAM_PRESERVING_OPS | frozenset({
    "add", "concat", "avg_pool2d", "global_avg_pool2d", "adaptive_avg_pool2d",
    "sigmoid", "tanh", "hardswish", "hardsigmoid"})
FLOAT_DTYPES = ("float32",)


@dataclass
class QDQPlan:
    """calibrated: tensors whose parameters an observer chooses (graph order);
    shared: tensor -> the calibrated tensor whose parameters it reuses;
    constants: float constants read by quantizable ops other than as weight / bias."""
    calibrated: list[str] = field(default_factory=list)
    shared: dict[str, str] = field(default_factory=dict)
    constants: list[str] = field(default_factory=list)

    @property
    def quantized(self) -> set[str]:
        return set(self.calibrated) | set(self.shared)


def _fused_outputs(graph: Graph) -> set[str]:
    """Outputs of conv2d / linear / add that feed only a relu / clip (which fuses into them)."""
    producers, consumers = graph.producer_map(), graph.consumer_map()
    fused = set()
    for node in graph.nodes:
        if node.op not in FUSED_ACTIVATIONS:
            continue
        source = node.inputs[0]
        producer = producers.get(source)
        if (producer is not None and producer.op in FUSING_PRODUCERS
                and len(consumers.get(source, [])) == 1 and source not in graph.outputs):
            fused.add(source)
    return fused


def plan_qdq(graph: Graph) -> QDQPlan:
    """Decide which tensors of `graph` are quantized and where their parameters come from."""
    fused = _fused_outputs(graph)
    plan = QDQPlan()
    quantized: dict[str, None] = {}  # ordered set

    def is_activation(name):
        return (name and name not in fused and name not in graph.constants
                and graph.values[name].dtype in FLOAT_DTYPES)

    for node in graph.nodes:
        if node.op not in QUANTIZED_OPS:
            continue
        reads = node.inputs[:1] if node.op in WEIGHTED_OPS else node.inputs
        for name in reads:
            if is_activation(name):
                quantized.setdefault(name)
            elif (name in graph.constants and graph.values[name].dtype in FLOAT_DTYPES
                  and name not in plan.constants):
                plan.constants.append(name)
        for name in node.outputs:
            if not is_activation(name):
                continue
            quantized.setdefault(name)
            source = node.inputs[0]
            if node.op in PARAM_PRESERVING_OPS and source in quantized:
                plan.shared[name] = plan.shared.get(source, source)
    plan.calibrated = [name for name in quantized if name not in plan.shared]
    return plan


# ---------------------------------------------------------------- parameters

def weight_qparams(w: np.ndarray, bits: int, per_channel: bool) -> QuantParams:
    """Symmetric, narrow-range, signed parameters covering w (per output channel: axis 0)."""
    w = np.asarray(w, np.float32)
    if per_channel:
        flat = w.reshape(w.shape[0], -1)
        return spec.choose_qparams(flat.min(axis=1), flat.max(axis=1), bits=bits, signed=True,
                                   symmetric=True, narrow_range=True, axis=0)
    return spec.choose_qparams(w.min(), w.max(), bits=bits, signed=True, symmetric=True,
                               narrow_range=True)


def range_qparams(array: np.ndarray, bits: int, signed: bool) -> QuantParams:
    """Per-tensor asymmetric parameters covering a constant's own range."""
    return spec.choose_qparams(np.min(array), np.max(array), bits=bits, signed=signed)


# ---------------------------------------------------------------- the rewrite

class _Builder:
    """Copies a float graph node by node into a new graph, adding the Q/DQ structure."""

    def __init__(self, graph: Graph, plan: QDQPlan, params: dict[str, QuantParams],
                 weight_params, constant_params):
        self.src, self.plan, self.params = graph, plan, params
        self.weight_params = weight_params      # (name, array) -> QuantParams
        self.constant_params = constant_params  # (name, array) -> QuantParams
        self.g = Graph(graph.name)
        self.g.reserve_names(graph.values)  # generated names never take an original one
        self.read = {}        # original value name -> the name its consumers read
        self.param_names = {}  # calibrated tensor -> (scale constant, zero point constant)
        self.quantized = plan.quantized

    def build(self) -> Graph:
        src, g = self.src, self.g
        for name in src.inputs:
            v = src.values[name]
            g.add_input(name, v.shape, v.dtype, v.quant)
        for name, array in src.constants.items():
            g.add_constant(name, array, src.values[name].quant)
        for name in src.inputs:
            if name in self.quantized:
                self.read[name] = self._qdq(name, name)
        for name in self.plan.constants:
            self.read[name] = self._constant_operand(name)
        for node in src.nodes:
            self._copy_node(node)
        g.outputs = list(src.outputs)
        g.prune()
        g.validate()
        return g

    def _copy_node(self, node) -> None:
        g, outputs = self.g, set(self.src.outputs)
        inputs = [self.read.get(i, i) for i in node.inputs]
        if node.op in WEIGHTED_OPS:
            inputs = self._quantized_weight_and_bias(node, inputs)
        # A quantized graph output keeps its name on the final dequantize.
        written = [g.unique_name(f"{o}_float") if o in self.quantized and o in outputs else o
                   for o in node.outputs]
        g.add_node(node.op, inputs, node.attrs, written, name=node.name)
        for original, name in zip(node.outputs, written):
            if original in self.quantized:
                keep = original if original in outputs else None
                self.read[original] = self._qdq(original, name, keep)

    def _scale_and_zero_point(self, tensor: str):
        root = self.plan.shared.get(tensor, tensor)
        if root not in self.param_names:
            qp = self.params[root]
            scale = self.g.add_constant(self.g.unique_name(f"{root}_scale"),
                                        np.asarray(qp.scale, np.float32).reshape(()))
            zp = self.g.add_constant(self.g.unique_name(f"{root}_zero_point"),
                                     np.asarray(qp.zero_point).reshape(()).astype(qp.dtype))
            self.param_names[root] = (scale, zp)
        return self.params[root], self.param_names[root]

    def _qdq(self, tensor: str, name: str, dq_name: str | None = None) -> str:
        """quantize -> dequantize after `name` (value `tensor` of the source graph)."""
        qp, (scale, zp) = self._scale_and_zero_point(tensor)
        attrs = {"axis": None, "bits": qp.bits, "signed": int(qp.signed),
                 "narrow_range": int(qp.narrow_range)}
        q = self.g.add_node("quantize", [name, scale, zp], attrs,
                            [self.g.unique_name(f"{tensor}_quantized")], name=f"{tensor}_quantize")
        out = dq_name or self.g.unique_name(f"{tensor}_dequantized")
        self.g.add_node("dequantize", [q.outputs[0], scale, zp], {"axis": None}, [out],
                        name=f"{tensor}_dequantize")
        return out

    def _dequantized_constant(self, base: str, q: np.ndarray, qp: QuantParams) -> str:
        g = self.g
        shape = (-1,) if qp.axis is not None else ()
        codes = g.add_constant(g.unique_name(f"{base}_quantized"), q, qp)
        scale = g.add_constant(g.unique_name(f"{base}_scale"),
                               np.asarray(qp.scale, np.float32).reshape(shape))
        zp = g.add_constant(g.unique_name(f"{base}_zero_point"),
                            np.asarray(qp.zero_point).reshape(shape).astype(q.dtype))
        return g.add_node("dequantize", [codes, scale, zp], {"axis": qp.axis},
                          [g.unique_name(f"{base}_dequantized")], name=f"{base}_dequantize").outputs[0]

    def _constant_operand(self, name: str) -> str:
        array = self.src.constants[name]
        qp = self.constant_params(name, array)
        return self._dequantized_constant(name, spec.quantize(array, qp), qp)

    def _quantized_weight_and_bias(self, node, inputs: list[str]) -> list[str]:
        x, w, b = (node.inputs + [""])[:3]
        if w not in self.src.constants:
            return inputs  # a computed weight stays float
        w_qp = self.weight_params(w, self.src.constants[w])
        if not np.all(np.asarray(w_qp.zero_point) == 0):
            raise QuantError(f"node '{node.name}' ({node.op}): weight '{w}' parameters must be "
                             f"symmetric (zero point 0), got {w_qp.zero_point}")
        q_w = spec.quantize(self.src.constants[w], w_qp)
        new = list(inputs)
        new[1] = self._dequantized_constant(f"{node.name}_weight", q_w, w_qp)
        if x not in self.quantized:
            return new   # a float input: no integer accumulation, bias stays float
        qp_x = self.params[self.plan.shared.get(x, x)]
        bias = self.src.constants[b] if b and b in self.src.constants else None   # a computed bias stays float
        layer = f"node '{node.name}' ({node.op})"
        try:
            b_q = checked_bias_codes(bias, q_w, qp_x, w_qp, layer)   # the SPEC §5 rule, refused past int32
        except QuantError as exc:
            raise QuantError(f"{layer}: {exc}") from None
        if b_q is not None:
            b_scale = (np.float64(qp_x.scale.reshape(())) * w_qp.scale.astype(np.float64)).astype(np.float32)
            b_qp = QuantParams(b_scale, np.zeros(b_scale.shape, np.int32), w_qp.axis, bits=32)
            new[2] = self._dequantized_constant(f"{node.name}_bias", b_q, b_qp)
        return new


def build_qdq_graph(graph: Graph, plan: QDQPlan, params: dict[str, QuantParams],
                    weight_params, constant_params) -> Graph:
    """A new graph: `graph` with the Q/DQ structure of `plan` (the source is unchanged).

    params: parameters of every tensor in plan.calibrated; weight_params(name, array) and
    constant_params(name, array) -> QuantParams for conv2d / linear weights (must be
    symmetric) and for the float constants of plan.constants."""
    missing = [t for t in plan.calibrated if t not in params]
    if missing:
        raise QuantError(f"no quantization parameters for tensors {missing}")
    return _Builder(graph, plan, params, weight_params, constant_params).build()
