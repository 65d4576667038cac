"""Arm fp32 convs per layer, in instructions counted exactly under qemu-aarch64 (bench/arm_insn.py's plugin): the
3x3 stride-1 convs of ResNet-18 with the direct NEON kernel (schedules/aarch64_fp32.py) and with Winograd
(aarch64_winograd_fp32.py), and MobileNetV2's depthwise convs (aarch64_depthwise.py), stride 1 and 2.

    python bench/arm_fp32_layers.py [--winograd resnet|all|none] [--depthwise] [--cpu cortex-a76] [--keep DIR]

One graph per variant, one conv per layer (each its own input and output), run once; the instructions executed
in each conv's code come from the plugin's per-block counts mapped to the call's symbol. Prints per layer the
instructions of each variant, their ratio, the outputs' largest difference relative to max |y| (direct against
Winograd), and what the kernel's rule (`neon_winograd_tile`) picks; for depthwise, instructions per MAC.
"""
import argparse
import json
import os
import tempfile

RESNET = [(64, 56), (128, 28), (256, 14), (512, 7)]          # (C = O, H = W): 3x3 s1 pad 1
EXTRA = [(4, 28), (8, 28), (16, 56), (20, 28), (32, 56), (32, 28), (64, 28), (64, 14), (128, 14), (128, 7), (256, 7), (512, 14)]
# MobileNetV2's depthwise 3x3 convs at 224x224: (C, input H = W, stride): how many of the model's 17 have that shape
DEPTHWISE = {(32, 112, 1): 1, (96, 112, 2): 1, (144, 56, 1): 1, (144, 56, 2): 1, (192, 28, 1): 2, (192, 28, 2): 1,
             (384, 14, 1): 4, (576, 14, 1): 2, (576, 14, 2): 1, (960, 7, 1): 3}


def run_layers(graph, feed, drop, work, tag, cpu, plugin):
    """{call symbol: (instructions, kernel_info entry)} and the outputs of one counted qemu run of `graph`
    compiled for "aarch64" with the kernels in `drop` left out of selection."""
    from arm_insn import KernelMap, kernels_left_out, run_counted

    from yuan.compiler.build import compile_graph, sidecar_path
    with kernels_left_out(drop):
        lib = compile_graph(graph, "aarch64", os.path.join(work, tag + ".so"))
    _, blocks, ys = run_counted(lib, feed, plugin, cpu, os.path.join(work, tag + ".log"), tag=tag)
    info = json.load(open(sidecar_path(lib)))["kernel_info"]
    per = KernelMap(lib, by_call=True).per_kernel(blocks)
    return {sym: (per.get(sym, 0), v) for sym, v in info.items() if v["op"] == "conv2d"}, ys


def conv_graph(name, layers, rng):
    """A graph of one fp32 conv per (C, H, stride, group) layer: ({layer: output index}, graph, feed)."""
    import numpy as np

    from yuan.compiler.ir import Graph
    g = Graph(name)
    feed, index = [], {}
    for i, (C, H, s, group) in enumerate(layers):
        x = rng.standard_normal((1, C, H, H)).astype("float32")
        w = (rng.standard_normal((C, C // group, 3, 3)) / np.sqrt(9 * C // group)).astype("float32")
        b = rng.standard_normal(C).astype("float32")
        name_x = g.add_input(f"x{i}", x.shape, "float32")
        out = g.add_node("conv2d", [name_x, g.add_constant(f"w{i}", w), g.add_constant(f"b{i}", b)],
                         dict(pads=[1, 1, 1, 1], strides=[s, s], group=group)).outputs[0]
        g.mark_output(g.add_node("clip", [out], dict(min=0.0, max=6.0)).outputs[0])
        feed.append(x)
        index[(C, H, s, group)] = i
    return index, g, feed


def by_layer(calls):
    """{(C, H, stride, group): (instructions, kernel, MACs)} from run_layers' calls."""
    out = {}
    for n, v in calls.values():
        _, C, H, _ = v["inputs"][0]
        out[(C, H, H // v["output"][2], C // v["inputs"][1][1])] = (n, v["kernel"], int(v["macs"]))
    return out


def winograd(args, shapes, plugin, work):
    import numpy as np

    from yuan.schedules import aarch64_winograd_fp32 as wg
    index, g, feed = conv_graph("resnet18_3x3", [(C, H, 1, 1) for C, H in shapes], np.random.default_rng(0))
    runs = [run_layers(g, feed, {wg.NAME}, work, "direct", args.cpu, plugin)]
    min_channels, wg.MIN_CHANNELS = wg.MIN_CHANNELS, 1   # measure every layer; the last column is the rule
    try:
        runs.append(run_layers(g, feed, set(), work, "winograd", args.cpu, plugin))
    finally:
        wg.MIN_CHANNELS = min_channels
    print(f"\nfp32 3x3 stride-1 convs (pad 1, bias, relu6), aarch64, qemu -cpu {args.cpu}: instructions executed in "
          "each conv's code, 1 inference")
    print("| C=O | HxW | direct M insns | per MAC | Winograd M insns | per MAC | direct / Winograd "
          "| max diff / max |y| | rule |")
    print("|---|---|---|---|---|---|---|---|---|")
    layers = [by_layer(calls) for calls, _ in runs]
    for C, H in shapes:
        nd, kd, macs = layers[0][(C, H, 1, 1)]
        nw, kw, _ = layers[1][(C, H, 1, 1)]
        assert "winograd" in kw and "winograd" not in kd, (kd, kw)
        i = index[(C, H, 1, 1)]
        yd, yw = (np.asarray(ys[i], np.float64) for _, ys in runs)
        err = np.abs(yd - yw).max() / np.abs(yd).max()
        attrs = dict(pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1)
        types = [((1, C, H, H), "float32"), ((C, C, 3, 3), "float32"), ((C,), "float32")]
        m = wg.neon_winograd_tile(attrs, types, ((1, C, H, H), "float32"))
        print(f"| {C} | {H}x{H} | {nd / 1e6:.2f} | {nd / macs:.3f} | {nw / 1e6:.2f} | {nw / macs:.3f} | {nd / nw:.2f} "
              f"| {err:.1e} | {f'F({m}x{m})' if m else 'direct'} |")


def depthwise(args, plugin, work):
    import numpy as np
    _, g, feed = conv_graph("mobilenet_v2_dw", [(C, H, s, C) for C, H, s in DEPTHWISE], np.random.default_rng(0))
    calls, _ = run_layers(g, feed, set(), work, "depthwise", args.cpu, plugin)
    print(f"\nfp32 depthwise 3x3 convs of MobileNetV2 (pad 1, bias, relu6), aarch64, qemu -cpu {args.cpu}")
    print("| C | input HxW | stride | in the model | M insns | per MAC | kernel |")
    print("|---|---|---|---|---|---|---|")
    total = total_macs = 0
    for (C, H, s, _), (n, kernel, macs) in sorted(by_layer(calls).items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        count = DEPTHWISE[(C, H, s)]
        total, total_macs = total + count * n, total_macs + count * macs
        print(f"| {C} | {H}x{H} | {s} | {count} | {n / 1e6:.2f} | {n / macs:.3f} | {kernel} |")
    print(f"| all 17 of the model | | | | {total / 1e6:.2f} | {total / total_macs:.3f} | |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--winograd", choices=("resnet", "all", "none"), default="resnet")
    ap.add_argument("--depthwise", action="store_true")
    ap.add_argument("--cpu", default="cortex-a76")
    ap.add_argument("--keep", default=None, help="folder for modules and logs (default: temporary)")
    args = ap.parse_args()
    from arm_insn import build_plugin
    work = args.keep or tempfile.mkdtemp(prefix="yuan_arm_fp32_")
    os.makedirs(work, exist_ok=True)
    plugin = build_plugin(work)
    if args.winograd != "none":
        winograd(args, RESNET + (EXTRA if args.winograd == "all" else []), plugin, work)
    if args.depthwise:
        depthwise(args, plugin, work)


if __name__ == "__main__":
    main()
