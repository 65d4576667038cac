"""ONNX model -> IR Graph.

import_onnx reads a model (path or ModelProto), checks it with onnx.checker, maps
initializers to constants and graph inputs to IR inputs (concrete shapes required), then
converts node by node through import_ops.CONVERTERS (keyed by ONNX op type; each converter
reads ctx.opset for version differences, opsets 9..28). Sub-graphs whose inputs are all
constants (e.g. PyTorch's Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains) are
evaluated at import time with the IR interpreter, so only real computation remains.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir import Graph, GraphError
from ..ir.interpreter import evaluate_op
from .dtypes import numpy_dtype_name
from .errors import OnnxImportError
from .import_ops import CONVERTERS

MIN_OPSET, MAX_OPSET = 9, 28
ONNX_DOMAINS = ("", "ai.onnx")


class ImportContext:
    """What a converter sees: the ONNX node being converted, its attributes, and helpers to
    read inputs (as IR names or constant arrays) and to emit IR nodes."""

    def __init__(self, graph: Graph, opset: int, source: str, consumed: set[str]):
        self.graph = graph
        self.opset = opset
        self.source = source
        self.consumed = consumed  # ONNX names read by some node or graph output
        self.aliases: dict[str, str] = {}  # ONNX name -> IR name, for removed nodes (Identity...)
        self.node: onnx.NodeProto | None = None
        self.node_name = ""
        self.attrs: dict = {}

    # ------------------------------------------------------------ the current node

    def begin(self, node: onnx.NodeProto, index: int) -> None:
        self.node = node
        self.node_name = node.name or f"{node.op_type}_{index}"
        self.attrs = {a.name: _attribute_value(a) for a in node.attribute}

    @property
    def label(self) -> str:
        return f"node '{self.node_name}' ({self.node.op_type})"

    def error(self, message: str):
        raise OnnxImportError(f"{self.source}: {self.label}: {message}")

    def attr(self, key: str, default=None):
        return self.attrs.get(key, default)

    # ------------------------------------------------------------ reading inputs

    def resolve(self, onnx_name: str) -> str:
        return self.aliases.get(onnx_name, onnx_name)

    def num_inputs(self) -> int:
        return len(self.node.input)

    def has_input(self, i: int) -> bool:
        return i < len(self.node.input) and self.node.input[i] != ""

    def input(self, i: int) -> str:
        """IR name of input i ("" when absent)."""
        if not self.has_input(i):
            return ""
        name = self.resolve(self.node.input[i])
        if name not in self.graph.values:
            self.error(f"input '{self.node.input[i]}' is not defined before this node")
        return name

    def inputs(self) -> list[str]:
        return [self.input(i) for i in range(self.num_inputs())]

    def is_constant(self, i: int) -> bool:
        return self.has_input(i) and self.input(i) in self.graph.constants

    def constant(self, i: int, what: str, default=None):
        """Input i as a NumPy array; it must be a constant (after folding). Absent -> default."""
        if not self.has_input(i):
            return default
        name = self.input(i)
        if name not in self.graph.constants:
            self.error(f"input {i} ('{self.node.input[i]}', {what}) must be a constant; "
                       f"it is computed at run time, which the IR cannot express here")
        return self.graph.constants[name]

    def shape(self, ir_name: str) -> tuple[int, ...]:
        return self.graph.values[ir_name].shape

    def dtype(self, ir_name: str) -> str:
        return self.graph.values[ir_name].dtype

    # ------------------------------------------------------------ writing outputs

    def out(self, i: int = 0) -> str:
        if i >= len(self.node.output) or not self.node.output[i]:
            return self.fresh(f"{self.node_name}_unused{i}")
        return self.node.output[i]

    def fresh(self, base: str) -> str:
        return self.graph.unique_name(base)

    def emit(self, op: str, inputs, attrs: dict | None = None, outputs=None) -> list[str]:
        """Add an IR node (or, when every input is a constant, its constant results)."""
        if outputs is None:
            outputs = [self.fresh(f"{self.node_name}_{op}")]
        if inputs and all(i == "" or i in self.graph.constants for i in inputs):
            arrays = [self.graph.constants[i] if i else None for i in inputs]
            for name, array in zip(outputs, evaluate_op(op, arrays, attrs)):
                self.set_constant(name, array)
            return list(outputs)
        return self.graph.add_node(op, inputs, attrs, outputs, name=self.node_name).outputs

    def set_constant(self, onnx_name: str, array) -> None:
        name = self.graph.add_constant(onnx_name, np.asarray(array))
        if name != onnx_name:
            self.aliases[onnx_name] = name

    def alias(self, onnx_name: str, ir_name: str) -> None:
        """`onnx_name` is just another name for `ir_name` (Identity, Dropout, ...)."""
        self.aliases[onnx_name] = ir_name

    def is_defined(self, onnx_name: str) -> bool:
        return self.resolve(onnx_name) in self.graph.values


def _attribute_value(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    return value


# ---------------------------------------------------------------- loading and checks

def _load(model_or_path) -> tuple[onnx.ModelProto, str]:
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path, f"ONNX model '{model_or_path.graph.name}'"
    path = os.fspath(model_or_path)
    source = f"ONNX file '{path}'"
    if not os.path.isfile(path):
        raise OnnxImportError(f"{source}: no such file")
    if os.path.getsize(path) == 0:
        raise OnnxImportError(f"{source}: the file is empty (0 bytes), not an ONNX model")
    try:
        return onnx.load(path), source
    except Exception as exc:  # protobuf decode errors have several types
        raise OnnxImportError(f"{source}: cannot be parsed as an ONNX model (corrupt or not "
                              f"ONNX): {type(exc).__name__}: {exc}") from exc


def _check_types(graph: onnx.GraphProto, source: str) -> None:
    """onnx.checker's "Field 'shape' of 'type' is required but missing" names no tensor: say which."""
    for kind, infos in (("input", graph.input), ("output", graph.output)):   # value_info may omit shapes
        for vi in infos:
            if not vi.HasField("type"):
                raise OnnxImportError(f"{source}: graph {kind} '{vi.name}' has no type")
            if vi.type.HasField("tensor_type") and not vi.type.tensor_type.HasField("shape"):
                raise OnnxImportError(f"{source}: graph {kind} '{vi.name}' has a tensor type without a "
                                      f"'shape' field (write an empty shape when the dimensions are unknown)")


def _check(model: onnx.ModelProto, source: str) -> int:
    _check_types(model.graph, source)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise OnnxImportError(f"{source}: fails onnx.checker: {exc}") from exc
    opsets = {o.domain: o.version for o in model.opset_import}
    opset = next((opsets[d] for d in ONNX_DOMAINS if d in opsets), None)
    if opset is None:
        raise OnnxImportError(f"{source}: imports no ai.onnx opset")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxImportError(f"{source}: opset {opset} is not supported "
                              f"(supported: {MIN_OPSET}..{MAX_OPSET})")
    return opset


def _unsupported_ops(graph: onnx.GraphProto) -> list[str]:
    found = []
    for i, node in enumerate(graph.node):
        if node.domain not in ONNX_DOMAINS or node.op_type not in CONVERTERS:
            op = node.op_type if node.domain in ONNX_DOMAINS else f"{node.domain}.{node.op_type}"
            found.append(f"{op} (node '{node.name or f'{node.op_type}_{i}'}')")
    return found


def _input_shape(value_info, overrides: dict, source: str) -> tuple[int, ...]:
    name = value_info.name
    if name in overrides:
        return tuple(int(d) for d in overrides[name])
    dims = value_info.type.tensor_type.shape.dim
    if not value_info.type.tensor_type.HasField("shape"):
        raise OnnxImportError(f"{source}: input '{name}' has no shape; pass "
                              f"input_shapes={{'{name}': (...)}} to import_onnx")
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    if any(isinstance(d, str) for d in shape):
        example = tuple(1 if isinstance(d, str) else d for d in shape)
        raise OnnxImportError(
            f"{source}: input '{name}' has symbolic shape {shape}; the IR needs concrete shapes: "
            f"`yuan compile ... --input-shape {name}={','.join(map(str, example))}`, or "
            f"input_shapes={{'{name}': {example}}} for import_onnx")
    return tuple(shape)


def _declared_shape(value_info) -> list | None:
    """The dims an output declares (None for symbolic ones), or None when it declares no rank."""
    if not value_info.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _check_declared_outputs(graph: Graph, outputs, source: str) -> None:
    """A graph output whose declared shape contradicts the computed one means a broken model (or an
    input shape it was not made for): say so instead of returning a shape its users do not expect."""
    for vi in outputs:
        declared = _declared_shape(vi)
        computed = graph.values[vi.name].shape
        if not declared:
            continue
        if len(declared) != len(computed) or any(d not in (None, 0, c) for d, c in zip(declared, computed)):
            shown = ["?" if d is None else d for d in declared]
            raise OnnxImportError(f"{source}: graph output '{vi.name}' is declared with shape {shown} but "
                                  f"computes {list(computed)}")


# ---------------------------------------------------------------- the import

def import_onnx(model_or_path, input_shapes: dict | None = None) -> Graph:
    """Convert an ONNX model (path or ModelProto) to an IR Graph.

    input_shapes: {input name: concrete shape} overriding (e.g. symbolic) input shapes.
    Raises OnnxImportError naming the file (and node) on any problem; unsupported ops are
    all listed in one error.
    """
    model, source = _load(model_or_path)
    onnx_graph = model.graph
    unsupported = _unsupported_ops(onnx_graph)  # before the checker, which stops at the first
    if unsupported:
        raise OnnxImportError(f"{source}: unsupported ONNX ops: {', '.join(unsupported)}")
    opset = _check(model, source)
    overrides = dict(input_shapes or {})
    # old-style models also list their initializers as inputs: those are not inputs to feed
    initializers = {init.name for init in onnx_graph.initializer}
    input_names = {v.name for v in onnx_graph.input} - initializers
    unknown = sorted(set(overrides) - input_names)
    if unknown:
        raise OnnxImportError(f"{source}: input shapes given for unknown inputs {unknown}; "
                              f"the model's inputs are {sorted(input_names)}")

    graph = Graph(onnx_graph.name or "imported")
    graph.reserve_names(v for n in onnx_graph.node for v in list(n.input) + list(n.output) if v)
    for init in onnx_graph.initializer:
        graph.add_constant(init.name, numpy_helper.to_array(init))
    for vi in onnx_graph.input:
        if vi.name in graph.constants:
            continue  # old-style models list initializers as inputs: they are constants
        try:
            dtype = numpy_dtype_name(vi.type.tensor_type.elem_type)
            graph.add_input(vi.name, _input_shape(vi, overrides, source), dtype)
        except (GraphError, KeyError, TypeError) as exc:
            raise OnnxImportError(f"{source}: input '{vi.name}': {exc}") from exc

    consumed = {i for n in onnx_graph.node for i in n.input} | {o.name for o in onnx_graph.output}
    ctx = ImportContext(graph, opset, source, consumed)
    for index, node in enumerate(onnx_graph.node):
        ctx.begin(node, index)
        try:
            CONVERTERS[node.op_type](ctx)
        except OnnxImportError:
            raise
        except Exception as exc:  # IR shape/attr errors, bad attribute types...
            raise OnnxImportError(f"{source}: {ctx.label}: {exc}") from exc
        for i, name in enumerate(node.output):
            if name and name in consumed and not ctx.is_defined(name):
                ctx.error(f"output {i} ('{name}') is used but its import is not supported")

    _bind_outputs(ctx, [o.name for o in onnx_graph.output])
    if not overrides:   # with new input shapes, the declared output shapes may be stale
        _check_declared_outputs(graph, onnx_graph.output, source)
    graph.prune()
    try:
        graph.validate()
    except GraphError as exc:
        raise OnnxImportError(f"{source}: imported graph is invalid: {exc}") from exc
    return graph


def _bind_outputs(ctx: ImportContext, names: list[str]) -> None:
    """Graph outputs keep their ONNX names: an output that was aliased away (Identity,
    Dropout) or folded to a constant gets an identity node writing that name."""
    graph = ctx.graph
    for name in names:
        ir_name = ctx.resolve(name)
        if ir_name not in graph.values:
            raise OnnxImportError(f"{ctx.source}: graph output '{name}' is never computed")
        if ir_name == name and name in graph.constants:  # free the name for the output
            ir_name = graph.add_constant(graph.unique_name(name + "_value"), graph.constants.pop(name))
            del graph.values[name]
        if ir_name != name:
            graph.add_node("identity", [ir_name], outputs=[name], name=f"{name}_output")
        graph.mark_output(name)
