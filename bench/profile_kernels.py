"""Per-kernel time of a compiled model: every call_tir PrimFunc of the lowered Relax module (light
ops legalized, fused and scheduled by compiler/backends/cpu_light_ops.py, as compile_graph does) is compiled alone and timed with time_evaluator on random arguments of its shapes.

    python bench/profile_kernels.py [--models resnet18,mobilenet_v2] [--fp32] [--size 224] [--top 15]

Prints, per model, the total of the per-kernel medians and the top kernels grouped by PrimFunc
name stem (symbol without the hash suffix), plus the top individual calls. TVM_NUM_THREADS
defaults to 1.
"""
import argparse
import os
import re
import sys
from collections import defaultdict

os.environ.setdefault("TVM_NUM_THREADS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))


def _rand(shape, dtype, rng):
    import numpy as np
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    if dtype in ("int8", "uint8"):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.integers(0, 8, size=shape).astype(dtype)  # shifts/indices: keep small


def _stem(name):
    return re.sub(r"(_[0-9a-f]{10})?(_\d+)?$", "", name)


def profile_module(mod, target, number=20, repeat=5):
    """[(callee name, seconds median)] for every call_tir in mod['main'] (legalized first); target: a
    resolved yuan Target."""
    import numpy as np
    import tvm
    from tvm import relax
    from yuan.compiler.backends.cpu_light_ops import schedule_cpu
    mod = schedule_cpu(mod)   # light ops fused and scheduled, as compile_graph builds them
    rng = np.random.default_rng(0)
    dev = tvm.cpu()
    built = {}
    results = []
    call_tir = tvm.ir.Op.get("relax.call_tir")

    def visit(expr):
        if isinstance(expr, relax.Call) and expr.op.same_as(call_tir):
            gv = expr.args[0]
            f = mod[gv]
            args = list(expr.args[1].fields)
            shapes = []
            for a in args:
                shapes.append((tuple(int(d) for d in a.ty.shape), getattr(a.ty.dtype, "dtype", str(a.ty.dtype))))
            outs = expr.ty.fields if isinstance(expr.ty, relax.TupleType) else [expr.ty]
            for o in outs:
                shapes.append((tuple(int(d) for d in o.shape), getattr(o.dtype, "dtype", str(o.dtype))))
            name = gv.name_hint
            key = name
            if key not in built:
                fn = f.with_attr("global_symbol", "kern")
                built[key] = tvm.compile(tvm.IRModule({"kern": fn}), target.tvm)
            lib = built[key]; lib = getattr(lib, "mod", lib)
            tensors = []
            for i, (s, d) in enumerate(shapes):
                if i < len(args) and isinstance(args[i], tvm.ir.expr.Constant):
                    tensors.append(tvm.runtime.tensor(args[i].value.numpy(), dev))
                else:
                    tensors.append(tvm.runtime.tensor(_rand(s, d, rng), dev))
            te_ = lib.time_evaluator("kern", dev, number=number, repeat=repeat)
            r = te_(*tensors)
            results.append((name, float(np.median(r.results)), shapes[0]))

    fn = mod["main"]
    for block in fn.body.blocks:
        for b in block.bindings:
            visit(b.value)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--fp32", action="store_true", help="profile the float model too")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--calib", type=int, default=2)
    args = ap.parse_args()
    from compile_latency import build_models
    from yuan.compiler.build import optimize
    from yuan.compiler.relax import lower_graph
    from yuan.compiler.targets import resolve_target
    from yuan.schedules import preferred_layouts
    target = resolve_target("x86")
    for name in args.models.split(","):
        _, _, fgraph, qgraph, _ = build_models(name, args.size, args.calib)
        graphs = [("int8", qgraph)] + ([("fp32", fgraph)] if args.fp32 else [])
        for kind, g in graphs:
            mod, _ = lower_graph(optimize(g, integer=True, layouts=preferred_layouts(target)), target)
            res = profile_module(mod, target)
            total = sum(t for _, t, _ in res)
            print(f"\n=== {name} {kind}: {len(res)} kernel calls, sum of medians {total * 1e3:.2f} ms")
            groups = defaultdict(lambda: [0.0, 0])
            for n, t, _ in res:
                groups[_stem(n)][0] += t
                groups[_stem(n)][1] += 1
            print("  by kernel:")
            for n, (t, c) in sorted(groups.items(), key=lambda kv: -kv[1][0])[:args.top]:
                print(f"    {t * 1e3:8.3f} ms {100 * t / total:5.1f}%  x{c:<3d} {n}")
            print("  top calls:")
            for n, t, s in sorted(res, key=lambda r: -r[1])[:args.top]:
                print(f"    {t * 1e3:8.3f} ms  {n}  in0={s[0]} {s[1]}")


if __name__ == "__main__":
    main()
