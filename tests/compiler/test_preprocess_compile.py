"""Image preprocessing compiled: every op's kernel against the interpreter, and
`yuan compile MODEL.onnx --preprocess SPEC.yaml` end to end against ONNX Runtime running
[preprocess ONNX + model]."""
import json

import numpy as np
import onnx
import pytest
import yaml
from click.testing import CliRunner
from onnx import TensorProto, compose, helper, numpy_helper

from tests.conftest import run_ort
from yuan import runtime
from yuan.cli import main
from yuan.compiler.build import compile_graph
from yuan.compiler.ir import Graph
from yuan.compiler.ir.interpreter import run_graph
from yuan.compiler.ir.preprocess import PreprocessSpecError, build_preprocess_graph
from yuan.compiler.onnx import export_onnx

RNG = np.random.default_rng(34)
COORDS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


def _all_ops_graph():
    """One module computing every op, each resize mode and convention in both layouts (one compile)."""
    g = Graph("image_ops")
    raw = g.add_input("x", (2, 11, 13, 3), "uint8")
    node = lambda op, x, **a: g.add_node(op, [x], a, name=op).outputs[0]   # noqa: E731
    f = node("to_float", raw, scale=1 / 255)
    rgb = node("bgr_to_rgb", raw, layout="NHWC")
    crop = node("crop", raw, top=2, left=3, height=7, width=9, layout="NHWC")
    chw = node("hwc_to_chw", f)
    norm = node("normalize", f, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], layout="NHWC")
    outs = [f, rgb, crop, chw, norm, node("bgr_to_rgb", chw), node("crop", chw, top=1, left=0, height=9, width=13)]
    for coord in COORDS:
        for mode in ("linear", "nearest"):
            for size in ([7, 5], [17, 20]):
                outs.append(node("resize", norm, size=size, mode=mode, coordinate_mode=coord, layout="NHWC"))
                outs.append(node("resize", chw, size=size, mode=mode, coordinate_mode=coord))
    wide = g.add_input("wide", (1, 5, 6, 16), "float32")    # 16 channels: the vectorised NHWC schedule
    outs.append(node("resize", wide, size=[9, 4], layout="NHWC"))
    g.mark_output(*outs)
    return g


@pytest.fixture(scope="module")
def all_ops(tmp_path_factory):
    g = _all_ops_graph()
    path = compile_graph(g, "x86", str(tmp_path_factory.mktemp("img") / "img.so"))
    return g, path


def test_compiled_ops_match_the_interpreter(all_ops):
    g, path = all_ops
    feed = {"x": RNG.integers(0, 256, (2, 11, 13, 3)).astype(np.uint8),
            "wide": RNG.standard_normal((1, 5, 6, 16)).astype(np.float32)}
    want = run_graph(g, feed)
    got = runtime.load(path).run(feed)
    for name in g.outputs:   # bit for bit: the resize blend is fenced against FMA contraction
        assert got[name].shape == want[name].shape and got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_resize_runs_the_scheduled_kernel(all_ops):
    _, path = all_ops
    with open(path[:-3] + ".json") as f:
        info = json.load(f)["kernel_info"]
    kernels = {v["kernel"] for v in info.values() if v["op"] == "resize"}
    assert kernels == {"resize_generic"} and sum(v["op"] == "resize" for v in info.values()) == 33


# ---------------------------------------------------------------- yuan compile --preprocess

SPEC = {"input": {"shape": [1, 12, 16, 3], "dtype": "uint8", "layout": "NHWC"},
        "steps": [{"to_float": {"scale": 1 / 255}}, "bgr_to_rgb",
                  {"resize": {"size": 10, "mode": "bilinear"}},          # shorter side: 10 x 13
                  {"center_crop": {"size": 8}}, {"normalize": "imagenet"}, "hwc_to_chw"]}


def _model():
    """conv-relu-globalpool-flatten-gemm on [1, 3, 8, 8], at the opset the exporter writes."""
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.3, (5, 4)).astype(np.float32), "gw")]
    n = helper.make_node
    nodes = [n("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]), n("Relu", ["c"], ["r"]),
             n("GlobalAveragePool", ["r"], ["g"]), n("Flatten", ["g"], ["f"]),
             n("Gemm", ["f", "gw"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_compile_with_preprocess_matches_onnx_runtime(tmp_path):
    model = _model()
    onnx.save(model, tmp_path / "net.onnx")
    (tmp_path / "pre.yaml").write_text(yaml.safe_dump(SPEC))
    result = CliRunner().invoke(main, ["compile", str(tmp_path / "net.onnx"), "--preprocess",
                                       str(tmp_path / "pre.yaml"), "-o", str(tmp_path / "net.so")])
    assert result.exit_code == 0, result.output
    assert "input 'image' uint8[1, 12, 16, 3]" in result.output
    predictor = runtime.load(str(tmp_path / "net.so"))
    assert [i["name"] for i in predictor.metadata["inputs"]] == ["image"]

    pre = export_onnx(build_preprocess_graph(SPEC))
    model.ir_version = pre.ir_version
    both = compose.merge_models(pre, model, io_map=[(pre.graph.output[0].name, "input")])
    frames = RNG.integers(0, 256, (3, 1, 12, 16, 3)).astype(np.uint8)
    for frame in frames:
        want = run_ort(both, {"image": frame})["logits"]
        np.testing.assert_allclose(predictor.run({"image": frame})["logits"], want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("change,message", [
    (lambda s: s["steps"].append("blur"), r"steps\[6\] \(blur\): unknown op 'blur'"),
    (lambda s: s["steps"].__setitem__(3, {"center_crop": {"size": 11}}),
     r"steps\[3\] \(center_crop\): crop box .* leaves the 10x13 image"),
    (lambda s: s["steps"].__setitem__(4, {"normalize": {"mean": [0, 0, 0], "std": [1, 0, 1]}}),
     r"steps\[4\] \(normalize\): std must be non-zero"),
    (lambda s: s["input"].__setitem__("dtype", "uint9"), r"input: dtype 'uint9' is not an image dtype"),
    (lambda s: s["input"].__setitem__("dtype", "float32"), r"steps\[0\] \(to_float\): .*must be an integer tensor"),
    (lambda s: s["steps"].__setitem__(2, {"resize": {"size": 10, "mode": "cubic"}}),
     r"steps\[2\] \(resize\): mode 'cubic' must be one of"),
    (lambda s: s["steps"].__setitem__(2, {"resize": {"size": 10, "antialias": 1}}),
     r"steps\[2\] \(resize\): unknown key\(s\) \['antialias'\]"),
    (lambda s: s.__setitem__("output", 1), r"spec: unknown key\(s\) \['output'\]"),
])
def test_bad_specs_are_one_line_errors_naming_the_key(change, message):
    spec = json.loads(json.dumps(SPEC))
    change(spec)
    with pytest.raises(PreprocessSpecError, match=message) as info:
        build_preprocess_graph(spec)
    assert "\n" not in str(info.value)


def test_cli_refuses_a_spec_that_does_not_fit_the_model(tmp_path):
    onnx.save(_model(), tmp_path / "net.onnx")
    spec = json.loads(json.dumps(SPEC))
    spec["steps"][3] = {"center_crop": {"size": 6}}
    (tmp_path / "pre.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["compile", str(tmp_path / "net.onnx"), "--preprocess",
                                       str(tmp_path / "pre.yaml"), "-o", str(tmp_path / "net.so")])
    assert result.exit_code != 0
    assert "steps give float32[1, 3, 6, 6], but the model's input 'input' is float32[1, 3, 8, 8]" in result.output
    assert not (tmp_path / "net.so").exists()


def test_preprocessing_compiles_for_cuda_with_a_thread_bound_resize(tmp_path):
    from yuan.compiler.backends.cuda_toolchain import find_nvcc
    if find_nvcc() is None:
        pytest.skip("nvcc not installed (CUDA toolkit)")
    path = compile_graph(build_preprocess_graph(SPEC), "cuda", str(tmp_path / "pre.so"))
    with open(path[:-3] + ".json") as f:
        assert any(k.startswith("resize_cuda") for k in json.load(f)["kernels"])
    src = (tmp_path / "pre.cu").read_text()   # DLight bound the resize to threads (no GPU here to run it)
    body = src[src.index("void __launch_bounds__(1024) resize_cuda"):]
    assert "threadIdx.x" in body.split("\n}\n", 1)[0]


def test_preprocessing_is_bit_exact_on_aarch64_under_qemu(tmp_path):
    import shutil

    from yuan.runtime import qemu_runner
    if shutil.which("aarch64-linux-gnu-g++") is None or qemu_runner.qemu_binary() is None:
        pytest.skip("aarch64 cross compiler or qemu-aarch64 not installed")
    if not qemu_runner.root_ready(qemu_runner.arm64_root()):
        pytest.skip("no arm64 Python tree (runtime/arm64/build_arm64_root.sh)")
    spec = json.loads(json.dumps(SPEC))
    spec["input"]["shape"] = [1, 37, 45, 3]                   # odd sizes
    spec["steps"][2] = {"resize": {"size": 20, "mode": "bilinear"}}
    spec["steps"][3] = {"center_crop": {"size": 17}}
    g = build_preprocess_graph(spec)
    path = compile_graph(g, "aarch64", str(tmp_path / "pre_arm.so"))
    x = RNG.integers(0, 256, (1, 37, 45, 3)).astype(np.uint8)
    res = qemu_runner.run_models([{"lib": path, "inputs": [x]}], cpu="cortex-a76")
    assert res.returncode == 0, (res.errors, res.stderr[-2000:])
    np.testing.assert_array_equal(res.outputs[0][0], run_graph(g, {"image": x})[g.outputs[0]])


def test_int8_module_with_preprocess_equals_numpy_preprocessing_then_plain_module(tmp_path):
    onnx.save(_model(), tmp_path / "net.onnx")
    (tmp_path / "pre.yaml").write_text(yaml.safe_dump(SPEC))
    np.save(tmp_path / "calib.npy", RNG.standard_normal((4, 3, 8, 8)).astype(np.float32))
    common = ["compile", str(tmp_path / "net.onnx"), "--quantize", "int8", "--calib", str(tmp_path / "calib.npy")]
    for extra, out in (([], "plain.so"), (["--preprocess", str(tmp_path / "pre.yaml")], "pre.so")):
        result = CliRunner().invoke(main, common + extra + ["-o", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    plain, pre = runtime.load(str(tmp_path / "plain.so")), runtime.load(str(tmp_path / "pre.so"))
    reference = build_preprocess_graph(SPEC)
    for frame in RNG.integers(0, 256, (4, 1, 12, 16, 3)).astype(np.uint8):
        x = run_graph(reference, {"image": frame})[reference.outputs[0]]     # NumPy preprocessing
        np.testing.assert_array_equal(pre.run({"image": frame})["logits"], plain.run({"input": x})["logits"])
