"""Helpers of the kernel tests: targets, NumPy integer references, random int8 cases, compile-and-run one
kernel. Test modules import these (never each other)."""
import json
import shutil

import numpy as np
import pytest
import tvm

from yuan.compiler.backends.pipelines import TIR_PIPELINE
from yuan.compiler.ir.kernels import KERNELS
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
RISCV = Target.from_tvm({"kind": "llvm", "mtriple": "riscv64-linux-gnu"})   # an ISA without fast paths
HAS_VNNI = "avx512_vnni" in HOST.features
HAS_AVX512 = "avx512" in HOST.features
CONV_DEFAULTS = dict(strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)


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


def ref_conv_f32(x, w, b, attrs):
    """Float conv2d (any group: depthwise too) in float64, + bias (or None), clipped to the fused
    activation's clip_min / clip_max: the reference of the fp32 conv kernels."""
    a = dict(CONV_DEFAULTS, **attrs)
    ref = ref_conv_acc(x, w, a["strides"], a["pads"], a["dilations"], a["group"], dtype=np.float64)
    if b is not None:
        ref += b.reshape(1, -1, 1, 1)
    return np.clip(ref, attrs.get("clip_min", -np.inf), attrs.get("clip_max", np.inf))


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


def ref_qconv_nchw(x, w, b, attrs):
    """qconv2d NCHW: (x - zx) * w accumulated in int64, + bias, requantized."""
    a = dict(CONV_DEFAULTS, **attrs)
    acc = ref_conv_acc(x, w, a["strides"], a["pads"], a["dilations"], a["group"], zx=attrs["x_zero_point"])
    if b is not None:
        acc += b.reshape(1, -1, 1, 1)
    return ref_requant(acc, attrs["multiplier"], attrs["shift"], attrs["y_zero_point"], attrs["out_min"],
                       attrs["out_max"])


def ref_qconv(x, w, b, attrs):
    """qconv2d in the layout attrs["layout"] says (NHWC: transposed to NCHW and back), as the out dtype."""
    nhwc = attrs.get("layout") == "NHWC"
    y = ref_qconv_nchw(x.transpose(0, 3, 1, 2) if nhwc else x, w, b, attrs).astype(attrs["out_dtype"])
    return y.transpose(0, 2, 3, 1) if nhwc else y


def ref_integer_op(op, inputs, attrs):
    """The integer spec of compiler.ir (KERNELS[op]), with every attr spelled out (the kernel table does
    not fill in defaults). With layout="NHWC" it transposes to NCHW itself: independent of the schedules."""
    full = dict(CONV_DEFAULTS, **attrs) if op == "qconv2d" else dict(attrs)
    if op == "qavg_pool2d":
        full.setdefault("strides", full["kernel"])
        full.setdefault("pads", [0, 0, 0, 0])
    return np.asarray(KERNELS[op](list(inputs), full))


def out_shape(xs, ws, attrs):
    """NCHW output shape of a conv with input shape xs and weight shape ws."""
    s = attrs.get("strides", [1, 1]); p = attrs.get("pads", [0, 0, 0, 0]); d = attrs.get("dilations", [1, 1])
    OH = (xs[2] + p[0] + p[2] - d[0] * (ws[2] - 1) - 1) // s[0] + 1
    OW = (xs[3] + p[1] + p[3] - d[1] * (ws[3] - 1) - 1) // s[1] + 1
    return (xs[0], ws[0], OH, OW)


# ------------------------------------------------------------------ random int8 cases

def int_range(dtype):
    return (-128, 127) if dtype == "int8" else (0, 255)


def int_codes(rng, shape, dtype):
    """Uniform random values over the whole range of an integer dtype."""
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


def requant_attrs(rng, count, out_dtype, zx, shift=(10, 15), y_zero_point=3):
    """Requantize attrs with `count` random multipliers/shifts (1 = per-tensor)."""
    lo, hi = int_range(out_dtype)
    return dict(x_zero_point=zx, multiplier=[int(v) for v in rng.integers(1 << 30, (1 << 31) - 1, count)],
                shift=[int(v) for v in rng.integers(shift[0], shift[1], count)], y_zero_point=y_zero_point,
                out_min=lo + 5, out_max=hi, out_dtype=out_dtype)


def qconv_inputs(rng, case, shift=(10, 15)):
    """(x, w, b, attrs) of a qconv case (x shape, w shape, conv attrs, bias, per-channel, x dtype, out dtype);
    x is laid out as attrs["layout"] says (default NCHW)."""
    xs, ws, cattrs, has_b, per_ch, xdt, odt = case
    x = int_codes(rng, xs, xdt)
    w = rng.integers(-127, 128, ws).astype("int8")
    b = rng.integers(-5000, 5000, ws[0]).astype("int32") if has_b else None
    zx = -7 if xdt == "int8" else 131
    attrs = dict(cattrs, **requant_attrs(rng, ws[0] if per_ch else 1, odt, zx, shift))
    return x, w, b, attrs


def nhwc_case(case):
    """The same qconv case with its x shape given channels-last (N, H, W, C)."""
    (n, c, h, w), *rest = case
    return ((n, h, w, c), *rest)


# ------------------------------------------------------------------ compile and run one kernel

def build(op, attrs, inputs, out_type, target, expect=None):
    """(PrimFunc, compiled lib, call args) of the kernel the registry picks; checks its name (when `expect`
    is given) and the attrs every selected PrimFunc carries."""
    in_types = [None if a is None else (a.shape, str(a.dtype)) for a in inputs]
    k, f = select_kernel(op, attrs, in_types, out_type, target)
    if expect is not None:
        assert k.name == expect, k.name
    assert f.attrs["tirx.is_scheduled"] and int(f.attrs["op_pattern"]) == 8
    assert f.attrs["global_symbol"].startswith(k.name) and f.attrs["yuan.kernel"] == k.name
    sig = f.script().split("):")[0]   # int64 index dtype
    assert "T.int64(" in sig and "T.int32(" not in sig.split("T.Buffer")[1], sig
    plan = kernel_inputs(f, attrs, in_types, inputs)   # ints: node input indices (an omitted bias stays None)
    args = [inputs[p] if isinstance(p, int) else p for p in plan]
    return f, compile_kernel(f, target), args


def compile_kernel(func, target):
    return tvm.compile(tvm.IRModule({func.attrs["global_symbol"]: func}), target.tvm, tir_pipeline=TIR_PIPELINE)


def execute(f, lib, args, out_type):
    targs = [tvm.runtime.tensor(np.ascontiguousarray(a), DEV) for a in args]
    out = tvm.runtime.empty(out_type[0], out_type[1], DEV)
    lib[f.attrs["global_symbol"]](*targs, out)
    return out.numpy()


def run(op, attrs, inputs, out_type, target, expect=None):
    """The output of the kernel the registry picks for this node, compiled for `target` and run here."""
    f, lib, args = build(op, attrs, inputs, out_type, target, expect)
    return execute(f, lib, args, out_type)


def check_qconv(x, w, b, attrs, target, expect):
    """Run qconv2d (layout from attrs) with the kernel `expect` and compare it bit for bit with the NumPy
    reference; returns the compiled lib (for asm checks)."""
    ref = ref_qconv(x, w, b, attrs)
    assert ref.std() > 0, "degenerate case (saturated output)"
    out_type = (ref.shape, str(ref.dtype))
    f, lib, args = build("qconv2d", attrs, [x, w, b], out_type, target, expect)
    y = execute(f, lib, args, out_type)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    np.testing.assert_array_equal(y, ref)
    return lib


def run_cpu_twin(build, prepare, attrs, inputs, out_type, **build_kwargs):
    """Run a GPU kernel's schedule built for the CPU (`build(attrs, in_types, out_type, gpu=False, ...)`)
    here, with the params its `prepare` (the kernel's prepare_constants) plans; inputs[1:] are constants."""
    in_types = [(a.shape, str(a.dtype)) for a in inputs]
    f = build(attrs, in_types, out_type, gpu=False, **build_kwargs)
    lib = tvm.compile(tvm.IRModule({"main": f}), HOST.tvm, tir_pipeline=TIR_PIPELINE)
    plan = prepare(attrs, in_types, [None] + list(inputs[1:]))
    out = tvm.runtime.empty(out_type[0], out_type[1], DEV)
    lib["main"](*[tvm.runtime.tensor(np.ascontiguousarray(inputs[p] if isinstance(p, int) else p), DEV)
                  for p in plan], out)
    return out.numpy()


def check_cpu_twin_qconv(rng, case, build, prepare, **build_kwargs):
    """A qconv case (see qconv_inputs; no bias = zeros) through run_cpu_twin, bit for bit against NumPy."""
    x, w, b, attrs = qconv_inputs(rng, case)
    if b is None:
        b = np.zeros(w.shape[0], np.int32)
    ref = ref_qconv(x, w, b, attrs)
    assert ref.std() > 0, "degenerate case (saturated output)"
    got = run_cpu_twin(build, prepare, attrs, [x, w, b], (ref.shape, str(ref.dtype)), **build_kwargs)
    np.testing.assert_array_equal(got, ref)


def check_cpu_twin_qlinear(rng, build, prepare, n=16, k=40, o=10):
    """A uint8 x int8 qlinear [n, k] x [o, k] through run_cpu_twin, bit for bit against NumPy."""
    x = rng.integers(0, 256, (n, k)).astype(np.uint8)
    w = rng.integers(-127, 128, (o, k)).astype(np.int8)
    b = rng.integers(-5000, 5000, o).astype(np.int32)
    attrs = requant_attrs(rng, o, "int8", 131)
    ref = ref_integer_op("qlinear", [x, w, b], attrs).astype(np.int8)
    np.testing.assert_array_equal(run_cpu_twin(build, prepare, attrs, [x, w, b], (ref.shape, "int8")), ref)


# ------------------------------------------------------------------ run a graph on aarch64 under qemu

@pytest.fixture(scope="module")
def arm64_root():
    """The arm64 Python tree of runtime/qemu_runner.py; skips when qemu, the cross g++ or the tree is missing."""
    from yuan.runtime import qemu_runner
    if qemu_runner.qemu_binary() is None or shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("qemu-aarch64 or aarch64-linux-gnu-g++ not installed")
    root = qemu_runner.arm64_root()
    if not qemu_runner.root_ready(root):
        pytest.skip(f"no arm64 Python tree at {root} (runtime/arm64/build_arm64_root.sh)")
    return root


def run_graph_on_arm(graph, feed, path, root, target="aarch64", cpu="cortex-a53"):
    """Compile `graph` for `target`, run it once under qemu-aarch64 -cpu `cpu`: (kernel names, outputs)."""
    from yuan.compiler.build import compile_graph, sidecar_path
    from yuan.runtime import qemu_runner
    lib = compile_graph(graph, target, str(path))
    kernels = json.load(open(sidecar_path(lib)))["kernels"]
    res = qemu_runner.run_models([{"lib": lib, "inputs": feed}], cpu=cpu, root=root)
    assert res.returncode == 0, (res.returncode, res.errors, res.stderr[-2000:])
    return kernels, res.outputs[0]


# ------------------------------------------------------------------ fused float conv pairs, end to end

def add_float_conv(g, rng, inp, O, k, group, name, stride=1, bias=True):
    """A conv2d node (random float weights, "same" padding) on value `inp` of graph `g`; returns its output."""
    C = g.values[inp].shape[1]
    w = g.add_constant(f"{name}_w", rng.standard_normal((O, C // group, k, k)).astype("float32"))
    ins = [inp, w] + ([g.add_constant(f"{name}_b", rng.standard_normal(O).astype("float32"))] if bias else [])
    attrs = dict(strides=[stride] * 2, pads=[k // 2] * 4, group=group)
    return g.add_node("conv2d", ins, attrs, name=name).outputs[0]


def compile_and_compare(g, feed, path):
    """Compile `g` for x86 into `path`, check every output against the IR's reference interpreter; returns the
    sidecar's kernel calls (node, op, kernel, input shapes, ...), sorted by kernel name."""
    from yuan import runtime
    from yuan.compiler.build import compile_graph, sidecar_path
    from yuan.compiler.ir import run_graph
    lib = compile_graph(g, "x86", str(path))
    got, ref = runtime.load(lib).run(feed), run_graph(g, feed)
    for name in g.outputs:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, atol=1e-4 * np.abs(ref[name]).max())
    return sorted(json.load(open(sidecar_path(lib)))["kernel_info"].values(), key=lambda info: info["kernel"])
