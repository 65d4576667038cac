"""Graph -> deployable library: passes, Relax lowering, tvm.compile, export_library.

    compile_graph(graph, target_name, output_path) -> artifact path

Writes the library at `output_path` and a sidecar JSON (`<stem>.json`, see sidecar_path)
holding the input/output names, shapes, dtypes and quantization parameters, the target and
the kernels used. Nothing else is written outside a temporary directory that is removed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import numpy as np

from .ir import Graph
from .passes import eliminate_dead_code, fold_batch_norm, fold_constants
from .targets import ToolchainError, UnknownTargetError, get_target, list_targets

SIDECAR_VERSION = 1


class BuildError(RuntimeError):
    """Compiling or exporting the model failed."""


def sidecar_path(artifact_path: str) -> str:
    """model.so -> model.json (the runtime looks there)."""
    return os.path.splitext(artifact_path)[0] + ".json"


def _qdq_to_integer():
    try:
        from .passes.qdq_to_integer import qdq_to_integer
    except ImportError:
        return None
    return qdq_to_integer


def optimize(graph: Graph, integer: bool = True) -> Graph:
    """The pass pipeline run before lowering."""
    g = fold_batch_norm(graph)
    g = fold_constants(g)
    to_int = _qdq_to_integer() if integer else None
    if to_int is not None:
        g = to_int(g)
        g = fold_constants(g)
    return eliminate_dead_code(g)


def _quant_json(q):
    if q is None:
        return None
    return {"scale": np.asarray(q.scale).reshape(-1).tolist(),
            "zero_point": np.asarray(q.zero_point).reshape(-1).tolist(),
            "axis": q.axis, "bits": q.bits, "signed": q.signed, "narrow_range": q.narrow_range}


def _edge_quant(graph: Graph, name: str):
    """Quantization at a graph edge: the value's own params, else those of the quantize that
    reads an input / the dequantize that writes an output."""
    v = graph.values[name]
    if v.quant is not None:
        return v.quant
    for node in graph.nodes:
        if node.op == "quantize" and node.inputs and node.inputs[0] == name:
            return graph.values[node.outputs[0]].quant
        if node.op == "dequantize" and name in node.outputs:
            return graph.values[node.inputs[0]].quant
    return None


def _io_json(graph: Graph, names):
    return [{"name": n, "shape": list(graph.values[n].shape), "dtype": graph.values[n].dtype,
             "quant": _quant_json(_edge_quant(graph, n))} for n in names]


def metadata(graph: Graph, optimized: Graph, target_info, kernels, compile_s) -> dict:
    import tvm
    return {
        "format": "yuan-tvm", "version": SIDECAR_VERSION,
        "model": graph.name,
        "target": target_info.name,
        "tvm_target": target_info.target,
        "tvm_version": tvm.__version__,
        "entry": "main",
        "inputs": _io_json(optimized, optimized.inputs),
        "outputs": _io_json(optimized, optimized.outputs),
        "ops": sorted({n.op for n in optimized.nodes}),
        "kernels": kernels,
        "compile_seconds": round(compile_s, 3),
    }


def compile_graph(graph: Graph, target_name: str, output_path: str, *, integer: bool = True,
                  verbose: bool = False) -> str:
    """Compile `graph` for `target_name` (configs/targets.yaml) into `output_path`.
    Returns the artifact path. Raises UnknownTargetError, ToolchainError or BuildError."""
    import tvm
    from .relax import lower_graph

    info = get_target(target_name)             # UnknownTargetError lists the known ones
    fcompile = None
    argv = info.compiler_command()             # ToolchainError before any slow work
    if argv is not None:
        fcompile = tvm.support.cc.cross_compiler(" ".join(argv))
    if info.kind == "cuda":
        os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
    t0 = time.perf_counter()
    optimized = optimize(graph, integer=integer)
    target = info.tvm_target()
    mod, lowered = lower_graph(optimized, target)
    try:
        with target:
            executable = tvm.compile(mod, target)
    except Exception as exc:  # TVM errors are long; keep the last line
        msg = str(exc).strip().splitlines()
        raise BuildError(f"tvm.compile failed for target '{target_name}': {msg[-1] if msg else exc}") from exc
    output_path = os.path.abspath(output_path)
    os.makedirs(os.path.dirname(output_path) or ".", exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="yuan_build_")
    try:
        tmp_lib = os.path.join(tmp, "model" + (os.path.splitext(output_path)[1] or ".so"))
        try:
            if fcompile is not None:
                executable.export_library(tmp_lib, fcompile=fcompile)
            else:
                executable.export_library(tmp_lib)
        except Exception as exc:
            msg = str(exc).strip().splitlines()
            raise BuildError(f"export_library failed for target '{target_name}': "
                             f"{msg[-1] if msg else exc}") from exc
        compile_s = time.perf_counter() - t0
        meta = metadata(graph, optimized, info, lowered["kernels"], compile_s)
        tmp_json = os.path.join(tmp, "model.json")
        with open(tmp_json, "w") as f:
            json.dump(meta, f, indent=1)
        shutil.move(tmp_lib, output_path)
        shutil.move(tmp_json, sidecar_path(output_path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        print(f"compiled {graph.name} for {target_name} in {compile_s:.1f}s -> {output_path}")
    return output_path


__all__ = ["compile_graph", "optimize", "sidecar_path", "BuildError", "UnknownTargetError",
           "ToolchainError", "list_targets"]
