"""Random-graph fuzzer: many seeded random CNNs through Yuan (import, compile for x86, run) against
ONNX Runtime, in float and after ONNX Runtime's own int8 quantization (QDQ).

    python bench/fuzz.py [--seeds 200] [--start 0] [--target x86]

Prints one line per failing seed (its layer recipe and what differed) and the pass rates. The same
generator runs a few seeds in every test run (tests/reliability/test_fuzz.py).
"""
import argparse
import collections
import itertools
import logging
import os
import sys
import tempfile
import time

# the generator lives with the tests; import it alone so `yuan` stays the installed package
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "reliability"))

from random_graphs import check_seed  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--target", default="x86", help="a target whose modules run on this machine")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)   # ORT's quantizer warns about pre-processing
    from yuan import runtime
    from yuan.compiler.build import compile_graph
    from yuan.compiler.onnx import import_onnx

    folder = tempfile.mkdtemp(prefix="yuan_fuzz_")
    counter = itertools.count()

    def compile_and_run(model, x):
        path = compile_graph(import_onnx(model), args.target, os.path.join(folder, f"m{next(counter)}.so"))
        return next(iter(runtime.load(path).run({"x": x}).values()))

    totals = collections.Counter()
    t0 = time.perf_counter()
    for seed in range(args.start, args.start + args.seeds):
        r = check_seed(seed, compile_and_run, folder)
        totals["float_ok"] += r["float_ok"]
        totals["int8_run"] += r["int8_ok"] is not None
        totals["int8_ok"] += bool(r["int8_ok"])
        if not r["float_ok"] or r["int8_ok"] is False:
            print(f"seed {seed} {r['recipe']}: float {r['float_detail']} | int8 {r.get('int8_detail')}", flush=True)
    n = args.seeds
    print(f"{n} random CNNs in {time.perf_counter() - t0:.0f}s on target {args.target}: "
          f"float {totals['float_ok']}/{n} agree with ONNX Runtime; int8 {totals['int8_ok']}/{totals['int8_run']} "
          f"within one LSB or cosine 0.999 ({n - totals['int8_run']} not quantizable by ORT)")


if __name__ == "__main__":
    main()
