"""Latency of compiled modules side by side: A, B, A, B, ... in one process, medians, ratios to the first.

    python bench/ab_modules.py old/resnet18_int8.so new/resnet18_int8.so [--repeats 30] [--threads 1]
                               [--onnx resnet18_fp32.onnx]

Every module gets the same random input (shape and dtype from its sidecar); their outputs are
compared too (exact equality is reported for integer outputs). Use it to show that a change makes no
module slower: build the same graph before and after the change and pass both libraries. With --onnx, an
ONNX Runtime session of that model (all graph optimizations, same threads) joins the rounds as a last entry.
"""
import argparse
import os
import statistics


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="+", help="compiled .so files (with their .json sidecars)")
    ap.add_argument("--repeats", type=int, default=30, help="rounds; each round runs every module once")
    ap.add_argument("--inner", type=int, default=5, help="runs per module per round (their mean is one sample)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--onnx", default=None, help="also time this ONNX model in ONNX Runtime (CPU provider)")
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import numpy as np
    from compile_latency import interleaved

    from yuan import runtime

    preds = [runtime.load(path) for path in args.modules]
    spec = preds[0].metadata["inputs"][0]
    rng = np.random.default_rng(0)
    if spec["dtype"].startswith("float"):
        x = rng.standard_normal(spec["shape"]).astype(spec["dtype"])
    else:
        info = np.iinfo(spec["dtype"])
        x = rng.integers(info.min, info.max + 1, spec["shape"]).astype(spec["dtype"])
    calls = [lambda p=p: next(iter(p.run(x).values())) for p in preds]
    names = list(args.modules)
    if args.onnx:
        calls.append(_ort_call(args.onnx, args.threads, x))
        names.append(f"{args.onnx} (ONNX Runtime)")
    outputs = [c() for c in calls]                               # also the warm-up
    samples = interleaved({i: (lambda c=c: [c() for _ in range(args.inner)]) for i, c in enumerate(calls)},
                          args.repeats, warmup=0)                 # ms per `inner` runs
    meds = [statistics.median(samples[i]) / 1e3 / args.inner for i in range(len(calls))]
    base = meds[0]
    print(f"{args.repeats} interleaved rounds x {args.inner} runs, {args.threads} thread(s), medians:")
    for path, med, out in zip(names, meds, outputs):
        same = np.array_equal(out, outputs[0])
        diff = "identical output" if same else f"max |diff| {float(np.abs(out.astype(np.float64) - outputs[0]).max()):.3g}"
        print(f"  {med * 1e3:8.3f} ms  x{med / base:5.3f}  {diff:<24} {path}")


def _ort_call(path, threads, x):
    """A zero-arg call running `path` in ONNX Runtime on x (its first output)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    return lambda: sess.run(None, feed)[0]


if __name__ == "__main__":
    main()
