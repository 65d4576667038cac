"""The CUDA check for a session that is lent a GPU, in two halves (issue 11):

1. HERE (compiler machine, no GPU):  python bench/gpu_check.py prepare [--models resnet18,mobilenet_v2,shufflenet_v2]
       [--batches 1,16] [--precisions int8,fp32] [--size 224] [--arch sm_90] [--dir .gpu/check]
   compiles each model for `cuda` into DIR (one library + sidecar per model, precision and batch), with its
   input (.npy) and reference output: the int8 model's NumPy integer reference (bit-exact target) and, for
   fp32, ONNX Runtime CPU on the exported float graph (1e-4 target). Prints the MiB written: the device
   tool carries at most 64 MiB per call, TVM's runtime-only tree included (~29 MiB,
   ../shared/tools/gpu/README.md), and ResNet-18 fp32 alone is ~45 MiB: prepare groups into separate
   folders (--dir .gpu/r18_fp32 --models resnet18 --precisions fp32 --batches 16, ...). Ignored paths
   already on the device are kept between calls while it stays warm: carry [".gpu/site", <group 1>] first,
   then one group per call (`run --dir <group>`), each call's carry naming only its group.
   Precisions: int8, fp32 (the scheduled CUDA-core kernels of schedules/cuda_fp32.py and cuda_depthwise.py)
   and fp32-dlight (the same fp32 graph with those kernels switched off, i.e. DLight's schedules as before:
   the A/B baseline of the scheduled fp32 path; e.g. --models resnet18 --batches 16 --precisions
   fp32,fp32-dlight as one group).
2. ON THE DEVICE (python 3.12, no TVM compiler), with carry [".gpu"]:
       TVM_USE_RUNTIME_LIB=1 PYTHONPATH=.gpu/site python3 bench/gpu_check.py run --dir .gpu/check
   loads every library with tvm.runtime only, runs it on tvm.cuda(0), checks the output (int8: equal;
   fp32: max |diff| <= 1e-4 * max(1, max|ref|)), times `--repeat` calls with TVM's CUDA-event timer
   (time_evaluator), interleaved A, B, A, B with PyTorch eager (cuDNN, bench/torch_mirror.py on the same
   fp32 graph) when torch imports, and prints medians and the ratios int8 / fp32 (target <= 0.5 at batch 16),
   Yuan fp32 / PyTorch (target <= 1.5) and scheduled fp32 / DLight fp32. Exit 1 on a mismatch.

Without a GPU, `run` still loads each library and builds its VM (what this machine can check), then says so;
`prepare --target x86` + `run --cpu` exercise the checks and the timing here.
"""
import argparse
import collections
import contextlib
import json
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the scheduled CUDA fp32 kernels that precision "fp32-dlight" switches off (back to schedules/cuda.py's DLight)
SCHEDULED_FP32 = ("conv2d_f32_nchw_cuda_tiled", "linear_f32_cuda_tiled", "dwconv2d_f32_nchw_cuda")


@contextlib.contextmanager
def scheduled_fp32_off():
    """Within: the kernels of SCHEDULED_FP32 never apply, so fp32 convs / linears fall back to DLight."""
    from yuan.schedules.registry import get_kernel
    kernels = [get_kernel(name) for name in SCHEDULED_FP32]
    saved = [k.applies for k in kernels]
    for k in kernels:
        k.applies = lambda *_: False
    try:
        yield
    finally:
        for k, applies in zip(kernels, saved):
            k.applies = applies


# ------------------------------------------------------------------------------ prepare (here)
def prepare(args):
    import copy
    import pickle
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import numpy as np
    from compile_latency import build_models, ort_session

    from yuan.compiler.build import compile_graph
    from yuan.compiler.onnx.export import export_onnx
    from yuan.frontend.tensor import Tensor
    from yuan.frontend.trace import trace
    from yuan.compiler.targets import resolve_target
    target = resolve_target(args.target)
    if args.arch:                          # native SASS for the lent GPU (default sm_80 + PTX, JIT-compiled on newer)
        target = target.with_config(arch=args.arch)
    os.makedirs(args.dir, exist_ok=True)
    manifest = []
    for name in args.models.split(","):
        fmodel, qmodel = build_models(name, args.size, args.calib)[:2]
        for batch in (int(b) for b in args.batches.split(",")):
            x = np.random.default_rng(batch).standard_normal((batch, 3, args.size, args.size)).astype(np.float32)
            for prec in args.precisions.split(","):
                if prec not in ("int8", "fp32", "fp32-dlight"):
                    raise SystemExit(f"--precisions: unknown precision {prec!r} (int8, fp32, fp32-dlight)")
                model = qmodel if prec == "int8" else fmodel
                graph = trace(model, Tensor(x))
                tag = f"{name}_{prec}_b{batch}"
                t0 = time.perf_counter()
                with scheduled_fp32_off() if prec == "fp32-dlight" else contextlib.nullcontext():
                    compile_graph(graph, target, os.path.join(args.dir, f"{tag}.so"))
                seconds = time.perf_counter() - t0
                if os.path.exists(os.path.join(args.dir, f"{tag}.cu")):    # not needed to run; saves carry space
                    os.remove(os.path.join(args.dir, f"{tag}.cu"))
                if prec == "int8":
                    ref = model(Tensor(x)).data            # the integer reference (NumPy)
                else:
                    onnx_path = os.path.join(args.dir, f"{tag}.onnx")
                    export_onnx(graph, onnx_path)
                    sess = ort_session(onnx_path, 2)
                    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
                    os.remove(onnx_path)
                if prec == "fp32":                          # for the PyTorch eager baseline (timing only)
                    bare = copy.copy(graph)
                    bare.constants = {}
                    with open(os.path.join(args.dir, f"{tag}_graph.pkl"), "wb") as f:
                        pickle.dump((bare, {k: (v.shape, str(v.dtype)) for k, v in graph.constants.items()}), f)
                np.save(os.path.join(args.dir, f"{tag}_x.npy"), x)
                np.save(os.path.join(args.dir, f"{tag}_ref.npy"), np.asarray(ref))
                manifest.append(dict(tag=tag, model=name, precision=prec, batch=batch))
                print(f"{tag}: compiled in {seconds:.0f} s", flush=True)
    with open(os.path.join(args.dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    size = sum(os.path.getsize(os.path.join(args.dir, n)) for n in os.listdir(args.dir))
    print(f"{args.dir}: {size / 2 ** 20:.1f} MiB (plus ~29 MiB of TVM runtime; the device carries 64 MiB)")


# ------------------------------------------------------------------------------ run (device)
def enable_cuda_runtime(tvm):
    """Load TVM's CUDA runtime (libtvm_runtime_cuda.so links the driver libcuda.so.1): with the real
    driver on the GPU machine; with yuan's stub driver here (compile machine), which can load, not run."""
    import ctypes
    if tvm.runtime.enabled("cuda"):
        return "enabled"
    try:
        ctypes.CDLL("libcuda.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        from yuan.compiler.backends.cuda_toolchain import prepare_cuda
        prepare_cuda()
        return "stub driver (no GPU)"
    ctypes.CDLL(os.path.join(os.path.dirname(tvm.__file__), "lib", "libtvm_runtime_cuda.so"), mode=ctypes.RTLD_GLOBAL)
    return "driver"


def _check(entry, got, ref, np):
    """(ok, text): int8 outputs equal the integer reference; fp32 within 1e-4 of ONNX Runtime CPU."""
    if entry["precision"] == "int8":
        ok = got.dtype == ref.dtype and np.array_equal(got, ref)
        return ok, f"bit-exact {ok} ({np.count_nonzero(got != ref)} of {ref.size} differ)"
    err = float(np.max(np.abs(got.astype(np.float64) - ref)))
    ok = err <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))
    return ok, f"max|diff| {err:.2e} {'ok' if ok else 'TOO LARGE'}"


def _torch_eager(args, entry, x):
    """ms per call of PyTorch eager (cuDNN) on the same fp32 graph (bench/torch_mirror.py, random weights of
    the graph's shapes: timing only), or None with the reason printed. The graph pickle needs only
    yuan.compiler.ir (no TVM): the package folders are mapped by hand."""
    try:
        import pickle
        import types

        import numpy as np
        import torch
        for name, folder in (("yuan", "yuan"), ("yuan.compiler", "compiler")):
            if name not in sys.modules:
                mod = types.ModuleType(name)
                mod.__path__ = [os.path.join(ROOT, folder)]
                sys.modules[name] = mod
        sys.path.insert(0, os.path.join(ROOT, "bench"))
        from torch_mirror import TorchMirror
        with open(os.path.join(args.dir, f"{entry['tag']}_graph.pkl"), "rb") as f:
            graph, shapes = pickle.load(f)
        rng = np.random.default_rng(0)
        graph.constants = {k: (rng.standard_normal(sh) * 0.05).astype(dt) if np.dtype(dt).kind == "f"
                           else np.zeros(sh, dt) for k, (sh, dt) in shapes.items()}
        torch.backends.cudnn.benchmark = True
        model = TorchMirror(graph).cuda().eval()
        xt = torch.from_numpy(x).cuda()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def timed():
            with torch.no_grad():
                start.record()
                for _ in range(args.number):
                    model(xt)
                end.record()
                torch.cuda.synchronize()
            return start.elapsed_time(end) / args.number

        timed()
        return timed
    except Exception as exc:                 # the baseline is optional: say why it is missing
        print(f"  (PyTorch eager baseline skipped: {type(exc).__name__}: {str(exc)[:160]})")
        return None


def run(args):
    import numpy as np
    import tvm
    from tvm.runtime import vm as rvm
    if args.cpu:                          # dry run of the checks and timing on libraries built with --target x86
        dev, gpu = tvm.cpu(), True
    else:
        print("CUDA runtime:", enable_cuda_runtime(tvm))
        dev = tvm.cuda(0)
        gpu = dev.exist
        print("device:", f"{dev.device_name} (sm_{str(dev.compute_version).replace('.', '')})" if gpu else "no CUDA GPU")
    manifest = json.load(open(os.path.join(args.dir, "manifest.json")))
    groups, failed = {}, False
    for entry in manifest:                # load and check everything; timers per (model, batch)
        tag = entry["tag"]
        meta = json.load(open(os.path.join(args.dir, f"{tag}.json")))
        lib = tvm.runtime.load_module(os.path.join(args.dir, f"{tag}.so"))
        machine = rvm.VirtualMachine(lib, dev if gpu else tvm.cpu())
        kinds = collections.Counter(re.sub(r"_[0-9a-f]{10}(_\d+)?$", "", k) for k in meta["kernels"]
                                    if k.startswith(("conv2d", "linear", "qconv2d", "qlinear", "dwconv2d")))
        print(f"{tag}: conv / linear kernels {dict(kinds)}")
        if not gpu:
            print(f"{tag}: loaded, VM built ({len(meta['kernels'])} kernels); no GPU to run it")
            continue
        fn = meta.get("entry", "main")
        x = np.load(os.path.join(args.dir, f"{tag}_x.npy"))
        ref = np.load(os.path.join(args.dir, f"{tag}_ref.npy"))
        xd = tvm.runtime.tensor(x.astype(meta["inputs"][0]["dtype"]), dev)
        out = machine[fn](xd)
        ok, text = _check(entry, (out if hasattr(out, "numpy") else out[0]).numpy(), ref, np)
        failed |= not ok
        print(f"{tag}: {text}", flush=True)
        machine.set_input(fn, xd)
        evaluator = machine.time_evaluator("invoke_stateful", dev, number=args.number, repeat=1)
        timers = groups.setdefault((entry["model"], entry["batch"]), {})
        timers[f"yuan {entry['precision']}"] = lambda e=evaluator, f=fn: e(f).results[0] * 1e3
        if entry["precision"] == "fp32" and not args.cpu:
            torch_timer = _torch_eager(args, entry, x)
            if torch_timer is not None:
                timers["torch fp32"] = torch_timer
    for (model, batch), timers in sorted(groups.items()):   # interleaved A, B, C, A, B, C ...; medians
        samples = {k: [] for k in timers}
        for _ in range(args.repeat):
            for k, t in timers.items():
                samples[k].append(t())
        med = {k: float(np.median(v)) for k, v in samples.items()}
        line = ", ".join(f"{k} {ms:.3f} ms" for k, ms in med.items())
        print(f"{model} b{batch}: {line}")
        if "yuan int8" in med and "yuan fp32" in med:
            print(f"  int8 / fp32 = {med['yuan int8'] / med['yuan fp32']:.2f} (target <= 0.5 at batch 16)")
        if "yuan fp32-dlight" in med and "yuan fp32" in med:
            print(f"  scheduled fp32 / DLight fp32 = {med['yuan fp32'] / med['yuan fp32-dlight']:.2f}")
        if "torch fp32" in med and "yuan fp32" in med:
            print(f"  yuan fp32 / torch eager fp32 = {med['yuan fp32'] / med['torch fp32']:.2f} (target <= 1.5 at batch 16)")
    if not gpu:
        print("no GPU: nothing was run")
        return 2
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--models", default="resnet18,mobilenet_v2,shufflenet_v2")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--precisions", default="int8,fp32", help="of int8, fp32, fp32-dlight (see above)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--calib", type=int, default=1)
    p.add_argument("--target", default="cuda",
                   help="cuda (sm_80 + PTX), cuda-sm75 / cuda-sm89 / cuda-sm90 (native code for that GPU), "
                        "or x86: libraries for a dry run of `run --cpu` here")
    p.add_argument("--arch", default=None, help="e.g. sm_90 for an H100/H200 (default: the target's sm_80 + PTX)")
    p.add_argument("--dir", default=os.path.join(ROOT, ".gpu", "check"))
    r = sub.add_parser("run")
    r.add_argument("--dir", default=os.path.join(ROOT, ".gpu", "check"))
    r.add_argument("--cpu", action="store_true", help="run on the CPU (libraries prepared with --target x86)")
    r.add_argument("--number", type=int, default=10)
    r.add_argument("--repeat", type=int, default=9, help="interleaved rounds (medians over them)")
    args = ap.parse_args()
    sys.exit(prepare(args) if args.cmd == "prepare" else run(args))


if __name__ == "__main__":
    main()
