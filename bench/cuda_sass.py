"""Which instructions the CUDA build of the zoo models really uses, per conv / linear kernel, without a GPU:
compiles ResNet-18 / MobileNetV2 (random weights; int8: quantize_qat + calibration, as
bench/compile_latency.py) for a cuda target and counts, in the SASS of each kernel
(compiler/backends/cuda_sass.py: cuobjdump -sass of the fatbin inside the library), IDP.4A (dp4a), IMMA
(int8 tensor cores), FFMA (fp32 on CUDA cores) and local-memory spills (LDL / STL from the first
shared-memory step on).

    python bench/cuda_sass.py [--models resnet18,mobilenet_v2] [--precisions int8,fp32] [--size 224]
                              [--batch 1] [--target cuda] [--keep DIR]

Batch 16 (a multiple of 16) picks the tensor-core kernels of cuda_imma.py for the dense int8 convs.
"""
import argparse
import json
import os
import tempfile

OPCODES = ("IDP.4A", "IMMA", "FFMA")
CONV_OPS = ("qconv2d", "qlinear", "conv2d", "linear", "dwconv2d")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--precisions", default="int8,fp32")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--calib", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--target", default="cuda", help="cuda, cuda-sm75, cuda-sm89, cuda-sm90")
    ap.add_argument("--keep", default=None, help="folder for the compiled libraries (default: temporary)")
    args = ap.parse_args()
    import numpy as np
    from compile_latency import build_models
    from kernel_names import kernel_kind

    from yuan.frontend.tensor import Tensor
    from yuan.frontend.trace import trace

    from yuan.compiler.backends.cuda_sass import count_instructions, sass_by_kernel, staged_part
    from yuan.compiler.build import compile_graph, sidecar_path
    work = args.keep or tempfile.mkdtemp(prefix="yuan_cuda_sass_")
    for name in args.models.split(","):
        fmodel, qmodel, fgraph, qgraph, _ = build_models(name, args.size, args.calib)
        for prec in args.precisions.split(","):
            model, graph = (qmodel, qgraph) if prec == "int8" else (fmodel, fgraph)
            if args.batch != 1:
                x = np.random.default_rng(0).standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
                graph = trace(model, Tensor(x))
            path = compile_graph(graph, args.target,
                                 os.path.join(work, f"{name}_{prec}_b{args.batch}_{args.target}.so"))
            sass = sass_by_kernel(path)
            kernels = json.load(open(sidecar_path(path)))["kernels"]
            print(f"\n=== {name} {prec}, {args.target}, batch {args.batch} ({args.size}x{args.size}): "
                  f"{len(kernels)} kernels, library {path}")
            print(f"{'kernel':60s} " + " ".join(f"{op:>7s}" for op in OPCODES) + "  spills")
            totals = {}
            for k in kernels:
                if not k.startswith(CONV_OPS):
                    continue
                body = sass.get(f"{k}_kernel", "")
                counts = [count_instructions(body, op) for op in OPCODES]
                staged = staged_part(body)
                spills = count_instructions(staged, "LDL") + count_instructions(staged, "STL")
                t = totals.setdefault(kernel_kind(k), [0] * (len(OPCODES) + 2))
                t[0] += 1
                for i, c in enumerate(counts):
                    t[1 + i] += c > 0
                t[-1] += spills > 0
                print(f"{k:60s} " + " ".join(f"{c:7d}" for c in counts) + f"  {spills:6d}")
            for kind, (n, *with_op, spilled) in sorted(totals.items()):
                used = ", ".join(f"{w} with {op}" for op, w in zip(OPCODES, with_op) if w)
                print(f"  {kind}: {n} kernels{', ' + used if used else ''}, {spilled} spilling")


if __name__ == "__main__":
    main()
