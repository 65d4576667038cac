"""`yuan.compile`: the one-call compile of a Graph or an ONNX model for a target."""
from __future__ import annotations

import os

from yuan.compiler.build import compile_graph
from yuan.compiler.ir import Graph
from yuan.compiler.onnx import import_onnx


def compile(model, target="x86", output="model.so", *, input_shapes=None, verbose=False, tune="cached") -> str:
    """Compile `model` (a Graph, an onnx.ModelProto or a path to an .onnx file) for `target`
    (a name from `yuan.list_targets()` or a resolved `yuan.resolve_target(...)`) into `output`.
    `tune`: "cached" (measured kernel choices where cached, else the rule), "tune", "retune" or "rule"
    (compiler/tuning.py). Returns the path of the main artifact; its sidecar JSON sits beside it."""
    graph = model if isinstance(model, Graph) else import_onnx(
        os.fspath(model) if isinstance(model, os.PathLike) else model, input_shapes)
    return compile_graph(graph, target, output, verbose=verbose, tune=tune)
