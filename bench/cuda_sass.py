"""Which int8 instructions the CUDA build of the zoo models really uses, per kernel, without a GPU:
compiles the int8 ResNet-18 / MobileNetV2 (random weights, quantize_qat + calibration, as
bench/compile_latency.py) for `cuda` and counts IDP.4A (dp4a) and IMMA (int8 tensor cores) in the SASS of
each kernel (compiler/backends/cuda_sass.py: cuobjdump -sass of the fatbin inside the library).

    python bench/cuda_sass.py [--models resnet18,mobilenet_v2] [--size 224] [--batch 1] [--keep DIR]

Batch 16 (a multiple of 16) picks the tensor-core kernels of cuda_imma.py for the dense convs.
"""
import argparse
import json
import os
import re
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--calib", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--keep", default=None, help="folder for the compiled libraries (default: temporary)")
    args = ap.parse_args()
    import numpy as np
    from compile_latency import build_models

    from yuan.frontend.tensor import Tensor
    from yuan.frontend.trace import trace

    from yuan.compiler.backends.cuda_sass import count_instructions, sass_by_kernel
    from yuan.compiler.build import compile_graph, sidecar_path
    work = args.keep or tempfile.mkdtemp(prefix="yuan_cuda_sass_")
    for name in args.models.split(","):
        qmodel, qgraph = build_models(name, args.size, args.calib)[1::2]
        if args.batch != 1:
            x = np.random.default_rng(0).standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
            qgraph = trace(qmodel, Tensor(x))
        path = compile_graph(qgraph, "cuda", os.path.join(work, f"{name}_int8_b{args.batch}_cuda.so"))
        sass = sass_by_kernel(path)
        kernels = json.load(open(sidecar_path(path)))["kernels"]
        print(f"\n=== {name} int8, cuda, batch {args.batch} ({args.size}x{args.size}): {len(kernels)} kernels, library {path}")
        print(f"{'kernel':60s} {'IDP.4A':>7s} {'IMMA':>6s}")
        totals = {}
        for k in kernels:
            body = sass.get(f"{k}_kernel", "")
            n4, nm = count_instructions(body, "IDP.4A"), count_instructions(body, "IMMA")
            t = totals.setdefault(re.sub(r"_[0-9a-f]{10}(_\d+)?$", "", k), [0, 0, 0])
            t[0] += 1
            t[1] += n4 > 0
            t[2] += nm > 0
            if k.startswith(("qconv2d", "qlinear")):
                print(f"{k:60s} {n4:7d} {nm:6d}")
        for kind, (n, with4, withm) in sorted(totals.items()):
            print(f"  {kind}: {n} kernels, {with4} with IDP.4A, {withm} with IMMA")


if __name__ == "__main__":
    main()
