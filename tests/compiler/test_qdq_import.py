"""Import QDQ models made by another tool (ONNX Runtime's quantize_static) and check the
QDQ consistency errors of compiler/onnx/qdq_checks.py."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)

from yuan.compiler.ir import run_graph
from yuan.compiler.onnx import OnnxImportError, export_onnx, import_onnx
from tests.conftest import (IN_SHAPE, QDQ_RNG as RNG, ListReader, calibration_batches, float_model, info, init,
                            ort_session, output_scale)













@pytest.fixture(scope="module", params=[QuantType.QUInt8, QuantType.QInt8], ids=["uint8", "int8"])
def ort_qdq(request, tmp_path_factory):
    """(QDQ ModelProto made by ORT, activation dtype name)."""
    folder = tmp_path_factory.mktemp("qdq")
    float_path, qdq_path = folder / "float.onnx", folder / "qdq.onnx"
    onnx.save(float_model(), str(float_path))
    quantize_static(str(float_path), str(qdq_path), ListReader(calibration_batches()),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=request.param, weight_type=QuantType.QInt8)
    dtype = "uint8" if request.param == QuantType.QUInt8 else "int8"
    return onnx.load(str(qdq_path)), dtype






def with_quantized_outputs(model):
    """A copy of `model` that also outputs every QuantizeLinear result (integer codes)."""
    inits = {i.name: i for i in model.graph.initializer}
    extended = onnx.ModelProto()
    extended.CopyFrom(model)
    names = [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":
            elem = inits[node.input[2]].data_type
            extended.graph.output.append(helper.make_tensor_value_info(node.output[0], elem, None))
    return extended, names


def compare_with_ort(model, graph, session, batches=20):
    """(|ORT - run_graph| of the float output in output-scale units, |difference| of every
    quantized tensor's integer codes), over random inputs."""
    scale = output_scale(model)
    out_names = [o.name for o in session.get_outputs()]
    outputs, codes = [], []
    for _ in range(batches):
        x = RNG.standard_normal(IN_SHAPE).astype(np.float32) * 1.5
        expected = dict(zip(out_names, session.run(out_names, {"x": x})))
        actual = run_graph(graph, {"x": x})
        env = _all_values(graph, {"x": x})
        outputs.append(np.abs(actual["y"] - expected["y"]).ravel() / scale)
        codes += [np.abs(env[n].astype(np.int64) - expected[n].astype(np.int64)).ravel()
                  for n in out_names if n != "y"]
    return np.concatenate(outputs), np.concatenate(codes) if codes else np.zeros(0)


def _all_values(graph, feed):
    """Every value of the graph (run_graph returns outputs only)."""
    probe = graph.copy()
    probe.outputs = [o for n in graph.nodes for o in n.outputs]
    return run_graph(probe, feed)


# ---------------------------------------------------------------- ORT-made QDQ models

def test_imported_values_carry_ort_quant_params(ort_qdq):
    model, act_dtype = ort_qdq
    graph = import_onnx(model)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    quantize_nodes = [n for n in graph.nodes if n.op == "quantize"]
    assert quantize_nodes
    for node in quantize_nodes:
        q = graph.values[node.outputs[0]].quant
        assert q is not None and q.dtype == act_dtype and q.axis is None
        np.testing.assert_array_equal(q.scale, inits[node.inputs[1]])
    # Integer weights stay integer constants, labelled per channel (axis 0, int8).
    for onnx_node in model.graph.node:
        if onnx_node.op_type != "DequantizeLinear" or onnx_node.input[0] not in inits:
            continue
        const, scale = onnx_node.input[0], inits[onnx_node.input[1]]
        q = graph.values[const].quant
        assert graph.constants[const].dtype == inits[const].dtype
        assert q is not None and q.axis == 0
        np.testing.assert_array_equal(q.scale, scale)
        assert q.bits == (32 if inits[const].dtype == np.int32 else 8)


def test_bias_scales_are_input_times_weight_scales(ort_qdq):
    """Independent of qdq_checks: read ORT's own initializers and multiply."""
    model, _ = ort_qdq
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dq = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    checked = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
            s_x = inits[dq[node.input[0]].input[1]]
            s_w = inits[dq[node.input[1]].input[1]]
            s_b = inits[dq[node.input[2]].input[1]]
            np.testing.assert_allclose(s_b, s_x * s_w, rtol=1e-6)
            checked += 1
    assert checked == 3
    import_onnx(model)  # and the importer's own check accepts them


@pytest.mark.parametrize("optimize", [False, True], ids=["ort_reference", "ort_optimized"])
def test_run_graph_matches_ort_within_one_lsb(ort_qdq, optimize):
    """ORT_DISABLE_ALL runs DQ -> float op -> Q like the interpreter; ORT_ENABLE_ALL fuses
    groups into integer kernels (QLinearConv...) with float requantization. Both may differ
    from run_graph by one output step on rare ties; nothing more is allowed."""
    model, _ = ort_qdq
    graph = import_onnx(model)
    extended, quantized = with_quantized_outputs(model)
    outputs, codes = compare_with_ort(model, graph, ort_session(extended, optimize))
    exact_out, exact_codes = float(np.mean(outputs < 1e-3)), float(np.mean(codes == 0))
    print(f"\nvs ORT (optimize={optimize}): output exact {exact_out:.4f} of {outputs.size}, "
          f"integer codes of {len(quantized)} quantized tensors exact {exact_codes:.5f} of {codes.size}")
    assert len(quantized) >= 7 and codes.size > 10000
    assert outputs.max() <= 1 + 1e-3 and codes.max() <= 1
    assert exact_out >= 0.9 and exact_codes >= 0.99


def test_export_of_imported_qdq_model_runs_in_ort(ort_qdq):
    model, act_dtype = ort_qdq
    graph = import_onnx(model)
    exported = export_onnx(graph)
    types = [n.op_type for n in exported.graph.node]
    original = [n.op_type for n in model.graph.node]
    assert types.count("QuantizeLinear") == original.count("QuantizeLinear") > 0
    assert "Conv" in types and "Gemm" in types  # the Gemm stays one node
    weights = [i for i in exported.graph.initializer if i.data_type == TensorProto.INT8 and len(i.dims) == 4]
    assert len(weights) == 2  # conv weights exported as int8, not folded floats
    outputs, _ = compare_with_ort(model, import_onnx(exported), ort_session(model, False), batches=5)
    assert outputs.max() <= 1 + 1e-3
    session = ort_session(exported, True)
    x = RNG.standard_normal(IN_SHAPE).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], run_graph(graph, {"x": x})["y"],
                               atol=output_scale(model) * 1.001, rtol=0)


# ---------------------------------------------------------------- consistency errors

def qdq_conv(**overrides):
    """A hand-written QDQ conv whose parts a test can break: each keyword replaces one
    initializer or adds attributes to one node ("<node>_attrs")."""
    n = helper.make_node
    s_x, s_w = np.float32(0.05), np.array([0.01, 0.02], np.float32)
    arrays = {
        "x_scale": s_x, "x_zp": np.uint8(128),
        "w_q": RNG.integers(-127, 128, (2, 3, 3, 3)).astype(np.int8), "w_scale": s_w,
        "w_zp": np.zeros(2, np.int8),
        "b_q": np.array([100, -200], np.int32), "b_scale": s_x * s_w,
        "y_scale": np.float32(0.1), "y_zp": np.uint8(10),
    }
    attrs = {"quant_x": {}, "dequant_x": {}, "dequant_w": {"axis": 0}, "dequant_b": {"axis": 0},
             "quant_y": {}}
    for key, value in overrides.items():
        if key.endswith("_attrs"):
            attrs[key[:-6]].update(value)
        else:
            arrays[key] = value
    nodes = [
        n("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"], name="quant_x", **attrs["quant_x"]),
        n("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="dequant_x", **attrs["dequant_x"]),
        n("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_dq"], name="dequant_w", **attrs["dequant_w"]),
        n("DequantizeLinear", ["b_q", "b_scale"], ["b_dq"], name="dequant_b", **attrs["dequant_b"]),
        n("Conv", ["x_dq", "w_dq", "b_dq"], ["conv_out"], name="conv"),
        n("QuantizeLinear", ["conv_out", "y_scale", "y_zp"], ["y"], name="quant_y", **attrs["quant_y"]),
    ]
    inits = [init(k, v) for k, v in arrays.items()]
    graph = helper.make_graph(nodes, "qdq_conv", [info("x", [1, 3, 5, 5])],
                              [info("y", [1, 2, 3, 3], TensorProto.UINT8)], inits)
    opsets = [helper.make_opsetid("", 21)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def test_consistent_hand_written_model_imports():
    graph = import_onnx(qdq_conv())
    assert graph.values["y"].quant.zero_point == 10


@pytest.mark.parametrize("overrides, node, message", [
    ({"x_scale": np.float32(0.0)}, "quant_x", "scale 'x_scale' must be positive and finite"),
    ({"y_scale": np.float32(-0.1)}, "quant_y", "positive and finite; entry 0 is -0.1"),
    ({"w_scale": np.array([0.01, np.inf], np.float32)}, "dequant_w", "positive and finite; entry 1 is inf"),
    ({"w_scale": np.array([0.01, np.nan], np.float32)}, "dequant_w", "positive and finite"),
    ({"w_scale": np.full(3, 0.01, np.float32), "w_zp": np.zeros(3, np.int8)}, "dequant_w",
     "has 3 entries but axis 0 of input 'w_q' has size 2"),
    ({"w_zp": np.zeros(3, np.int8)}, "dequant_w", "zero point 'w_zp' shape \\[3\\] does not match scale"),
    ({"dequant_w_attrs": {"axis": 4}}, "dequant_w", "axis 4 out of range"),
    ({"y_zp": np.int8(-5), "quant_y_attrs": {"output_dtype": TensorProto.UINT8}}, "quant_y",
     "zero point 'y_zp' = \\[-5\\] is out of range for uint8"),
    ({"w_zp": np.array([0, 0], np.uint8)}, "dequant_w", "dtype uint8, which does not match the quantized dtype int8"),
    ({"quant_y_attrs": {"output_dtype": TensorProto.INT8}}, "quant_y", "does not match the quantized dtype int8"),
    ({"b_scale": np.array([0.0005, 0.0011], np.float32)}, "conv",
     "int32 bias 'b_dq' is dequantized with scale 0.0011 \\(entry 1\\).*input scale x weight scale is 0.001;"),
])
def test_inconsistent_qdq_parameters_name_the_node(overrides, node, message):
    with pytest.raises(OnnxImportError, match=f"node '{node}'.*{message}"):
        import_onnx(qdq_conv(**overrides))


def test_dequantize_zero_point_out_of_range_for_its_input():
    """An int32 zero point of 300 cannot describe uint8 data."""
    n = helper.make_node
    nodes = [n("DequantizeLinear", ["x", "s", "zp"], ["y"], name="dq_bad_zp")]
    graph = helper.make_graph(nodes, "dq", [info("x", [4], TensorProto.UINT8)], [info("y", [4])],
                              [init("s", np.float32(0.5)), init("zp", np.int32(300))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(OnnxImportError, match="node 'dq_bad_zp'.*300.*out of range for uint8"):
        import_onnx(model)
