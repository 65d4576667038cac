"""Export every IR op to ONNX and check ONNX Runtime agrees with the IR interpreter."""
import numpy as np
import onnx
import pytest

from yuan.compiler.ir import Graph, run_graph
from yuan.compiler.onnx import DEFAULT_OPSET, OnnxExportError, export_onnx

from tests.conftest import run_ort

RNG = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def check_against_ort(graph, feed, opset=DEFAULT_OPSET, rtol=1e-5, atol=1e-5):
    model = export_onnx(graph, None, opset=opset)
    expected = run_ort(model, feed)
    actual = run_graph(graph, feed)
    assert list(expected) == graph.outputs  # output names survive the export
    for name in graph.outputs:
        assert actual[name].shape == expected[name].shape, name
        assert actual[name].dtype == expected[name].dtype, name
        if actual[name].dtype.kind in "iu":
            np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
        else:
            np.testing.assert_allclose(actual[name], expected[name], rtol=rtol, atol=atol,
                                       err_msg=name)
    return model


def single_op(op, in_shapes, attrs=None, constants=(), positive=False, dtype=np.float32):
    """Graph: inputs x0.. (float), then constants, one `op` node, its outputs marked."""
    g = Graph(f"test_{op}")
    feed, names = {}, []
    for k, shape in enumerate(in_shapes):
        names.append(g.add_input(f"x{k}", shape, np.dtype(dtype).name))
        data = randn(*shape).astype(dtype)
        feed[f"x{k}"] = np.abs(data) + 0.1 if positive else data
    for k, array in enumerate(constants):
        names.append(g.add_constant(f"c{k}", array) if array is not None else "")
    node = g.add_node(op, names, attrs)
    g.mark_output(*node.outputs)
    return g, feed


CASES = {
    "conv_bias_stride_pad": ("conv2d", [(1, 4, 9, 9)], {"strides": [2, 2], "pads": [1, 0, 2, 1]},
                             [randn(6, 4, 3, 3), randn(6)]),
    "conv_dilated_group": ("conv2d", [(2, 4, 8, 8)], {"dilations": [2, 1], "group": 2, "pads": [2, 1, 2, 1]},
                           [randn(6, 2, 3, 3)]),
    "conv_depthwise": ("conv2d", [(1, 4, 7, 7)], {"group": 4, "pads": [1, 1, 1, 1]}, [randn(4, 1, 3, 3), randn(4)]),
    "linear_2d": ("linear", [(3, 5)], None, [randn(4, 5), randn(4)]),
    "linear_3d": ("linear", [(2, 3, 5)], None, [randn(4, 5), randn(4)]),
    "linear_3d_nobias": ("linear", [(2, 3, 5)], None, [randn(4, 5)]),
    "linear_weight_input": ("linear", [(3, 5), (4, 5)], None, []),
    "matmul_batched": ("matmul", [(2, 3, 4), (4, 5)], None, []),
    "matmul_vector": ("matmul", [(4,), (2, 4, 3)], None, []),
    "batch_norm_4d": ("batch_norm", [(2, 3, 4, 4)], {"epsilon": 1e-3},
                      [randn(3), randn(3), randn(3), np.abs(randn(3)) + 0.5]),
    "batch_norm_2d": ("batch_norm", [(2, 3)], None, [randn(3), randn(3), randn(3), np.abs(randn(3)) + 0.5]),
    "hardsigmoid_default": ("hardsigmoid", [(2, 3, 4)], None, []),
    "hardsigmoid_custom": ("hardsigmoid", [(2, 3, 4)], {"alpha": 0.2, "beta": 0.4}, []),
    "relu6": ("clip", [(2, 3, 4)], {"min": 0.0, "max": 6.0}, []),
    "clip_min_only": ("clip", [(2, 3, 4)], {"min": -0.5}, []),
    "clip_max_only": ("clip", [(2, 3, 4)], {"max": 0.5}, []),
    "max_pool": ("max_pool2d", [(1, 2, 9, 9)], {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, []),
    "max_pool_ceil": ("max_pool2d", [(1, 2, 6, 7)], {"kernel": [3, 2], "strides": [2, 2], "ceil_mode": 1}, []),
    "max_pool_ceil_dropped": ("max_pool2d", [(1, 2, 5, 5)], {"kernel": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}, []),
    "avg_pool_include_pad": ("avg_pool2d", [(1, 2, 7, 7)], {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, []),
    "avg_pool_exclude_pad": ("avg_pool2d", [(1, 2, 7, 7)], {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 0}, []),
    "avg_pool_ceil": ("avg_pool2d", [(1, 2, 6, 6)], {"kernel": [3, 3], "strides": [2, 2], "ceil_mode": 1, "count_include_pad": 0}, []),
    "avg_pool_ceil_pad": ("avg_pool2d", [(1, 2, 6, 6)], {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}, []),
    "global_avg_pool": ("global_avg_pool2d", [(2, 3, 5, 4)], None, []),
    "adaptive_avg_pool_1x1": ("adaptive_avg_pool2d", [(2, 3, 5, 4)], {"output_size": [1, 1]}, []),
    "adaptive_avg_pool_2x3": ("adaptive_avg_pool2d", [(2, 3, 4, 6)], {"output_size": [2, 3]}, []),
    "add_broadcast": ("add", [(2, 3, 4), (3, 1)], None, []),
    "sub": ("sub", [(2, 3), (2, 3)], None, []),
    "mul_const": ("mul", [(2, 3, 4)], None, [randn(4)]),
    "div": ("div", [(2, 3)], None, [np.abs(randn(2, 3)) + 0.5]),
    "pow": ("pow", [(2, 3)], None, [np.float32(2.0)]),
    "concat": ("concat", [(2, 3), (2, 5), (2, 1)], {"axis": -1}, []),
    "split": ("split", [(2, 7)], {"axis": 1, "sizes": [2, 4, 1]}, []),
    "reshape": ("reshape", [(2, 3, 4)], {"shape": [4, -1]}, []),
    "flatten_axis1": ("flatten", [(2, 3, 4, 5)], None, []),
    "flatten_axis2": ("flatten", [(2, 3, 4, 5)], {"axis": 2}, []),
    "flatten_axis0": ("flatten", [(2, 3)], {"axis": 0}, []),
    "transpose": ("transpose", [(2, 3, 4)], {"perm": [2, 0, 1]}, []),
    "squeeze": ("squeeze", [(2, 1, 3, 1)], {"axes": [1, -1]}, []),
    "unsqueeze": ("unsqueeze", [(2, 3)], {"axes": [0, 3]}, []),
    "slice": ("slice", [(5, 6, 7)], {"starts": [1, -1, 0], "ends": [4, -100, 9999], "axes": [0, 1, 2], "steps": [2, -2, 3]}, []),
    "slice_default_axes": ("slice", [(5, 6)], {"starts": [1], "ends": [3]}, []),
    "reduce_mean": ("reduce_mean", [(2, 3, 4)], {"axes": [1, 2]}, []),
    "reduce_sum": ("reduce_sum", [(2, 3, 4)], {"axes": [0], "keepdims": 0}, []),
    "reduce_max_all": ("reduce_max", [(2, 3, 4)], {"keepdims": 0}, []),
    "reduce_mean_noop": ("reduce_mean", [(2, 3)], {"axes": []}, []),
    "softmax": ("softmax", [(2, 3, 4)], {"axis": 1}, []),
    "log_softmax": ("log_softmax", [(2, 5)], None, []),
    "pad_constant": ("pad", [(1, 2, 3, 3)], {"pads": [0, 0, 1, 2, 0, 1, 0, 1], "value": 1.5}, []),
    "pad_negative": ("pad", [(2, 5)], {"pads": [0, -1, 1, 2]}, []),
    "pad_reflect": ("pad", [(1, 2, 4, 4)], {"pads": [0, 0, 2, 1, 0, 0, 1, 3], "mode": "reflect"}, []),
    "pad_edge": ("pad", [(1, 2, 4, 4)], {"pads": [0, 0, 2, 1, 0, 0, 1, 3], "mode": "edge"}, []),
    "channel_shuffle": ("channel_shuffle", [(2, 6, 3, 3)], {"groups": 3}, []),
}
for _op in ("relu", "sigmoid", "tanh", "hardswish", "identity", "neg", "exp"):
    CASES[_op] = (_op, [(2, 3, 4)], None, [])
for _op in ("log", "sqrt"):
    CASES[_op] = (_op, [(2, 3, 4)], {"__positive__": True}, [])


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case):
    op, shapes, attrs, constants = CASES[case]
    attrs = dict(attrs or {})
    positive = attrs.pop("__positive__", False)
    graph, feed = single_op(op, shapes, attrs, constants, positive=positive)
    check_against_ort(graph, feed)


def quant_graph(bits=8, signed=1, narrow=0, per_axis=False):
    g = Graph("qdq")
    x = g.add_input("x", (2, 4, 3, 3))
    if per_axis:
        scale = g.add_constant("scale", np.array([0.01, 0.02, 0.05, 0.1], np.float32))
        zp = g.add_constant("zp", np.array([0, 1, -2, 3] if signed else [0, 1, 2, 128], np.int8 if signed else np.uint8))
        axis = 1
    else:
        scale = g.add_constant("scale", np.float32(0.03))
        zp = g.add_constant("zp", np.int8(-3) if signed else np.uint8(120))
        axis = None
    q = g.add_node("quantize", [x, scale, zp], {"axis": axis, "bits": bits, "signed": signed,
                                                "narrow_range": narrow}, outputs=["q"])
    g.add_node("dequantize", ["q", scale, zp], {"axis": axis}, outputs=["y"])
    g.mark_output("q", "y")
    # Values on exact .5 steps check round-half-to-even; large ones check clamping.
    x_data = (np.arange(72, dtype=np.float32).reshape(2, 4, 3, 3) - 36) * np.float32(0.015)
    x_data[0, 0, 0, 0] = 100.0
    x_data[1, 3, 2, 2] = -100.0
    return g, {"x": x_data}


@pytest.mark.parametrize("bits,signed,narrow,per_axis", [
    (8, 1, 0, False), (8, 0, 0, False), (8, 1, 0, True), (8, 0, 0, True),
    (8, 1, 1, False), (4, 1, 0, True), (4, 0, 0, False), (6, 1, 1, True)])
def test_quantize_dequantize_match_onnxruntime_exactly(bits, signed, narrow, per_axis):
    g, feed = quant_graph(bits, signed, narrow, per_axis)
    check_against_ort(g, feed, rtol=0, atol=0)
    q = run_graph(g, feed)["q"]
    lo = -(1 << (bits - 1)) + narrow if signed else narrow
    hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    assert q.min() == lo and q.max() == hi  # the +-100 entries saturate


def test_int32_bias_dequantize_matches_onnxruntime():
    g = Graph("bias")
    x = g.add_input("x", (2, 3))
    bias_q = g.add_constant("bias_q", np.array([-1000, 7, 123456], np.int32))
    scale = g.add_constant("bias_scale", np.array([0.001, 0.002, 0.0005], np.float32))
    zp = g.add_constant("bias_zp", np.zeros(3, np.int32))
    g.add_node("dequantize", [bias_q, scale, zp], {"axis": 0}, outputs=["bias"])
    g.add_node("add", [x, "bias"], outputs=["y"])
    g.mark_output("y")
    check_against_ort(g, {"x": randn(2, 3)}, rtol=0, atol=0)


@pytest.mark.parametrize("opset", [13, 17, DEFAULT_OPSET])
def test_opset_dependent_ops(opset):
    g = Graph("opsets")
    x = g.add_input("x", (2, 3, 4, 4))
    h = g.add_node("hardswish", [x]).outputs[0]
    m = g.add_node("reduce_mean", [h], {"axes": [2, 3], "keepdims": 1}).outputs[0]
    s = g.add_node("reduce_sum", [m], {"axes": [1], "keepdims": 0}).outputs[0]
    mx = g.add_node("reduce_max", [h], {"axes": [-1], "keepdims": 0}).outputs[0]
    sq = g.add_node("squeeze", [s], {"axes": [1, 2]}, outputs=["s"]).outputs[0]
    g.mark_output(sq, mx)
    model = check_against_ort(g, {"x": randn(2, 3, 4, 4)}, opset=opset)
    assert model.opset_import[0].version == opset


def test_model_structure_names_initializers_value_info(tmp_path):
    g = Graph("named")
    x = g.add_input("image", (1, 3, 8, 8))
    w = g.add_constant("conv1.weight", randn(4, 3, 3, 3))
    g.add_node("conv2d", [x, w], {"pads": [1, 1, 1, 1]}, outputs=["features"], name="conv1")
    g.add_node("relu", ["features"], outputs=["logits"], name="relu1")
    g.mark_output("logits")
    path = tmp_path / "m.onnx"
    model = export_onnx(g, path)
    loaded = onnx.load(str(path))
    assert loaded == model
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert [i.name for i in model.graph.initializer] == ["conv1.weight"]
    assert [(n.op_type, n.name) for n in model.graph.node] == [("Conv", "conv1"), ("Relu", "relu1")]
    info = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    assert info == {"features": [1, 4, 8, 8]}
    onnx.checker.check_model(loaded, full_check=True)


def test_adaptive_pool_not_divisible_is_a_clear_error():
    g, _ = single_op("adaptive_avg_pool2d", [(1, 2, 5, 5)], {"output_size": [2, 2]})
    with pytest.raises(OnnxExportError, match=r"adaptive_avg_pool2d.*not a multiple"):
        export_onnx(g, None)


def test_sixteen_bit_quantize_needs_opset_21():
    g = Graph("q16")
    x = g.add_input("x", (4,))
    s, z = g.add_constant("s", np.float32(0.1)), g.add_constant("z", np.int16(0))
    g.add_node("quantize", [x, s, z], {"bits": 16}, outputs=["q"])
    g.mark_output("q")
    with pytest.raises(OnnxExportError, match="16-bit quantize"):
        export_onnx(g, None, opset=17)
    check_against_ort(g, {"x": randn(4) * 1000}, opset=21)


def test_invalid_graph_and_bad_opset_are_rejected():
    g = Graph("broken")
    x = g.add_input("x", (2,))
    g.add_node("relu", [x], outputs=["y"])
    g.outputs.append("nowhere")
    with pytest.raises(OnnxExportError, match="nowhere"):
        export_onnx(g, None)
    g.outputs.pop()
    with pytest.raises(OnnxExportError, match="opset 9"):
        export_onnx(g, None, opset=9)


def test_small_network_exports_and_reimports():
    """A MobileNet/ShuffleNet-flavoured net: depthwise conv, SE gate, shuffle, skip, head."""
    from yuan.compiler.onnx import import_onnx

    g = Graph("mini_net")
    x = g.add_input("image", (2, 3, 16, 16))

    def const(name, *shape, positive=False):
        data = randn(*shape) * 0.3
        return g.add_constant(name, np.abs(data) + 0.5 if positive else data)

    def conv_bn(inp, cin, cout, k, stride, group, name):
        y = g.add_node("conv2d", [inp, const(f"{name}.w", cout, cin // group, k, k)],
                       {"strides": [stride] * 2, "pads": [k // 2] * 4, "group": group}, name=name).outputs[0]
        bn = [const(f"{name}.gamma", cout), const(f"{name}.beta", cout), const(f"{name}.mean", cout),
              const(f"{name}.var", cout, positive=True)]
        return g.add_node("batch_norm", [y] + bn, name=f"{name}.bn").outputs[0]

    stem = g.add_node("hardswish", [conv_bn(x, 3, 8, 3, 2, 1, "stem")]).outputs[0]
    dw = g.add_node("clip", [conv_bn(stem, 8, 8, 3, 1, 8, "dw")], {"min": 0, "max": 6}).outputs[0]
    squeeze = g.add_node("flatten", [g.add_node("global_avg_pool2d", [dw]).outputs[0]]).outputs[0]
    fc1 = g.add_node("relu", [g.add_node("linear", [squeeze, const("se.w1", 4, 8), const("se.b1", 4)]).outputs[0]]).outputs[0]
    gate = g.add_node("hardsigmoid", [g.add_node("linear", [fc1, const("se.w2", 8, 4), const("se.b2", 8)]).outputs[0]]).outputs[0]
    gate4d = g.add_node("reshape", [gate], {"shape": [2, 8, 1, 1]}).outputs[0]
    se = g.add_node("mul", [dw, gate4d]).outputs[0]
    left, right = g.add_node("split", [se], {"axis": 1, "sizes": [4, 4]}).outputs
    right = g.add_node("relu", [conv_bn(right, 4, 4, 1, 1, 1, "pw")]).outputs[0]
    mixed = g.add_node("channel_shuffle", [g.add_node("concat", [left, right], {"axis": 1}).outputs[0]],
                       {"groups": 2}).outputs[0]
    res = g.add_node("add", [mixed, stem]).outputs[0]
    pooled = g.add_node("avg_pool2d", [res], {"kernel": [2, 2]}).outputs[0]
    flat = g.add_node("flatten", [pooled]).outputs[0]
    logits = g.add_node("linear", [flat, const("head.w", 5, 128), const("head.b", 5)], outputs=["logits"])
    g.add_node("log_softmax", logits.outputs, outputs=["log_probs"])
    g.mark_output("logits", "log_probs")

    feed = {"image": randn(2, 3, 16, 16)}
    model = check_against_ort(g, feed, rtol=1e-4, atol=1e-5)
    back = import_onnx(model)
    expected = run_graph(g, feed)
    for name, value in run_graph(back, feed).items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-6)


def test_channels_last_nodes_are_refused_by_name():
    g = Graph("planned")
    g.add_input("x", (1, 6, 6, 4))
    g.add_node("max_pool2d", ["x"], {"kernel": [2, 2], "layout": "NHWC"}, ["y"], name="pool1")
    g.mark_output("y")
    with pytest.raises(OnnxExportError, match=r"layout NHWC.*max_pool2d \(node 'pool1'\)"):
        export_onnx(g)
