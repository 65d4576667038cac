"""Instructions per inference of the zoo models on Arm, counted exactly under qemu-aarch64 (no Arm hardware
needed; emulated TIME says nothing about Arm speed, instruction counts do). Builds ResNet-18 / MobileNetV2
(random weights, int8 through quantize_qat + calibration, as bench/compile_latency.py), compiles them for
the aarch64 targets, runs each in the arm64 Python tree of runtime/qemu_runner.py with a counting TCG plugin
(bench/arm/insncount.c) once with 1 and once with 1 + N inferences, and prints the difference / N:
instructions per inference, per MAC (conv + linear MACs of the graph), the top mnemonics, and per kernel
(--kernels): the instructions executed inside each kernel's code in the model library (the plugin's per-block
counts, named with the library's symbols and the sidecar's kernel_info), per inference and per MAC of its calls.

    python bench/arm_insn.py [--models resnet18,mobilenet_v2] [--builds fp32:aarch64,fp32-direct:aarch64,...]
                             [--size 224] [--cpu cortex-a76] [--n 1] [--keep DIR] [--top 12] [--kernels 12]
                             [--by-shape] [--drop KERNEL,...] [--check]

--by-shape lists convs per kernel and window (1x1 apart from 3x3); --drop leaves kernels out of selection, for
a before/after in one tree (e.g. --drop qconv2d_dw_int8_nhwc_neon measures the depthwise kernel it replaced).
--check compares each output with the host (x86) build of the same graph (int8: bit-exact). The build precision
fp32-direct is fp32 with the Winograd kernels left out: the int8 rows' ratios are printed against both.

Needs gcc, qemu-aarch64 and the arm64 tree (runtime/arm64/build_arm64_root.sh). Counts repeat to a few
instructions with one guest thread (TVM_NUM_THREADS=1 here), PYTHONHASHSEED=0 and OPENBLAS_NUM_THREADS=1.
"""
import argparse
import bisect
import contextlib
import json
import os
import re
import subprocess
import tempfile

# the fp32 Winograd kernels, left out by the build precision "fp32-direct" (fp32 with the direct convs only)
WINOGRAD_FP32 = ("conv2d_f32_nchw_winograd", "conv2d_f32_nchw_winograd_neon")
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
    counts, blocks, outputs = run_counted(lib, [x], plugin, cpu, os.path.join(work, f"{tag}_{repeat}.log"),
                                          repeat=repeat, tag=tag)
    return counts, blocks, outputs[0]


def run_counted(lib, inputs, plugin, cpu, log, repeat=1, tag="qemu"):
    """One qemu run of the graph in `lib` on each of `inputs` under the counting plugin: ({mnemonic: count},
    {file offset in lib: instructions executed in that block}, the outputs per input)."""
    from yuan.runtime import qemu_runner
    os.environ.update(PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    res = qemu_runner.run_models([{"lib": lib, "inputs": inputs, "repeat": repeat}], cpu=cpu, timeout=3600,
                                 qemu_args=["-plugin", plugin, "-d", "plugin", "-D", log])
    if res.returncode != 0 or res.outputs[0] is None:
        raise SystemExit(f"{tag}: the qemu run failed ({res.returncode}): {res.errors} {res.stderr[-1500:]}")
    return (*parse_log(log, lib), res.outputs[0])


def parse_log(log, lib):
    """({mnemonic: count}, {file offset in lib: instructions executed in that block}) of a plugin log."""
    counts, blocks = {}, {}
    lib_name = os.path.basename(lib)
    for line in open(log):
        parts = line.split()   # "MNEMONIC COUNT", or "@ OFFSET COUNT PATH": instructions in a block of PATH
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = counts.get(parts[0], 0) + int(parts[1])
        elif len(parts) == 4 and parts[0] == "@" and os.path.basename(parts[3]) == lib_name:
            offset = int(parts[1], 16)
            blocks[offset] = blocks.get(offset, 0) + int(parts[2])
    return counts, blocks


class KernelMap:
    """File offset in the model library -> the kernel whose code it is: the library's function symbols and
    load segments (binutils of the aarch64 cross toolchain), named through the sidecar's kernel_info
    (symbol -> kernel name and MACs of that call)."""

    def __init__(self, lib, by_shape=False, by_call=False):
        from yuan.compiler.build import sidecar_path
        info = json.load(open(sidecar_path(lib)))["kernel_info"]
        # by_call: each call apart (named by its symbol), e.g. one conv per layer
        self.kernel_of = {sym: sym if by_call else self._label(v, by_shape) for sym, v in info.items()}
        self.macs = {}
        for sym, v in info.items():
            self.macs[self.kernel_of[sym]] = self.macs.get(self.kernel_of[sym], 0) + int(v["macs"])
        self.segments = []   # (file offset, size, vaddr) of the PT_LOAD segments
        for line in subprocess.run(["aarch64-linux-gnu-readelf", "-lW", lib], capture_output=True, text=True,
                                   check=True).stdout.splitlines():
            f = line.split()
            if f and f[0] == "LOAD":
                self.segments.append((int(f[1], 16), int(f[4], 16), int(f[2], 16)))
        syms = []
        for line in subprocess.run(["aarch64-linux-gnu-nm", "-n", "--defined-only", lib], capture_output=True,
                                   text=True, check=True).stdout.splitlines():
            f = line.split()
            if len(f) == 3 and f[1] in "tTW":
                syms.append((int(f[0], 16), f[2]))
        self.addrs = [a for a, _ in syms]
        self.names = [self._kernel(n) for _, n in syms]

    @staticmethod
    def _label(call, by_shape):
        """The kernel's name, with by_shape the conv's window too ("... 3x3"): 1x1 and 3x3 convs apart."""
        if by_shape and call["op"].endswith("conv2d"):
            return f"{call['kernel']} {call['inputs'][1][2]}x{call['inputs'][1][3]}"
        return call["kernel"]

    def _kernel(self, symbol):
        """The kernel name of a function symbol: the call's own symbol, its FFI wrapper or its parallel
        body (__tvm_ffi_<call>, <call>_compute_...); anything else (runtime glue) by its name."""
        bare = symbol[len("__tvm_ffi_"):] if symbol.startswith("__tvm_ffi_") else symbol
        calls = [c for c in self.kernel_of if bare.startswith(c)]
        if calls:
            return self.kernel_of[max(calls, key=len)]
        return "(other) " + re.sub(r"_\d+$", "", bare)

    def kernel_at(self, offset):
        for off, size, vaddr in self.segments:
            if off <= offset < off + size:
                i = bisect.bisect_right(self.addrs, offset - off + vaddr) - 1
                return self.names[i] if i >= 0 else "(other)"
        return "(other)"

    def per_kernel(self, blocks):
        out = {}
        for offset, n in blocks.items():
            k = self.kernel_at(offset)
            out[k] = out.get(k, 0) + n
        return out


def host_difference(graph, x, y, work, tag):
    """One line: the Arm output against the host (x86) build's of the same graph."""
    import numpy as np

    from yuan import runtime
    from yuan.compiler.build import compile_graph
    lib = compile_graph(graph, "x86", os.path.join(work, tag + "_host.so"))
    ref = runtime.load(lib).run({graph.inputs[0]: x})[graph.outputs[0]]
    y = np.asarray(y).reshape(ref.shape)
    diff = np.abs(y.astype(np.float64) - ref.astype(np.float64)).max()
    return f"against the host build: {'bit-exact' if diff == 0 else f'max |difference| {diff:.3g}'}"


@contextlib.contextmanager
def kernels_left_out(names):
    """Within the block, selection skips these kernels (they are back afterwards)."""
    from yuan.schedules import registry
    saved = {op: list(ks) for op, ks in registry._REGISTRY.items()}
    try:
        for op, ks in registry._REGISTRY.items():
            registry._REGISTRY[op] = [k for k in ks if k.name not in names]
        yield
    finally:
        registry._REGISTRY.update(saved)


def drop_kernels(names):
    """Take these kernels out of the registry of this process (unknown names are an error)."""
    from yuan.schedules import registry
    for name in names:
        registry.get_kernel(name)   # KeyError on a typo
        for op, kernels in registry._REGISTRY.items():
            registry._REGISTRY[op] = [k for k in kernels if k.name != name]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--builds", default="fp32:aarch64,fp32-direct:aarch64,int8:aarch64,int8:aarch64-dotprod",
                    help="comma-separated PRECISION:TARGET (PRECISION fp32, fp32-direct: fp32 without the Winograd "
                    "kernels, or int8)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--calib", type=int, default=2)
    ap.add_argument("--cpu", default="cortex-a76")
    ap.add_argument("--n", type=int, default=1, help="extra inferences of the second run")
    ap.add_argument("--top", type=int, default=12, help="mnemonics listed per build")
    ap.add_argument("--kernels", type=int, default=12, help="kernels listed per build (instructions inside "
                    "the model library's code, per inference)")
    ap.add_argument("--by-shape", action="store_true", help="per kernel and conv window (1x1, 3x3, ...)")
    ap.add_argument("--drop", default="", help="comma-separated kernel names to leave out of selection "
                    "(A/B against the kernel chosen without them)")
    ap.add_argument("--keep", default=None, help="folder for modules and logs (default: temporary)")
    ap.add_argument("--check", action="store_true", help="also compare each output with the host (x86) build "
                    "of the same graph: int8 must be bit-exact")
    args = ap.parse_args()
    from compile_latency import _batches, build_models

    from yuan.compiler.build import compile_graph
    drop_kernels(args.drop.split(",") if args.drop else [])
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
            with kernels_left_out(WINOGRAD_FP32 if prec == "fp32-direct" else ()):
                lib = compile_graph(qgraph if prec == "int8" else fgraph, target, os.path.join(work, tag + ".so"))
            one, blocks1, y1 = count(lib, x, 1, plugin, args.cpu, work, tag)
            more, blocks2, y2 = count(lib, x, 1 + args.n, plugin, args.cpu, work, tag)
            per = {k: (more.get(k, 0) - one.get(k, 0)) / args.n for k in set(one) | set(more)}
            kmap = KernelMap(lib, args.by_shape)
            k1, k2 = kmap.per_kernel(blocks1), kmap.per_kernel(blocks2)
            per_kernel = {k: (k2.get(k, 0) - k1.get(k, 0)) / args.n for k in set(k1) | set(k2)}
            total = per.pop("total_insns")
            rows.append((name, prec, target, total, total / macs))
            print(f"\n=== {tag}: {total / 1e6:.1f} M instructions per inference, {total / macs:.3f} per MAC "
                  f"({macs / 1e6:.0f} M MACs), outputs repeat: {bool((y1 == y2).all())}")
            if args.check:
                print("   " + host_difference(qgraph if prec == "int8" else fgraph, x, y1, work, tag))
            top = sorted(per.items(), key=lambda kv: -kv[1])[:args.top]
            print("   " + "  ".join(f"{k} {v / 1e6:.1f}M" for k, v in top))
            in_lib = sum(per_kernel.values())
            print(f"   kernels ({in_lib / 1e6:.1f} M in the model library, the rest in the TVM runtime / Python):")
            for k, v in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:args.kernels]:
                macs_k = kmap.macs.get(k, 0)
                per_mac = f"{v / macs_k:6.3f}/MAC of {macs_k / 1e6:7.1f} M" if macs_k else " " * 22
                print(f"   {v / 1e6:9.2f} M {100 * v / total:5.1f} %  {per_mac}  {k}")
    print(f"\n| model | build | M instructions / inference | per MAC |  "
          f"(qemu -cpu {args.cpu}, {args.size}x{args.size})")
    print("|---|---|---|---|")
    for name, prec, target, total, per_mac in rows:
        print(f"| {name} | {prec} `{target}` | {total / 1e6:.0f} | {per_mac:.2f} |")
    fp32 = {(name, prec): total for name, prec, _, total, _ in rows if prec.startswith("fp32")}
    for name, prec, target, total, _ in rows:   # int8 against fp32 with and without Winograd
        ratios = [f"{base} {fp32[(name, base)] / total:.2f}x" for base in ("fp32", "fp32-direct")
                  if (name, base) in fp32]
        if prec == "int8" and ratios:
            print(f"{name} int8 `{target}`: fewer instructions than " + ", ".join(ratios))


if __name__ == "__main__":
    main()
