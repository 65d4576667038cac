"""Yuan int8 / fp32 with the same conv algorithms on both sides: each model compiled four times, fp32 and int8,
with every kernel (Winograd included) and with the Winograd kernels turned off, the four timed in interleaved
rounds in one process (medians, 1 thread by default).

    python bench/same_algorithm.py [--models resnet18] [--repeats 15] [--threads 1]

Why: bench/x86.py's int8 / fp32 ratio compares int8's Winograd (exact F(4x4) on int16 `vpdpwssd`: half the int8
rate, only where its transformed weights stay small) with fp32's (F(4x4) at the full FMA rate, every 3x3
stride-1 layer). Direct against direct shows what the int8 kernels gain from the hardware alone.
"""
import argparse
import os
import statistics
from contextlib import contextmanager

from compile_latency import _batches, build_models, interleaved, timed_compile


@contextmanager
def without_kernels(word):
    """The registry's kernels whose name contains `word` refuse every node while inside."""
    from yuan.schedules import registry
    registry._ensure_loaded()
    off = [k for ks in registry._REGISTRY.values() for k in ks if word in k.name]
    saved = [k.applies for k in off]
    for k in off:
        k.applies = lambda *a: False
    try:
        yield [k.name for k in off]
    finally:
        for k, applies in zip(off, saved):
            k.applies = applies


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--target", default="x86")
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import tempfile

    from yuan import runtime
    work = tempfile.mkdtemp(prefix="yuan_same_algo_")
    x = _batches(args.size, 1, seed=7)[0]
    for name in args.models.split(","):
        _, _, fgraph, qgraph, _ = build_models(name, args.size, 2)
        preds = {}
        for algo in ("all kernels", "no Winograd"):
            for prec, graph in (("fp32", fgraph), ("int8", qgraph)):
                path = os.path.join(work, f"{name}_{prec}_{algo.split()[0]}.so")
                if algo == "no Winograd":
                    with without_kernels("winograd"):
                        timed_compile(graph, args.target, path)
                else:
                    timed_compile(graph, args.target, path)
                preds[prec, algo] = runtime.load(path)
        runners = {key: (lambda p=p: p.run(x)) for key, p in preds.items()}
        med = {k: statistics.median(v) for k, v in interleaved(runners, args.repeats, warmup=2, settle=True).items()}
        print(f"{name}, {args.threads} thread(s), medians of {args.repeats} interleaved rounds:")
        for algo in ("all kernels", "no Winograd"):
            f32, i8 = med["fp32", algo], med["int8", algo]
            print(f"  {algo:12s} fp32 {f32:7.2f} ms  int8 {i8:6.2f} ms  int8 / fp32 {i8 / f32:.3f}")


if __name__ == "__main__":
    main()
