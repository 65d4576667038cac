"""Instructions per inference of the zoo models on Arm, counted exactly under qemu-aarch64 (no Arm hardware
needed; emulated TIME says nothing about Arm speed, instruction counts do). Builds ResNet-18 / MobileNetV2
(random weights, int8 through quantize_qat + calibration, as bench/compile_latency.py), compiles them for
the aarch64 targets, runs each in the arm64 Python tree of runtime/qemu_runner.py with a counting TCG plugin
(bench/arm/insncount.c) once with 1 and once with 1 + N inferences, and prints the difference / N:
instructions per inference, per MAC (conv + linear MACs of the graph), and the top mnemonics.

    python bench/arm_insn.py [--models resnet18,mobilenet_v2] [--builds fp32:aarch64,int8:aarch64,...]
                             [--size 224] [--cpu cortex-a76] [--n 1] [--keep DIR] [--top 12]

Needs gcc, qemu-aarch64 and the arm64 tree (runtime/arm64/build_arm64_root.sh). Counts repeat to a few
instructions with one guest thread (TVM_NUM_THREADS=1 here), PYTHONHASHSEED=0 and OPENBLAS_NUM_THREADS=1.
"""
import argparse
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_SRC = os.path.join(ROOT, "bench", "arm", "insncount.c")


def build_plugin(work):
    path = os.path.join(work, "insncount.so")
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", path, PLUGIN_SRC, "-lpthread"], check=True)
    return path


def graph_macs(graph):
    """Multiply-accumulates of the conv / linear nodes (the work a kernel cannot avoid)."""
    macs = 0
    for node in graph.nodes:
        if node.op in ("conv2d", "qconv2d"):
            w = graph.value(node.inputs[1]).shape
            y = graph.value(node.outputs[0]).shape
            macs += int(y[0]) * int(w[0]) * int(w[1]) * int(w[2]) * int(w[3]) * int(y[2]) * int(y[3])
        elif node.op in ("linear", "qlinear"):
            w = graph.value(node.inputs[1]).shape
            rows = 1
            for d in graph.value(node.inputs[0]).shape[:-1]:
                rows *= int(d)
            macs += rows * int(w[0]) * int(w[1])
    return macs


def count(lib, x, repeat, plugin, cpu, work, tag):
    """{mnemonic: count} (and "total_insns") of one qemu run doing `repeat` inferences."""
    from yuan.runtime import qemu_runner
    log = os.path.join(work, f"{tag}_{repeat}.log")
    os.environ.update(PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    res = qemu_runner.run_models([{"lib": lib, "inputs": [x], "repeat": repeat}], cpu=cpu, timeout=3600,
                                 qemu_args=["-plugin", plugin, "-d", "plugin", "-D", log])
    if res.returncode != 0 or res.outputs[0] is None:
        raise SystemExit(f"{tag}: the qemu run failed ({res.returncode}): {res.errors} {res.stderr[-1500:]}")
    counts = {}
    for line in open(log):
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = counts.get(parts[0], 0) + int(parts[1])
    return counts, res.outputs[0][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--builds", default="fp32:aarch64,int8:aarch64,int8:aarch64-dotprod",
                    help="comma-separated PRECISION:TARGET")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--calib", type=int, default=2)
    ap.add_argument("--cpu", default="cortex-a76")
    ap.add_argument("--n", type=int, default=1, help="extra inferences of the second run")
    ap.add_argument("--top", type=int, default=12, help="mnemonics listed per build")
    ap.add_argument("--keep", default=None, help="folder for modules and logs (default: temporary)")
    args = ap.parse_args()
    from compile_latency import _batches, build_models

    from yuan.compiler.build import compile_graph
    work = args.keep or tempfile.mkdtemp(prefix="yuan_arm_insn_")
    os.makedirs(work, exist_ok=True)
    plugin = build_plugin(work)
    x = _batches(args.size, 1, seed=7)[0]
    rows = []
    for name in args.models.split(","):
        _, _, fgraph, qgraph, _ = build_models(name, args.size, args.calib)
        macs = graph_macs(fgraph)
        for build in args.builds.split(","):
            prec, target = build.split(":")
            tag = f"{name}_{prec}_{target}"
            lib = compile_graph(qgraph if prec == "int8" else fgraph, target, os.path.join(work, tag + ".so"))
            one, y1 = count(lib, x, 1, plugin, args.cpu, work, tag)
            more, y2 = count(lib, x, 1 + args.n, plugin, args.cpu, work, tag)
            per = {k: (more.get(k, 0) - one.get(k, 0)) / args.n for k in set(one) | set(more)}
            total = per.pop("total_insns")
            rows.append((name, prec, target, total, total / macs))
            print(f"\n=== {tag}: {total / 1e6:.1f} M instructions per inference, {total / macs:.3f} per MAC "
                  f"({macs / 1e6:.0f} M MACs), outputs repeat: {bool((y1 == y2).all())}")
            top = sorted(per.items(), key=lambda kv: -kv[1])[:args.top]
            print("   " + "  ".join(f"{k} {v / 1e6:.1f}M" for k, v in top))
    print(f"\n| model | build | M instructions / inference | per MAC |  "
          f"(qemu -cpu {args.cpu}, {args.size}x{args.size})")
    print("|---|---|---|---|")
    for name, prec, target, total, per_mac in rows:
        print(f"| {name} | {prec} `{target}` | {total / 1e6:.0f} | {per_mac:.2f} |")


if __name__ == "__main__":
    main()
