"""compiler/backends/cpu_light_ops.py (the generic CPU schedule of the light ops) and the x86 fp32
depthwise kernel (schedules/x86_fp32.py).

* after schedule_cpu every PrimFunc of a lowered zoo model is scheduled, except the reshape copies
  that tvm.compile turns into views (named in the report);
* the light ops still compute what the NumPy reference interpreter does, one tiny graph per family
  (shapes chosen to reach the parallel, vectorised and fused-loop paths), and a compiled float
  model still agrees with ONNX Runtime;
* a function the schedule cannot handle is kept unscheduled and reported, never a build failure;
* dwconv2d_f32_nchw_x86 matches NumPy (and the generic kernel) for strides, pads, dilations,
  channel multipliers and widths that are not multiples of 16.
No timing assertions."""
import os
import re

import numpy as np
import pytest

import tvm
from tvm import relax  # noqa: E402

from yuan.compiler.ir import Graph, run_graph  # noqa: E402
from yuan.compiler.relax import lower_graph  # noqa: E402
from yuan.compiler.backends.pipelines import TIR_PIPELINE  # noqa: E402
from yuan.compiler.backends import cpu_light_ops as cpu_schedule  # noqa: E402
from yuan.compiler.backends.cpu_light_ops import (SCHEDULED, cpu_schedule_report, schedule_cpu,  # noqa: E402
                                                 schedule_cpu_with_report)
from yuan.compiler.build import optimize  # noqa: E402
from yuan.compiler.targets import Target, resolve_target  # noqa: E402
from yuan.frontend.tensor import Tensor  # noqa: E402
from yuan.frontend.trace import trace  # noqa: E402
from yuan.schedules import preferred_layouts  # noqa: E402
from tests.conftest import ZOO, float_zoo_model, int8_zoo_model, run_ort, zoo_input  # noqa: E402

HOST = resolve_target("x86")
DEV = tvm.cpu()


def _unscheduled(mod):
    return sorted(gv.name_hint for gv, f in mod.functions.items()
                  if isinstance(f, tvm.tirx.PrimFunc) and not (f.attrs and SCHEDULED in f.attrs))


def _check_report(mod, report):
    """Nothing failed, and what is left unscheduled is exactly the reshape copies reported."""
    assert report["failed"] == {}, report["failed"]
    assert report["fused"] and not report["error"], report
    assert _unscheduled(mod) == sorted(report["views"]), (_unscheduled(mod), report)
    for name in report["views"]:
        assert relax.analysis.has_reshape_pattern(mod[name]), name


def _run_vm(mod, graph, feeds):
    with HOST.tvm:
        ex = tvm.compile(mod, HOST.tvm)
    vm = relax.VirtualMachine(ex, DEV)
    res = vm["main"](*[tvm.runtime.tensor(feeds[n], DEV) for n in graph.inputs])
    return {name: res[i].numpy() for i, name in enumerate(graph.outputs)}


def _rel_err(got, ref):
    scale = max(float(np.abs(ref).max()), 1e-6)
    return float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max()) / scale


# ------------------------------------------------------------------ (a) zoo models: all scheduled

def _lowered_zoo(name, kind="float"):
    model = float_zoo_model(name) if kind == "float" else int8_zoo_model(name)
    graph = trace(model, Tensor(zoo_input(ZOO[name][1], 0)))
    optimized = optimize(graph, integer=True, layouts=preferred_layouts(HOST))
    mod, info = lower_graph(optimized, HOST)
    return graph, mod, info


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "mobilenet_v2", "shufflenet_v2",
                                  "shufflenet_v1", "resnet50"])
def test_zoo_float_every_primfunc_scheduled(name):
    graph, mod, info = _lowered_zoo(name)
    out, report = schedule_cpu_with_report(mod)
    _check_report(out, report)
    assert report["scheduled"], report
    assert report["kernels"] >= len(set(info["kernels"])) > 0
    # the only thing left is the flatten before the classifier (a view after tvm.compile)
    assert len(report["views"]) <= 1, report["views"]
    # hand kernels are untouched: same function objects, still opaque to fusion
    for gv, f in mod.functions.items():
        if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and SCHEDULED in f.attrs:
            assert out[gv.name_hint].same_as(f)
            assert int(out[gv.name_hint].attrs["op_pattern"]) == 8


@pytest.mark.parametrize("name", ["resnet18", "shufflenet_v2"])
def test_zoo_int8_every_primfunc_scheduled(name):
    _, mod, _ = _lowered_zoo(name, "int8")
    out, report = schedule_cpu_with_report(mod)
    _check_report(out, report)


def test_schedule_cpu_keeps_the_report_on_the_module():
    _, mod, _ = _lowered_zoo("small_cnn")
    out = schedule_cpu(mod)
    rep = cpu_schedule_report(out)
    assert rep is not None and rep["failed"] == [] and rep["fused"]
    assert rep["scheduled"] == len(_scheduled_light(out)) > 0
    assert cpu_schedule_report(mod) is None   # the input module is not modified


def _scheduled_light(mod):
    return [gv for gv, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)
            and f.attrs and SCHEDULED in f.attrs and "yuan.kernel" not in f.attrs]


@pytest.fixture(scope="module")
def compiled_mobilenet(tmp_path_factory):
    """tiny float MobileNetV2 through compile_graph (depthwise kernel + clip/add/mean light ops)."""
    from yuan import runtime
    from yuan.compiler.build import compile_graph
    name = "mobilenet_v2"
    graph = trace(float_zoo_model(name), Tensor(zoo_input(ZOO[name][1], 0)))
    path = compile_graph(graph, "x86", str(tmp_path_factory.mktemp("cpu_sched") / "mbv2.so"))
    return graph, runtime.load(path)


def test_compiled_float_model_matches_onnxruntime(compiled_mobilenet, tmp_path):
    from yuan.compiler.onnx import export_onnx
    graph, pred = compiled_mobilenet
    assert any(k.startswith("dwconv2d_f32_nchw_x86") for k in pred.metadata["kernels"]), \
        pred.metadata["kernels"]
    x = zoo_input(ZOO["mobilenet_v2"][1], 5)
    got = pred.run({graph.inputs[0]: x})
    ref = run_ort(export_onnx(graph, str(tmp_path / "m.onnx")), {graph.inputs[0]: x})
    for out in graph.outputs:
        scale = float(np.abs(ref[out]).max())
        np.testing.assert_allclose(got[out], ref[out], rtol=1e-4, atol=1e-4 * scale)


# ------------------------------------------------------------------ (b) light-op families vs NumPy

def _graph(name, inputs):
    g = Graph(name)
    names = [g.add_input(n, shape, dtype) for n, shape, dtype in inputs]

    def node(op, ins, **attrs):
        return g.add_node(op, ins, attrs).outputs

    return g, names, node


def _pools():
    g, (x, xs), node = _graph("pools", [("x", (2, 16, 30, 32), "float32"),
                                        ("xs", (2, 8, 12, 34), "float32")])
    out = [node("max_pool2d", [x], kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])[0],
           node("max_pool2d", [x], kernel=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0], ceil_mode=1)[0],
           node("max_pool2d", [x], kernel=[2, 3], strides=[1, 2], pads=[1, 1, 0, 0], layout="NHWC")[0],
           node("avg_pool2d", [x], kernel=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=0)[0],
           node("avg_pool2d", [x], kernel=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], count_include_pad=1,
                ceil_mode=1)[0],
           # stride 1, no padding, 32 output columns: the vectorised-window path
           node("avg_pool2d", [xs], kernel=[3, 3], strides=[1, 1])[0],
           node("max_pool2d", [xs], kernel=[1, 3], strides=[1, 1])[0],
           node("global_avg_pool2d", [x])[0],
           node("adaptive_avg_pool2d", [x], output_size=[3, 5])[0]]
    g.outputs = out
    return g


def _softmax():
    g, (x, y), node = _graph("softmax", [("x", (4, 1000), "float32"), ("y", (2, 16, 8, 8), "float32")])
    g.outputs = [node("softmax", [x], axis=1)[0], node("log_softmax", [x], axis=0)[0],
                 node("softmax", [y], axis=1)[0],
                 node("reduce_mean", [y], axes=[2, 3], keepdims=0)[0],
                 node("reduce_max", [y], axes=[1], keepdims=1)[0],
                 node("reduce_sum", [x], axes=[-1], keepdims=0)[0]]
    return g


def _shuffles():
    g, (a, b), node = _graph("shuffles", [("a", (2, 16, 24, 32), "float32"),
                                          ("b", (2, 8, 24, 32), "float32")])
    cat = node("concat", [a, b], axis=1)[0]
    p1, p2 = node("split", [cat], axis=3, sizes=[5, 27])
    sh = node("channel_shuffle", [cat], groups=4)[0]
    g.outputs = [node("relu", [p1])[0], p2, sh,
                 node("channel_shuffle", [a], groups=2, layout="NHWC")[0],
                 node("transpose", [b], perm=[0, 2, 3, 1])[0],
                 node("slice", [cat], starts=[1, 0], ends=[20, 100], axes=[1, 3], steps=[2, 3])[0],
                 node("pad", [b], pads=[0, 0, 1, 2, 0, 0, 2, 1], value=-1.5)[0],
                 node("pad", [b], pads=[0, 0, 1, 2, 0, 0, 2, 1], mode="reflect")[0],
                 node("flatten", [node("relu", [b])[0]], axis=1)[0]]
    return g


def _elementwise():
    rng = np.random.default_rng(0)
    g, (x, y, z), node = _graph("eltwise", [("x", (2, 16, 28, 28), "float32"),
                                             ("y", (2, 16, 28, 28), "float32"),
                                             ("z", (1, 64, 7, 7), "float32")])
    c = lambda n, a: g.add_constant(n, np.asarray(a, np.float32))  # noqa: E731
    bias = c("bias", rng.standard_normal((1, 16, 1, 1)))
    row = c("row", rng.standard_normal((28,)))
    s = node("add", [x, y])[0]
    r = node("relu", [node("add", [s, bias])[0]])[0]                   # add+add+relu, [1,C,1,1] broadcast
    m = node("mul", [r, row])[0]                                        # trailing-axis broadcast
    d = node("div", [m, c("two", 2.0)])[0]
    cl = node("clip", [d, ], min=0.0, max=6.0)[0]
    g.outputs = [cl, node("sub", [c("one", 1.0), node("sigmoid", [y])[0]])[0],
                 node("hardswish", [z])[0],
                 node("clip", [node("add", [z, z])[0]], min=-0.5, max=0.5)[0],
                 node("mul", [node("tanh", [x])[0], node("exp", [node("neg", [y])[0]])[0]])[0]]
    return g


def _quant():
    g, (x,), node = _graph("quant", [("x", (2, 16, 20, 32), "float32")])
    q = node("quantize", [x, g.add_constant("s", np.float32(0.03)), g.add_constant("z", np.int8(-4))])[0]
    qa = node("quantize", [x, g.add_constant("sa", np.linspace(0.01, 0.05, 16).astype(np.float32)),
                           g.add_constant("za", (np.arange(16) * 7).astype(np.uint8))], axis=1, signed=0)[0]
    g.outputs = [q, node("dequantize", [q, "s", "z"])[0], qa, node("dequantize", [qa, "sa", "za"], axis=1)[0]]
    return g


FAMILIES = {"pools": _pools, "softmax_reduce": _softmax, "shuffles": _shuffles,
            "elementwise": _elementwise, "quantize": _quant}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_light_ops_match_interpreter(family):
    g = FAMILIES[family]()
    mod, _ = lower_graph(g, HOST)
    out, report = schedule_cpu_with_report(mod)
    _check_report(out, report)
    assert report["scheduled"]
    scripts = "".join(out[n].script() for n in report["scheduled"])
    if family != "softmax_reduce":   # these graphs are big enough for the parallel path
        assert "T.parallel(" in scripts
    rng = np.random.default_rng(1)
    feeds = {n: (rng.standard_normal(g.values[n].shape) * 3).astype(np.float32) for n in g.inputs}
    got, ref = _run_vm(out, g, feeds), run_graph(g, feeds)
    for name in g.outputs:
        assert got[name].shape == ref[name].shape and got[name].dtype == ref[name].dtype, name
        if ref[name].dtype.kind in "iu":
            np.testing.assert_array_equal(got[name], ref[name], err_msg=f"{family}: {name}")
        else:
            assert _rel_err(got[name], ref[name]) < 1e-5, f"{family}: {name}"


def test_vectorised_paths_are_taken():
    """The elementwise graph vectorises (28 = 4 x 7 columns); the stride-1 unpadded pool moves its
    32 output columns inside the window loops and vectorises them; the padded stride-2 max pool
    does not (its condition depends on the column)."""
    mod, _ = lower_graph(_elementwise(), HOST)
    out, report = schedule_cpu_with_report(mod)
    assert any("T.vectorized(" in out[n].script() for n in report["scheduled"])
    mod, _ = lower_graph(_pools(), HOST)
    out, report = schedule_cpu_with_report(mod)
    pools = {n: out[n].script() for n in report["scheduled"] if "pool" in n}
    assert any("T.vectorized(" in s and "rx in" in s.split("T.vectorized(")[0] for s in pools.values()), \
        list(pools)


def test_global_mean_gathers_16_channels_per_vector():
    """A mean over the trailing H x W of a 48-channel 7 x 7 map (MobileNetV2's global pool shape class): the
    channel loop moves inside the window and is vectorised (16 channels per gathered vector); a channel count
    that is no multiple of 16 keeps the serial sums. Both still match NumPy."""
    for channels, gathered in ((48, True), (20, False)):
        g, (x,), node = _graph("gmean", [("x", (1, channels, 7, 7), "float32")])
        g.outputs = [node("global_avg_pool2d", [x])[0], node("reduce_mean", [x], axes=[2, 3], keepdims=0)[0]]
        out, report = schedule_cpu_with_report(lower_graph(g, HOST)[0])
        _check_report(out, report)
        sums = [out[n].script() for n in report["scheduled"]]
        assert len(sums) == 2 and all(bool(re.search(r'T\.vectorized\(T\.int64\(16\)\):\s+with T\.sblock\("x_red"\)',
                                                     s)) == gathered for s in sums), sums
        feeds = {x: np.random.default_rng(2).standard_normal((1, channels, 7, 7)).astype(np.float32)}
        got = _run_vm(out, g, feeds)
        for name in g.outputs:
            ref = feeds[x].astype(np.float64).mean(axis=(2, 3)).reshape(got[name].shape)
            assert _rel_err(got[name], ref) < 1e-5, (channels, name)


# ------------------------------------------------------------------ robustness

def _tiny_module():
    g, (x,), node = _graph("tiny", [("x", (2, 16, 32, 32), "float32")])
    g.outputs = [node("relu", [node("add", [x, x])[0]])[0],
                 node("max_pool2d", [x], kernel=[2, 2], strides=[2, 2])[0]]
    return g


def test_a_failing_function_stays_unscheduled_and_the_build_works(monkeypatch):
    g = _tiny_module()
    mod, _ = lower_graph(g, HOST)
    real = cpu_schedule._schedule_func

    def flaky(func):
        if "max_pool" in func.script():
            raise RuntimeError("cannot schedule this one")
        return real(func)

    monkeypatch.setattr(cpu_schedule, "_schedule_func", flaky)
    out, report = schedule_cpu_with_report(mod)
    assert list(report["failed"]) == ["max_pool2d"], report
    assert "RuntimeError: cannot schedule this one" in report["failed"]["max_pool2d"]
    assert _unscheduled(out) == ["max_pool2d"]
    assert cpu_schedule_report(schedule_cpu(mod))["failed"] == \
        ["max_pool2d: RuntimeError: cannot schedule this one"]
    x = np.random.default_rng(2).standard_normal((2, 16, 32, 32)).astype(np.float32)
    got, ref = _run_vm(out, g, {"x": x}), run_graph(g, {"x": x})
    for name in g.outputs:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-6)


def test_fusion_failure_falls_back_to_unfused(monkeypatch):
    g = _tiny_module()
    mod, _ = lower_graph(g, HOST)

    def boom(m):
        raise ValueError("no fusion today")

    monkeypatch.setattr(cpu_schedule, "_fuse", boom)
    out, report = schedule_cpu_with_report(mod)
    assert not report["fused"] and "no fusion today" in report["error"]
    assert report["failed"] == {} and _unscheduled(out) == []
    assert {"add", "relu", "max_pool2d"} <= set(report["scheduled"])
    x = np.random.default_rng(3).standard_normal((2, 16, 32, 32)).astype(np.float32)
    got, ref = _run_vm(out, g, {"x": x}), run_graph(g, {"x": x})
    for name in g.outputs:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-6)


def test_light_op_scheduling_belongs_to_the_cpu_backend():
    """Every LLVM target (any ISA) is built by the CPU backend and its light-op schedule; a GPU target
    by the CUDA backend, which leaves light ops to DLight."""
    from yuan.compiler.backends import CpuBackend, CudaBackend, backend_for
    for name in ("x86", "x86-avx2", "aarch64", "android-arm64", "ios-arm64"):
        assert isinstance(backend_for(resolve_target(name)), CpuBackend), name
    assert isinstance(backend_for(Target.from_tvm({"kind": "llvm", "mtriple": "riscv64-linux-gnu"})), CpuBackend)
    assert isinstance(backend_for(resolve_target("cuda")), CudaBackend)
    mod, _ = lower_graph(_tiny_module(), resolve_target("cuda"))
    out, report = CudaBackend().schedule_light_ops(mod, resolve_target("cuda"))
    assert report is None


# ------------------------------------------------------------------ (c) x86 fp32 depthwise kernel

def _ref_dwconv(x, w, b, s, p, d):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    mult = o // c
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])))
    oh = (h + p[0] + p[2] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (wd + p[1] + p[3] - d[1] * (kw - 1) - 1) // s[1] + 1
    y = np.zeros((n, o, oh, ow))
    for oc in range(o):
        for i in range(kh):
            for j in range(kw):
                y[:, oc] += w[oc, 0, i, j] * xp[:, oc // mult, i * d[0]: i * d[0] + s[0] * (oh - 1) + 1: s[0],
                                                 j * d[1]: j * d[1] + s[1] * (ow - 1) + 1: s[1]]
    if b is not None:
        y += b[None, :, None, None]
    return y


DW_CASES = [
    # x shape, w shape, strides, pads [t,l,b,r], dilations, bias
    ((1, 8, 13, 12), (8, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], True),
    ((2, 6, 11, 10), (12, 1, 3, 3), [2, 2], [0, 1, 1, 1], [1, 1], False),      # channel multiplier 2
    ((1, 4, 9, 30), (4, 1, 5, 3), [1, 2], [2, 1, 2, 1], [2, 1], True),         # dilation, mixed strides
    ((1, 16, 7, 7), (16, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], True),
    ((1, 5, 17, 19), (5, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], True),        # prime width
    ((1, 3, 20, 33), (3, 1, 5, 5), [2, 2], [2, 2, 2, 2], [1, 1], True),
    ((1, 24, 28, 28), (24, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], True),      # 28 = 2 x 14 columns
    ((1, 4, 12, 70), (4, 1, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], True),        # 68 columns: tiles of 4
    ((2, 4, 10, 40), (4, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 3], True),        # 34 columns, dilation 3
]


def _dw_build(case, target, kernel=None):
    import yuan.schedules.registry as registry
    from yuan.schedules import kernel_inputs, select_kernel
    xs, ws, s, p, d, has_b = case
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32) if has_b else None
    attrs = dict(strides=s, pads=p, dilations=d, group=xs[1])
    ref = _ref_dwconv(x, w, b, s, p, d)
    in_types = [(x.shape, "float32"), (w.shape, "float32"), None if b is None else (b.shape, "float32")]
    out_type = (ref.shape, "float32")
    if kernel is None:
        k, f = select_kernel("conv2d", attrs, in_types, out_type, target)
    else:
        registry._ensure_loaded()
        k = registry.get_kernel(kernel)
        f = registry.finalize(k.builder(attrs, in_types[:2] + ([in_types[2]] if has_b else []), out_type,
                                        target), "dw_" + kernel, kernel)
    inputs = [a for a in (x, w, b) if a is not None]
    plan = kernel_inputs(f, attrs, in_types, [None] * len(inputs))
    args = [inputs[i] for i in plan]
    lib = tvm.compile(tvm.IRModule({f.attrs["global_symbol"]: f}), target.tvm, tir_pipeline=TIR_PIPELINE)
    out = tvm.runtime.empty(ref.shape, "float32", DEV)
    lib[f.attrs["global_symbol"]](*[tvm.runtime.tensor(a, DEV) for a in args], out)
    return k, out.numpy(), ref


@pytest.mark.parametrize("case", range(len(DW_CASES)))
def test_dwconv2d_f32_x86_matches_numpy(case):
    k, got, ref = _dw_build(DW_CASES[case], HOST)
    assert k.name == "dwconv2d_f32_nchw_x86"
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
    _, generic, _ = _dw_build(DW_CASES[case], HOST, kernel="dwconv2d_f32_nchw_generic")
    np.testing.assert_allclose(got, generic, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))


def test_dwconv2d_f32_x86_without_avx512():
    """Only x86 is required: an AVX2 target gets the same kernel and the same numbers (run only
    when the host has AVX2, which every AVX-512 host has)."""
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if " avx2" not in flags:
        pytest.skip("host without AVX2")
    k, got, ref = _dw_build(DW_CASES[3], resolve_target("x86-avx2"))
    assert k.name == "dwconv2d_f32_nchw_x86"
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))


def test_dwconv2d_f32_x86_is_not_picked_for_other_convs():
    from yuan.schedules import applicable
    normal = dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1)
    grouped = dict(normal, group=2)   # grouped but not depthwise
    for attrs, w in ((normal, (8, 4, 3, 3)), (grouped, (8, 2, 3, 3))):
        names = [k.name for k in applicable("conv2d", attrs, [((1, 4, 8, 8), "float32"), (w, "float32")],
                                            ((1, 8, 8, 8), "float32"), HOST)]
        assert "dwconv2d_f32_nchw_x86" not in names, names
