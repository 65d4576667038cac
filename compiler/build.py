"""Graph -> deployable library: passes, Relax lowering, the target's backend, sidecar metadata.

    compile_graph(graph, target, output_path) -> artifact path

`target` is a name from configs/targets.yaml or a resolved Target (compiler/targets.py). The steps
are the same for every target; what differs lives in the target's backend (compiler/backends/).
Writes the artifacts at `output_path` and a sidecar JSON (`<stem>.json`, see sidecar_path) holding
the input/output names, shapes, dtypes and quantization parameters, the target, the kernels used (and
what each call computes: "kernel_info"), the planned memory ("memory", compiler/memory_plan.py) and
the SHA-256 of each artifact (yuan.runtime.load checks it before loading). Output paths are checked
before any slow work (check_outputs); the files are written in a staging folder inside the destination
folder and moved into place only when all are complete (compiler/output_files.py), so a failed or
interrupted build leaves the previous module and sidecar as they were and no stray files.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import tvm

from yuan.schedules import preferred_layouts

from .backends import backend_for
from .errors import BuildError
from .ir import Graph
from .memory_plan import planned_memory
from .output_files import (OutputPathError, atomic_outputs, check_output_paths, file_sha256,
                           refuse_non_regular_file)
from .passes import eliminate_dead_code, fold_batch_norm, fold_constants, plan_layout, qdq_to_integer
from .targets import ToolchainError, UnknownTargetError, list_targets, resolve_target
from .tuning import check_tuning, lower_with_choices

SIDECAR_VERSION = 2   # 2: "sha256" of each artifact


def sidecar_path(artifact_path: str) -> str:
    """model.so -> model.json (the runtime looks there)."""
    return os.path.splitext(artifact_path)[0] + ".json"


def optimize(graph: Graph, integer: bool = True, layouts: dict | None = None) -> Graph:
    """The pass pipeline run before lowering. `layouts` ({op: "NHWC"}, from
    schedules.preferred_layouts(target)) turns on layout planning for those ops."""
    g = fold_batch_norm(graph)
    g = fold_constants(g)
    if integer:
        g = qdq_to_integer(g)
        g = fold_constants(g)
    channels_last = {op for op, layout in (layouts or {}).items() if layout == "NHWC"}
    if channels_last:
        g = fold_constants(plan_layout(g, channels_last))   # constant operands transposed once, here
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


def metadata(graph: Graph, optimized: Graph, target, kernels, compile_s) -> dict:
    return {
        "format": "yuan-tvm", "version": SIDECAR_VERSION,
        "model": graph.name,
        "target": target.name,
        "tvm_target": target.config,
        "features": sorted(target.features),
        "tvm_version": tvm.__version__,
        "entry": "main",
        "inputs": _io_json(optimized, optimized.inputs),
        "outputs": _io_json(optimized, optimized.outputs),
        "ops": sorted({n.op for n in optimized.nodes}),
        "kernels": kernels,
        "compile_seconds": round(compile_s, 3),
    }


def prepare_target(target, output_path: str = "model.so"):
    """Resolve `target` and check its toolchain, so that a missing cross compiler or nvcc is reported
    (ToolchainError, naming what to install) before any slow work. Returns the resolved Target."""
    target = resolve_target(target)
    backend = backend_for(target)
    backend.prepare(target, backend.artifact_paths(target, output_path))
    return target


def planned_outputs(target, output_path: str) -> tuple[dict, str]:
    """({kind: artifact path}, sidecar path): the files compile_graph writes for `output_path`."""
    target = resolve_target(target)
    paths = backend_for(target).artifact_paths(target, output_path)
    return paths, sidecar_path(_main_artifact(paths))


def _main_artifact(paths: dict) -> str:
    """The file runtime.load takes (the .so), or the static archive where that is all (ios-arm64)."""
    return paths.get("so") or paths["a"]


def check_outputs(target, output_path: str, inputs=()) -> None:
    """Refuse, before any slow work, an `output_path` whose artifacts or sidecar cannot or must not be
    written: a folder, one of `inputs` (the model file, ...), a device, an unwritable or missing folder
    that cannot be created, a name too long. Raises OutputPathError naming the path."""
    output_path = os.fspath(output_path)
    if not output_path:
        raise OutputPathError("the output path is empty")
    if output_path.endswith((os.sep, os.altsep or os.sep)):
        raise OutputPathError(f"output '{output_path}' is a folder; give a file path inside it "
                              f"(e.g. '{os.path.join(output_path, 'model.so')}')")
    # A folder or a device such as /dev/null is refused as such, although the artifact would be its
    # name with .so added, beside it.
    refuse_non_regular_file(output_path)
    paths, sidecar = planned_outputs(target, output_path)
    if sidecar in paths.values():
        raise OutputPathError(f"output '{output_path}' would be overwritten by its own metadata file "
                              f"'{sidecar}'; use a .so (or .a) path")
    check_output_paths(list(paths.values()) + [sidecar], inputs)


def compile_graph(graph: Graph, target, output_path: str, *, integer: bool = True,
                  verbose: bool = False, tune: str = "cached") -> str:
    """Compile `graph` for `target` (a name of configs/targets.yaml or a resolved Target) into
    `output_path`. Returns the main artifact's path. Raises UnknownTargetError, ToolchainError,
    OutputPathError (before any slow work) or BuildError.

    Artifacts per target (the sidecar NAME.json lists them under "artifacts", their SHA-256 under
    "sha256"): a shared library NAME.so (x86*, aarch64*, cuda); android-arm64 writes NAME.so
    (dlopen-able) AND NAME.a (system-lib static archive to link into an app with the TVM runtime);
    ios-arm64 writes only NAME.a (the returned path ends in .a); cuda also writes NAME.cu (the
    generated CUDA source).

    `tune` (compiler/tuning.py): "cached" uses per-shape kernel choices measured before for this target
    where the tuning cache has them, "tune" measures the missing ones first, "retune" all of this graph's,
    "rule" ignores the cache; the sidecar's "kernel_choice" and kernel_info say which applied."""
    target = resolve_target(target)             # UnknownTargetError lists the known ones
    check_outputs(target, output_path)          # OutputPathError before any slow work
    backend = backend_for(target)
    paths, sidecar = planned_outputs(target, output_path)
    linker = backend.prepare(target, paths)     # ToolchainError before any slow work
    check_tuning(target, tune)                  # --tune that cannot measure or save: before slow work too
    t0 = time.perf_counter()
    optimized = optimize(graph, integer=integer, layouts=preferred_layouts(target))
    mod, lowered, choice = lower_with_choices(optimized, target, tune)
    mod, light_ops = backend.schedule_light_ops(mod, target)
    memory = planned_memory(mod, target)        # weights, activations after planning, peak
    built = backend.build(mod, target, paths)
    # The sidecar is moved into place last: a run stopped between the moves leaves the old sidecar,
    # whose hash no longer matches, so the runtime refuses the pair instead of loading a mismatch.
    with atomic_outputs(list(paths.values()) + [sidecar]) as staged:
        staged_paths, staged_sidecar = dict(zip(paths, staged)), staged[-1]
        # the backend's intermediate files (static-archive objects) go with the staging folder
        scratch = os.path.join(os.path.dirname(staged_sidecar), "scratch")
        os.mkdir(scratch)
        backend.write(target, built, staged_paths, linker, scratch)
        compile_s = time.perf_counter() - t0
        meta = metadata(graph, optimized, target, lowered["kernels"], compile_s)
        meta["kernel_info"] = lowered["kernel_info"]   # symbol -> node, op, shapes, macs (yuan profile)
        meta["memory"] = memory
        meta["kernel_choice"] = choice   # rule or measured per-shape choices (--tune)
        meta["artifacts"] = {k: os.path.basename(v) for k, v in paths.items()}
        meta["sha256"] = {k: file_sha256(p) for k, p in staged_paths.items()}
        if light_ops is not None:   # what the backend's light-op scheduling did (and could not do)
            meta["light_ops"] = light_ops
        if "a" in paths:
            meta["system_lib"] = {"archive": os.path.basename(paths["a"]), "prefix": "",
                                  "link": "whole-archive, with the TVM runtime; load with the system library"}
        with open(staged_sidecar, "w") as f:
            json.dump(meta, f, indent=1)
    if verbose:
        print(f"compiled {graph.name} for {target.name} in {compile_s:.1f}s -> {', '.join(paths.values())}")
    return _main_artifact(paths)


__all__ = ["compile_graph", "prepare_target", "check_outputs", "planned_outputs", "optimize", "sidecar_path",
           "BuildError", "OutputPathError", "UnknownTargetError", "ToolchainError", "list_targets"]
