"""NaN and inf in float inputs: compiled modules propagate NaN like NumPy (our interpreter) and PyTorch,
so every output ONNX Runtime makes NaN is NaN here too; int8 modules quantize NaN / inf by the rule
of quant/SPEC.md §3 (NaN -> qmin, +-inf saturate), identically in the reference, in compiled code and
in ONNX Runtime's QuantizeLinear."""
import numpy as np
import onnxruntime as ort
import pytest

from yuan import runtime
from yuan.compiler.build import compile_graph
from yuan.compiler.ir import Graph, run_graph
from yuan.compiler.onnx import export_onnx

SHAPE = (1, 4, 6, 6)


def _with_nans(seed=0):
    x = np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32) * 4
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 4, 5] = np.nan
    x[0, 2, 0, 0] = np.inf
    x[0, 3, 5, 2] = -np.inf
    return x


def _float_graph():
    g = Graph("nan_float")
    x = g.add_input("x", SHAPE)
    w = g.add_constant("w", np.random.default_rng(1).standard_normal((4, 4, 3, 3)).astype(np.float32))
    conv = g.add_node("conv2d", [x, w], {"pads": [1, 1, 1, 1]}, name="conv").outputs[0]
    outs = [
        g.add_node("relu", [conv], name="conv_relu").outputs[0],          # fused into the conv kernel
        g.add_node("relu", [x], name="relu").outputs[0],
        g.add_node("clip", [x], {"min": 0.0, "max": 6.0}, name="clip").outputs[0],
        g.add_node("hardswish", [x], name="hardswish").outputs[0],
        g.add_node("hardsigmoid", [x], name="hardsigmoid").outputs[0],
        g.add_node("max_pool2d", [x], {"kernel": [3, 3], "pads": [1, 1, 1, 1]}, name="max_pool").outputs[0],
        g.add_node("avg_pool2d", [x], {"kernel": [2, 2], "strides": [2, 2]}, name="avg_pool").outputs[0],
        g.add_node("global_avg_pool2d", [x], name="gap").outputs[0],
    ]
    for o in outs:
        g.mark_output(o)
    return g


@pytest.fixture(scope="module")
def float_module(tmp_path_factory):
    g = _float_graph()
    return g, runtime.load(compile_graph(g, "x86", str(tmp_path_factory.mktemp("nan") / "float.so")))


@pytest.mark.parametrize("output", ["conv_relu", "relu", "clip", "hardswish", "hardsigmoid", "max_pool",
                                   "avg_pool", "gap"])
def test_float_ops_keep_nan(float_module, output, tmp_path):
    g, module = float_module
    name = next(n.outputs[0] for n in g.nodes if n.name == output)
    x = _with_nans()
    got = module.run({"x": x})[name]
    ref = run_graph(g, {"x": x})[name]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=f"{output}: NaN pattern")
    np.testing.assert_allclose(got[~np.isnan(ref)], ref[~np.isnan(ref)], rtol=1e-5, atol=1e-5)
    onnx_path = str(tmp_path / "m.onnx")
    export_onnx(g, onnx_path)
    ort_out = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run([name], {"x": x})[0]
    assert not (np.isnan(ort_out) & ~np.isnan(got)).any(), f"{output}: ORT has NaN where we have a number"


@pytest.mark.parametrize("signed,zero_point", [(True, 3), (False, 128)])
def test_quantize_of_nan_and_inf_follows_the_spec_everywhere(signed, zero_point, tmp_path):
    dtype = np.int8 if signed else np.uint8
    g = Graph("nan_quantize")
    x = g.add_input("x", (2, 8))
    q = g.add_node("quantize", [x, g.add_constant("s", np.array(0.05, np.float32)),
                                g.add_constant("z", np.array(zero_point, dtype))],
                   {"signed": int(signed)}, name="q").outputs[0]
    g.mark_output(q)
    xv = np.array([[np.nan, -np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, 6.41],
                   [-6.4, 2.5, -2.5, 0.025, 0.075, -0.025, 1e-30, 3.0]], np.float32)
    qmin, qmax = (-128, 127) if signed else (0, 255)
    ref = run_graph(g, {"x": xv})[q]
    assert ref.dtype == dtype and list(ref[0, :6]) == [qmin, qmin, qmax, qmin, qmax, qmin]
    got = runtime.load(compile_graph(g, "x86", str(tmp_path / "q.so"))).run({"x": xv})[q]
    np.testing.assert_array_equal(got, ref)
    onnx_path = str(tmp_path / "q.onnx")
    export_onnx(g, onnx_path)
    np.testing.assert_array_equal(
        ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"x": xv})[0], ref)
