"""Graph files: ONE .npz archive (written as-is, whatever the file's extension).

Archive entries:
  "__graph__" : 0-d unicode array holding the JSON structure (format "yuan.graph", version 1):
                name, inputs, outputs, values (name/shape/dtype/quant in insertion order),
                constants (name -> archive key), nodes (op/name/inputs/outputs/attrs).
  "c0", "c1".. : the constant arrays, bit-exact.
Quant params are stored through QuantParams.to_dict (float32 values widen exactly to JSON).
Loaded with allow_pickle=False; anything unreadable or inconsistent raises GraphError naming
the file.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from .errors import GraphError
from .graph import Graph
from .quant_params import QuantParams
from .values import Node, Value

FORMAT, VERSION = "yuan.graph", 1
STRUCTURE_KEY = "__graph__"


def graph_to_dict(graph: Graph, constant_keys: dict[str, str]) -> dict:
    return {
        "format": FORMAT, "version": VERSION, "name": graph.name,
        "inputs": list(graph.inputs), "outputs": list(graph.outputs),
        "values": [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype,
                    "quant": v.quant.to_dict() if v.quant is not None else None}
                   for v in graph.values.values()],
        "constants": [{"name": n, "key": constant_keys[n]} for n in graph.constants],
        "nodes": [{"op": n.op, "name": n.name, "inputs": n.inputs, "outputs": n.outputs,
                   "attrs": n.attrs} for n in graph.nodes],
    }


def save_graph(graph: Graph, path) -> None:
    keys = {name: f"c{i}" for i, name in enumerate(graph.constants)}
    structure = json.dumps(graph_to_dict(graph, keys))
    arrays = {keys[name]: array for name, array in graph.constants.items()}
    with open(path, "wb") as f:  # a file object stops NumPy from appending ".npz"
        np.savez(f, **{STRUCTURE_KEY: np.array(structure)}, **arrays)


def load_graph(path) -> Graph:
    where = f"graph file '{os.fspath(path)}'"
    try:
        if not os.path.isfile(path):
            raise GraphError("no such file")
        if not zipfile.is_zipfile(path):
            raise GraphError("not an .npz archive (corrupt or not a Yuan graph file)")
        with np.load(path, allow_pickle=False) as archive:
            if STRUCTURE_KEY not in archive.files:
                raise GraphError(f"no '{STRUCTURE_KEY}' entry; not a Yuan graph file")
            data = json.loads(str(archive[STRUCTURE_KEY][()]))
            graph = graph_from_dict(data, archive)
    except GraphError as exc:
        raise GraphError(f"cannot load {where}: {exc}") from exc
    except Exception as exc:  # zip/npz/JSON/key errors all mean a bad file
        raise GraphError(f"cannot load {where}: corrupt or not a Yuan graph file "
                         f"({type(exc).__name__}: {exc})") from exc
    try:
        graph.validate()
    except GraphError as exc:
        raise GraphError(f"cannot load {where}: stored graph is inconsistent: {exc}") from exc
    return graph


def graph_from_dict(data: dict, archive) -> Graph:
    if data.get("format") != FORMAT:
        raise GraphError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("version") != VERSION:
        raise GraphError(f"format version {data.get('version')!r} is not supported "
                         f"(this build reads version {VERSION})")
    graph = Graph(data["name"])
    graph.inputs = list(data["inputs"])
    graph.outputs = list(data["outputs"])
    for v in data["values"]:
        quant = QuantParams.from_dict(v["quant"]) if v["quant"] is not None else None
        graph.values[v["name"]] = Value(v["name"], tuple(v["shape"]), v["dtype"], quant)
    for c in data["constants"]:
        graph.constants[c["name"]] = archive[c["key"]]
    graph.nodes = [Node(n["op"], list(n["inputs"]), list(n["outputs"]), dict(n["attrs"]), n["name"])
                   for n in data["nodes"]]
    return graph
