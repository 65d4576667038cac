"""fp32 3x3 stride-1 conv algorithms side by side: direct tiled vs Winograd F(2x2) / F(4x4).

    python bench/conv_algos.py [--repeats 15] [--threads 1] [--shapes resnet|all] [--maps 7,14] [--tiles 2,4]

For every shape (ResNet-18/50's 3x3 stride-1 convs at 224x224, plus boundary shapes with --shapes all) it
compiles each algorithm for this machine, runs them interleaved (A, B, C, ... per round) on the same input,
checks each against the direct kernel (max |diff| relative to max |y|), and prints the median time, the
GOPS counted as the direct conv's 2*MACs (so the columns compare), and the ratio to direct. The rule in
schedules/x86_winograd_fp32.py (`winograd_tile`) is derived from this table; the last column says what
that rule picks.
"""
import argparse
import os
import statistics

RESNET = [(64, 56), (128, 28), (256, 14), (512, 7)]        # (C = O, H = W): 3x3 s1 pad 1
EXTRA = [(16, 56), (32, 56), (32, 28), (64, 28), (64, 14), (128, 14), (128, 7), (256, 7)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--inner", type=int, default=3, help="calls per algorithm per round (mean = one sample)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shapes", choices=("resnet", "all"), default="resnet")
    ap.add_argument("--maps", default=None, help="only these map sizes H (comma-separated), e.g. 7,14")
    ap.add_argument("--tiles", default="2,4", help="Winograd output tiles m to compare (6 builds for minutes: not scheduled for it)")
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import tvm
    from compile_latency import interleaved

    from yuan.compiler.backends.pipelines import TIR_PIPELINE
    from yuan.compiler.targets import resolve_target
    from yuan.schedules.fp32_packed_conv import pack_w_f32
    from yuan.schedules.x86_fp32 import conv2d_f32_tiled
    from yuan.schedules.x86_winograd_fp32 import build_winograd, pack_winograd_weight, winograd_tile

    target = resolve_target("x86")
    dev = tvm.cpu()
    rng = np.random.default_rng(0)
    tiles = [int(v) for v in args.tiles.split(",")]
    shapes = RESNET + (EXTRA if args.shapes == "all" else [])
    if args.maps:
        shapes = [s for s in shapes if str(s[1]) in args.maps.split(",")]
    print(f"{args.repeats} interleaved rounds x {args.inner} calls, {args.threads} thread(s); GOPS = 2*C*O*9*OH*OW / time")
    head = f"{'C=O':>5} {'HxW':>7} {'direct':>14}" + "".join(f" {'F(%dx%d)' % (m, m):>22}" for m in tiles)
    print(head + "  rule")
    for C, H in shapes:
        O = C
        attrs = dict(pads=[1, 1, 1, 1], clip_min=0.0)
        in_types = [((1, C, H, H), "float32"), ((O, C, 3, 3), "float32"), ((O,), "float32")]
        out_type = ((1, O, H, H), "float32")
        x = rng.standard_normal((1, C, H, H)).astype("float32")
        w = (rng.standard_normal((O, C, 3, 3)) / np.sqrt(9 * C)).astype("float32")
        b = rng.standard_normal(O).astype("float32")
        cands = [("direct", conv2d_f32_tiled(attrs, in_types, out_type, target), pack_w_f32(w))]
        cands += [(m, build_winograd(attrs, in_types, out_type, m), pack_winograd_weight(w, m)) for m in tiles]
        runs = []
        for _, f, wp in cands:
            fn = tvm.compile(tvm.IRModule({"main": f}), target.tvm, tir_pipeline=TIR_PIPELINE)["main"]
            targs = [tvm.runtime.tensor(a, dev) for a in (x, wp, b)]
            out = tvm.runtime.empty(out_type[0], "float32", dev)
            fn(*targs, out)
            runs.append((fn, targs, out))
        ref = runs[0][2].numpy()
        errs = [float(np.abs(r[2].numpy() - ref).max() / np.abs(ref).max()) for r in runs]
        calls = {i: (lambda fn=fn, targs=targs, out=out: [fn(*targs, out) for _ in range(args.inner)])
                 for i, (fn, targs, out) in enumerate(runs)}        # each ran once above: warm
        samples = interleaved(calls, args.repeats, warmup=0)        # ms per `inner` calls
        meds = [statistics.median(samples[i]) / 1e3 / args.inner for i in range(len(runs))]
        gops = [2 * C * O * 9 * H * H / t / 1e9 for t in meds]
        row = f"{C:>5} {H:>3}x{H:<3} {meds[0] * 1e3:6.3f}ms {gops[0]:5.0f}G"
        for t, g, e in zip(meds[1:], gops[1:], errs[1:]):
            row += f" {t * 1e3:6.3f}ms {g:5.0f}G x{meds[0] / t:4.2f} e{e:.0e}"
        pick = winograd_tile(attrs, in_types, out_type)
        print(row + f"  {'direct' if pick is None else 'F(%dx%d)' % (pick, pick)}")


if __name__ == "__main__":
    main()
