"""Where the time of the zoo models goes, per kernel: builds ResNet-18 / MobileNetV2 (random weights,
int8 through quantize_qat + calibration, as bench/compile_latency.py), compiles them for x86 and runs
the per-op profiler of `yuan profile` (yuan.runtime.profiler) on each.

    python bench/profile_kernels.py [--models resnet18,mobilenet_v2] [--fp32] [--size 224] [--top 15]
                                    [--threads 1] [--keep DIR] [--trace-dir DIR]

Prints, per model, the calls grouped by kernel, the top individual calls and the per-op sum next to
the end-to-end time. For a module you already have, `yuan profile MODEL.so` does the same.
"""
import argparse
import os
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--fp32", action="store_true", help="profile the float model too")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--calib", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--keep", default=None, help="folder for the compiled modules (default: temporary)")
    ap.add_argument("--trace-dir", default=None, help="write MODEL_PREC_trace.json Chrome traces here")
    args = ap.parse_args()
    from compile_latency import build_models

    import yuan
    from yuan.compiler.build import compile_graph
    from yuan.runtime.profiler import profile
    from yuan.runtime.threads import set_num_threads
    set_num_threads(args.threads)
    work = args.keep or tempfile.mkdtemp(prefix="yuan_profile_")
    for name in args.models.split(","):
        _, _, fgraph, qgraph, _ = build_models(name, args.size, args.calib)
        for kind, graph in [("int8", qgraph)] + ([("fp32", fgraph)] if args.fp32 else []):
            path = compile_graph(graph, "x86", os.path.join(work, f"{name}_{kind}.so"))
            prof = profile(yuan.load(path), repeat=args.repeat)
            print(f"\n=== {name} {kind} ({args.size}x{args.size}, {args.threads} thread(s))")
            print(prof.kernel_table(top=args.top))
            print(prof.table(top=args.top))
            if args.trace_dir:
                os.makedirs(args.trace_dir, exist_ok=True)
                prof.write_chrome_trace(os.path.join(args.trace_dir, f"{name}_{kind}_trace.json"))


if __name__ == "__main__":
    main()
