"""The CUDA check for a session that is lent a GPU, in three steps (issue 11):

1. HERE (compiler machine, no GPU):  python bench/gpu_check.py prepare [--models resnet18,mobilenet_v2,shufflenet_v2]
       [--batches 1,16] [--precisions int8,fp32] [--target cuda-sm90] [--bf16-values] [--dir .gpu/check]
   compiles each model into DIR (one library + sidecar per model, precision and batch), with one input per
   batch (.npy) and the reference output: the int8 model's NumPy integer reference (bit-exact target) and,
   for fp32, ONNX Runtime CPU on the exported float graph (1e-4 target). Precisions (PRECISIONS): int8,
   fp32, and A/B baselines that switch kernels off: fp32-dlight (DLight's schedules instead of the scheduled
   fp32 kernels), int8-dp4a (dp4a instead of the tensor-core kernels), ...
2. HERE: python bench/gpu_check.py pack DIR [DIR ...] [--only 'resnet18_int8*'] --out .gpu/call1.tar.xz
   The device tool carries at most 64 MiB per call, and a cold machine starts bare. Measured sizes: TVM's
   runtime-only tree (../shared/tools/gpu/README.md) packs to 4.9 MiB with xz; ResNet-18 fp32 weights are
   45 MiB and random floats do not compress, so prepare with --bf16-values (weights and inputs rounded to
   bfloat16-exact fp32 values, batch norms folded first: still fp32 arithmetic, checked against ONNX Runtime
   on the same weights): ResNet-18 int8 b1 + b16 and fp32 b1 + b16 then pack to 36 MiB (xz stores the
   weights a second library repeats once). `xz -T1` on this 2-core machine: several minutes per pack.
3. ON THE DEVICE (python 3.12, no TVM compiler), carry [".gpu/site.tar.xz", ".gpu/call1.tar.xz"]:
       python3 -c "import tarfile; [tarfile.open(t).extractall('.gpu') for t in ('.gpu/site.tar.xz', '.gpu/call1.tar.xz')]"
       TVM_USE_RUNTIME_LIB=1 PYTHONPATH=.gpu/site python3 bench/gpu_check.py run --dir .gpu/call1 [--kernels]
   loads every library with tvm.runtime only, runs it on tvm.cuda(0), checks the output (int8: equal;
   fp32: max |diff| <= 1e-4 * max(1, max|ref|)), times `--number` calls with TVM's CUDA-event timer
   (time_evaluator), interleaved A, B, A, B with PyTorch eager (cuDNN, bench/torch_mirror.py on the same
   fp32 graph; strict fp32 and PyTorch's default TF32 convs) when torch imports, and prints medians and the
   ratios int8 / fp32 (target <= 0.5 at batch 16), Yuan fp32 / PyTorch (target <= 1.5) and each A/B.
   --kernels adds each library's costliest GPU kernels (CUPTI through torch.profiler). Exit 1 on a
   mismatch. A cold start took ~25 s of device time this way, a whole call 50-150 s.

Without a GPU, `run` still loads each library and builds its VM (what this machine can check), then says so;
`prepare --target x86` + `run --cpu` exercise the checks and the timing here.
"""
import argparse
import collections
import contextlib
import json
import os
import sys
import time

from compile_latency import interleaved_rounds
from kernel_names import kernel_kind

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A/B precisions: the model of the first, with these kernels switched off ("fp32-dlight": the scheduled fp32
# kernels, back to schedules/cuda.py's DLight; "int8-dp4a": the tensor-core kernels, back to dp4a;
# "int8-imma-v1": the tiled tensor-core kernel of cuda_imma_tiled.py, back to cuda_imma.py's)
PRECISIONS = {"int8": ("int8", ()), "fp32": ("fp32", ()),
              "fp32-dlight": ("fp32", ("conv2d_f32_nchw_cuda_sgemm", "conv2d_f32_nchw_cuda_tiled", "linear_f32_cuda_tiled",
                                       "dwconv2d_f32_nchw_cuda")),
              "fp32-tiled-v1": ("fp32", ("conv2d_f32_nchw_cuda_sgemm",)),   # the per-tap kernel before the SGEMM one
              "int8-dp4a": ("int8", ("qconv2d_int8_nchw_imma_tiled", "qlinear_int8_imma_tiled", "qconv2d_int8_nchw_imma",
                                     "qlinear_int8_imma")),
              "int8-imma-v1": ("int8", ("qconv2d_int8_nchw_imma_tiled", "qlinear_int8_imma_tiled"))}


@contextlib.contextmanager
def kernels_off(names):
    """Within: the named kernels never apply, so their ops fall back to the next kernel in priority."""
    from yuan.schedules.registry import get_kernel
    kernels = [get_kernel(name) for name in names]
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
            if args.bf16_values:
                x = _bf16_exact(x)
            for prec in args.precisions.split(","):
                if prec not in PRECISIONS:
                    raise SystemExit(f"--precisions: unknown precision {prec!r} ({', '.join(PRECISIONS)})")
                base, switched_off = PRECISIONS[prec]
                model = qmodel if base == "int8" else fmodel
                graph = trace(model, Tensor(x))
                if args.bf16_values and base == "fp32":
                    graph = _bf16_exact_weights(graph)
                tag = f"{name}_{prec}_b{batch}"
                t0 = time.perf_counter()
                with kernels_off(switched_off):
                    compile_graph(graph, target, os.path.join(args.dir, f"{tag}.so"))
                seconds = time.perf_counter() - t0
                if os.path.exists(os.path.join(args.dir, f"{tag}.cu")):    # not needed to run; saves carry space
                    os.remove(os.path.join(args.dir, f"{tag}.cu"))
                if base == "int8":
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
                x_file = f"x_b{batch}.npy"            # one input per batch: the device carry is small
                if not os.path.exists(os.path.join(args.dir, x_file)):
                    np.save(os.path.join(args.dir, x_file), x)
                np.save(os.path.join(args.dir, f"{tag}_ref.npy"), np.asarray(ref))
                manifest.append(dict(tag=tag, model=name, precision=prec, batch=batch, input=x_file))
                print(f"{tag}: compiled in {seconds:.0f} s", flush=True)
    with open(os.path.join(args.dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    size = sum(os.path.getsize(os.path.join(args.dir, n)) for n in os.listdir(args.dir))
    print(f"{args.dir}: {size / 2 ** 20:.1f} MiB (plus ~29 MiB of TVM runtime; the device carries 64 MiB)")


def _bf16_exact(a):
    """fp32 values rounded to the nearest bfloat16-representable fp32 (low 16 mantissa bits zero)."""
    import numpy as np
    return ((a.view(np.uint32) + 0x8000) & 0xFFFF0000).astype(np.uint32).view(np.float32)


def _bf16_exact_weights(graph):
    """The graph with batch norms folded and every float constant bfloat16-exact: the model still computes
    in fp32 and ONNX Runtime checks it on the same weights, but xz packs its library to about half, which
    is what lets ResNet-18 fp32 fit the device's 64 MiB carry. Folding first keeps the compiled weights
    exactly these values."""
    import numpy as np
    from yuan.compiler.passes import fold_batch_norm
    graph = fold_batch_norm(graph)
    for name, value in graph.constants.items():
        if value.dtype == np.float32:
            graph.constants[name] = _bf16_exact(value)
    return graph


def _selected(tag, only):
    """Whether `tag` matches one of the comma-separated patterns of --only (everything when empty)."""
    import fnmatch
    return not only or any(fnmatch.fnmatch(tag, pat) for pat in only.split(","))


# ------------------------------------------------------------------------------ pack (here)
def pack(args):
    """One .tar.xz for one device call: the chosen entries of several prepared folders under one folder
    with one manifest (inputs shared per batch). xz with a large dictionary, so a library's weights that
    repeat in another library of the same model (batch 1 and 16) are stored once."""
    import io
    import lzma
    import tarfile
    name = os.path.basename(args.out).split(".")[0]
    manifest, files = [], []
    for folder in args.dirs:
        for entry in json.load(open(os.path.join(folder, "manifest.json"))):
            if not _selected(entry["tag"], args.only):
                continue
            if entry["tag"] in [e["tag"] for e in manifest]:
                raise SystemExit(f"pack: {entry['tag']} is in two of the folders; pick one with --only")
            manifest.append(entry)
            tag = entry["tag"]
            for fname in (f"{tag}.so", f"{tag}.json", f"{tag}_ref.npy", f"{tag}_graph.pkl", entry.get("input")):
                if fname and os.path.exists(os.path.join(folder, fname)) and fname not in [f for _, f in files]:
                    files.append((folder, fname))
    # preset 3 (fast match finder) is ~3x quicker than 6 and still finds the repeated weights; the size is
    # within a few per cent (random weights do not compress either way)
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 3, "dict_size": 192 << 20}]
    with lzma.open(args.out, "wb", format=lzma.FORMAT_XZ, filters=filters) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(f"{name}/manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for folder, fname in files:
            tar.add(os.path.join(folder, fname), arcname=f"{name}/{fname}")
    print(f"{args.out}: {len(manifest)} entries, {os.path.getsize(args.out) / 2 ** 20:.1f} MiB; on the device: "
          f"extract it into .gpu, then `run --dir .gpu/{name}`")


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
    if entry["precision"].startswith("int8"):
        ok = got.dtype == ref.dtype and np.array_equal(got, ref)
        return ok, f"bit-exact {ok} ({np.count_nonzero(got != ref)} of {ref.size} differ)"
    err = float(np.max(np.abs(got.astype(np.float64) - ref)))
    ok = err <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))
    return ok, f"max|diff| {err:.2e} {'ok' if ok else 'TOO LARGE'}"


def cuda_event_ms(fn, number):
    """ms per call of `number` back-to-back calls of fn (PyTorch work on the current stream), from two
    CUDA events recorded on that stream around them."""
    import torch
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(number):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / number


def map_package(name, folder, run_init=False):
    """Make package `name` importable from ROOT/folder without the yuan install (the runtime-only machine): a bare
    package whose __path__ is the folder, or with run_init its __init__.py executed (yuan.runtime imports only tvm's
    runtime and NumPy). A package already imported is kept."""
    import importlib.util
    import types
    if name in sys.modules:
        return
    path = os.path.join(ROOT, folder)
    if not run_init:
        module = types.ModuleType(name)
        module.__path__ = [path]
        sys.modules[name] = module
        return
    spec = importlib.util.spec_from_file_location(name, os.path.join(path, "__init__.py"),
                                                  submodule_search_locations=[path])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def _torch_eager(args, entry, x):
    """{name: timer of ms per call} of PyTorch eager (cuDNN) on the same fp32 graph (bench/torch_mirror.py, random weights of
    the graph's shapes: timing only), or None with the reason printed. The graph pickle needs only
    yuan.compiler.ir (no TVM): the package folders are mapped by hand."""
    try:
        import pickle

        import numpy as np
        import torch
        for name, folder in (("yuan", "yuan"), ("yuan.compiler", "compiler")):
            map_package(name, folder)
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

        def timer(tf32):
            def timed():
                # PyTorch lets cuDNN convs use TF32 tensor cores by default; "torch fp32" turns that off
                # (Yuan's fp32 stays fp32), "torch tf32" is what a default PyTorch user gets
                torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
                with torch.no_grad():
                    return cuda_event_ms(lambda: model(xt), args.number)
            timed()                               # cuDNN's benchmark picks its algorithms here
            return timed

        return {"torch fp32": timer(False), "torch tf32": timer(True)}
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
        if not _selected(entry["tag"], args.only):
            continue
        try:
            failed |= not _load_and_check(args, entry, dev, gpu, groups, tvm, rvm, np)
        except Exception:                 # one broken library must not hide the others' results
            import traceback
            print(f"{entry['tag']}: FAILED\n{traceback.format_exc()[-2000:]}", flush=True)
            failed = True
    _time_groups(args, groups, np)
    if not gpu:
        print("no GPU: nothing was run")
        return 2
    return 1 if failed else 0


def _load_and_check(args, entry, dev, gpu, groups, tvm, rvm, np):
    """Load one library, check its output against the reference and register its timer; False on a mismatch."""
    tag = entry["tag"]
    meta = json.load(open(os.path.join(args.dir, f"{tag}.json")))
    lib = tvm.runtime.load_module(os.path.join(args.dir, f"{tag}.so"))
    machine = rvm.VirtualMachine(lib, dev if gpu else tvm.cpu())
    kinds = collections.Counter(kernel_kind(k) for k in meta["kernels"]
                                if k.startswith(("conv2d", "linear", "qconv2d", "qlinear", "dwconv2d")))
    print(f"{tag}: conv / linear kernels {dict(kinds)}")
    if not gpu:
        print(f"{tag}: loaded, VM built ({len(meta['kernels'])} kernels); no GPU to run it")
        return True
    fn = meta.get("entry", "main")
    x = np.load(os.path.join(args.dir, entry.get("input", f"{tag}_x.npy")))
    ref = np.load(os.path.join(args.dir, f"{tag}_ref.npy"))
    xd = tvm.runtime.tensor(x.astype(meta["inputs"][0]["dtype"]), dev)
    out = machine[fn](xd)
    ok, text = _check(entry, (out if hasattr(out, "numpy") else out[0]).numpy(), ref, np)
    print(f"{tag}: {text}", flush=True)
    machine.set_input(fn, xd)
    evaluator = machine.time_evaluator("invoke_stateful", dev, number=args.number, repeat=1)
    timers = groups.setdefault((entry["model"], entry["batch"]), {})
    timers[f"yuan {entry['precision']}"] = lambda e=evaluator, f=fn: e(f).results[0] * 1e3
    if entry["precision"] == "fp32" and not args.cpu:
        timers.update(_torch_eager(args, entry, x) or {})
    if args.kernels:
        _print_kernel_times(args, machine, fn, dev, tag)
    return ok


def _print_kernel_times(args, machine, fn, dev, tag):
    """The GPU time per kernel of `number` runs, from CUPTI through torch.profiler (it records every kernel
    the process launches, TVM's included); the --top costliest, with their share of the kernels' sum."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
        machine.invoke_stateful(fn)
        dev.sync()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(args.number):
                machine.invoke_stateful(fn)
            dev.sync()
            torch.cuda.synchronize()
        totals = collections.Counter()
        for ev in prof.key_averages():
            us = getattr(ev, "self_device_time_total", None) or getattr(ev, "self_cuda_time_total", 0)
            if us:
                totals[ev.key] += us / args.number
        whole = sum(totals.values())
        print(f"{tag}: kernels' GPU time {whole / 1e3:.3f} ms per run ({len(totals)} kernels)")
        for name, us in totals.most_common(args.top):
            print(f"   {us:8.1f} us {100 * us / whole:5.1f} %  {name[:90]}")
    except Exception as exc:
        print(f"{tag}: per-kernel times unavailable: {type(exc).__name__}: {str(exc)[:200]}")


def _time_groups(args, groups, np):
    """Interleaved rounds per (model, batch); prints medians and the issue's ratios."""
    for (model, batch), timers in sorted(groups.items()):   # interleaved A, B, C, A, B, C ...; medians
        samples = interleaved_rounds(timers, args.repeat)
        med = {k: float(np.median(v)) for k, v in samples.items()}
        line = ", ".join(f"{k} {ms:.3f} ms" for k, ms in med.items())
        print(f"{model} b{batch}: {line}")
        if "yuan int8" in med and "yuan fp32" in med:
            print(f"  int8 / fp32 = {med['yuan int8'] / med['yuan fp32']:.2f} (target <= 0.5 at batch 16)")
        if "yuan fp32-dlight" in med and "yuan fp32" in med:
            print(f"  scheduled fp32 / DLight fp32 = {med['yuan fp32'] / med['yuan fp32-dlight']:.2f}")
        if "yuan int8-dp4a" in med and "yuan int8" in med:
            print(f"  int8 (per-shape rule) / int8 dp4a only = {med['yuan int8'] / med['yuan int8-dp4a']:.2f}")
        if "torch fp32" in med and "yuan fp32" in med:
            print(f"  yuan fp32 / torch eager fp32 = {med['yuan fp32'] / med['torch fp32']:.2f} (target <= 1.5 at batch 16); "
                  f"/ torch default (TF32 convs) = {med['yuan fp32'] / med['torch tf32']:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--models", default="resnet18,mobilenet_v2,shufflenet_v2")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--precisions", default="int8,fp32", help=f"of {', '.join(PRECISIONS)} (see PRECISIONS)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--calib", type=int, default=1)
    p.add_argument("--target", default="cuda",
                   help="cuda (sm_80 + PTX), cuda-sm75 / cuda-sm89 / cuda-sm90 (native code for that GPU), "
                        "or x86: libraries for a dry run of `run --cpu` here")
    p.add_argument("--arch", default=None, help="e.g. sm_90 for an H100/H200 (default: the target's sm_80 + PTX)")
    p.add_argument("--dir", default=os.path.join(ROOT, ".gpu", "check"))
    p.add_argument("--bf16-values", action="store_true",
                   help="fp32 weights and the inputs rounded to bfloat16-exact values (computation stays fp32) so "
                        "they compress for the device carry; see _bf16_exact_weights")
    k = sub.add_parser("pack")
    k.add_argument("dirs", nargs="+", help="prepared folders")
    k.add_argument("--out", required=True, help="e.g. .gpu/call1.tar.xz")
    k.add_argument("--only", default="", help="comma-separated tag patterns, e.g. 'resnet18_int8*,resnet18_fp32_b*'")
    r = sub.add_parser("run")
    r.add_argument("--dir", default=os.path.join(ROOT, ".gpu", "check"))
    r.add_argument("--cpu", action="store_true", help="run on the CPU (libraries prepared with --target x86)")
    r.add_argument("--number", type=int, default=10)
    r.add_argument("--repeat", type=int, default=9, help="interleaved rounds (medians over them)")
    r.add_argument("--only", default="", help="comma-separated tag patterns to run")
    r.add_argument("--kernels", action="store_true", help="also print each library's costliest GPU kernels")
    r.add_argument("--top", type=int, default=12, help="kernels listed per library with --kernels")
    args = ap.parse_args()
    sys.exit({"prepare": prepare, "pack": pack, "run": run}[args.cmd](args))


if __name__ == "__main__":
    main()
