"""Bad or unusual ONNX input: one clear line that names the file / tensor / node, and the int8 import
gaps the fuzzer found (scalar DequantizeLinear operands, Gemm alpha/beta, LeakyRelu) working."""
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from yuan import runtime
from yuan.compiler.build import compile_graph, optimize
from yuan.compiler.onnx import OnnxImportError, import_onnx
from tests.reliability.random_graphs import output_lsb, quantize_with_ort, run_ort

logging.getLogger().setLevel(logging.ERROR)   # ORT's quantizer suggests pre-processing
F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _relu(out_vi):
    return _model([helper.make_node("Relu", ["x"], ["y"])], [helper.make_tensor_value_info("x", F, [1, 3])], [out_vi])


def test_empty_file_says_it_is_empty(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(OnnxImportError, match=r"empty.onnx'.*empty \(0 bytes\)"):
        import_onnx(str(path))


@pytest.mark.parametrize("model,message", [
    (_relu(onnx.ValueInfoProto(name="y", type=onnx.TypeProto(tensor_type=onnx.TypeProto.Tensor(elem_type=F)))),
     "graph output 'y' has a tensor type without a 'shape' field"),
    (_relu(onnx.ValueInfoProto(name="y")), "graph output 'y' has no type"),
    (_relu(helper.make_tensor_value_info("y", F, [1, 4])), r"output 'y' is declared with shape \[1, 4\] but computes \[1, 3\]"),
])
def test_model_errors_name_the_tensor(model, message):
    with pytest.raises(OnnxImportError, match=message):
        import_onnx(model)


def test_symbolic_input_suggests_the_cli_flag_and_lists_real_inputs_only():
    w = numpy_helper.from_array(np.ones((3, 3), np.float32), "w")
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                   [helper.make_tensor_value_info("x", F, ["N", 3]), helper.make_tensor_value_info("w", F, [3, 3])],
                   [helper.make_tensor_value_info("y", F, ["N", 3])], [w])
    with pytest.raises(OnnxImportError, match=r"--input-shape x=1,3"):
        import_onnx(model)
    with pytest.raises(OnnxImportError, match=r"unknown inputs \['z'\]; the model's inputs are \['x'\]$"):
        import_onnx(model, {"z": (1, 3)})
    assert import_onnx(model, {"x": (2, 3)}).values["y"].shape == (2, 3)


@pytest.mark.parametrize("op", ["LRN", "PRelu", "Upsample", "ConvTranspose"])   # Resize: tests/compiler/test_image_ops.py
def test_unsupported_ops_are_refused_by_name(op):
    node = helper.make_node(op, ["x"], ["y"], name=f"my_{op.lower()}")
    model = _model([node], [helper.make_tensor_value_info("x", F, [1, 3, 4, 4])],
                   [helper.make_tensor_value_info("y", F, None)])
    with pytest.raises(OnnxImportError, match=rf"unsupported ONNX ops: {op} \(node 'my_{op.lower()}'\)"):
        import_onnx(model)


def _net(alpha=1.0, beta=1.0, leaky=False):
    """conv -> Mul(scalar) -> Add(scalar) [-> LeakyRelu] -> global pool -> Gemm(alpha, beta)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array(1.7, np.float32), "s"),
             numpy_helper.from_array(np.array(0.3, np.float32), "a"),
             numpy_helper.from_array(rng.normal(0, 0.3, (5, 4)).astype(np.float32), "gw"),
             numpy_helper.from_array(rng.normal(0, 0.3, 5).astype(np.float32), "gb")]
    n = helper.make_node
    nodes = [n("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), n("Mul", ["c", "s"], ["m"]), n("Add", ["m", "a"], ["h"])]
    if leaky:
        nodes.append(n("LeakyRelu", ["h"], ["h2"], alpha=0.1))
    nodes += [n("GlobalAveragePool", ["h2" if leaky else "h"], ["g"]), n("Flatten", ["g"], ["f"]),
              n("Gemm", ["f", "gw", "gb"], ["y"], transB=1, alpha=alpha, beta=beta)]
    return _model(nodes, [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])],
                  [helper.make_tensor_value_info("y", F, [1, 5])], inits)


@pytest.mark.parametrize("alpha,beta,leaky", [(1.0, 1.0, False), (0.7, 0.5, False), (1.0, 1.0, True)])
def test_ort_quantized_scalar_operands_gemm_scaling_and_leaky_relu(alpha, beta, leaky, tmp_path):
    model = _net(alpha, beta, leaky)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    qdq = quantize_with_ort(model, [rng.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(4)],
                            str(tmp_path), 0)
    for name, m, tol in (("float", model, 1e-5), ("int8", qdq, None)):
        graph = import_onnx(m)
        if leaky and name == "int8":
            assert any(node.op == "lut" for node in optimize(graph).nodes), "LeakyRelu should become a lut"
        got = runtime.load(compile_graph(graph, "x86", str(tmp_path / f"{name}.so"))).run({"x": x})["y"]
        ref = run_ort(m, x)
        if tol is not None:
            np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
        else:   # within one LSB of the output's quantization step
            assert np.abs(got - ref).max() <= output_lsb(m) * 1.001
