"""How close Yuan's int8 model is to what the CPU's int8 dot products allow, and the int8 / fp32 that leaves.

    python bench/int8_floor.py [--model resnet18] [--rounds 15] [--threads 1] [--size 224]

For every conv of the int8 module (x86 with AVX-512 VNNI): the dot-product instructions its kernel issues,
counted from its shapes as the kernel computes them (padding included):
* qconv2d_int8_*_vnni, the direct conv: one 512-bit vpdpbusd per output pixel, 16 output channels, tap and
  4 input channels (kernel columns folded into the reduction where column_fold.py folds them);
* qconv2d_int8_nhwc_winograd_vnni, F(4x4, 3x3): one vpdpwssd per transform element (36), tile, 16 output
  channels and pair of input channels.
Each conv's time is runtime.profiler's (replayed in model order: the cache as the model leaves it). The
rate of the fastest conv (instructions per second; a core that retires one 512-bit dot product per cycle
cannot beat its clock) makes every conv's floor: the model's int8 floor is the sum over the convs, with
every transform, epilogue and other op free. Then the int8 and fp32 modules run interleaved (medians), and
the table ends with int8 / fp32 measured and floor / fp32.

Why: the issue's int8 / fp32 <= 0.3 on ResNet-18 assumed both precisions run direct convs (vpdpbusd's 64 MACs
per instruction against the 16 of an fp32 FMA: 0.25). Yuan's fp32 runs Winograd F(4x4) at the full FMA rate
on every 3x3 stride-1 layer, and no int8 algorithm keeps pace there: F(4x4) needs int16 (vpdpwssd, half the
rate) and its transformed weights are 8x the int8 ones (256@14: 4.7 MB, 512@7: 18.9 MB per conv), measured
slower than the direct conv on those maps (x86_vnni_winograd_int8.vnni_winograd_wins).
"""
import argparse
import json
import os
import statistics
import tempfile

def direct_instructions(inputs, output):
    """vpdpbusd of the direct VNNI conv: N OH OW x O/lanes x KH x (KW x Cp/k, or the folded Kp/k), C padded as the
    kernel pads it (x86_int8.VNNI_CONV). The profile gives no dilation: a dilated conv with few channels (none in
    the zoo) would be counted as folded."""
    from yuan.schedules.column_fold import folds_columns, round_up4
    from yuan.schedules.dot_product import round_up
    from yuan.schedules.x86_int8 import VNNI_CONV
    lanes, k = VNNI_CONV.intrin.lanes, VNNI_CONV.intrin.k
    (N, *_), (O, C, KH, KW) = inputs[0], inputs[1]
    OH, OW = (output[1], output[2]) if len(output) == 4 else (1, 1)
    folded = VNNI_CONV.folds_columns and folds_columns(C, KW, 1)
    steps = round_up4(KW * C) // k if folded else KW * round_up(C, VNNI_CONV.channel_multiple(C)) // k
    return N * OH * OW * round_up(O, lanes) // lanes * KH * steps


def winograd_instructions(inputs, output):
    """vpdpwssd of the VNNI Winograd: 36 x the tiles it computes (padded to its blocks) x O/16 x Cv/2."""
    from yuan.schedules import x86_vnni_winograd_int8 as W
    (N, *_, C), (O, *_) = inputs[0], inputs[1]
    groups, Cg = W.channel_groups(C, 128)   # |d'| <= 128: int8 and uint8 inputs alike
    Op, Cv = W.round_up(O, W.LANES), groups * Cg
    P = N * -(-output[1] // W.M_OUT) * -(-output[2] // W.M_OUT)
    pt = W.register_tiles(P)
    tiles = P if W.weights_outgrow_l2(Op, Cv) else W.round_up(P, W.block_tiles(P, pt, Op, Cv, groups))
    return W.ELEMENTS * tiles * Op // W.LANES * Cv // 2


COUNTERS = {"qconv2d_int8_nhwc_vnni": direct_instructions, "qconv2d_int8_nchw_vnni": direct_instructions,
            "qconv2d_int8_nhwc_winograd_vnni": winograd_instructions}


def conv_rows(prof):
    """[(node, kernel, instructions, seconds)] of the convs whose kernel is counted, and the rest's seconds."""
    rows, other = [], 0.0
    for op in prof.ops:
        count = COUNTERS.get(op.info.get("kernel"))
        if count is None:
            other += op.seconds
            continue
        ins = op.info["inputs"]
        if op.info.get("layout") == "NCHW":   # the counters read NHWC activations
            ins = [[s[0], s[2], s[3], s[1]] if i == 0 else s for i, s in enumerate(ins)]
        out = op.info["output"]
        out = [out[0], out[2], out[3], out[1]] if op.info.get("layout") == "NCHW" and len(out) == 4 else out
        rows.append((op.info.get("node", op.symbol), op.info["kernel"], count(ins, out), op.seconds))
    return rows, other


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    from compile_latency import _batches, build_models, interleaved

    from yuan import runtime
    from yuan.compiler.build import compile_graph
    from yuan.compiler.targets import resolve_target
    from yuan.runtime.profiler import profile
    if "avx512_vnni" not in resolve_target("x86").features:
        raise SystemExit("this CPU has no AVX-512 VNNI: the counts are of the VNNI kernels")
    work = tempfile.mkdtemp(prefix="yuan_int8_floor_")
    _, _, fgraph, qgraph, _ = build_models(args.model, args.size, 2)
    preds = {prec: runtime.load(compile_graph(g, "x86", os.path.join(work, f"{args.model}_{prec}.so")))
             for prec, g in (("fp32", fgraph), ("int8", qgraph))}
    rows, other = conv_rows(profile(preds["int8"], repeat=args.rounds))
    best = max(n / s for _, _, n, s in rows)
    print(f"{args.model} int8, x86 VNNI, {args.threads} thread(s): dot-product instructions per conv "
          f"(runtime.profiler times); the floor is each conv's count at the fastest conv's rate, "
          f"{best / 1e9:.2f} G/s")
    print("| node | kernel | M instructions | us | floor us | floor / time |")
    print("|---|---|---|---|---|---|")
    for node, kernel, n, s in rows:
        print(f"| {node} | {kernel} | {n / 1e6:.3f} | {s * 1e6:.0f} | {n / best * 1e6:.0f} | {n / best / s:.2f} |")
    floor = sum(n for *_, n, _ in rows) / best
    conv_s = sum(s for *_, s in rows)
    print(f"convs: {conv_s * 1e3:.2f} ms, floor {floor * 1e3:.2f} ms ({floor / conv_s:.2f}); other ops "
          f"{other * 1e3:.2f} ms (free in the floor)")
    x = _batches(args.size, 1, seed=7)[0]
    runners = {prec: (lambda p=p: p.run(x)) for prec, p in preds.items()}
    med = {k: statistics.median(v) for k, v in interleaved(runners, args.rounds, warmup=2, settle=True).items()}
    print(json.dumps({"fp32_ms": round(med["fp32"], 3), "int8_ms": round(med["int8"], 3),
                      "int8_over_fp32": round(med["int8"] / med["fp32"], 3),
                      "int8_floor_over_fp32": round(floor * 1e3 / med["fp32"], 3)}))


if __name__ == "__main__":
    main()
