"""Per-layer timing of the CUDA fp32 conv kernels (issue 11): every block tile of schedules/cuda_fp32_gemm.py
(and what its tile rule picks), the per-tap kernel of cuda_fp32.py, and PyTorch's strict-fp32 cuDNN conv
(TF32 off) on the ResNet-18 conv shapes, so that the tile rule can be checked against measurements.

1. HERE (compiler machine):  python bench/cuda_fp32_tiles.py prepare [--batches 16,1] [--dir .gpu/tiles]
   compiles every (layer, kernel) into DIR/kernels.so (sm_90) with DIR/manifest.json.
2. ON THE DEVICE:  TVM_USE_RUNTIME_LIB=1 PYTHONPATH=.gpu/site python3 bench/cuda_fp32_tiles.py run --dir .gpu/tiles
   checks every kernel's output against torch's fp32 conv (1e-4 relative) and prints per layer the median
   time of each kernel (TVM's CUDA-event timer, kernels interleaved A, B, A, B over `--rounds`), in us.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ResNet-18's distinct group-1 convs at 224x224: (C, H, O, kernel, stride)
LAYERS = [(3, 224, 64, 7, 2), (64, 56, 64, 3, 1), (64, 56, 128, 3, 2), (128, 28, 128, 3, 1),
          (128, 28, 256, 3, 2), (256, 14, 256, 3, 1), (256, 14, 512, 3, 2), (512, 7, 512, 3, 1),
          (64, 56, 128, 1, 2), (256, 14, 512, 1, 2)]


def prepare(args):
    from dataclasses import replace

    import numpy as np
    from yuan.compiler.backends.cuda_sass import build_kernel_library
    from yuan.compiler.targets import resolve_target
    from yuan.schedules import cuda_fp32, cuda_fp32_gemm
    target = resolve_target(args.target)
    funcs, manifest = [], []
    for batch in (int(b) for b in args.batches.split(",")):
        for C, H, O, K, s in LAYERS:
            p = K // 2
            OH = (H + 2 * p - K) // s + 1
            attrs = dict(strides=[s, s], pads=[p] * 4, clip_min=0.0)
            in_types = [((batch, C, H, H), "float32"), ((O, C, K, K), "float32"), ((O,), "float32")]
            out_type = ((batch, O, OH, OH), "float32")
            layer = f"b{batch}_c{C}_h{H}_o{O}_k{K}_s{s}"
            picked = cuda_fp32_gemm.gemm_tiles_f32(batch * OH * OH, O)
            kernels = [(f"sgemm{t.bm}x{t.bn}" + ("*" if t == picked else ""),
                        cuda_fp32_gemm.build(attrs, in_types, out_type, tiles=t), cuda_fp32_gemm.pack_weight)
                       for t, _ in cuda_fp32_gemm.CANDIDATES]
            variants = [("sgemm64x64-dbuf", replace(cuda_fp32_gemm.CANDIDATES[2][0], prefetch=False)),
                        ("sgemm128x128-bk16", replace(cuda_fp32_gemm.CANDIDATES[0][0], bk=16))]
            kernels += [(name, cuda_fp32_gemm.build(attrs, in_types, out_type, tiles=t), cuda_fp32_gemm.pack_weight)
                        for name, t in variants]
            kernels.append(("per-tap", cuda_fp32.build(attrs, in_types, out_type), cuda_fp32.pack_weight))
            entry = dict(layer=layer, x=in_types[0][0], w=in_types[1][0], y=out_type[0], stride=s, pad=p, kernels=[])
            for name, f, pack in kernels:
                symbol = f"{layer}_{name.rstrip('*').replace('-', '_')}"
                funcs.append(f.with_attr("global_symbol", symbol))
                packed_shape = pack(np.zeros(in_types[1][0], np.float32)).shape
                entry["kernels"].append(dict(name=name, symbol=symbol, packed=packed_shape))
            manifest.append(entry)
    os.makedirs(args.dir, exist_ok=True)
    build_kernel_library(funcs, target, os.path.join(args.dir, "kernels.so"))   # no SASS: needs no cuobjdump
    json.dump(manifest, open(os.path.join(args.dir, "manifest.json"), "w"), indent=1)
    print(f"{args.dir}: {len(funcs)} kernels")


def _packed(w, kernel):
    """The kernel's packed weight, as its pack_weight makes it (the device has no TVM compiler, so no
    yuan.schedules): per-tap [Op, KH, KW, C], SGEMM [Kp, Op] with k = (c, rh, rw); zero padding."""
    import numpy as np
    packed = np.zeros(kernel["packed"], np.float32)
    O = w.shape[0]
    if kernel["name"] == "per-tap":
        packed[:O] = w.transpose(0, 2, 3, 1)
    else:
        packed[:w[0].size, :O] = w.reshape(O, -1).T
    return packed


def run(args):
    import numpy as np
    import torch
    import tvm
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from compile_latency import interleaved_rounds
    from gpu_check import cuda_event_ms, enable_cuda_runtime
    print("CUDA runtime:", enable_cuda_runtime(tvm))
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = tvm.cuda(0)
    lib = tvm.runtime.load_module(os.path.join(args.dir, "kernels.so"))
    rng = np.random.default_rng(0)
    for entry in json.load(open(os.path.join(args.dir, "manifest.json"))):
        x = rng.standard_normal(entry["x"]).astype(np.float32)
        w = (rng.standard_normal(entry["w"]) / np.sqrt(np.prod(entry["w"][1:]))).astype(np.float32)
        b = rng.standard_normal(entry["w"][0]).astype(np.float32)
        tx, tw, tb = (torch.from_numpy(a).cuda() for a in (x, w, b))
        ref = torch.relu(torch.nn.functional.conv2d(tx, tw, tb, stride=entry["stride"], padding=entry["pad"]))
        xd, bd = tvm.runtime.tensor(x, dev), tvm.runtime.tensor(b, dev)
        yd = tvm.runtime.tensor(np.zeros(entry["y"], np.float32), dev)
        timers, notes = {}, []
        for k in entry["kernels"]:
            wd = tvm.runtime.tensor(_packed(w, k), dev)
            f = lib[k["symbol"]]
            f(xd, wd, bd, yd)
            err = float(np.max(np.abs(yd.numpy() - ref.cpu().numpy())))
            if err > 1e-4 * max(1.0, float(ref.abs().max())):
                notes.append(f"{k['name']} WRONG max|diff| {err:.2e}")
            ev = lib.time_evaluator(k["symbol"], dev, number=args.number, repeat=1)
            timers[k["name"]] = lambda ev=ev, wd=wd: ev(xd, wd, bd, yd).results[0] * 1e6

        def torch_fp32():
            return torch.relu(torch.nn.functional.conv2d(tx, tw, tb, stride=entry["stride"], padding=entry["pad"]))
        timers["torch-fp32"] = lambda: cuda_event_ms(torch_fp32, args.number) * 1e3
        times = interleaved_rounds(timers, args.rounds)
        med = {name: float(np.median(v)) for name, v in times.items()}
        print(entry["layer"], "  ".join(f"{n} {v:.1f}" for n, v in med.items()), *notes, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--batches", default="16,1")
    p.add_argument("--target", default="cuda-sm90")
    p.add_argument("--dir", default=os.path.join(ROOT, ".gpu", "tiles"))
    r = sub.add_parser("run")
    r.add_argument("--dir", default=os.path.join(ROOT, ".gpu", "tiles"))
    r.add_argument("--number", type=int, default=10)
    r.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    (prepare if args.cmd == "prepare" else run)(args)


if __name__ == "__main__":
    main()
