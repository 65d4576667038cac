"""Graph: the IR container (docs/design.md). Builds, checks and copies graphs."""
from __future__ import annotations

import copy as _copy
import re

import numpy as np

from .errors import GraphError, ShapeInferenceError
from .ops import get_schema
from .quant_params import QuantParams
from .values import Node, Value, normalize_dtype


def node_label(name: str, op: str) -> str:
    return f"node '{name}' ({op})"


class Graph:
    """Values are named once: a name is a graph input, a constant, or one node's output."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.nodes: list[Node] = []
        self.values: dict[str, Value] = {}
        self.constants: dict[str, np.ndarray] = {}
        self._reserved: set[str] = set()  # names kept free for later use (e.g. by an importer)
        self._suffix: dict[str, int] = {}
        self._node_suffix: dict[str, int] = {}
        self._node_names_key, self._node_names_cache = None, set()

    # ------------------------------------------------------------ names

    def has_name(self, name: str) -> bool:
        return name in self.values or name in self._reserved

    def reserve_names(self, names) -> None:
        """Keep `names` out of unique_name()'s answers (they may still be defined explicitly)."""
        self._reserved.update(names)

    def unique_name(self, base: str) -> str:
        """`base` if no value has it, else `base_1`, `base_2`, ..."""
        base = base or "v"
        if not self.has_name(base):
            return base
        stem = re.sub(r"_\d+$", "", base)
        i = self._suffix.get(stem, 0)
        while True:
            i += 1
            candidate = f"{stem}_{i}"
            if not self.has_name(candidate):
                self._suffix[stem] = i
                return candidate

    def unique_node_name(self, base: str) -> str:
        """`base` if no node has it, else `base_1`, `base_2`, ..."""
        taken = self._node_names()
        if base not in taken:
            return base
        stem = re.sub(r"_\d+$", "", base)
        i = self._node_suffix.get(stem, 0)
        while True:
            i += 1
            if f"{stem}_{i}" not in taken:
                self._node_suffix[stem] = i
                return f"{stem}_{i}"

    def _nodes_key(self):
        return (id(self.nodes), len(self.nodes), id(self.nodes[-1]) if self.nodes else None)

    def _node_names(self) -> set[str]:
        # Cached: rebuilt whenever `nodes` is replaced, grows/shrinks or ends differently.
        key = self._nodes_key()
        if self._node_names_key != key:
            self._node_names_cache = {n.name for n in self.nodes}
            self._node_names_key = key
        return self._node_names_cache

    # ------------------------------------------------------------ building

    def add_input(self, name: str, shape, dtype="float32", quant: QuantParams | None = None) -> str:
        """Declare a graph input; returns its name. The name must be new."""
        if name in self.values:
            raise GraphError(f"cannot add input '{name}': the name is already defined")
        self.values[name] = Value(name, shape, dtype, quant)
        self.inputs.append(name)
        return name

    def add_constant(self, name: str, array, quant: QuantParams | None = None) -> str:
        """Add a constant (the array is copied, dtype kept: pass float32 for float maths).
        A taken name gets a suffix; returns the name actually used."""
        array = np.array(array, copy=True, order="C")
        normalize_dtype(array.dtype)
        name = self.unique_name(name) if name in self.values or not name else name
        self.constants[name] = array
        self.values[name] = Value(name, array.shape, array.dtype.name, quant)
        return name

    def add_node(self, op: str, inputs, attrs: dict | None = None, outputs=None,
                 name: str | None = None) -> Node:
        """Append a node after checking it against the op table; output Values get inferred
        shapes/dtypes. Without `outputs`, fresh output names are made from the node name."""
        schema = get_schema(op)
        name = self.unique_node_name(name or op)
        where = node_label(name, op)
        inputs = [getattr(i, "name", i) or "" for i in inputs]  # names, Values or None
        schema.check_inputs(inputs, where)
        for i in inputs:
            if i and i not in self.values:
                raise GraphError(f"{where}: input '{i}' is not defined in graph '{self.name}'")
        in_values = schema.pad_optional([self.values[i] if i else None for i in inputs])
        attrs = schema.normalize_attrs(attrs, in_values, where)
        specs = _infer(schema, in_values, attrs, where)
        if outputs is None:
            outputs = [self.unique_name(name if len(specs) == 1 else f"{name}_{k}")
                       for k in range(len(specs))]
        outputs = [str(o) for o in outputs]
        if len(outputs) != len(specs):
            raise GraphError(f"{where}: produces {len(specs)} outputs, {len(outputs)} names given")
        for o in outputs:
            if not o or o in self.values:
                raise GraphError(f"{where}: output name '{o}' is empty or already defined")
        if len(set(outputs)) != len(outputs):
            raise GraphError(f"{where}: output names repeat: {outputs}")
        node = Node(op, inputs, outputs, attrs, name)
        quant = self._quant_of_quantize(node) if op == "quantize" else None
        for o, (shape, dtype) in zip(outputs, specs):
            self.values[o] = Value(o, shape, dtype, quant)
        taken = self._node_names()  # valid for the node list before this append
        self.nodes.append(node)
        taken.add(name)
        self._node_names_key = self._nodes_key()
        return node

    def _quant_of_quantize(self, node: Node) -> QuantParams | None:
        """A quantize node whose scale/zero_point are constants labels its output with them."""
        scale, zp = (node.inputs + [""])[1:3]
        if scale not in self.constants or (zp and zp not in self.constants):
            return None
        a = node.attrs
        try:
            return QuantParams(self.constants[scale].reshape(-1 if a["axis"] is not None else ()),
                               self.constants[zp].reshape(-1 if a["axis"] is not None else ())
                               if zp else 0,
                               a["axis"], a["bits"], a["signed"], a["narrow_range"])
        except (GraphError, ValueError):
            return None  # odd but legal parameters: leave the output unlabelled

    def mark_output(self, *names: str) -> None:
        for name in names:
            if name not in self.values:
                raise GraphError(f"cannot mark '{name}' as output: not defined in graph '{self.name}'")
            if name not in self.outputs:
                self.outputs.append(name)

    def rename_value(self, old: str, new: str) -> None:
        """Give a value a new name everywhere it appears (producer, consumers, outputs)."""
        if new in self.values:
            raise GraphError(f"cannot rename '{old}' to '{new}': the name is taken in graph '{self.name}'")
        value = self.values.pop(old)
        self.values[new] = Value(new, value.shape, value.dtype, value.quant)
        if old in self.constants:
            self.constants[new] = self.constants.pop(old)
        for node in self.nodes:
            node.inputs = [new if i == old else i for i in node.inputs]
            node.outputs = [new if o == old else o for o in node.outputs]
        self.inputs = [new if i == old else i for i in self.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    # ------------------------------------------------------------ queries

    def value(self, name: str) -> Value:
        try:
            return self.values[name]
        except KeyError:
            raise GraphError(f"value '{name}' is not defined in graph '{self.name}'") from None

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    def producer_map(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs}

    def consumer_map(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {name: [] for name in self.values}
        for n in self.nodes:
            for i in dict.fromkeys(n.inputs):
                if i:
                    users.setdefault(i, []).append(n)
        return users

    def producer(self, name: str) -> Node | None:
        return self.producer_map().get(name)

    def consumers(self, name: str) -> list[Node]:
        return self.consumer_map().get(name, [])

    # ------------------------------------------------------------ whole-graph operations

    def validate(self) -> None:
        """Raise GraphError unless: nodes are in topological order, every input is defined,
        names are unique, ops/attrs match the op table and stored shapes match inference."""
        defined: set[str] = set()
        for name in self.inputs:
            if name not in self.values:
                raise GraphError(f"graph input '{name}' has no Value")
            if name in self.constants:
                raise GraphError(f"'{name}' is both a graph input and a constant")
            defined.add(name)
        for name, array in self.constants.items():
            v = self.values.get(name)
            if v is None or v.shape != array.shape or v.dtype != array.dtype.name:
                raise GraphError(f"constant '{name}' does not match its Value {v}")
            defined.add(name)
        node_names = set()
        for node in self.nodes:
            where = node_label(node.name, node.op)
            if node.name in node_names:
                raise GraphError(f"{where}: node name used twice")
            node_names.add(node.name)
            schema = get_schema(node.op)
            schema.check_inputs(node.inputs, where)
            for i in node.inputs:
                if i and i not in defined:
                    raise GraphError(f"{where}: input '{i}' is not defined before the node "
                                     f"(graph not in topological order, or undefined name)")
            in_values = schema.pad_optional([self.values[i] if i else None for i in node.inputs])
            attrs = schema.normalize_attrs(node.attrs, in_values, where)
            specs = _infer(schema, in_values, attrs, where)
            if len(specs) != len(node.outputs):
                raise GraphError(f"{where}: has {len(node.outputs)} outputs, op makes {len(specs)}")
            for o, (shape, dtype) in zip(node.outputs, specs):
                if o in defined:
                    raise GraphError(f"{where}: output '{o}' is defined twice")
                v = self.values.get(o)
                if v is None or v.shape != tuple(shape) or v.dtype != dtype:
                    raise GraphError(f"{where}: output '{o}' is stored as {v}, inference gives "
                                     f"{dtype}{list(shape)}")
                defined.add(o)
        for name in self.outputs:
            if name not in defined:
                raise GraphError(f"graph output '{name}' is not defined")

    def prune(self) -> None:
        """Drop nodes and constants that no graph output depends on."""
        producers = self.producer_map()
        live, stack = set(), list(self.outputs)
        while stack:
            name = stack.pop()
            if name in live:
                continue
            live.add(name)
            node = producers.get(name)
            if node is not None:
                stack.extend(i for i in node.inputs if i)
                live.update(node.outputs)
        self.nodes = [n for n in self.nodes if any(o in live for o in n.outputs)]
        for name in [c for c in self.constants if c not in live]:
            del self.constants[name]
        kept = set(self.inputs) | set(self.constants) | {o for n in self.nodes for o in n.outputs}
        self.values = {k: v for k, v in self.values.items() if k in kept}

    def copy(self) -> "Graph":
        """Deep copy: changing the copy's nodes, values or constant arrays leaves self alone."""
        g = Graph(self.name)
        g.inputs, g.outputs = list(self.inputs), list(self.outputs)
        g.nodes = [Node(n.op, list(n.inputs), list(n.outputs), _copy.deepcopy(n.attrs), n.name)
                   for n in self.nodes]
        g.values = {k: Value(v.name, v.shape, v.dtype, _copy.deepcopy(v.quant))
                    for k, v in self.values.items()}
        g.constants = {k: a.copy() for k, a in self.constants.items()}
        g._reserved, g._suffix = set(self._reserved), dict(self._suffix)
        return g

    def save(self, path) -> None:
        from .serialize import save_graph
        save_graph(self, path)

    @staticmethod
    def load(path) -> "Graph":
        from .serialize import load_graph
        return load_graph(path)

    def __str__(self) -> str:
        from .printer import format_graph
        return format_graph(self)

    def __repr__(self) -> str:
        return (f"<Graph '{self.name}': {len(self.inputs)} inputs, {len(self.outputs)} outputs, "
                f"{len(self.nodes)} nodes, {len(self.constants)} constants>")


def _infer(schema, in_values, attrs, where):
    try:
        return schema.infer(in_values, attrs)
    except ShapeInferenceError as exc:
        shapes = ", ".join(f"{v.name}: {v.dtype}{list(v.shape)}" if v else "_" for v in in_values)
        raise ShapeInferenceError(f"{where}: {exc} (inputs {shapes})") from None
