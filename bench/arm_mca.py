"""Cycle estimates of each Arm kernel's hot loop: llvm-mca on the block qemu says runs most (issue 10).

    python bench/arm_mca.py [--models resnet18,mobilenet_v2] [--builds fp32:aarch64,int8:aarch64,...]
                            [--mcpu cortex-a76] [--kernels 8] [--keep DIR] [--show]

Instruction counts (bench/arm_insn.py) say how much work a kernel does, not how fast an out-of-order core
retires it. For each build this compiles the model (or reuses DIR/<model>_<prec>_<target>.so and its counting
log from `arm_insn.py --keep DIR`), runs one inference under qemu with the counting plugin, and for each of
kernel takes the translated blocks that executed most instructions (qemu ends a block at a branch, so an
inner loop body is one block) until they cover 90 % of the kernel's instructions, disassembles each from the
library and asks llvm-mca (steady state, all data in L1, no cache misses) for its cycles per iteration on
--mcpu: kernel cycles = sum of executions x cycles per iteration, the uncovered rest at the same IPC.
Printed per kernel: estimated M cycles, share, IPC, multiply-accumulates per cycle, the coverage, and the
hottest loop (instructions, MACs by lanes of fmla / smlal / smull / sdot ..., cycles per iteration);
then per build the model library's estimated cycles: a speed figure for int8 vs fp32 on one CPU model
(a lower bound: memory stalls are not modelled). `--show` prints each hottest loop.

Needs aarch64-linux-gnu binutils, qemu-aarch64, the arm64 tree (see bench/arm_insn.py) and llvm-mca
(`llvm-mca-19` if installed: LLVM 14 has no Cortex-A76 model). Estimates compare loops on one CPU model only.
"""
import argparse
import os
import re
import shutil
import subprocess
import tempfile

from arm_insn import KernelMap, build_plugin, parse_log, run_counted

BRANCH = re.compile(r"^(b|b\.\w+|bl|blr|br|ret|cbz|cbnz|tbz|tbnz)$")
# multiply-accumulates per instruction: lanes of the destination, times 4 for the dot products
MAC_OPS = {"fmla": 1, "fmls": 1, "fmul": 1, "mla": 1, "mls": 1, "mul": 1, "sdot": 4, "udot": 4, "usdot": 4,
           **{f"{s}{op}{half}": 1 for s in "su" for op in ("mlal", "mlsl", "mull") for half in ("", "2")}}
LANES = {"2s": 2, "4s": 4, "2d": 2, "4h": 4, "8h": 8, "8b": 8, "16b": 16}


def mca_tool():
    for name in ("llvm-mca-19", "llvm-mca"):
        if shutil.which(name):
            return name
    raise SystemExit("llvm-mca not found (apt-get install llvm-19)")


class Disassembly:
    """The library's code, disassembled once: the block starting at an address, up to its branch."""

    def __init__(self, lib):
        out = subprocess.run(["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn", lib], capture_output=True,
                             text=True, check=True).stdout
        self.insns, self.index = [], {}
        for line in out.splitlines():
            m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
            if m:
                self.index[int(m.group(1), 16)] = len(self.insns)
                operands = m.group(3).split("//")[0].split("<")[0].strip()
                self.insns.append((m.group(2), operands))

    def block(self, vaddr, max_insns=400):
        """The instructions from `vaddr` up to (without) the first branch: a loop body when hot."""
        body = []
        for mnemonic, operands in self.insns[self.index[vaddr]:self.index[vaddr] + max_insns]:
            if BRANCH.match(mnemonic):
                break
            body.append(f"{mnemonic}\t{operands}" if operands else mnemonic)
        return body


def macs_per_iteration(body):
    macs = 0
    for insn in body:
        mnemonic, _, operands = insn.partition("\t")
        factor = MAC_OPS.get(mnemonic)
        lanes = re.match(r"v\d+\.(\w+)", operands)
        if factor and lanes and lanes.group(1) in LANES:
            macs += factor * LANES[lanes.group(1)]
    return macs


def mca(tool, bodies, mcpu, iterations=100):
    """[cycles per iteration] of each loop body in llvm-mca's steady state (one llvm-mca run, one code region
    per body); None where llvm-mca cannot read a body."""
    text = "".join(f"# LLVM-MCA-BEGIN r{i}\n" + "\n".join(body) + f"\n# LLVM-MCA-END r{i}\n"
                   for i, body in enumerate(bodies))
    res = subprocess.run([tool, "-mtriple=aarch64", f"-mcpu={mcpu}", f"-iterations={iterations}"],
                         input=text, capture_output=True, text=True)
    if res.returncode:                # one bad body spoils the run: measure them one by one
        return [None] if len(bodies) == 1 else [c for body in bodies for c in mca(tool, [body], mcpu, iterations)]
    cycles = [int(v) / iterations for v in re.findall(r"Total Cycles:\s+(\d+)", res.stdout)]
    return cycles if len(cycles) == len(bodies) else [None] * len(bodies)


def vaddr_of(kmap, offset):
    for off, size, vaddr in kmap.segments:
        if off <= offset < off + size:
            return offset - off + vaddr
    return None


def kernel_cycles(dis, kmap, blocks, tool, mcpu, cover=0.85, max_blocks=24):
    """Estimated cycles of one kernel: its hottest blocks (covering `cover` of its instructions, at most
    `max_blocks`) as executions x llvm-mca's steady-state cycles per iteration, the rest at the same
    instructions per cycle. Returns (cycles, covered share, (hottest block, its cycles per iteration))."""
    total, chosen, insns = sum(n for _, n in blocks), [], 0
    for offset, n in blocks[:max_blocks]:
        if insns >= cover * total:
            break
        body = dis.block(vaddr_of(kmap, offset))
        if body:
            chosen.append((body, n))
            insns += n
    per_iter = mca(tool, [body for body, _ in chosen], mcpu) if chosen else []
    measured = [(body, n, c) for (body, n), c in zip(chosen, per_iter) if c is not None]
    if not measured:
        return None, 0.0, None
    covered = sum(n for _, n, _ in measured)
    cycles = sum(n / len(body) * c for body, n, c in measured)
    return cycles * total / covered, covered / total, (measured[0][0], measured[0][2])


def report(lib, blocks, args, tool):
    """Per kernel: instructions, estimated cycles, IPC, MACs per cycle; the build's estimated cycles."""
    kmap, dis = KernelMap(lib), Disassembly(lib)
    by_kernel = {}
    for offset, n in blocks.items():
        by_kernel.setdefault(kmap.kernel_at(offset), []).append((offset, n))
    rows = []
    everything = sum(blocks.values())
    for k, bl in by_kernel.items():
        bl.sort(key=lambda on: -on[1])
        insns = sum(n for _, n in bl)
        if insns < 0.002 * everything:           # glue: counted at the build's average IPC below
            rows.append((k, insns, None, 0.0, None))
            continue
        cycles, covered, hottest = kernel_cycles(dis, kmap, bl, tool, args.mcpu)
        rows.append((k, insns, cycles, covered, hottest))
    rows.sort(key=lambda r: -(r[2] or 0))
    estimated = [r for r in rows if r[2]]
    ipc = sum(r[1] for r in estimated) / sum(r[2] for r in estimated)
    total_insns = sum(r[1] for r in rows)
    total_cycles = sum(r[2] for r in estimated) + sum(r[1] for r in rows if not r[2]) / ipc
    print(f"  {total_cycles / 1e6:.1f} M cycles estimated for {total_insns / 1e6:.1f} M instructions in the model "
          f"library (IPC {total_insns / total_cycles:.2f})")
    print(f"  {'kernel':44} {'Mcycles':>8} {'share':>6} {'IPC':>5} {'MAC/cyc':>7} {'cover':>6}  hottest loop: insns, MACs, cycles")
    for k, insns, cycles, covered, hottest in rows[:args.kernels]:
        if cycles is None:
            continue
        macs = kmap.macs.get(k, 0)
        per_mac = f"{macs / cycles:7.2f}" if macs else " " * 7
        loop = f"{len(hottest[0])}, {macs_per_iteration(hottest[0])}, {hottest[1]:.1f}" if hottest else ""
        print(f"  {k[:44]:44} {cycles / 1e6:8.2f} {100 * cycles / total_cycles:5.1f}% {insns / cycles:5.2f} "
              f"{per_mac} {100 * covered:5.0f}%  {loop}")
        if args.show and hottest:
            print("      " + "\n      ".join(hottest[0]))
    return total_cycles


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--builds", default="fp32:aarch64,int8:aarch64,int8:aarch64-dotprod",
                    help="comma-separated PRECISION:TARGET")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--calib", type=int, default=2)
    ap.add_argument("--cpu", default="cortex-a76", help="qemu CPU of the counting run")
    ap.add_argument("--mcpu", default="cortex-a76", help="llvm-mca CPU model")
    ap.add_argument("--kernels", type=int, default=8, help="kernels listed per build")
    ap.add_argument("--keep", default=None, help="folder of modules and logs (arm_insn.py --keep): reused if there")
    ap.add_argument("--show", action="store_true", help="print each hot loop")
    args = ap.parse_args()
    tool = mca_tool()
    work = args.keep or tempfile.mkdtemp(prefix="yuan_arm_mca_")
    os.makedirs(work, exist_ok=True)
    plugin, x, models, totals = None, None, {}, {}
    print(f"llvm-mca ({tool}) -mcpu={args.mcpu}: estimated cycles per inference, per kernel")
    for name in args.models.split(","):
        for build in args.builds.split(","):
            prec, target = build.split(":")
            tag = f"{name}_{prec}_{target}"
            lib, log = os.path.join(work, tag + ".so"), os.path.join(work, tag + "_1.log")
            if not (os.path.exists(lib) and os.path.exists(log)):
                from compile_latency import _batches, build_models

                from yuan.compiler.build import compile_graph
                if name not in models:
                    models[name] = build_models(name, args.size, args.calib)
                _, _, fgraph, qgraph, _ = models[name]
                plugin = plugin or build_plugin(work)
                x = x if x is not None else _batches(args.size, 1, seed=7)[0]
                compile_graph(qgraph if prec == "int8" else fgraph, target, lib)
                run_counted(lib, [x], plugin, args.cpu, log, repeat=1, tag=tag)
            _, blocks = parse_log(log, lib)
            print(f"\n=== {tag}")
            totals[(name, prec, target)] = report(lib, blocks, args, tool)
    print(f"\n| model | build | M cycles (llvm-mca -mcpu={args.mcpu}, model library) |")
    print("|---|---|---|")
    for (name, prec, target), cycles in totals.items():
        print(f"| {name} | {prec} `{target}` | {cycles / 1e6:.0f} |")


if __name__ == "__main__":
    main()
