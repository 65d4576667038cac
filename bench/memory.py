"""Peak resident memory of Yuan-compiled models next to ONNX Runtime, batch 1.

    python bench/memory.py [--models resnet18,mobilenet_v2] [--size 224] [--runs 10] [--keep DIR]

Builds, per model, the float and int8 Yuan modules (compile_graph, x86) and the ONNX Runtime models
(the float ONNX export, and ORT's own quantize_static of it: QDQ, per-channel int8 weights), as
bench/compile_latency.py does. Then every (model, precision, engine) is measured in its own fresh
Python process, one after the other, so no number includes another's allocations: the process
imports its runtime, notes its resident memory (VmRSS), loads the model, runs it --runs times on
one input and reports VmHWM (the kernel's peak resident set of the process, reset after the imports
through /proc/self/clear_refs). The table shows the peak and the growth over the process after
imports (what the model itself costs). For Yuan it also splits what stays resident after the runs:
the pages of the library file (code, and the weights the kernels read in place, see
compiler/library_weights.py) and the growth of anonymous memory (activations, outputs, the VM's own
allocations), next to the planned memory from the sidecar (weights; activations + outputs after
Relax's static planning). Both engines use one thread.
With --keep, artifacts already in DIR are reused.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


MODELS = ("resnet18", "mobilenet_v2")


def measure(engine, path, size, runs):
    """In the child process: resident memory in KiB after the imports ("base", "base_anon"), the peak
    while loading and running ("peak"), and after the runs: anonymous memory ("anon") and the
    pages mapped from the model file ("file")."""
    import numpy as np

    from yuan.runtime.resident import anonymous_kib, file_resident_kib, peak_kib, reset_peak, resident_kib
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    if engine == "yuan":
        import tvm  # noqa: F401  (imported before the baseline, like onnxruntime below)

        from yuan import runtime
        base, base_anon = resident_kib(), anonymous_kib()
        reset_peak()   # the imports' own transient peak is not the model's
        predictor = runtime.load(path)
        for _ in range(runs):
            predictor.run(x)
    else:
        import onnxruntime  # noqa: F401
        from compile_latency import ort_session
        base, base_anon = resident_kib(), anonymous_kib()
        reset_peak()
        session = ort_session(path, 1)
        feed = {session.get_inputs()[0].name: x}
        for _ in range(runs):
            session.run(None, feed)
    return {"base": base, "base_anon": base_anon, "peak": peak_kib(), "anon": anonymous_kib(),
            "file": file_resident_kib(path)}


def _child(engine, path, size, runs):
    env = dict(os.environ, TVM_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--measure", engine, path, "--size", str(size),
                          "--runs", str(runs)], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"measuring {engine} {path} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def build(name, size, work, calib=4):
    """{precision: (yuan .so, ORT .onnx)}, reusing files already in `work`."""
    paths = {p: (os.path.join(work, f"{name}_{p}.so"), os.path.join(work, f"{name}_{p}_ort.onnx"))
             for p in ("fp32", "int8")}
    if all(os.path.exists(f) for pair in paths.values() for f in pair):
        return paths
    from compile_latency import build_models, ort_quantize_static

    from yuan.compiler.build import compile_graph
    from yuan.compiler.onnx import export_onnx
    print(f"{name}: building fp32 and int8 modules and ONNX models ...", flush=True)
    _, _, fgraph, qgraph, _ = build_models(name, size, calib)
    compile_graph(fgraph, "x86", paths["fp32"][0])
    compile_graph(qgraph, "x86", paths["int8"][0])
    export_onnx(fgraph, paths["fp32"][1])
    ort_quantize_static(paths["fp32"][1], paths["int8"][1], size, calib, work)
    return paths


def _mib(kib, width):
    return f"{kib / 1024:{width}.1f}"


def _mib_or_dash(nbytes, width):
    return f"{nbytes / 2**20:{width}.1f}" if nbytes is not None else f"{'-':>{width}}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--keep", default=None, help="folder for the artifacts (reused when present)")
    ap.add_argument("--measure", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, args.size, args.runs)))
        return
    work = args.keep or tempfile.mkdtemp(prefix="yuan_memory_")
    os.makedirs(work, exist_ok=True)
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        for prec, (so, onnx_path) in build(name, args.size, work).items():
            with open(os.path.splitext(so)[0] + ".json") as f:
                planned = json.load(f).get("memory", {})
            yuan, ort = _child("yuan", so, args.size, args.runs), _child("ort", onnx_path, args.size, args.runs)
            rows.append((name, prec, planned, yuan, ort))
    print(f"\n# resident memory, batch 1, {args.size}x{args.size}, {args.runs} runs, 1 thread, each in a fresh "
          f"process (MiB; growth = peak - RSS after importing the runtime; lib = pages of the .so file, "
          f"anon = growth of anonymous memory, both after the runs)")
    print(f"{'model':<14}{'prec':<6}{'planned: weights':>17}{'act+out':>9}{'yuan: growth':>14}{'lib':>7}"
          f"{'anon':>7}{'ORT: growth':>13}{'yuan/ORT':>10}")
    for name, prec, planned, y, o in rows:
        gy, go = y["peak"] - y["base"], o["peak"] - o["base"]
        weights = _mib_or_dash(planned.get("weights_bytes"), 17)
        act = planned["activations_bytes"] + planned["outputs_bytes"] if "peak_bytes" in planned else None
        print(f"{name:<14}{prec:<6}{weights}{_mib_or_dash(act, 9)}{_mib(gy, 14)}{_mib(y['file'], 7)}"
              f"{_mib(y['anon'] - y['base_anon'], 7)}{_mib(go, 13)}{gy / go if go else float('nan'):10.2f}")


if __name__ == "__main__":
    main()
