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
from .passes import eliminate_dead_code, fold_batch_norm, fold_constants, plan_layout, qdq_to_integer
from .tvm_errors import error_line
from .targets import ToolchainError, UnknownTargetError, get_target, list_targets

SIDECAR_VERSION = 1


class BuildError(RuntimeError):
    """Compiling or exporting the model failed."""


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


def _artifact_paths(info, output_path: str) -> dict:
    """{'so': path, 'a': path} for what the target writes. A target whose artifact is a static
    archive (ios-arm64) always writes NAME.a, whatever extension output_path has."""
    stem, ext = os.path.splitext(os.path.abspath(output_path))
    paths = {}
    if info.artifact == "a":
        paths["a"] = stem + ".a"
    else:
        paths["so"] = stem + (ext or ".so")
        if info.static_lib:
            paths["a"] = stem + ".a"
    return paths


def _write_static_lib(executable, archiver: list, dest: str, tmp: str) -> None:
    """System-lib executable -> .tar (objects + the VM bytecode blob) -> static archive."""
    import subprocess
    import tarfile
    tar = os.path.join(tmp, "syslib.tar")
    executable.export_library(tar)
    objdir = os.path.join(tmp, "syslib_objs")
    os.makedirs(objdir)
    with tarfile.open(tar) as tf:
        tf.extractall(objdir)
    objs = sorted(os.path.join(objdir, f) for f in os.listdir(objdir) if f.endswith(".o"))
    if not objs:
        raise BuildError("system-lib export produced no object files")
    proc = subprocess.run(archiver + ["rcs", dest] + objs, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{archiver[0]} failed: {proc.stderr.strip()[-500:]}")


def compile_graph(graph: Graph, target_name: str, output_path: str, *, integer: bool = True,
                  verbose: bool = False) -> str:
    """Compile `graph` for `target_name` (configs/targets.yaml) into `output_path`.
    Returns the artifact path. Raises UnknownTargetError, ToolchainError or BuildError.

    Artifacts per target: a shared library (x86, aarch64*, cuda: NAME.so); android-arm64 writes
    NAME.so (dlopen-able, linked by the NDK or clang-14 + lld) AND NAME.a (system-lib static archive
    for linking into an app with the TVM runtime); ios-arm64 writes only NAME.a (system-lib, Mach-O
    arm64 objects; the returned path ends in .a); cuda also writes NAME.cu (the generated CUDA source,
for inspection). The sidecar NAME.json lists them under "artifacts".
    cuda: see compiler/cuda_support.py (nvcc, stub driver for machines without a GPU)."""
    import tvm
    from schedules import preferred_layouts
    from .relax import lower_graph

    info = get_target(target_name)             # UnknownTargetError lists the known ones
    fcompile = None
    argv = info.compiler_command()             # ToolchainError before any slow work
    archiver = info.archiver_command()
    paths = _artifact_paths(info, output_path)
    if argv is not None:
        opts = list(argv[1:])
        if "so" in paths and "android" in str(info.target.get("mtriple", "")):
            opts.append(f"-Wl,-soname,{os.path.basename(paths['so'])}")
        fcompile = tvm.support.cc.cross_compiler(argv[0], options=opts)
    if info.kind == "cuda":
        from .cuda_support import prepare_cuda
        prepare_cuda(info)                     # ToolchainError when nvcc / the CUDA runtime is unusable
    for p in paths.values():
        if os.path.abspath(p) == os.path.abspath(sidecar_path(paths.get("so") or paths["a"])):
            raise BuildError(f"output '{output_path}' would be overwritten by its own metadata file "
                             f"'{sidecar_path(p)}'; use a .so (or .a) path")
    t0 = time.perf_counter()
    target = info.tvm_target()
    optimized = optimize(graph, integer=integer, layouts=preferred_layouts(target))
    mod, lowered = lower_graph(optimized, target)
    light_ops = None
    if info.kind == "cuda":
        from .cuda_support import schedule_for_gpu
        mod = schedule_for_gpu(mod, target)
    else:  # the CPU pipeline would leave the light ops as naive loops: fuse and schedule them
        from .relax.cpu_schedule import schedule_cpu_with_report
        mod, report = schedule_cpu_with_report(mod, target)
        light_ops = {"scheduled": len(report["scheduled"]), "views": len(report["views"]),
                     "left_unscheduled": dict(report["failed"]), "note": report["error"]}
    executable = static_exec = None
    try:
        with target:
            if "so" in paths:
                executable = tvm.compile(mod, target)
            if "a" in paths:
                static_exec = tvm.relax.build(mod, target, system_lib=True)
    except Exception as exc:  # TVM errors are long; keep the last line
        raise BuildError(f"tvm.compile failed for target '{target_name}': {error_line(exc)}") from exc
    for p in paths.values():
        os.makedirs(os.path.dirname(p) or ".", exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="yuan_build_")
    try:
        tmp_paths = {}
        if executable is not None:
            tmp_paths["so"] = os.path.join(tmp, "lib" + os.path.splitext(paths["so"])[1])
            try:
                if fcompile is not None:
                    executable.export_library(tmp_paths["so"], fcompile=fcompile)
                else:
                    executable.export_library(tmp_paths["so"])
            except Exception as exc:
                raise BuildError(f"export_library failed for target '{target_name}': "
                                 f"{error_line(exc)}") from exc
        if static_exec is not None:
            tmp_paths["a"] = os.path.join(tmp, "model.a")
            try:
                _write_static_lib(static_exec, archiver, tmp_paths["a"], tmp)
            except BuildError:
                raise
            except Exception as exc:
                raise BuildError(f"static library export failed for target '{target_name}': "
                                 f"{error_line(exc)}") from exc
        if info.kind == "cuda" and executable is not None:
            from .cuda_support import cuda_source
            src = cuda_source(executable)      # the loaded .so keeps only the fatbin: keep the source
            if src:
                paths["cu"] = os.path.splitext(paths["so"])[0] + ".cu"
                tmp_paths["cu"] = os.path.join(tmp, "model.cu")
                with open(tmp_paths["cu"], "w") as f:
                    f.write(src)
        compile_s = time.perf_counter() - t0
        meta = metadata(graph, optimized, info, lowered["kernels"], compile_s)
        meta["artifacts"] = {k: os.path.basename(v) for k, v in paths.items()}
        if light_ops is not None:   # what compiler/relax/cpu_schedule.py did (and could not do)
            meta["light_ops"] = light_ops
        if "a" in paths:
            meta["system_lib"] = {"archive": os.path.basename(paths["a"]), "prefix": "",
                                  "link": "whole-archive, with the TVM runtime; load with the system library"}
        tmp_json = os.path.join(tmp, "sidecar.json")
        with open(tmp_json, "w") as f:
            json.dump(meta, f, indent=1)
        for k, p in paths.items():
            shutil.move(tmp_paths[k], p)
        main = paths.get("so") or paths["a"]
        shutil.move(tmp_json, sidecar_path(main))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        print(f"compiled {graph.name} for {target_name} in {compile_s:.1f}s -> "
              f"{', '.join(paths.values())}")
    return main


__all__ = ["compile_graph", "optimize", "sidecar_path", "BuildError", "UnknownTargetError",
           "ToolchainError", "list_targets"]
