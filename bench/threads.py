"""How the compiled x86 models scale with CPU threads (issue 9: 2 threads >= 1.7x of 1 on ResNet-18).

1. HERE (compiler): python bench/threads.py prepare --dir DIR [--models resnet18] [--precisions fp32,int8]
       [--batches 1] [--target x86-avx512-vnni] [--bf16-values]
   compiles the models into DIR with their references (bench/gpu_check.py's prepare; --target x86 is -mcpu=host,
   so for another machine take a portable x86 target). For a device call, `python bench/gpu_check.py pack DIR
   --out F.tar.xz` packs the folder (with --bf16-values the fp32 weights compress: ResNet-18 fp32 + int8 fit).
2. ANYWHERE (runtime-only TVM is enough, no yuan install needed):
       [TVM_USE_RUNTIME_LIB=1 PYTHONPATH=SITE] python bench/threads.py run --dir DIR [--threads 1,2,4,8]
       [--rounds 9] [--number 10] [--only 'resnet18_int8*'] [--kernels]
   TVM sizes its thread pool once per process (runtime/threads.py), so each thread count gets its own worker
   process, started with TVM_NUM_THREADS set. Each worker loads every library and checks its output against
   the reference (gpu_check's loading and checks); then the workers are timed in turn, round after round
   (A, B, A, B ...; `--number` runs per sample, time_evaluator; a worker answers only once its idle pool has
   stopped spinning), and the medians and minimums with their speed-ups over the first count are printed.
   --kernels adds the per-kernel times (yuan.runtime.profiler, in the same rounds): each op's minimum over all
   rounds (robust to other processes taking the CPU), summed per kernel.
Exit 1 on an output mismatch.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import gpu_check  # noqa: E402  (imports nothing of TVM at module level)

_REPLY = "@threads-worker "   # marks the worker's replies among whatever else it prints


# ------------------------------------------------------------------------------ prepare (here)
def prepare(args):
    gpu_check.prepare(argparse.Namespace(
        models=args.models, batches=args.batches, precisions=args.precisions, size=args.size, calib=args.calib,
        target=args.target, arch=None, dir=args.dir, bf16_values=args.bf16_values))


# ------------------------------------------------------------------------------ worker (one per thread count)
def _runtime_package():
    """yuan.runtime importable without the yuan install (the runtime-only machine)."""
    try:
        import yuan.runtime  # noqa: F401
    except ImportError:
        gpu_check.map_package("yuan", "yuan")
        gpu_check.map_package("yuan.runtime", "runtime", run_init=True)


def _entries(folder, only):
    return [e for e in json.load(open(os.path.join(folder, "manifest.json"))) if gpu_check._selected(e["tag"], only)]


def worker(args):
    import contextlib

    import numpy as np
    import tvm
    from tvm.runtime import vm as rvm
    _runtime_package()
    import yuan.runtime as yrt
    from yuan.runtime.profiler import profile
    from yuan.runtime.threads import num_threads, set_num_threads
    out = sys.stdout
    timing = argparse.Namespace(dir=args.dir, number=args.number, cpu=True, kernels=False)
    groups, checks, predictors = {}, {}, {}
    with contextlib.redirect_stdout(sys.stderr):     # gpu_check's lines go to the log, replies to the parent
        set_num_threads(args.threads)
        for entry in _entries(args.dir, args.only):
            ok = gpu_check._load_and_check(timing, entry, tvm.cpu(), True, groups, tvm, rvm, np)
            checks[entry["tag"]] = ok
            if args.kernels:
                predictors[entry["tag"]] = (yrt.load(os.path.join(args.dir, f"{entry['tag']}.so")),
                                            np.load(os.path.join(args.dir, entry["input"])))
    timers = {}
    for (model, batch), named in groups.items():
        for name, timer in named.items():
            timers[f"{model}_{name.split(' ', 1)[1]}_b{batch}"] = timer

    def reply(obj):
        _settle()
        out.write(_REPLY + json.dumps(obj) + "\n")
        out.flush()

    reply({"threads": num_threads(), "checks": checks})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "time":
            reply({"ms": timers[cmd["tag"]]()})
        elif cmd["cmd"] == "profile":
            pred, x = predictors[cmd["tag"]]
            with contextlib.redirect_stdout(sys.stderr):
                prof = profile(pred, {pred.metadata["inputs"][0]["name"]: x}, repeat=cmd["repeat"])
            reply({"ops": [[op.index, op.name, op.info.get("node", ""), op.shapes, min(op.runs)] for op in prof.ops]})
        else:
            return 0


def _settle(step=0.02, limit=2.0):
    """Return once this process's idle pool threads stop spinning: after a run TVM's workers spin-yield for
    ~150 ms (measured: 2 threads, 147 ms of CPU in a 200 ms sleep), which would take the cores from the
    next worker's timed runs."""
    import time
    waited = 0.0
    while waited < limit:
        cpu = time.process_time()
        time.sleep(step)
        waited += step
        if time.process_time() - cpu < 0.1 * step:
            return


# ------------------------------------------------------------------------------ run (parent)
class Worker:
    """One worker process at a fixed thread count, answering one JSON request per line."""

    def __init__(self, args, threads, log):
        cmd = [sys.executable, os.path.abspath(__file__), "worker", "--dir", args.dir, "--threads", str(threads),
               "--number", str(args.number), "--only", args.only] + (["--kernels"] if args.kernels else [])
        env = dict(os.environ, TVM_NUM_THREADS=str(threads))   # the pool's size, fixed when it starts
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
        self.log, self.threads = log.name, threads
        self.hello = self._read()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(_REPLY):
                return json.loads(line[len(_REPLY):])
            sys.stderr.write(line)
        raise SystemExit(f"the worker for {self.threads} thread(s) ended early; its errors are in {self.log}")

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def run(args):
    import numpy as np
    counts = [int(c) for c in args.threads.split(",")]
    tags = [e["tag"] for e in _entries(args.dir, args.only)]
    log_path = os.path.join(args.dir, "threads_workers.log")
    with open(log_path, "w") as log:
        workers = {n: Worker(args, n, log) for n in counts}
    failed = False
    for n, w in workers.items():
        print(f"{n} thread(s): pool of {w.hello['threads']}; outputs "
              + ", ".join(f"{t} {'ok' if ok else 'MISMATCH'}" for t, ok in w.hello["checks"].items()))
        failed |= not all(w.hello["checks"].values())
    times = {(t, n): [] for t in tags for n in counts}
    kernels = {(t, n): {} for t in tags for n in counts}
    for _ in range(args.rounds):                  # interleaved: every (model, count) once per round
        for tag in tags:
            for n, w in workers.items():
                times[tag, n].append(w.ask(cmd="time", tag=tag)["ms"])
                if args.kernels:
                    ops = w.ask(cmd="profile", tag=tag, repeat=args.kernel_repeat)["ops"]
                    for index, name, node, shapes, seconds in ops:
                        best = kernels[tag, n].get(index, (name, node, shapes, float("inf")))
                        kernels[tag, n][index] = (name, node, shapes, min(best[3], seconds))
    for w in workers.values():
        w.close()
    base = counts[0]
    for label, stat in (("medians", np.median), ("minimums (what a quiet machine gives)", np.min)):
        print(f"\n{label} of {args.rounds} interleaved rounds ({args.number} runs each), ms; speed-up over {base} "
              "thread(s)")
        print(f"{'model':<28}" + "".join(f"{f'{n} thr':>10}{'x':>7}" for n in counts))
        for tag in tags:
            ms = {n: float(stat(times[tag, n])) for n in counts}
            print(f"{tag:<28}" + "".join(f"{ms[n]:10.3f}{ms[base] / ms[n]:7.2f}" for n in counts))
    if args.kernels:
        for tag in tags:
            print_kernel_scaling(tag, {n: kernels[tag, n] for n in counts}, base, args.top)
    return 1 if failed else 0


def print_kernel_scaling(tag, per_count, base, top):
    """Per kernel: the sum of its ops' minimum times per thread count and the speed-up; then the ops that
    scale worst among those costing >= 1 % of the model at the base count."""
    counts = list(per_count)
    sums = {}
    for n, ops in per_count.items():
        for name, _, _, seconds in ops.values():
            sums.setdefault(name, {}).setdefault(n, [0.0, 0])
            sums[name][n][0] += seconds
            sums[name][n][1] += 1
    total = {n: sum(s for _, _, _, s in ops.values()) for n, ops in per_count.items()}
    print(f"\n{tag}: per kernel, sum of each op's minimum over the rounds (us); speed-up over {base} thread(s)")
    print(f"{'kernel / function':<40}{'calls':>6}" + "".join(f"{f'{n} thr':>10}{'x':>6}" for n in counts))
    rows = sorted(sums.items(), key=lambda kv: -kv[1][base][0])
    for name, by_n in rows[:top] + [("(all ops)", {n: [total[n], len(per_count[n])] for n in counts})]:
        print(f"{name[:40]:<40}{by_n[base][1]:6d}" + "".join(
            f"{by_n[n][0] * 1e6:10.1f}{by_n[base][0] / by_n[n][0]:6.2f}" for n in counts))
    last = counts[-1]
    heavy = [i for i, op in per_count[base].items() if op[3] >= 0.01 * total[base]]
    worst = sorted(heavy, key=lambda i: per_count[base][i][3] / per_count[last][i][3])[:top]
    print(f"{tag}: ops >= 1 % of the model scaling worst from {base} to {last} thread(s)")
    for i in worst:
        name, node, shapes, seconds = per_count[base][i]
        print(f"  {seconds * 1e6:9.1f} -> {per_count[last][i][3] * 1e6:9.1f} us "
              f"{seconds / per_count[last][i][3]:5.2f}x  {node[:22]:<22} {name[:36]:<36} {shapes}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--dir", required=True)
    p.add_argument("--models", default="resnet18")
    p.add_argument("--precisions", default="fp32,int8")
    p.add_argument("--batches", default="1")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--calib", type=int, default=1)
    p.add_argument("--target", default="x86", help="x86 (this CPU: -mcpu=host); for another machine a portable one, "
                                                   "e.g. x86-avx512-vnni")
    p.add_argument("--bf16-values", action="store_true", help="as gpu_check's: fp32 weights that compress (carry)")
    r = sub.add_parser("run")
    r.add_argument("--dir", required=True)
    r.add_argument("--threads", default="1,2", help="thread counts, the first is the base of the speed-ups")
    r.add_argument("--rounds", type=int, default=9, help="interleaved rounds (medians / minimums over them)")
    r.add_argument("--number", type=int, default=10, help="model runs per timed sample")
    r.add_argument("--only", default="", help="comma-separated tag patterns, e.g. 'resnet18_int8*'")
    r.add_argument("--kernels", action="store_true", help="also the per-kernel times and their speed-ups")
    r.add_argument("--kernel-repeat", type=int, default=3, help="profiler runs per round with --kernels")
    r.add_argument("--top", type=int, default=12)
    w = sub.add_parser("worker")   # started by `run`, one per thread count
    w.add_argument("--dir", required=True)
    w.add_argument("--threads", type=int, required=True)
    w.add_argument("--number", type=int, default=10)
    w.add_argument("--only", default="")
    w.add_argument("--kernels", action="store_true")
    args = ap.parse_args()
    sys.exit({"prepare": prepare, "run": run, "worker": worker}[args.cmd](args))


if __name__ == "__main__":
    main()
