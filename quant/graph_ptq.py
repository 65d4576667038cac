"""Post-training quantization of a float Graph (e.g. an imported float ONNX model).

    qdq = quantize_graph(graph, batches)            # float Graph -> QDQ Graph

Steps: fold constants and batch norms (compiler.passes), run the float graph over the
calibration batches feeding one activation observer per quantized tensor, then rewrite the
graph in QDQ form (quant/graph_qdq.py says where the pairs go).
"""
from __future__ import annotations

import numpy as np

from yuan.compiler.ir import Graph, QuantParams
from yuan.compiler.ir.interpreter import run_node
from yuan.compiler.passes import eliminate_dead_code, fold_batch_norm, fold_constants

from .errors import QuantError
from .graph_qdq import build_qdq_graph, plan_qdq, range_qparams, weight_qparams
from .qconfig import check_bits, get_qconfig
from .registry import get_observer

def quantize_graph(graph: Graph, calibration_batches, *, per_channel: bool = True,
                   bits: int = 8, weight_bits: int | None = None, act_signed: bool = True,
                   act_observer="minmax", qconfig=None, fold_bn: bool = True) -> Graph:
    """A new QDQ Graph computing `graph` with quantized activations and weights.

    calibration_batches: an iterable of batches; a batch is an array (single-input graphs),
      an (x, y, ...) tuple as data loaders yield (x is used), or {input name: array}. Each
      array must have the graph input's shape. No batch, or a NaN/inf value, is a QuantError.
    per_channel: per-output-channel (axis 0) weight scales, else one per tensor.
    bits / weight_bits: activation / weight bit width (weight_bits defaults to bits).
    act_signed: int8 activations (SPEC default) or uint8.
    act_observer: an observer registry name ("minmax", "ema", "histogram", "percentile", or
      any registered one) or an Observer class / factory called as f(bits=, signed=,
      symmetric=False, narrow_range=False, axis=None).
    qconfig: a quant.qconfig.QConfig or preset name ("minmax", "per_tensor", ...); when
      given, its act_observer() and weight_observer() factories replace the options above
      (the weight observer must be symmetric: zero point 0).
    fold_bn: fold batch norms into the preceding conv2d / linear first (SPEC §7).

    A conv2d / linear whose int32 bias or accumulator would overflow at these bit widths
    (SPEC §5) is a QuantError naming the node.
    """
    weight_bits = bits if weight_bits is None else weight_bits
    check_bits("quantize_graph", bits=bits, weight_bits=weight_bits)
    if isinstance(qconfig, str):
        qconfig = get_qconfig(qconfig)
    act_factory = _act_factory(act_observer, bits, act_signed, qconfig)
    float_graph = fold_constants(graph)
    if fold_bn:
        float_graph = fold_batch_norm(float_graph)
    float_graph = eliminate_dead_code(float_graph)

    plan = plan_qdq(float_graph)
    observers = {name: act_factory() for name in plan.calibrated}
    _calibrate(float_graph, calibration_batches, observers)
    params = {}
    for name, observer in observers.items():
        try:
            params[name] = observer.qparams()
        except QuantError as exc:
            raise QuantError(f"tensor '{name}': {exc}") from exc

    def weights(name, array):
        if qconfig is not None:
            return _observed(qconfig.weight_observer(), array, f"weight '{name}'")
        return weight_qparams(array, weight_bits, per_channel)

    def constants(name, array):  # float constants read by add / concat ...: own range
        return range_qparams(array, bits, act_signed)

    return build_qdq_graph(float_graph, plan, params, weights, constants)


# ---------------------------------------------------------------- observers

def _act_factory(act_observer, bits, signed, qconfig):
    """A no-argument callable making one activation observer."""
    if qconfig is not None:
        return qconfig.act_observer
    if isinstance(act_observer, str):
        try:
            cls = get_observer(act_observer)
        except QuantError as exc:
            raise QuantError(f"act_observer: {exc}") from exc
    elif callable(act_observer):
        cls = act_observer
    else:
        raise QuantError(f"act_observer must be a name or an Observer class, got {act_observer!r}")
    return lambda: cls(bits=bits, signed=signed, symmetric=False, narrow_range=False, axis=None)


def _observed(observer, array, what) -> QuantParams:
    try:
        observer.observe(array)
        return observer.qparams()
    except QuantError as exc:
        raise QuantError(f"{what}: {exc}") from exc


# ---------------------------------------------------------------- calibration

def _feed(graph: Graph, batch, index: int) -> dict[str, np.ndarray]:
    """One calibration batch as {input name: array}, checked against the graph inputs."""
    if isinstance(batch, dict):
        feed = dict(batch)
    elif isinstance(batch, (tuple, list)):  # (x, y) from a data loader
        feed = {graph.inputs[0]: batch[0]} if len(graph.inputs) == 1 else dict(zip(graph.inputs, batch))
    else:
        feed = {graph.inputs[0]: batch}
    if sorted(feed) != sorted(graph.inputs):
        raise QuantError(f"calibration batch {index} provides {sorted(feed)}, the graph's "
                         f"inputs are {graph.inputs}")
    for name in graph.inputs:
        value = graph.values[name]
        array = np.asarray(getattr(feed[name], "data", feed[name]))  # a frontend Tensor too
        if array.shape != value.shape:
            raise QuantError(f"calibration batch {index}: input '{name}' has shape "
                             f"{list(array.shape)}, the graph expects {list(value.shape)}")
        feed[name] = array.astype(value.dtype, copy=False)
        _check_finite(feed[name], f"calibration batch {index}: input '{name}'")
    return feed


def _check_finite(array: np.ndarray, what: str) -> None:
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise QuantError(f"{what} contains NaN or inf; calibration needs finite values")


def _calibrate(graph: Graph, batches, observers: dict) -> None:
    """Run `graph` on every batch, feeding each observed tensor's values to its observer."""
    count = 0
    for index, batch in enumerate(batches):
        env = dict(graph.constants)
        env.update(_feed(graph, batch, index))
        for name in graph.inputs:
            _observe(observers, name, env[name], index)
        for node in graph.nodes:
            env.update(zip(node.outputs, run_node(graph, node, env)))
            for name in node.outputs:
                _observe(observers, name, env[name], index)
        count += 1
    if count == 0:
        raise QuantError("no calibration data: calibration_batches yielded no batch, so no "
                         "activation range can be measured")


def _observe(observers: dict, name: str, array: np.ndarray, index: int) -> None:
    observer = observers.get(name)
    if observer is None:
        return
    what = f"calibration batch {index}: tensor '{name}'"
    _check_finite(array, what)
    try:
        observer.observe(array)
    except QuantError as exc:
        raise QuantError(f"{what}: {exc}") from exc
