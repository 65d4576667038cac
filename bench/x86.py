"""x86 batch-1 latency: Yuan fp32 / int8 next to ONNX Runtime fp32 / int8, at 1 and 2 threads, in one process.

For each model (224x224, batch 1; float weights random, int8 through quantize_qat + calibration, as
bench/compile_latency.py builds them): Yuan fp32 and int8 compiled for --target, ONNX Runtime on the same
float ONNX and on ORT's quantize_static of it (QDQ, U8 activations, per-channel S8 weights). Timing: the
thread counts take turns in blocks of --block rounds, and inside a block the four engines run round-robin
(A, B, C, D, A, B, ...), each timed run right after an untimed one of the same engine (so no other
engine's spinning worker threads share the cores); medians over all rounds. Then ratio tables (Yuan / ORT, int8 / fp32, 2-thread /
1-thread speed-up) and, for ResNet-18, the per-conv time and GOPS of Yuan's kernels (runtime.profiler, 1
thread) with the kernel each conv got. The machine may be shared: compare ratios from one run only.

    python bench/x86.py [--models resnet18,mobilenet_v2,shufflenet_v2,resnet50] [--threads 1,2]
                        [--target x86 | x86-avx2 | x86-avx512] [--repeats 20] [--no-ort]

With --target x86-avx2 ONNX Runtime still uses this machine's best ISA (MLAS picks by CPUID; VNNI here):
the Yuan/ORT ratios are then not like for like; the int8/fp32 ratio of Yuan is.
"""
import argparse
import os
import resource
import shutil
import statistics
import tempfile

from compile_latency import _batches, build_models, interleaved, ort_quantize_static, ort_session, timed_compile

MODELS = ("resnet18", "mobilenet_v2", "shufflenet_v2", "resnet50")
DEFAULT_MODELS = "resnet18,mobilenet_v2,shufflenet_v2"
CONV_OPS = ("conv2d", "qconv2d")
ENGINES = ("yuan fp32", "yuan int8", "ORT fp32", "ORT int8")


def prepare_model(name, args, work):
    """Compile Yuan fp32 / int8 for args.target and export the ORT models: {engine: (kind, handle)} plus
    checks (fp32 rel. error vs ORT, int8 bit-exact vs the integer model)."""
    import numpy as np
    from yuan import runtime
    from yuan.compiler.onnx import export_onnx
    from yuan.frontend.tensor import Tensor

    print(f"{name}: building float and int8 models ...", flush=True)
    _, qmodel, fgraph, qgraph, _ = build_models(name, args.size, args.calib)
    preds = {}
    for prec, graph in (("fp32", fgraph), ("int8", qgraph)):
        path = os.path.join(work, f"{name}_{prec}.so")
        seconds = timed_compile(graph, args.target, path)
        print(f"  compiled {prec} for {args.target}: {seconds:.1f}s", flush=True)
        preds[prec] = runtime.load(path)
    x = _batches(args.size, 1, seed=7)[0]
    y8 = preds["int8"].run(x)[qgraph.outputs[0]]
    checks = {"int8 bit-exact": bool(np.array_equal(y8, qmodel(Tensor(x)).data))}
    onnx = {}
    if not args.no_ort:
        onnx["fp32"] = os.path.join(work, f"{name}_fp32.onnx")
        export_onnx(fgraph, onnx["fp32"])
        onnx["int8"] = ort_quantize_static(onnx["fp32"], os.path.join(work, f"{name}_ort_int8.onnx"),
                                           args.size, args.calib, work)
        ref = ort_session(onnx["fp32"], 1).run(None, {"input": x})[0]
        y32 = preds["fp32"].run(x)[fgraph.outputs[0]]
        checks["fp32 rel err vs ORT"] = float(np.abs(y32 - ref).max() / max(np.abs(ref).max(), 1e-12))
    return x, preds, onnx, checks


def time_engines(x, preds, onnx, threads, repeats, block, warmup):
    """{(engine, threads): [ms]}: thread counts in alternating blocks, engines round-robin inside."""
    from yuan.runtime.threads import set_num_threads
    feed = {"input": x}
    sessions = {(prec, t): ort_session(path, t) for prec, path in onnx.items() for t in threads}
    times = {}
    done = 0
    while done < repeats:
        n = min(block, repeats - done)
        for t in threads:
            got = set_num_threads(t)
            assert got == t, f"TVM thread pool runs {got} threads, asked for {t}"
            runners = {f"yuan {prec}": (lambda p=p: p.run(x)) for prec, p in preds.items()}
            runners.update({f"ORT {prec}": (lambda s=sessions[prec, t]: s.run(None, feed)) for prec in onnx})
            for engine, ms in interleaved(runners, n, warmup if done == 0 else 1, settle=True).items():
                times.setdefault((engine, t), []).extend(ms)
        done += n
    return times


def conv_table(pred, x, repeat):
    """Per-conv rows of one Yuan module at the current thread count: (node, kernel, shapes, us, GOPS)."""
    from yuan.runtime.profiler import profile
    prof = profile(pred, x, repeat=repeat)
    return [(op.info.get("node", "-"), op.name, op.shapes, op.seconds * 1e6, op.gops)
            for op in prof.ops if op.info.get("op") in CONV_OPS]


def print_latency(latency, threads, size, repeats):
    med = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in latency.items()}
    engines = [e for e in ENGINES if any((e, threads[0]) in m for m in med.values())]
    print(f"## batch-1 latency, {size}x{size}, median ms of {repeats} interleaved runs")
    print()
    print("| model | threads | " + " | ".join(engines) + " |")
    print("|---|---|" + "---|" * len(engines))
    for name, m in med.items():
        for t in threads:
            print(f"| {name} | {t} | " + " | ".join(f"{m[e, t]:.2f}" for e in engines) + " |")
    print()
    print("ratios (time / time: < 1 means the first is faster)")
    print()
    cols = [("int8/fp32 yuan", "yuan int8", "yuan fp32")]
    if "ORT fp32" in engines:
        cols = [("yuan/ORT fp32", "yuan fp32", "ORT fp32"), ("yuan/ORT int8", "yuan int8", "ORT int8")] + cols + [
            ("int8/fp32 ORT", "ORT int8", "ORT fp32")]
    print("| model | threads | " + " | ".join(c[0] for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for name, m in med.items():
        for t in threads:
            print(f"| {name} | {t} | " + " | ".join(f"{m[a, t] / m[b, t]:.2f}" for _, a, b in cols) + " |")
    if len(threads) > 1:
        t1, t2 = threads[0], threads[-1]
        print()
        print(f"speed-up = {t1}-thread time / {t2}-thread time")
        print()
        print("| model | " + " | ".join(f"{e} {t2}t/{t1}t speed-up" for e in engines) + " |")
        print("|---|" + "---|" * len(engines))
        for name, m in med.items():
            print(f"| {name} | " + " | ".join(f"{m[e, t1] / m[e, t2]:.2f}x" for e in engines) + " |")
    print()
    print("spread (min..max ms): " + "; ".join(
        f"{name} " + ", ".join(f"{e}@{t} {min(v):.1f}..{max(v):.1f}" for (e, t), v in tl.items())
        for name, tl in latency.items()))


def print_convs(rows_by_prec, target):
    print(f"## ResNet-18 per-conv time, 1 thread, target {target} (runtime.profiler, median of replays)")
    for prec, rows in rows_by_prec.items():
        print()
        print(f"{prec}: {sum(r[3] for r in rows) / 1e3:.2f} ms in {len(rows)} convs")
        print()
        print("| node | kernel | shapes (in -> out) | us | GOPS |")
        print("|---|---|---|---|---|")
        for node, kernel, shapes, us, gops in rows:
            print(f"| {node} | {kernel} | {shapes} | {us:.0f} | {gops:.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated among {', '.join(MODELS)}")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--target", default="x86", help="Yuan target (x86 = this CPU; x86-avx2, x86-avx512, ...)")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per engine and thread count")
    ap.add_argument("--block", type=int, default=5, help="rounds per thread-count block")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--size", type=int, default=224, help="input height/width")
    ap.add_argument("--calib", type=int, default=4, help="random calibration batches (batch 1)")
    ap.add_argument("--profile-repeat", type=int, default=10, help="replays per op in the ResNet-18 conv table")
    ap.add_argument("--no-ort", action="store_true", help="time Yuan only")
    ap.add_argument("--keep", default=None, help="directory to keep the artifacts in (default: temporary)")
    args = ap.parse_args()
    by_plain = {m.replace("_", ""): m for m in MODELS}   # mobilenetv2 = mobilenet_v2
    models = [by_plain.get(m.strip().replace("_", ""), m.strip()) for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {bad}; choose among {', '.join(MODELS)}")
    threads = sorted({int(t) for t in args.threads.split(",")})
    if threads[0] < 1:
        ap.error("--threads: counts must be at least 1")
    # Before tvm is imported: TVM's pool starts at this size and can only be lowered afterwards.
    os.environ["TVM_NUM_THREADS"] = str(threads[-1])

    import onnxruntime as ort
    import tvm
    from yuan.compiler.targets import resolve_target
    from yuan.runtime.threads import set_num_threads

    target = resolve_target(args.target)
    work = args.keep or tempfile.mkdtemp(prefix="yuan_x86_bench_")
    os.makedirs(work, exist_ok=True)
    print(f"# bench/x86.py: target {args.target} ({target.tvm.attrs.get('mcpu', '')}; features "
          f"{','.join(sorted(target.features))}), threads {threads}, {args.repeats} runs each, tvm {tvm.__version__}, "
          f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}", flush=True)
    latency, checks, convs = {}, {}, {}
    try:
        for name in models:
            x, preds, onnx, checks[name] = prepare_model(name, args, work)
            print(f"  timing {len(preds) + len(onnx)} engines x {len(threads)} thread counts x {args.repeats} ...",
                  flush=True)
            latency[name] = time_engines(x, preds, onnx, threads, args.repeats, args.block, args.warmup)
            if name == "resnet18":
                set_num_threads(1)
                convs = {prec: conv_table(p, x, args.profile_repeat) for prec, p in preds.items()}
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_latency(latency, threads, args.size, args.repeats)
    if convs:
        print()
        print_convs(convs, args.target)
    print()
    print("checks: " + "; ".join(f"{name}: " + ", ".join(f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}"
                                                         for k, v in c.items()) for name, c in checks.items()))
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
          f"(every model and engine together; bench/memory.py measures one per process)")


if __name__ == "__main__":
    main()
