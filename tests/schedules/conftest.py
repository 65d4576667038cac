"""Helpers of the kernel tests: targets, NumPy integer references, compile-and-run one kernel."""
import numpy as np
import tvm

from yuan.compiler.targets import Target, resolve_target
from yuan.schedules import kernel_inputs, select_kernel

DEV = tvm.cpu()
# Kernels that run are compiled for this machine's CPU (the "x86" target: its features are the CPU's
# own flags). ZNVER4 is for kernel SELECTION only: znver4 code may use AMD-only instructions (SSE4a
# extrq) that fault on an Intel host with the same AVX-512 features.
HOST = resolve_target("x86")
GENERIC = Target.from_tvm("llvm")            # plain x86-64: no AVX2 / AVX-512, the fallback path
ZNVER4 = Target.from_tvm({"kind": "llvm", "mcpu": "znver4"})
AARCH64 = resolve_target("aarch64")
AARCH64_DOT = resolve_target("aarch64-dotprod")
CUDA = resolve_target("cuda")
HAS_VNNI = "avx512_vnni" in HOST.features
HAS_AVX512 = "avx512" in HOST.features


# ------------------------------------------------------------------ NumPy references (int64 math)

def ref_conv_acc(x, w, strides, pads, dil, group, zx=0, dtype=np.int64):
    x = x.astype(dtype) - zx
    w = w.astype(dtype)
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    t, l, b, r = pads
    xp = np.zeros((N, C, H + t + b, W + l + r), dtype)
    xp[:, :, t:t + H, l:l + W] = x
    OH = (H + t + b - dil[0] * (KH - 1) - 1) // strides[0] + 1
    OW = (W + l + r - dil[1] * (KW - 1) - 1) // strides[1] + 1
    out = np.zeros((N, O, OH, OW), dtype)
    Og = O // group
    for o in range(O):
        g = o // Og
        for i in range(KH):
            for j in range(KW):
                patch = xp[:, g * Cg:(g + 1) * Cg, i * dil[0]: i * dil[0] + strides[0] * (OH - 1) + 1: strides[0],
                           j * dil[1]: j * dil[1] + strides[1] * (OW - 1) + 1: strides[1]]
                out[:, o] += np.einsum("nchw,c->nhw", patch, w[o, :, i, j])
    return out

def ref_requant(acc, m, n, zy, lo, hi, axis=1):
    acc = np.asarray(acc, np.int64)
    m = np.asarray(m, np.int64)
    n = np.asarray(n, np.int64)
    if m.size > 1:
        shp = [1] * acc.ndim
        shp[axis] = -1
        m, n = m.reshape(shp), n.reshape(shp)
    y = ((acc * m + (np.int64(1) << (n - 1))) >> n) + zy
    return np.clip(y, lo, hi)

def _out_shape(xs, ws, attrs):
    s = attrs.get("strides", [1, 1]); p = attrs.get("pads", [0, 0, 0, 0]); d = attrs.get("dilations", [1, 1])
    OH = (xs[2] + p[0] + p[2] - d[0] * (ws[2] - 1) - 1) // s[0] + 1
    OW = (xs[3] + p[1] + p[3] - d[1] * (ws[3] - 1) - 1) // s[1] + 1
    return (xs[0], ws[0], OH, OW)


# ------------------------------------------------------------------ compile and run one kernel

def build(op, attrs, inputs, out_type, target, expect):
    """(PrimFunc, compiled lib, call args) of the kernel the registry picks; asserts its name."""
    in_types = [None if a is None else (a.shape, str(a.dtype)) for a in inputs]
    k, f = select_kernel(op, attrs, in_types, out_type, target)
    assert k.name == expect, k.name
    inputs = [a for a in inputs if a is not None]
    plan = kernel_inputs(f, attrs, in_types, inputs)
    args = [inputs[p] if isinstance(p, int) else p for p in plan]
    return f, compile_kernel(f, target), args


def compile_kernel(func, target):
    return tvm.compile(tvm.IRModule({func.attrs["global_symbol"]: func}), target.tvm)


def execute(f, lib, args, out_type):
    targs = [tvm.runtime.tensor(np.ascontiguousarray(a), DEV) for a in args]
    out = tvm.runtime.empty(out_type[0], out_type[1], DEV)
    lib[f.attrs["global_symbol"]](*targs, out)
    return out.numpy()
