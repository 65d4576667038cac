"""IR Graph -> ONNX ModelProto.

Default opset: 21 (20 for 8-bit QDQ graphs, see default_opset) (ONNX 1.16+, run fully by onnxruntime >= 1.18; tested with 1.32). Opsets
13..21 are accepted: 13 is the first where Squeeze/Unsqueeze/Split take axes/sizes as inputs
and QuantizeLinear supports per-axis; ReduceMean/ReduceMax switch to axes inputs at 18.
Constants become initializers; each IR op maps to ONNX nodes via export_ops.EXPORTERS; every
value gets shape/dtype info, and the model must pass onnx.checker(full_check=True).
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir import Graph, GraphError
from .dtypes import onnx_elem_type
from .errors import OnnxExportError
from .export_ops import EXPORTERS
from .export_ops_image import IMAGE_EXPORTERS

DEFAULT_OPSET = 21
MIN_OPSET, MAX_OPSET = 13, 21


class ExportContext:
    """What an op exporter may use: the IR graph, the target opset, and makers for ONNX nodes
    and new initializers with names that clash with nothing in the graph."""

    def __init__(self, graph: Graph, opset: int):
        self.graph = graph
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken = set(graph.values) | {n.name for n in graph.nodes}

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self._taken:
            i += 1
            name = f"{base}_{i}"
        self._taken.add(name)
        return name

    def add_node(self, op_type: str, inputs, outputs, name: str, **attrs) -> None:
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=name, **attrs))

    def constant(self, array, base: str, dtype=None) -> str:
        """A new initializer holding `array`; returns its name."""
        name = self.fresh(base)
        array = np.asarray(array, dtype=dtype)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def int64s(self, values, base: str) -> str:
        return self.constant(np.asarray(values, dtype=np.int64).reshape(-1), base)

    def error(self, node, message: str):
        raise OnnxExportError(f"node '{node.name}' ({node.op}): {message}")


def _value_info(graph: Graph, name: str) -> onnx.ValueInfoProto:
    v = graph.values[name]
    return helper.make_tensor_value_info(name, onnx_elem_type(v.dtype), list(v.shape))


def default_opset(graph: Graph) -> int:
    """21, except for QDQ graphs that do not need 16-bit types: those get 20, because
    onnxruntime 1.32's QDQ propagation (Q/DQ inserted around MaxPool) builds an invalid
    QuantizeLinear at opset 21 and the session fails to load."""
    quantized = [n for n in graph.nodes if n.op == "quantize"]
    if quantized and all(n.attrs.get("bits", 8) <= 8 for n in quantized):
        return 20
    return DEFAULT_OPSET


def export_onnx(graph: Graph, path=None, opset: int | None = None) -> onnx.ModelProto:
    """Convert `graph` to ONNX (saved to `path` when given) and return the checked model.
    `opset=None` picks `default_opset(graph)`."""
    if opset is None:
        opset = default_opset(graph)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxExportError(f"export opset {opset} not supported; choose {MIN_OPSET}..{MAX_OPSET}")
    try:
        graph.validate()
    except GraphError as exc:
        raise OnnxExportError(f"graph '{graph.name}' is invalid: {exc}") from exc
    missing = [f"{n.op} (node '{n.name}')" for n in graph.nodes if n.op not in EXPORTERS]
    if missing:
        raise OnnxExportError("no ONNX export for IR ops: " + ", ".join(missing))
    # ONNX's image ops are NCHW only; channels-last nodes exist only inside the compiler.
    nhwc = [f"{n.op} (node '{n.name}')" for n in graph.nodes
            if n.attrs.get("layout", "NCHW") != "NCHW" and n.op not in IMAGE_EXPORTERS]
    if nhwc:
        raise OnnxExportError("cannot export nodes with layout NHWC (a compiler-internal, "
                              "layout-planned graph): " + ", ".join(nhwc))

    ctx = ExportContext(graph, opset)
    used = {i for n in graph.nodes for i in n.inputs} | set(graph.outputs)
    initializers = [numpy_helper.from_array(a, name)
                    for name, a in graph.constants.items() if name in used]
    for node in graph.nodes:
        EXPORTERS[node.op](ctx, node)

    boundary = set(graph.inputs) | set(graph.outputs) | set(graph.constants)
    value_info = [_value_info(graph, o) for n in graph.nodes for o in n.outputs if o not in boundary]
    onnx_graph = helper.make_graph(
        ctx.nodes, graph.name,
        [_value_info(graph, n) for n in graph.inputs],
        [_value_info(graph, n) for n in graph.outputs],
        initializer=initializers + ctx.initializers, value_info=value_info)
    opset_ids = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opset_ids, producer_name="yuan",
                              ir_version=helper.find_min_ir_version_for(opset_ids))
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # checker and shape-inference errors have several types
        raise OnnxExportError(f"exported model of graph '{graph.name}' fails onnx.checker: {exc}") from exc
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model
