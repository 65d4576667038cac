"""compile_graph -> .so + sidecar -> runtime.load -> run: zoo models against the reference
interpreter and ONNX Runtime, an ONNX-imported model, error handling, and (once the
qdq_to_integer pass exists) a quantized model bit for bit. Each model is compiled once."""
import json
import os

import numpy as np
import pytest

import onnx
import tvm

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from yuan.compiler.build import compile_graph, sidecar_path  # noqa: E402
from yuan.compiler.ir import Graph, run_graph  # noqa: E402
from yuan.compiler.onnx import export_onnx, import_onnx  # noqa: E402
from yuan.compiler.targets import ToolchainError, UnknownTargetError, list_targets, resolve_target  # noqa: E402
from yuan.frontend.models import get_model  # noqa: E402
from yuan.frontend.random import manual_seed  # noqa: E402
from yuan.frontend.tensor import Tensor  # noqa: E402
from yuan.frontend.trace import trace  # noqa: E402
from yuan import runtime  # noqa: E402
from yuan.runtime import RuntimeInputError, RuntimeLoadError  # noqa: E402
from tests.conftest import run_ort  # noqa: E402

ZOO = {
    "small_cnn": (dict(in_channels=3, width=0.25, input_size=16), 16),
    "resnet_small": (dict(depth=8, width=0.25, zero_init_residual=False), 16),
    "mobilenet_v2": (dict(width=0.25, input_size=32), 32),
    "shufflenet_v2": (dict(width=0.25), 32),
}


def _x(size, seed, n=2):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def _close(got, ref, rtol=1e-4):
    scale = max(float(np.abs(ref).max()), 1e-12)
    err = float(np.abs(got.astype(np.float64) - ref).max()) / scale
    assert err < rtol, f"relative error {err:.2e}"


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="module", params=sorted(ZOO))
def zoo_model(request, build_dir):
    name = request.param
    kwargs, size = ZOO[name]
    manual_seed(0)
    model = get_model(name, num_classes=5, **kwargs).eval()
    graph = trace(model, Tensor(_x(size, 0)))
    path = compile_graph(graph, "x86", str(build_dir / f"{name}.so"))
    return name, graph, size, path


def test_zoo_model_matches_interpreter_and_onnxruntime(zoo_model, tmp_path):
    name, graph, size, path = zoo_model
    pred = runtime.load(path)
    x = _x(size, 3)
    got = pred.run({graph.inputs[0]: x})
    ref = run_graph(graph, {graph.inputs[0]: x})
    model = export_onnx(graph, str(tmp_path / f"{name}.onnx"))
    ort_out = run_ort(model, {graph.inputs[0]: x})
    for out in graph.outputs:
        assert got[out].shape == ref[out].shape and got[out].dtype == np.float32
        _close(got[out], ref[out])
        _close(got[out], ort_out[out])
    # a single array is accepted for a one-input model
    np.testing.assert_array_equal(pred.run(x)[graph.outputs[0]], got[graph.outputs[0]])


def test_sidecar_metadata_and_benchmark(zoo_model):
    name, graph, size, path = zoo_model
    assert os.path.exists(sidecar_path(path))
    pred = runtime.load(path)
    meta = pred.metadata
    assert meta["target"] == "x86" and meta["inputs"][0]["name"] == graph.inputs[0]
    assert meta["inputs"][0]["shape"] == [2, 3, size, size] and meta["inputs"][0]["dtype"] == "float32"
    assert [o["name"] for o in meta["outputs"]] == graph.outputs
    assert meta["kernels"], "conv2d/linear must run through call_tir kernels"
    bench = pred.benchmark(repeat=3, warmup=1)
    assert 0 < bench["median_ms"] and 0 < bench["mean_ms"] and bench["repeat"] == 3


def test_compile_writes_only_artifact_and_sidecar(tmp_path):
    manual_seed(0)
    graph = trace(get_model("mlp", in_features=12, num_classes=3, hidden=(8,)).eval(),
                  Tensor(np.zeros((1, 12), np.float32)))
    out_dir = tmp_path / "out"
    path = compile_graph(graph, "x86", str(out_dir / "mlp.so"))
    assert sorted(os.listdir(out_dir)) == ["mlp.json", "mlp.so"]
    x = np.random.default_rng(0).standard_normal((1, 12)).astype(np.float32)
    _close(runtime.load(path).run(x)[graph.outputs[0]], run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]])


# ------------------------------------------------------------------ ONNX-imported model

def _onnx_opset9_model():
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    inits = {"w1": f(6, 3, 3, 3), "b1": f(6), "gamma": f(6), "beta": f(6), "mean": f(6),
             "var": (np.abs(f(6)) + 0.5).astype(np.float32), "w2": f(6, 3, 1, 1),
             "fc_w": f(4, 6), "fc_b": f(4)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("Conv", ["x", "w2"], ["c2"]),
        helper.make_node("Sum", ["r1", "c2", "bn"], ["s"]),
        helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["fl"], axis=1),
        helper.make_node("Gemm", ["fl", "fc_w", "fc_b"], ["y"], transB=1),
        helper.make_node("Softmax", ["y"], ["prob"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "opset9", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    onnx.checker.check_model(model)
    return model


def test_onnx_opset9_model_compiles_and_matches_onnxruntime(build_dir):
    model = _onnx_opset9_model()
    graph = import_onnx(model)
    path = compile_graph(graph, "x86", str(build_dir / "opset9.so"))
    x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
    got = runtime.load(path).run({"x": x})["prob"]
    _close(got, run_ort(model, {"x": x})["prob"])
    _close(got, run_graph(graph, {"x": x})["prob"])


# ------------------------------------------------------------------ errors

def test_unknown_target_lists_known_targets(tmp_path):
    with pytest.raises(UnknownTargetError) as info:
        compile_graph(trace(get_model("mlp", in_features=4, num_classes=2, hidden=(4,)).eval(),
                            Tensor(np.zeros((1, 4), np.float32))), "riscv-toaster", str(tmp_path / "m.so"))
    for name in ("x86", "aarch64", "aarch64-dotprod", "cuda", "android-arm64", "ios-arm64"):
        assert name in str(info.value)
    assert set(list_targets()) >= {"x86", "aarch64", "aarch64-dotprod", "cuda", "android-arm64", "ios-arm64"}
    assert not os.listdir(tmp_path)


def test_target_dicts():
    x86 = resolve_target("x86").config
    assert x86["kind"] == "llvm" and x86["mcpu"] not in ("", "host")
    assert resolve_target("aarch64").config == {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
    assert "+dotprod" in resolve_target("aarch64-dotprod").config["mattr"]
    assert resolve_target("aarch64-dotprod").tvm.attrs["feature.has_dotprod"]


def test_missing_cross_toolchain_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no cross compiler on this PATH
    graph = trace(get_model("mlp", in_features=4, num_classes=2, hidden=(4,)).eval(),
                  Tensor(np.zeros((1, 4), np.float32)))
    with pytest.raises(ToolchainError, match="apt-get install g\\+\\+-aarch64-linux-gnu"):
        compile_graph(graph, "aarch64", str(tmp_path / "m.so"))
    assert not (tmp_path / "m.so").exists()


@pytest.fixture(scope="module")
def small_predictor(build_dir):
    manual_seed(0)
    graph = trace(get_model("small_cnn", num_classes=5, **ZOO["small_cnn"][0]).eval(), Tensor(_x(16, 0)))
    path = build_dir / "small_cnn.so"
    if not path.exists():
        compile_graph(graph, "x86", str(path))
    return runtime.load(str(path))


def test_wrong_inputs_are_clear_errors(small_predictor):
    p = small_predictor
    name = p.input_names[0]
    with pytest.raises(RuntimeInputError, match=rf"'{name}'.*\[2, 3, 16, 16\].*\[2, 3, 8, 8\]"):
        p.run({name: _x(8, 0)})
    with pytest.raises(RuntimeInputError, match=rf"'{name}'.*float32.*int32"):
        p.run({name: np.zeros((2, 3, 16, 16), np.int32)})
    with pytest.raises(RuntimeInputError, match="missing.*" + name):
        p.run({})
    with pytest.raises(RuntimeInputError, match="unexpected.*bogus"):
        p.run({name: _x(16, 0), "bogus": _x(16, 0)})


def test_corrupt_or_foreign_library_is_a_clear_error(small_predictor, tmp_path):
    meta = dict(small_predictor.metadata)
    garbage = tmp_path / "garbage.so"
    garbage.write_bytes(b"this is not a shared object" * 10)
    truncated = tmp_path / "truncated.so"
    truncated.write_bytes(open(small_predictor.path, "rb").read()[:3000])
    foreign = tmp_path / "foreign.so"
    data = bytearray(open(small_predictor.path, "rb").read())
    data[18:20] = (183).to_bytes(2, "little")  # claims to be aarch64
    foreign.write_bytes(bytes(data))
    for path in (garbage, truncated, foreign):
        with open(sidecar_path(str(path)), "w") as f:
            json.dump(meta, f)
    with pytest.raises(RuntimeLoadError, match="not a compiled model library"):
        runtime.load(str(garbage))
    with pytest.raises(RuntimeLoadError, match="cannot load model library.*truncated") as info:
        runtime.load(str(truncated))
    assert "Traceback" not in str(info.value) and len(str(info.value)) < 600
    with pytest.raises(RuntimeLoadError, match="built for aarch64"):
        runtime.load(str(foreign))
    with pytest.raises(RuntimeLoadError, match="does not exist"):
        runtime.load(str(tmp_path / "nope.so"))
    lonely = tmp_path / "lonely.so"
    lonely.write_bytes(open(small_predictor.path, "rb").read())
    with pytest.raises(RuntimeLoadError, match="sidecar"):
        runtime.load(str(lonely))


def test_runtime_imports_no_compiler_code():
    import subprocess
    import sys
    code = ("import sys, yuan.runtime; bad = [m for m in sys.modules if m.split('.')[:2] in "
            "(['yuan', 'compiler'], ['yuan', 'frontend'], ['yuan', 'quant'], ['yuan', 'schedules'])]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.expanduser("~"))


# ------------------------------------------------------------------ quantized model

@pytest.mark.parametrize("name", ["small_cnn", "resnet_small"])
def test_quantized_model_is_bit_exact(name, build_dir):
    from yuan import quant
    kwargs, size = ZOO[name]
    manual_seed(0)
    model = get_model(name, num_classes=5, **kwargs).eval()
    qat = quant.quantize_qat(model)
    quant.calibrate(qat, [_x(size, s) for s in (1, 2)])
    qmodel = quant.quantize(qat.eval())
    x = _x(size, 7)
    graph = trace(qmodel, Tensor(x))
    path = compile_graph(graph, "x86", str(build_dir / f"{name}_int8.so"))
    pred = runtime.load(path)
    ops = set(pred.metadata["ops"])
    in_quant = pred.metadata["inputs"][0]["quant"]
    assert in_quant is not None and len(in_quant["scale"]) == 1 and in_quant["bits"] == 8
    assert {"qconv2d", "qlinear"} & ops, ops
    got = pred.run({graph.inputs[0]: x})[graph.outputs[0]]
    np.testing.assert_array_equal(got, qmodel(Tensor(x)).data)
    np.testing.assert_array_equal(got, run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]])


@pytest.mark.parametrize("target", ["aarch64", "aarch64-dotprod"])
def test_aarch64_cross_export(target, build_dir):
    import shutil
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("needs aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)")
    manual_seed(0)
    graph = trace(get_model("small_cnn", num_classes=5, **ZOO["small_cnn"][0]).eval(), Tensor(_x(16, 0)))
    path = compile_graph(graph, target, str(build_dir / f"small_cnn_{target}.so"))
    head = open(path, "rb").read(20)
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64
    assert json.load(open(sidecar_path(path)))["target"] == target
    with pytest.raises(RuntimeLoadError, match="built for aarch64"):
        runtime.load(path)


def test_build_error_keeps_the_line_that_names_the_error():
    from yuan.compiler.tvm_errors import error_line
    dump = "\n".join(["Traceback (most recent call last):", "  File \"x.py\", line 1",
                      "InternalError: Check failed: (lanes == 4) is false: bad vector",
                      "The IR:", "  def f(): ...", "  T.assert(x, \"Argument error: x\")",
                      "(... 1630 lines skipped ...)"])
    assert error_line(RuntimeError(dump)) == "InternalError: Check failed: (lanes == 4) is false: bad vector"
    # TVM's GPU verifier: the header ends in ':'; the reason is on the next line
    verify = "\n".join(["Memory verification failed with the following errors:",
                        "    Variable `B` is directly accessed by host memory.",
                        "  Did you forget to bind?", "# from tvm.script import tirx as T",
                        "    B[i] = A[i] + T.float32(1.0)"])
    assert error_line(RuntimeError(verify)) == ("Memory verification failed with the following errors: "
                                                "Variable `B` is directly accessed by host memory.")
    assert error_line(RuntimeError("it broke\n(... 3 lines skipped ...)")) == "it broke"



def test_sidecar_reports_the_light_op_scheduling(tmp_path):
    """compile_graph records what compiler/backends/cpu_light_ops.py scheduled and what it could not."""
    g = Graph("light")
    g.add_input("x", (1, 4, 8, 8))
    y = g.add_node("relu", ["x"]).outputs[0]
    y = g.add_node("max_pool2d", [y], {"kernel": [2, 2]}).outputs[0]
    g.mark_output(g.add_node("add", [y, y]).outputs[0])
    path = compile_graph(g, "x86", str(tmp_path / "light.so"))
    meta = json.load(open(sidecar_path(path)))
    assert meta["light_ops"]["scheduled"] >= 1 and meta["light_ops"]["left_unscheduled"] == {}
