"""compiler.passes.qdq_to_integer: QDQ graphs from our quantized modules, from
quant.graph_ptq and from ONNX Runtime become integer graphs (design.md "Integer IR ops").

The key guarantee (SPEC §8): for the quantized zoo models the integer graph's output equals
the quantized model's output bit for bit."""
import numpy as np
import onnx
import pytest
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from yuan.compiler.ir import integer_spec as ispec
from yuan.compiler.ir import run_graph
from yuan.compiler.onnx import import_onnx
from yuan.compiler.passes import qdq_to_integer
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from yuan.quant.graph_ptq import quantize_graph
from tests.conftest import (IN_SHAPE, QUANT_ZOO, ZOO, ListReader, RangeObserver, batches, calibration_batches,
                            float_model, int8_zoo_model, ort_session, output_scale, small_net, zoo_input)

FLOAT_HEAVY_OPS = {"conv2d", "linear", "add", "avg_pool2d", "global_avg_pool2d", "adaptive_avg_pool2d"}


def all_values(graph, feed):
    probe = graph.copy()
    probe.outputs = [o for n in graph.nodes for o in n.outputs]
    return run_graph(probe, feed)


@pytest.mark.parametrize("name", QUANT_ZOO)
def test_zoo_integer_graph_is_bit_exact(name):
    size = ZOO[name][1]
    qmodel = int8_zoo_model(name)
    x = zoo_input(size, 7)
    qdq = trace(qmodel, Tensor(x))
    integer = qdq_to_integer(qdq)
    ops = [n.op for n in integer.nodes]
    assert not FLOAT_HEAVY_OPS & set(ops), f"{name}: float ops left: {FLOAT_HEAVY_OPS & set(ops)}"
    assert ops.count("qconv2d") == [n.op for n in qdq.nodes].count("conv2d") and "qlinear" in ops
    # Only the model edges stay quantize / dequantize.
    assert ops.count("quantize") == 1 and ops.count("dequantize") == len(integer.outputs)
    assert integer.inputs == qdq.inputs and integer.outputs == qdq.outputs
    for seed in (7, 8):
        x = zoo_input(size, seed)
        got = run_graph(integer, {"input": x})["output"]
        assert np.array_equal(got, qmodel(Tensor(x)).data), f"{name}: integer graph differs"


@pytest.fixture(scope="module")
def ptq():
    g = small_net()
    return quantize_graph(g, batches(), act_observer=RangeObserver)


def test_graph_ptq_converts_within_one_lsb_of_qdq(ptq):
    integer = qdq_to_integer(ptq)
    ops = {n.op for n in integer.nodes}
    assert not FLOAT_HEAVY_OPS & ops and {"qconv2d", "qlinear", "qadd", "lut", "qglobal_avg_pool2d"} <= ops
    out_dq = ptq.producer("y")
    scale = float(ptq.constants[out_dq.inputs[1]])
    for x in batches(3, seed=23):   # not the calibration batches
        lsb = np.abs(run_graph(integer, {"x": x})["y"] - run_graph(ptq, {"x": x})["y"]) / scale
        # QDQ float semantics round once in float; SPEC §5 requantizes in fixed point.
        assert lsb.max() <= 1 + 1e-3


def test_graph_ptq_conv_is_integer_spec_by_hand(ptq):
    """The first qconv2d equals integer_spec applied to the QDQ graph's own constants."""
    integer = qdq_to_integer(ptq)
    node = next(n for n in integer.nodes if n.op == "qconv2d")
    x = batches(1, seed=24)[0]
    env = all_values(integer, {"x": x})
    float_conv = next(n for n in ptq.nodes if n.op == "conv2d")
    dq_x, dq_w, dq_b = (ptq.producer(i) for i in float_conv.inputs)
    c = ptq.constants
    s_x, z_x = c[dq_x.inputs[1]], int(c[dq_x.inputs[2]])
    acc = ispec.conv2d_accumulate(env[node.inputs[0]], z_x, c[dq_w.inputs[0]], c[dq_b.inputs[0]],
                                  float_conv.attrs["strides"], float_conv.attrs["pads"],
                                  float_conv.attrs["dilations"], float_conv.attrs["group"])
    q_node = next(n for n in ptq.nodes if n.op == "quantize" and n.outputs[0] == node.outputs[0])
    qp_y = ptq.values[q_node.outputs[0]].quant
    m, n = ispec.output_multipliers(s_x, c[dq_w.inputs[1]], qp_y.scale)
    relu = ptq.producer(q_node.inputs[0]).op == "relu"
    lo, hi = ispec.activation_bounds(qp_y, "relu" if relu else None)
    expected = ispec.requantize_output(acc, m, n, int(qp_y.zero_point), lo, hi, axis=1)
    assert np.array_equal(env[node.outputs[0]], expected)


@pytest.mark.parametrize("act_type", [QuantType.QUInt8, QuantType.QInt8], ids=["uint8", "int8"])
def test_ort_quantized_model_converts_within_one_lsb(act_type, tmp_path):
    float_path, qdq_path = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(float_model(), str(float_path))
    quantize_static(str(float_path), str(qdq_path), ListReader(calibration_batches()),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=act_type, weight_type=QuantType.QInt8)
    model = onnx.load(str(qdq_path))
    integer = qdq_to_integer(import_onnx(model))
    ops = {n.op for n in integer.nodes}
    assert not FLOAT_HEAVY_OPS & ops and {"qconv2d", "qlinear", "qadd"} <= ops
    session, scale = ort_session(model, optimize=False), output_scale(model)
    rng = np.random.default_rng(4)
    for _ in range(5):
        x = rng.standard_normal(IN_SHAPE).astype(np.float32) * 1.5
        lsb = np.abs(run_graph(integer, {"x": x})["y"] - session.run(["y"], {"x": x})[0]) / scale
        assert lsb.max() <= 1 + 1e-3


def test_float_weights_and_islands_stay_float():
    """A conv whose weight is a float constant is no pattern: it stays, with its DQ / Q."""
    from yuan.compiler.ir import Graph
    g = Graph("g")
    x = g.add_input("x", (1, 2, 4, 4))
    s, z = g.add_constant("s", np.float32(0.1)), g.add_constant("z", np.int8(0))
    q = g.add_node("quantize", [x, s, z]).outputs[0]
    dq = g.add_node("dequantize", [q, s, z]).outputs[0]
    conv = g.add_node("conv2d", [dq, g.add_constant("w", np.ones((2, 2, 1, 1), np.float32))]).outputs[0]
    q2 = g.add_node("quantize", [conv, s, z]).outputs[0]
    g.mark_output(g.add_node("dequantize", [q2, s, z], outputs=["y"]).outputs[0])
    integer = qdq_to_integer(g)
    assert [n.op for n in integer.nodes] == [n.op for n in g.nodes]
    feed = {"x": np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)}
    assert np.array_equal(run_graph(integer, feed)["y"], run_graph(g, feed)["y"])
