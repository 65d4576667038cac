"""Measured per-shape kernel choice (`yuan compile --tune`) against the written rule, on this machine.

For ResNet-18 fp32 and int8 (random weights, random calibration; default target x86 = this CPU):
  * compile with the rule, then with --retune into a fresh cache (tune seconds, shapes measured, convs
    whose kernel differs from the rule), then once more from the cache (no timing). The three compile
    times share one process, whose later compiles reuse the kernels the first one scheduled: the cost of
    --tune is the "measuring" figure;
  * latency of the rule module and the tuned module, A, B, A, B, ... in one process, medians; their
    outputs are compared (int8: must be identical).

    python bench/tune_choice.py [--models resnet18] [--target x86] [--size 224] [--repeats 20] [--threads 1]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18")
    ap.add_argument("--target", default="x86", help="a target whose modules run here (x86, x86-avx2, ...)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--calib", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="TVM threads, for tuning and for the A/B alike")
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    work = tempfile.mkdtemp(prefix="yuan-tune-bench-")
    os.environ["YUAN_CACHE_DIR"] = os.path.join(work, "cache")   # fresh: every shape is measured here
    from compile_latency import build_models, interleaved

    import numpy as np

    from yuan import runtime
    from yuan.compiler.build import compile_graph

    print(f"target {args.target}, {args.threads} thread(s), input {args.size}x{args.size}, work folder {work}")
    for name in args.models.split(","):
        _, _, fgraph, qgraph, _ = build_models(name, args.size, args.calib)
        for prec, graph in (("fp32", fgraph), ("int8", qgraph)):
            paths, seconds = {}, {}
            for mode in ("rule", "retune", "cached"):
                paths[mode] = os.path.join(work, f"{name}_{prec}_{mode}.so")
                t0 = time.perf_counter()
                compile_graph(graph, args.target, paths[mode], tune=mode)
                seconds[mode] = time.perf_counter() - t0
            with open(os.path.splitext(paths["retune"])[0] + ".json") as f:
                meta = json.load(f)
            choice = meta["kernel_choice"]
            print(f"\n{name} {prec}: compile rule {seconds['rule']:.0f}s, --retune {seconds['retune']:.0f}s "
                  f"(measuring {choice['tune_seconds']:.0f}s, {choice['measured_now']} shapes), from the cache "
                  f"{seconds['cached']:.0f}s; {choice['tuned_calls']} of {choice['calls']} conv/linear calls tuned, "
                  f"{choice['differ_from_rule']} shape(s) pick another kernel than the rule")
            print("    node: picked kernel; each candidate's median time / the picked one's")
            for info in meta["kernel_info"].values():
                us = info.get("tuned_us")
                if us:
                    print(f"    {info['node']}: {info['kernel']}; " +
                          ", ".join(f"{k} {v / us[info['kernel']]:.2f}" for k, v in sorted(us.items())))
            preds = {mode: runtime.load(paths[mode]) for mode in ("rule", "cached")}
            spec = preds["rule"].metadata["inputs"][0]
            x = np.random.default_rng(0).standard_normal(spec["shape"]).astype(spec["dtype"])
            outs = {m: next(iter(p.run(x).values())) for m, p in preds.items()}
            same = np.array_equal(outs["rule"], outs["cached"])
            diff = "identical" if same else f"max |diff| {np.abs(outs['rule'] - outs['cached']).max():.3g}"
            times = interleaved({m: (lambda p=p: p.run(x)) for m, p in preds.items()}, args.repeats, warmup=3)
            ratio = statistics.median(times["rule"]) / statistics.median(times["cached"])
            print(f"  latency, {args.repeats} interleaved rounds: rule / tuned = {ratio:.3f} (median ratio); "
                  f"outputs {diff}")


if __name__ == "__main__":
    main()
