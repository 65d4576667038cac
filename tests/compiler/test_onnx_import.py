"""Import hand-built ONNX models (several opsets) and compare run_graph with ONNX Runtime."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from yuan.compiler.ir import Graph, run_graph
from yuan.compiler.onnx import OnnxImportError, export_onnx, import_onnx

from tests.conftest import run_ort

RNG = np.random.default_rng(1)
CURRENT_OPSET = onnx.defs.onnx_opset_version()


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def tensor_info(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs, outputs, initializers, opset, inits_as_inputs=False):
    """A checked ModelProto; `inits_as_inputs` lists initializers as graph inputs (pre-IR-4)."""
    graph_inputs = list(inputs)
    if inits_as_inputs:
        graph_inputs += [tensor_info(t.name, list(t.dims), t.data_type) for t in initializers]
    graph = helper.make_graph(nodes, f"opset{opset}", graph_inputs, outputs, initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets,
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    return model


def assert_outputs_equal(actual, expected, rtol=1e-5, atol=1e-5):
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        assert actual[name].shape == value.shape, name
        assert actual[name].dtype == value.dtype, name
        np.testing.assert_allclose(actual[name], value, rtol=rtol, atol=atol, err_msg=name)


def check_import(model, feed, rtol=1e-5, atol=1e-5, **import_args):
    """import -> run_graph equals ORT on the original; export(import) equals it too."""
    expected = run_ort(model, feed)
    graph = import_onnx(model, **import_args)
    graph.validate()
    assert_outputs_equal(run_graph(graph, feed), expected, rtol, atol)
    assert_outputs_equal(run_ort(export_onnx(graph, None), feed), expected, rtol, atol)
    return graph


# ---------------------------------------------------------------- models per opset

def test_opset9_style_graph():
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["b"], name="bn", epsilon=1e-3),
        n("Clip", ["b"], ["r"], name="relu6", min=0.0, max=6.0),
        n("Sum", ["r", "c", "b"], ["s"], name="sum3"),
        n("Pad", ["s"], ["p"], name="pad", pads=[0, 0, 1, 1, 0, 0, 1, 1], value=0.5),
        n("MaxPool", ["p"], ["m"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        n("Softmax", ["m"], ["sm"], name="softmax", axis=1),  # opset<13: over C*H*W at once
        n("Shape", ["sm"], ["shape"], name="shape"),
        n("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
        n("Unsqueeze", ["batch"], ["batch1"], name="unsq_b", axes=[0]),
        n("Concat", ["batch1", "minus_one"], ["new_shape"], name="cat_shape", axis=0),
        n("Reshape", ["sm", "new_shape"], ["flat"], name="reshape"),
        n("Unsqueeze", ["flat"], ["y"], name="unsq", axes=[1]),
    ]
    inits = [init("W", randn(4, 3, 3, 3)), init("B", randn(4)), init("gamma", randn(4)),
             init("beta", randn(4)), init("mean", randn(4)), init("var", np.abs(randn(4)) + 0.5),
             init("zero", np.array(0, np.int64)), init("minus_one", np.array([-1], np.int64))]
    model = make_model(nodes, [tensor_info("x", [2, 3, 6, 6])], [tensor_info("y", [2, 1, 64])],
                       inits, opset=9, inits_as_inputs=True)
    graph = check_import(model, {"x": randn(2, 3, 6, 6)})
    assert graph.inputs == ["x"] and graph.outputs == ["y"]
    ops = [node.op for node in graph.nodes]
    assert "add" in ops and ops.count("add") == 2  # Sum of three -> two adds
    assert not {"shape", "gather"} & set(ops)  # the shape chain was folded away
    assert set(graph.constants) >= {"W", "B"}


def test_opset11_graph():
    n = helper.make_node
    nodes = [
        n("Clip", ["x", "lo", "hi"], ["c"], name="clip"),
        n("Pad", ["c", "pads", "pad_value"], ["p"], name="pad", mode="constant"),
        n("Slice", ["p", "starts", "ends", "axes", "steps"], ["s"], name="slice"),
        n("Squeeze", ["s"], ["q"], name="squeeze", axes=[1]),
        n("ReduceMean", ["q"], ["m"], name="mean", axes=[2], keepdims=0),
        n("Flatten", ["q"], ["f"], name="flatten", axis=1),
        n("Gemm", ["f", "W", "bias"], ["g"], name="fc", transB=1),
        n("Dropout", ["g"], ["d"], name="dropout"),
        n("LogSoftmax", ["d"], ["logp"], name="logsoftmax", axis=1),
        n("Identity", ["m"], ["m_out"], name="identity"),
    ]
    inits = [init("lo", np.float32(-0.5)), init("hi", np.float32(0.7)),
             init("pads", np.array([0, 0, 1, 0, 0, 0, 2, 1], np.int64)),
             init("pad_value", np.float32(0.25)),
             init("starts", np.array([0, -1], np.int64)), init("ends", np.array([1, -1000], np.int64)),
             init("axes", np.array([1, 3], np.int64)), init("steps", np.array([1, -2], np.int64)),
             init("W", randn(5, 21)), init("bias", randn(5))]
    model = make_model(nodes, [tensor_info("x", [2, 3, 4, 5])],
                       [tensor_info("logp", [2, 5]), tensor_info("m_out", [2, 7])], inits, opset=11)
    check_import(model, {"x": randn(2, 3, 4, 5)})


def test_opset13_graph():
    n = helper.make_node
    # x [2,4,3,4] -split-> [2,1,3,4] + [2,3,3,4] -concat-> [2,4,3,4] -reducesum(2)-> [2,4,1,4]
    # -squeeze-> [2,4,4] -unsqueeze-> [1,2,4,4] -reshape(0,0,-1)-> [1,2,16] -mean(0)-> [2,16]
    # -gemm(transA)-> [16,3] -matmul-> [16,2]
    nodes = [
        n("Split", ["x", "split"], ["a", "b"], name="split", axis=1),
        n("HardSigmoid", ["a"], ["hs"], name="hsig", alpha=0.25, beta=0.4),
        n("Softmax", ["b"], ["sm"], name="softmax", axis=1),  # opset 13: along axis 1 only
        n("Concat", ["hs", "sm"], ["cat"], name="cat", axis=1),
        n("ReduceSum", ["cat", "rs_axes"], ["rs"], name="rsum", keepdims=1),
        n("Squeeze", ["rs", "sq_axes"], ["sq"], name="squeeze"),
        n("Unsqueeze", ["sq", "usq_axes"], ["us"], name="unsqueeze"),
        n("Reshape", ["us", "shape"], ["r3"], name="reshape"),
        n("ReduceMean", ["r3"], ["r"], name="rmean", axes=[0], keepdims=0),
        n("Gemm", ["r", "B", "C"], ["gm"], name="gemm", alpha=0.5, beta=2.0, transA=1),
        n("MatMul", ["gm", "M"], ["mm"], name="matmul"),
        n("Tanh", ["mm"], ["y"], name="tanh"),
    ]
    inits = [init("split", np.array([1, 3], np.int64)), init("rs_axes", np.array([2], np.int64)),
             init("sq_axes", np.array([2], np.int64)), init("usq_axes", np.array([0], np.int64)),
             init("shape", np.array([0, 0, -1], np.int64)),  # 0 copies the input dim
             init("B", randn(2, 3)), init("C", randn(16, 3)), init("M", randn(3, 2))]
    model = make_model(nodes, [tensor_info("x", [2, 4, 3, 4])], [tensor_info("y", [16, 2])],
                       inits, opset=13)
    check_import(model, {"x": randn(2, 4, 3, 4)})


def test_opset17_graph_with_auto_pad_and_pools():
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "W"], ["c"], name="conv_same", auto_pad="SAME_LOWER", strides=[2, 2]),
        n("HardSwish", ["c"], ["h"], name="hswish"),
        n("AveragePool", ["h"], ["ap"], name="avg_same", kernel_shape=[3, 3],
          auto_pad="SAME_UPPER", count_include_pad=0),
        n("AveragePool", ["h"], ["ap2"], name="avg_ceil", kernel_shape=[2, 2], strides=[2, 2],
          ceil_mode=1, count_include_pad=1),
        n("MaxPool", ["h"], ["mp"], name="max_valid", kernel_shape=[2, 2], auto_pad="VALID"),
        n("GlobalAveragePool", ["mp"], ["gap"], name="gap"),
        n("Transpose", ["ap2"], ["t"], name="transpose_default"),
        n("Flatten", ["ap"], ["f"], name="flatten2", axis=2),
        n("Sigmoid", ["gap"], ["sg"], name="sigmoid"),
    ]
    inits = [init("W", randn(4, 3, 3, 3))]
    outs = [tensor_info("t", [3, 3, 4, 1]), tensor_info("f", [4, 25]), tensor_info("sg", [1, 4, 1, 1])]
    model = make_model(nodes, [tensor_info("x", [1, 3, 9, 9])], outs, inits, opset=17)
    check_import(model, {"x": randn(1, 3, 9, 9)})


@pytest.mark.parametrize("opset", [21, CURRENT_OPSET])
def test_current_opset_graph(opset):
    n = helper.make_node
    nodes = [
        n("ReduceMean", ["x", "axes"], ["m"], name="mean", keepdims=1),
        n("Sub", ["x", "m"], ["centered"], name="sub"),
        n("Mul", ["centered", "centered"], ["sq"], name="square"),
        n("ReduceMax", ["sq"], ["mx"], name="max", keepdims=0),  # no axes: all axes
        n("Pad", ["centered", "pads", "", "pad_axes"], ["p"], name="pad", mode="reflect"),
        n("Split", ["p"], ["s0", "s1"], name="split", axis=2, num_outputs=2),
        n("Div", ["s0", "two"], ["d"], name="div"),
        n("Relu", ["s1"], ["r"], name="relu"),
    ]
    inits = [init("axes", np.array([-1], np.int64)), init("pads", np.array([1, 2], np.int64)),
             init("pad_axes", np.array([2], np.int64)), init("two", np.float32(2.0))]
    outs = [tensor_info("mx", []), tensor_info("d", [2, 3, 4]), tensor_info("r", [2, 3, 3])]
    model = make_model(nodes, [tensor_info("x", [2, 3, 4])], outs, inits, opset=opset)
    check_import(model, {"x": randn(2, 3, 4)})


# ---------------------------------------------------------------- quantized (QDQ) models

def qdq_model():
    """uint8 per-tensor activations, int8 per-channel weights (axis 0), int32 bias.

    Scales are powers of two and values small, so every float product and sum is exact:
    the comparison with ONNX Runtime can be bit-exact whatever the summation order."""
    n = helper.make_node
    act_scale, out_scale = np.float32(2 ** -4), np.float32(2 ** -3)
    w_scale = np.array([2 ** -5, 2 ** -6, 2 ** -4, 2 ** -5], np.float32)
    w_q = RNG.integers(-20, 21, size=(4, 3, 3, 3)).astype(np.int8)
    bias_q = RNG.integers(-300, 301, size=4).astype(np.int32)
    nodes = [
        n("QuantizeLinear", ["x", "act_scale", "act_zp"], ["x_q"], name="quant_in"),
        n("DequantizeLinear", ["x_q", "act_scale", "act_zp"], ["x_dq"], name="dequant_in"),
        n("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_dq"], name="dequant_w", axis=0),
        n("DequantizeLinear", ["bias_q", "bias_scale"], ["b_dq"], name="dequant_b", axis=0),
        n("Conv", ["x_dq", "w_dq", "b_dq"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        n("Relu", ["conv"], ["relu"], name="relu"),
        n("QuantizeLinear", ["relu", "out_scale", "out_zp"], ["y_q"], name="quant_out"),
        n("DequantizeLinear", ["y_q", "out_scale", "out_zp"], ["y"], name="dequant_out"),
    ]
    inits = [init("act_scale", act_scale), init("act_zp", np.uint8(128)),
             init("w_q", w_q), init("w_scale", w_scale), init("w_zp", np.zeros(4, np.int8)),
             init("bias_q", bias_q), init("bias_scale", act_scale * w_scale),
             init("out_scale", out_scale), init("out_zp", np.uint8(3))]
    outs = [tensor_info("y_q", [1, 4, 6, 6], TensorProto.UINT8), tensor_info("y", [1, 4, 6, 6])]
    return make_model(nodes, [tensor_info("x", [1, 3, 6, 6])], outs, inits, opset=13)


def test_qdq_model_imports_and_matches_onnxruntime_exactly():
    model = qdq_model()
    feed = {"x": randn(1, 3, 6, 6) * 3}
    graph = check_import(model, feed, rtol=0, atol=0)
    ops = [node.op for node in graph.nodes]
    assert ops.count("quantize") == 2 and "dequantize" in ops
    quant_in = next(nd for nd in graph.nodes if nd.op == "quantize")
    assert quant_in.attrs["axis"] is None and quant_in.attrs["signed"] == 0
    assert graph.values["x_q"].dtype == "uint8" and graph.values["x_q"].quant.qmax == 255
    y_q = run_graph(graph, feed)["y_q"]
    assert 3 < y_q.max() and y_q.min() == 3  # relu output: zero maps to the zero point


# ---------------------------------------------------------------- errors

def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(OnnxImportError, match="garbage.onnx"):
        import_onnx(path)
    with pytest.raises(OnnxImportError, match="missing.onnx.*no such file"):
        import_onnx(tmp_path / "missing.onnx")


def test_model_failing_checker_names_the_file(tmp_path):
    node = helper.make_node("Relu", ["undefined"], ["y"], name="relu")
    graph = helper.make_graph([node], "bad", [tensor_info("x", [2])], [tensor_info("y", [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "bad_model.onnx"
    onnx.save(model, str(path))
    with pytest.raises(OnnxImportError, match="bad_model.onnx.*onnx.checker"):
        import_onnx(path)


def test_all_unsupported_ops_are_listed_in_one_error():
    n = helper.make_node
    nodes = [n("LRN", ["x"], ["a"], name="lrn1", size=3), n("Relu", ["a"], ["b"], name="ok"),
             n("Foo", ["b"], ["c"], name="n7", domain="custom.domain"),
             n("Bar", ["c"], ["y"], name="")]  # not even a registered ONNX op
    graph = helper.make_graph(nodes, "g", [tensor_info("x", [1, 3, 4, 4])],
                              [tensor_info("y", [1, 3, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("custom.domain", 1)])
    with pytest.raises(OnnxImportError) as info:
        import_onnx(model)
    message = str(info.value)
    assert "unsupported ONNX ops" in message
    assert "LRN (node 'lrn1')" in message and "custom.domain.Foo (node 'n7')" in message
    assert "Bar (node 'Bar_3')" in message  # unnamed nodes get op type and position
    assert "Relu" not in message


def test_bad_attribute_names_the_node():
    node = helper.make_node("Pad", ["x", "pads"], ["y"], name="wrap_pad", mode="wrap")
    model = make_model([node], [tensor_info("x", [2, 3])], [tensor_info("y", [4, 5])],
                       [init("pads", np.array([1, 1, 1, 1], np.int64))], opset=19)
    with pytest.raises(OnnxImportError, match="node 'wrap_pad' \\(Pad\\).*wrap"):
        import_onnx(model)
    node = helper.make_node("Transpose", ["x"], ["y"], name="bad_perm", perm=[0, 0])
    model = make_model([node], [tensor_info("x", [2, 3])], [tensor_info("y", [2, 2])], [], opset=13)
    with pytest.raises(OnnxImportError, match="node 'bad_perm' \\(Transpose\\).*perm"):
        import_onnx(model)


def test_symbolic_batch_dim_needs_a_concrete_shape():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    model = make_model(nodes, [tensor_info("x", ["N", 3])], [tensor_info("y", ["N", 3])], [], opset=13)
    with pytest.raises(OnnxImportError, match=r"'x'.*symbolic.*input_shapes=\{'x': \(1, 3\)\}"):
        import_onnx(model)
    graph = check_import(model, {"x": randn(4, 3)}, input_shapes={"x": (4, 3)})
    assert graph.values["x"].shape == (4, 3)


def test_training_mode_batch_norm_is_rejected():
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"],
                            name="bn_train", training_mode=1)
    inits = [init(k, np.ones(3, np.float32)) for k in "sbmv"]
    model = make_model([node], [tensor_info("x", [2, 3, 4, 4])], [tensor_info("y", [2, 3, 4, 4])],
                       inits, opset=15)
    with pytest.raises(OnnxImportError, match="bn_train.*training"):
        import_onnx(model)


# ---------------------------------------------------------------- round trips

def test_graph_outputs_keep_names_through_identity_and_folding():
    n = helper.make_node
    nodes = [n("Identity", ["x"], ["same"], name="id"),
             n("Shape", ["x"], ["x_shape"], name="shape"),
             n("Cast", ["x_shape"], ["x_shape_f"], name="cast", to=TensorProto.FLOAT),
             n("Relu", ["x"], ["r"], name="relu")]
    model = make_model(nodes, [tensor_info("x", [2, 3])],
                       [tensor_info("same", [2, 3]), tensor_info("x_shape_f", [2]), tensor_info("r", [2, 3])],
                       [], opset=13)
    graph = check_import(model, {"x": randn(2, 3)})
    assert graph.outputs == ["same", "x_shape_f", "r"]
    np.testing.assert_array_equal(run_graph(graph, {"x": randn(2, 3)})["x_shape_f"], [2.0, 3.0])


def test_ir_to_onnx_to_ir_round_trip_preserves_results():
    g = Graph("roundtrip")
    x = g.add_input("x", (1, 4, 8, 8))
    w = g.add_constant("w", randn(8, 4, 3, 3))
    c = g.add_node("conv2d", [x, w], {"pads": [1, 1, 1, 1], "strides": [2, 2]}).outputs[0]
    s = g.add_node("channel_shuffle", [c], {"groups": 2}).outputs[0]
    p = g.add_node("adaptive_avg_pool2d", [s], {"output_size": [2, 2]}).outputs[0]
    f = g.add_node("flatten", [p]).outputs[0]
    fc_w, fc_b = g.add_constant("fc.w", randn(3, 32)), g.add_constant("fc.b", randn(3))
    g.add_node("linear", [f, fc_w, fc_b], outputs=["logits"])
    g.mark_output("logits")
    back = import_onnx(export_onnx(g, None))
    feed = {"x": randn(1, 4, 8, 8)}
    np.testing.assert_allclose(run_graph(back, feed)["logits"], run_graph(g, feed)["logits"],
                               rtol=1e-5, atol=1e-6)
    assert "linear" in [node.op for node in back.nodes]


def test_shape_arithmetic_and_runtime_gather():
    n = helper.make_node
    value = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])
    nodes = [
        n("Constant", [], ["idx"], name="const_idx", value_int=1),
        n("Gather", ["x", "idx"], ["row"], name="take_row", axis=1),  # x[:, 1] at run time
        n("Shape", ["row"], ["row_shape"], name="shape"),
        n("ConstantOfShape", ["row_shape"], ["halves"], name="halves", value=value),
        n("Add", ["row", "halves"], ["shifted"], name="add"),
        n("Cast", ["shifted"], ["same_type"], name="cast_noop", to=TensorProto.FLOAT),
        n("Constant", [], ["perm_shape"], name="const_shape",
          value=numpy_helper.from_array(np.array([2, 1, 5], np.int64))),
        n("Reshape", ["same_type", "perm_shape"], ["r"], name="reshape"),
        n("GlobalMaxPool", ["x"], ["gmp"], name="gmp"),
    ]
    model = make_model(nodes, [tensor_info("x", [2, 3, 5, 1])],
                       [tensor_info("r", [2, 1, 5]), tensor_info("gmp", [2, 3, 1, 1])], [], opset=13)
    graph = check_import(model, {"x": randn(2, 3, 5, 1)})
    assert {nd.op for nd in graph.nodes} == {"slice", "squeeze", "add", "reshape", "reduce_max"}


def test_opset9_attribute_forms_of_slice_split_flatten():
    n = helper.make_node
    nodes = [
        n("Slice", ["x"], ["s"], name="slice", starts=[1, 0], ends=[3, 100], axes=[1, 2]),
        n("Split", ["s"], ["a", "b"], name="split", axis=2, split=[1, 3]),
        n("Flatten", ["b"], ["f0"], name="flatten0", axis=0),
        n("Transpose", ["a"], ["t"], name="transpose", perm=[2, 0, 1]),
        n("Squeeze", ["t"], ["q"], name="squeeze"),  # no axes: every size-1 dim
    ]
    model = make_model(nodes, [tensor_info("x", [2, 4, 4])],
                       [tensor_info("f0", [1, 12]), tensor_info("q", [2, 2])], [], opset=9)
    check_import(model, {"x": randn(2, 4, 4)})
