"""Exact int8 Winograd against the direct int8 conv, per ResNet-18 3x3 stride-1 layer (224x224 input, batch 1):
F(2x2, 3x3) in fp32 (schedules/winograd_int8.py) on the targets without int8 dot products, F(4x4, 3x3) on
VNNI's int16 dot product (schedules/x86_vnni_winograd_int8.py) with --target x86 (or x86-avx512-vnni).

    python bench/winograd_int8.py --x86 [--rounds 15] [--inner 3] [--shapes resnet|all] [--layout NHWC|NCHW]
                                  [--target x86-avx2|x86-avx512]
    python bench/winograd_int8.py --arm [--cpu cortex-a53] [--shapes resnet|all]
    python bench/winograd_int8.py --model [--size 224] [--cpu cortex-a53]
    python bench/winograd_int8.py --model-x86 [--size 224] [--rounds 15] [--target x86-avx2]

--x86: compiles both kernels for the "x86-avx2" target (or --target x86-avx512: AVX-512 without VNNI, or x86:
VNNI, NHWC only; the direct one is what the target selects with the Winograd kernel switched off), runs them on this machine
interleaved (A, B per round, 1 thread) on the same input, checks they agree bit for bit, and prints median
times and the ratio.
--arm: compiles a graph of one conv per layer for "aarch64" (NHWC, as layout planning chooses there) with
and without the Winograd kernel, runs each once under qemu-aarch64 with the counting plugin of
bench/arm_insn.py, and prints the instructions executed in each conv's code (per-block counts mapped to
the call's symbol) with the multiplies per output (direct: 9 C; Winograd: sum over the flush classes of
elements x padded channels, times Op P / (C OH OW), fp32 lanes).
The last column says what the kernel's rule (`wins` of the ISA file) picks.
--model: ResNet-18 int8 (as bench/arm_insn.py builds it) for "aarch64" with and without the Winograd
kernel: instructions executed in the model library (all kernels) for one inference under qemu, and whether
the outputs are equal. --model-x86: the same model compiled for x86-avx2 with and without it, timed here
(interleaved rounds, medians, 1 thread), outputs compared.
"""
import argparse
import os
import statistics
import tempfile
import time

RESNET = [(64, 56), (128, 28), (256, 14), (512, 7)]         # (C = O, H = W): 3x3 s1 pad 1
EXTRA = [(8, 28), (16, 56), (32, 56), (32, 28), (64, 28), (64, 14), (128, 14), (128, 7), (256, 7)]


def conv_case(C, H, rng):
    """(attrs, x, w, b) of a C -> C 3x3 pad-1 int8 conv on an H x H map (zoo-like requantize)."""
    attrs = dict(pads=[1, 1, 1, 1], x_zero_point=-128, multiplier=[int(v) for v in rng.integers(1 << 30, 1 << 31, C)],
                 shift=[40] * C, y_zero_point=-128, out_min=-128, out_max=127, out_dtype="int8")
    x = rng.integers(-128, 128, (1, C, H, H)).astype("int8")
    w = rng.integers(-127, 128, (C, C, 3, 3)).astype("int8")
    b = rng.integers(-5000, 5000, C).astype("int32")
    return attrs, x, w, b


def multiplies(C, H):
    """(direct, Winograd) multiplies per output of a C -> C 3x3 conv on H x H (padding included): Winograd's
    fp32 lanes of the NEON kernel, each flush class over its padded channels."""
    from yuan.schedules.aarch64_winograd_int8 import NEON_WINOGRAD
    from yuan.schedules.dot_product import round_up
    from yuan.schedules.winograd_int8 import flush_classes, input_bound
    classes = flush_classes(C, input_bound("int8", -128), NEON_WINOGRAD.step)
    lanes = sum(len(fc.elements) * fc.channels for fc in classes)
    P = ((H + 1) // 2) ** 2
    return 9 * C, lanes * round_up(C, 16) * P / (C * H * H)


def x86_winograd(target):
    """(the int8 Winograd kernel's switch, its rule) for an x86 target: F(4x4) on VNNI's vpdpwssd
    (x86_vnni_winograd_int8.py), else the fp32-intermediate F(2x2) (x86_avx2_winograd_int8.py)."""
    if "avx512_vnni" in target.features:
        from yuan.schedules.x86_vnni_winograd_int8 import VNNI_WINOGRAD, vnni_winograd_wins
        return VNNI_WINOGRAD, vnni_winograd_wins
    from yuan.schedules.x86_avx2_winograd_int8 import AVX2_WINOGRAD, avx2_winograd_wins
    return AVX2_WINOGRAD, avx2_winograd_wins


def x86(args, shapes):
    import numpy as np
    import tvm

    from yuan.compiler.backends.pipelines import TIR_PIPELINE
    from yuan.compiler.targets import resolve_target
    from yuan.schedules import kernel_inputs, select_kernel
    target = resolve_target(args.target)
    WINOGRAD, rule_wins = x86_winograd(target)
    rng = np.random.default_rng(0)
    dev = tvm.cpu()
    print(f"{args.target} on this CPU, {args.layout}, {args.rounds} interleaved rounds x {args.inner} calls, "
          f"1 thread; medians (and the ratio of the minima)")
    print(f"{'C=O':>5} {'HxW':>7} {'direct kernel':>28} {'direct':>9} {'winograd':>9} {'wg/direct':>9} "
          f"{'(minima)':>9}  rule")
    for C, H in shapes:
        attrs, x, w, b = conv_case(C, H, rng)
        if args.layout == "NHWC":
            attrs["layout"], x = "NHWC", np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        in_types = [(x.shape, "int8"), (w.shape, "int8"), (b.shape, "int32")]
        out_type = (x.shape, "int8")
        runs = []
        for enabled in (False, True):
            WINOGRAD.enabled = enabled
            WINOGRAD.wins = (lambda *a: True) if enabled else rule_wins   # measure every shape
            k, f = select_kernel("qconv2d", attrs, in_types, out_type, target)
            plan = kernel_inputs(f, attrs, in_types, [x, w, b])
            targs = [tvm.runtime.tensor(np.ascontiguousarray([x, w, b][p] if isinstance(p, int) else p), dev)
                     for p in plan]
            out = tvm.runtime.empty(out_type[0], "int8", dev)
            fn = tvm.compile(tvm.IRModule({"main": f}), target.tvm, tir_pipeline=TIR_PIPELINE)["main"]
            fn(*targs, out)
            runs.append((k.name, fn, targs, out))
        WINOGRAD.enabled, WINOGRAD.wins = True, rule_wins
        same = bool((runs[0][3].numpy() == runs[1][3].numpy()).all())
        samples = [[], []]
        for _ in range(args.rounds):
            for i, (_, fn, targs, out) in enumerate(runs):
                t0 = time.perf_counter()
                for _ in range(args.inner):
                    fn(*targs, out)
                samples[i].append((time.perf_counter() - t0) / args.inner)
        d, wg = (statistics.median(s) for s in samples)
        rule = "winograd" if rule_wins(attrs, in_types, out_type) else "direct"
        print(f"{C:>5} {H:>3}x{H:<3} {runs[0][0]:>28} {d * 1e3:7.3f}ms {wg * 1e3:7.3f}ms {wg / d:9.2f} "
              f"{min(samples[1]) / min(samples[0]):9.2f}  {rule}"
              + ("" if same else "  OUTPUTS DIFFER"))


def arm(args, shapes):
    import json

    import numpy as np
    from arm_insn import KernelMap, build_plugin, run_counted

    from yuan.compiler.build import compile_graph, sidecar_path
    from yuan.compiler.ir import Graph
    from yuan.schedules.aarch64_winograd_int8 import NEON_WINOGRAD, neon_winograd_wins

    rng = np.random.default_rng(0)
    work = args.keep or tempfile.mkdtemp(prefix="yuan_wg_insn_")
    os.makedirs(work, exist_ok=True)
    plugin = build_plugin(work)
    # one graph, one conv per layer (each its own input and output), run once per variant: the
    # instructions executed in each conv's code come from the plugin's per-block counts
    g = Graph("resnet18_3x3")
    feed, cases = [], {}
    for C, H in shapes:
        attrs, x, w, b = conv_case(C, H, rng)
        name = g.add_input(f"x{C}_{H}", x.shape, "int8")
        g.mark_output(g.add_node("qconv2d", [name, g.add_constant(f"w{C}_{H}", w), g.add_constant(f"b{C}_{H}", b)],
                                 attrs).outputs[0])
        feed.append(x)
        cases[(C, H)] = (attrs, [(x.shape, "int8"), (w.shape, "int8"), (b.shape, "int32")], (x.shape, "int8"))
    per_layer, outs = [], []
    rule = NEON_WINOGRAD.wins
    for enabled in (False, True):
        NEON_WINOGRAD.enabled = enabled
        NEON_WINOGRAD.wins = lambda *a: True   # measure every layer; the table's last column is the rule
        tag = f"layers_{'winograd' if enabled else 'direct'}"
        lib = compile_graph(g, "aarch64", os.path.join(work, tag + ".so"))
        _, blocks, y = run_counted(lib, feed, plugin, args.cpu, os.path.join(work, tag + ".log"), tag=tag)
        info = json.load(open(sidecar_path(lib)))["kernel_info"]
        layer = {}
        for sym, n in KernelMap(lib, by_call=True).per_kernel(blocks).items():   # one entry per layer
            if sym in info and info[sym]["op"] == "qconv2d":
                _, H, _, C = info[sym]["inputs"][0]   # NHWC, as layout planning chooses on aarch64
                layer[(C, H)] = (n, info[sym]["kernel"])
        per_layer.append(layer)
        outs.append(y)
    NEON_WINOGRAD.enabled, NEON_WINOGRAD.wins = True, rule
    print(f"aarch64 (NEON, no dotprod), qemu -cpu {args.cpu}: instructions executed in each conv's code, "
          f"1 inference; outputs equal: {all(np.array_equal(a, b) for a, b in zip(*outs))}")
    print("| C=O | HxW | direct M insns | Winograd M insns | direct / Winograd | mults/output direct | "
          "Winograd | ratio | rule |")
    print("|---|---|---|---|---|---|---|---|---|")
    for C, H in shapes:
        (nd, kd), (nw, kw) = per_layer[0][(C, H)], per_layer[1][(C, H)]
        md, mw = multiplies(C, H)
        rule = "winograd" if neon_winograd_wins(*cases[(C, H)]) else "direct"
        assert "winograd" in kw and "winograd" not in kd, (kd, kw)
        print(f"| {C} | {H}x{H} | {nd / 1e6:.2f} | {nw / 1e6:.2f} | {nd / nw:.2f} | {md} | {mw:.0f} | "
              f"{md / mw:.2f} | {rule} |")


def model(args):
    import numpy as np
    from arm_insn import KernelMap, build_plugin, run_counted
    from compile_latency import _batches, build_models

    from yuan.compiler.build import compile_graph
    from yuan.schedules.aarch64_winograd_int8 import NEON_WINOGRAD
    work = args.keep or tempfile.mkdtemp(prefix="yuan_wg_model_")
    os.makedirs(work, exist_ok=True)
    plugin = build_plugin(work)
    x = _batches(args.size, 1, seed=7)[0]
    _, _, _, qgraph, _ = build_models("resnet18", args.size, 2)
    rows, outs = [], []
    for enabled in (False, True):
        NEON_WINOGRAD.enabled = enabled
        tag = f"resnet18_int8_{'winograd' if enabled else 'direct'}"
        lib = compile_graph(qgraph, "aarch64", os.path.join(work, tag + ".so"))
        _, blocks, y = run_counted(lib, [x], plugin, args.cpu, os.path.join(work, tag + ".log"), tag=tag)
        per = KernelMap(lib).per_kernel(blocks)
        rows.append((sum(per.values()), sum(n for k, n in per.items() if "winograd" in k),
                     sum(n for k, n in per.items() if k.startswith("qconv2d"))))
        outs.append(y)
    NEON_WINOGRAD.enabled = True
    (d_all, _, d_conv), (w_all, w_wg, w_conv) = rows
    print(f"ResNet-18 int8 {args.size}x{args.size}, aarch64 (qemu -cpu {args.cpu}), instructions executed in the "
          f"model library per inference: {d_all / 1e6:.0f} M without Winograd, {w_all / 1e6:.0f} M with "
          f"({d_all / w_all:.2f}x fewer); qconv2d {d_conv / 1e6:.0f} M -> {w_conv / 1e6:.0f} M "
          f"(Winograd kernels {w_wg / 1e6:.0f} M); outputs equal: "
          f"{all(np.array_equal(a, b) for a, b in zip(*outs))}")


def model_x86(args):
    import numpy as np
    from compile_latency import _batches, build_models

    from yuan import runtime
    from yuan.compiler.build import compile_graph
    from yuan.compiler.targets import resolve_target
    WINOGRAD, _ = x86_winograd(resolve_target(args.target))
    work = args.keep or tempfile.mkdtemp(prefix="yuan_wg_model_")
    os.makedirs(work, exist_ok=True)
    x = _batches(args.size, 1, seed=7)[0]
    _, _, _, qgraph, _ = build_models("resnet18", args.size, 2)
    feed = {list(qgraph.inputs)[0]: x}
    preds = []
    for enabled in (False, True):
        WINOGRAD.enabled = enabled
        tag = f"resnet18_int8_{'winograd' if enabled else 'direct'}"
        preds.append(runtime.load(compile_graph(qgraph, args.target, os.path.join(work, tag + ".so"))))
    WINOGRAD.enabled = True
    outs = [p.run(feed) for p in preds]
    same = all(np.array_equal(a, b) for a, b in zip(outs[0].values(), outs[1].values()))
    samples = [[], []]
    for _ in range(args.rounds):
        for i, p in enumerate(preds):
            t0 = time.perf_counter()
            p.run(feed)
            samples[i].append(time.perf_counter() - t0)
    d, wg = (statistics.median(s) for s in samples)
    print(f"ResNet-18 int8 {args.size}x{args.size} {args.target}, 1 thread, {args.rounds} interleaved rounds: "
          f"{d * 1e3:.1f} ms without Winograd, {wg * 1e3:.1f} ms with (ratio {wg / d:.2f}, minima "
          f"{min(samples[1]) / min(samples[0]):.2f}); outputs equal: {same}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--x86", action="store_true")
    ap.add_argument("--arm", action="store_true")
    ap.add_argument("--model", action="store_true")
    ap.add_argument("--model-x86", action="store_true")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--shapes", choices=("resnet", "all"), default="resnet")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--cpu", default="cortex-a53")
    ap.add_argument("--target", default="x86-avx2", help="--x86 / --model-x86: x86-avx2, x86-avx512 (no VNNI) or x86")
    ap.add_argument("--layout", default="NHWC", choices=("NHWC", "NCHW"),
                    help="--x86: activations layout (compiled models plan qconv2d NHWC on x86-avx2)")
    ap.add_argument("--keep", default=None, help="folder for modules and logs (default: temporary)")
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = "1"
    shapes = RESNET + (EXTRA if args.shapes == "all" else [])
    if args.x86 or not (args.arm or args.model or args.model_x86):
        x86(args, shapes)
    if args.arm:
        arm(args, shapes)
    if args.model:
        model(args)
    if args.model_x86:
        model_x86(args)


if __name__ == "__main__":
    main()
