"""Compile time and batch-1 CPU latency of Yuan-compiled models next to ONNX Runtime.

(a) compile time (one run each: compile_graph is slow) of ResNet-18 fp32 and int8 for the
    targets x86 and aarch64 (aarch64 is compile/export only; skipped with a note when
    aarch64-linux-gnu-g++ is missing). The x86 compile time of the other models is shown too.
(b) batch-1 latency, in one process and interleaved (A, B, C, ... A, B, C, ...; medians), of
      yuan fp32   - trace -> compile_graph(x86) -> runtime.load -> Predictor.run
      yuan int8   - quant.quantize_qat -> calibrate (random batches) -> quantize -> trace -> same
      ORT fp32    - export_onnx of the same float graph, ONNX Runtime (all graph optimizations)
      ORT int8    - onnxruntime.quantization.quantize_static (QDQ, U8 activations, per-channel
                    S8 weights, MinMax on the same random batches) of that float ONNX
      ORT yuan-qdq- our own QDQ export of the int8 model (export_onnx), run in ONNX Runtime
    with --threads threads everywhere (TVM_NUM_THREADS, ORT intra_op_num_threads).

    python bench/compile_latency.py [--models resnet18,mobilenet_v2] [--repeats 30] [--threads 1]
                                    [--size 224 | --quick] [--no-aarch64]
"""
import argparse
import os
import shutil
import statistics
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODELS = ("resnet18", "mobilenet_v2")
COMPILE_MODEL = "resnet18"   # part (a)


def _model_kwargs(name, size):
    return dict(input_size=size) if name == "mobilenet_v2" else {}


def _batches(size, count, seed=100):
    import numpy as np
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 3, size, size)).astype(np.float32) for _ in range(count)]


def build_models(name, size, calib):
    """(float model, int8 model, float graph, int8 graph, seconds to quantize)."""
    from yuan import quant
    from yuan.frontend.models import get_model
    from yuan.frontend.random import manual_seed
    from yuan.frontend.tensor import Tensor
    from yuan.frontend.trace import trace
    manual_seed(0)
    model = get_model(name, num_classes=1000, **_model_kwargs(name, size)).eval()
    example = Tensor(_batches(size, 1, seed=0)[0])
    fgraph = trace(model, example)
    t0 = time.perf_counter()
    qat = quant.quantize_qat(model)
    quant.calibrate(qat, _batches(size, calib))
    qmodel = quant.quantize(qat.eval())
    qgraph = trace(qmodel, example)
    return model, qmodel, fgraph, qgraph, time.perf_counter() - t0


def timed_compile(graph, target, path):
    from yuan.compiler.build import compile_graph
    t0 = time.perf_counter()
    compile_graph(graph, target, path)
    return time.perf_counter() - t0


def ort_session(path, threads):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def ort_quantize_static(float_onnx, out_path, size, calib, work):
    """ORT's own PTQ of the float ONNX: pre-processing (shape inference + BN folding), then
    QDQ with uint8 activations and per-channel int8 weights, MinMax calibration."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    src = float_onnx
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process
        pre = os.path.join(work, os.path.basename(float_onnx).replace(".onnx", "_pre.onnx"))
        quant_pre_process(float_onnx, pre)
        src = pre
    except Exception as exc:  # pre-processing is an optimisation only
        print(f"  note: quant_pre_process failed ({type(exc).__name__}: {exc}); quantizing the raw export")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": b} for b in _batches(size, calib)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(src, out_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out_path


def interleaved_rounds(samplers, repeats):
    """samplers: {label: zero-arg callable returning one sample, e.g. a time it measured itself (TVM's
    time_evaluator, CUDA events)}. `repeats` rounds A, B, C, A, B, C, ...: a drift of the machine
    (clocks, heat, neighbours) then falls on every label alike. Returns {label: [samples]}."""
    samples = {k: [] for k in samplers}
    for _ in range(repeats):
        for k, sample in samplers.items():
            samples[k].append(sample())
    return samples


def interleaved(runners, repeats, warmup, settle=False):
    """runners: {label: zero-arg callable}. Warm each up, then time them round-robin; {label: [ms]}.
    settle: run each once untimed right before its timed run. With several threads, the worker threads
    of the engine that ran before still spin for a while and take the cores from the next one (ORT's and
    TVM's pools both spin): without it, 2-thread times measured the neighbours, not the engine."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()

    def wall_ms(fn):
        def sample():
            if settle:
                fn()
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3
        return sample
    return interleaved_rounds({k: wall_ms(fn) for k, fn in runners.items()}, repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated among {', '.join(MODELS)}")
    ap.add_argument("--repeats", type=int, default=30, help="timed runs per backend (interleaved)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=224, help="input height/width")
    ap.add_argument("--quick", action="store_true", help="64x64 inputs instead of 224x224")
    ap.add_argument("--calib", type=int, default=4, help="random calibration batches (batch 1)")
    ap.add_argument("--no-aarch64", action="store_true", help="skip the aarch64 compiles")
    ap.add_argument("--keep", default=None, help="directory to keep the artifacts in (default: temporary)")
    args = ap.parse_args()
    size = 64 if args.quick else args.size
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {bad}; choose among {', '.join(MODELS)}")
    # Before tvm is imported anywhere (compiler.build and runtime import it lazily).
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import onnxruntime as ort
    import tvm

    from yuan import runtime
    from yuan.compiler.onnx import export_onnx
    from yuan.frontend.tensor import Tensor

    work = args.keep or tempfile.mkdtemp(prefix="yuan_bench_")
    os.makedirs(work, exist_ok=True)
    cross = shutil.which("aarch64-linux-gnu-g++")
    print(f"# compile_latency: {size}x{size}, batch 1, threads={args.threads}, repeats={args.repeats} "
          f"(interleaved, medians), tvm {tvm.__version__}, onnxruntime {ort.__version__}, "
          f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}", flush=True)

    compile_rows = []   # (model, precision, target, seconds or note)
    latency = {}        # model -> {label: [ms]}
    checks = {}
    try:
        for name in dict.fromkeys([COMPILE_MODEL] + models):   # part (a) always compiles ResNet-18
            print(f"{name}: building float and int8 models (calibration on {args.calib} random batches) ...",
                  flush=True)
            _, qmodel, fgraph, qgraph, qs = build_models(name, size, args.calib)
            print(f"  quantize_qat + calibrate + quantize + trace: {qs:.1f}s", flush=True)
            paths = {}
            for prec, graph in (("fp32", fgraph), ("int8", qgraph)):
                targets = ["x86"] + (["aarch64"] if name == COMPILE_MODEL and not args.no_aarch64 else [])
                for target in targets:
                    if target == "aarch64" and cross is None:
                        compile_rows.append((name, prec, target, "skipped: aarch64-linux-gnu-g++ not found "
                                             "(apt-get install g++-aarch64-linux-gnu)"))
                        continue
                    path = os.path.join(work, f"{name}_{prec}_{target}.so")
                    print(f"  compiling {name} {prec} for {target} ...", flush=True)
                    s = timed_compile(graph, target, path)
                    print(f"    {s:.1f}s", flush=True)
                    compile_rows.append((name, prec, target, s))
                    if target == "x86":
                        paths[prec] = path
            if name not in models:
                continue
            # ---- latency
            x = _batches(size, 1, seed=7)[0]
            float_onnx = os.path.join(work, f"{name}_fp32.onnx")
            export_onnx(fgraph, float_onnx)
            qdq_onnx = os.path.join(work, f"{name}_yuan_qdq.onnx")
            export_onnx(qgraph, qdq_onnx)
            print("  ORT quantize_static of the float ONNX ...", flush=True)
            ort_int8 = ort_quantize_static(float_onnx, os.path.join(work, f"{name}_ort_int8.onnx"),
                                           size, args.calib, work)
            p32, p8 = runtime.load(paths["fp32"]), runtime.load(paths["int8"])
            s32, s8, sq = (ort_session(p, args.threads) for p in (float_onnx, ort_int8, qdq_onnx))
            feed = {"input": x}
            runners = {
                "yuan fp32": lambda: p32.run(x),
                "ORT fp32": lambda: s32.run(None, feed),
                "yuan int8": lambda: p8.run(x),
                "ORT int8": lambda: s8.run(None, feed),
                "ORT yuan-qdq": lambda: sq.run(None, feed),
            }
            # sanity: we time working models
            y32, r32 = p32.run(x)[fgraph.outputs[0]], s32.run(None, feed)[0]
            y8, ref8 = p8.run(x)[qgraph.outputs[0]], qmodel(Tensor(x)).data
            checks[name] = (float(np.abs(y32 - r32).max() / max(np.abs(r32).max(), 1e-12)),
                            bool(np.array_equal(y8, ref8)))
            print(f"  timing {len(runners)} backends x {args.repeats} (interleaved) ...", flush=True)
            latency[name] = interleaved(runners, args.repeats, args.warmup)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print("## (a) compile time (compile_graph wall clock, one run)")
    print()
    print("| model | precision | target | seconds |")
    print("|---|---|---|---|")
    for name, prec, target, s in compile_rows:
        print(f"| {name} {size}x{size} | {prec} | {target} | {s if isinstance(s, str) else f'{s:.1f}'} |")
    if not latency:
        return
    print()
    plural = "s" if args.threads != 1 else ""
    print(f"## (b) batch-1 latency, {args.threads} thread{plural}, median ms of {args.repeats} interleaved runs")
    print()
    print("ORT int8 = onnxruntime.quantization.quantize_static (QDQ, U8 act / per-channel S8 weights) "
          "of the same float ONNX; ORT yuan-qdq = our QDQ export of the yuan int8 model run in ORT.")
    print("ratio = yuan / ORT time (< 1: yuan faster).")
    print()
    print("| model | yuan fp32 | ORT fp32 | ratio fp32 | yuan int8 | ORT int8 | ratio int8 | ORT yuan-qdq | "
          "yuan int8 speed-up over fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t in latency.items():
        m = {k: statistics.median(v) for k, v in t.items()}
        print(f"| {name} {size}x{size} | {m['yuan fp32']:.2f} | {m['ORT fp32']:.2f} | "
              f"{m['yuan fp32'] / m['ORT fp32']:.2f} | {m['yuan int8']:.2f} | {m['ORT int8']:.2f} | "
              f"{m['yuan int8'] / m['ORT int8']:.2f} | {m['ORT yuan-qdq']:.2f} | "
              f"{m['yuan fp32'] / m['yuan int8']:.2f}x |")
    print()
    print("spread (min..max ms): " + "; ".join(
        f"{name} " + ", ".join(f"{k} {min(v):.1f}..{max(v):.1f}" for k, v in t.items())
        for name, t in latency.items()))
    print("checks: " + "; ".join(
        f"{name}: yuan fp32 vs ORT fp32 rel err {c[0]:.1e}, yuan int8 == integer model bit for bit: {c[1]}"
        for name, c in checks.items()))


if __name__ == "__main__":
    main()
