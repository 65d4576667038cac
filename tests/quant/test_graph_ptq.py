"""quant.graph_ptq: post-training quantization of a float Graph into QDQ form."""
import numpy as np
import onnxruntime as ort
import pytest

from yuan.compiler.ir import Graph, QuantParams, run_graph
from yuan.compiler.onnx import export_onnx
from yuan.quant import spec
from yuan.quant.errors import QuantError
from yuan.ptq import calibrate_onnx
from yuan.quant.graph_ptq import quantize_graph
from tests.conftest import PTQ_RNG as RNG, RangeObserver, X_SHAPE, add_bn, batches, randn, small_net













@pytest.fixture(scope="module")
def quantized():
    g = small_net()
    calib = batches()
    return g, calib, quantize_graph(g, calib, act_observer=RangeObserver)


def producer(graph, name):
    return graph.producer(name)


def all_values(graph, feed):
    probe = graph.copy()
    probe.outputs = [o for n in graph.nodes for o in n.outputs]
    return run_graph(probe, feed)


def quant_of_input(qdq, node, i):
    """(QuantParams, integer codes constant or None) of input i of `node`, read through its
    dequantize."""
    dq = producer(qdq, node.inputs[i])
    assert dq is not None and dq.op == "dequantize", f"{node.name} input {i} is not dequantized"
    codes = dq.inputs[0]
    if codes in qdq.constants:
        return qdq.values[codes].quant, qdq.constants[codes]
    return qdq.values[codes].quant, None


# ---------------------------------------------------------------- structure

def test_graph_is_qdq_and_valid(quantized):
    g, _, qdq = quantized
    qdq.validate()
    ops = [n.op for n in qdq.nodes]
    assert "batch_norm" not in ops and ops.count("conv2d") == 3 and ops.count("linear") == 1
    assert qdq.inputs == g.inputs and qdq.outputs == g.outputs
    assert [n.op for n in g.nodes].count("batch_norm") == 2  # the source graph is untouched
    for node in qdq.nodes:
        if node.op in ("conv2d", "linear", "add", "concat", "max_pool2d", "global_avg_pool2d",
                       "hardswish", "flatten"):
            for i, name in enumerate(node.inputs):
                if name:
                    quant_of_input(qdq, node, i)  # every input is dequantized
    assert producer(qdq, "y").op == "dequantize"
    first = qdq.consumers("x")
    assert [n.op for n in first] == ["quantize"]


def test_relu_is_fused_into_conv_and_add(quantized):
    _, _, qdq = quantized
    for node in qdq.nodes:
        if node.op == "relu":
            src = producer(qdq, node.inputs[0])
            assert src.op in ("conv2d", "add"), "no quantize/dequantize between layer and relu"
            assert [n.op for n in qdq.consumers(node.outputs[0])] == ["quantize"]


def test_maxpool_and_flatten_reuse_input_params(quantized):
    _, _, qdq = quantized
    for op in ("max_pool2d", "flatten"):
        node = next(n for n in qdq.nodes if n.op == op)
        q_in = producer(qdq, producer(qdq, node.inputs[0]).inputs[0])
        q_out = qdq.consumers(node.outputs[0])[0]
        assert q_in.op == q_out.op == "quantize"
        assert q_in.inputs[1:] == q_out.inputs[1:]  # the same scale / zero point constants


def test_weights_are_symmetric_narrow_int8_per_channel(quantized):
    g, _, qdq = quantized
    for node in (n for n in qdq.nodes if n.op in ("conv2d", "linear")):
        qp, codes = quant_of_input(qdq, node, 1)
        assert codes.dtype == np.int8 and qp.axis == 0 and qp.narrow_range
        assert np.all(qp.zero_point == 0) and codes.min() >= -127
        per_channel_max = np.abs(codes.reshape(codes.shape[0], -1)).max(axis=1)
        np.testing.assert_array_equal(per_channel_max, 127)  # each channel uses the full range
    # The dequantized fc weight is the float one within half a step per channel.
    fc = next(n for n in qdq.nodes if n.op == "linear")
    qp, codes = quant_of_input(qdq, fc, 1)
    w = g.constants["w4"]
    np.testing.assert_allclose(qp.scale, np.abs(w).max(axis=1) / 127, rtol=1e-6)
    assert np.all(np.abs(codes * qp.scale[:, None] - w) <= qp.scale[:, None] / 2 + 1e-7)


def test_bias_is_int32_with_scale_input_times_weight(quantized):
    _, _, qdq = quantized
    for node in (n for n in qdq.nodes if n.op in ("conv2d", "linear")):
        x_qp, _ = quant_of_input(qdq, node, 0)
        w_qp, _ = quant_of_input(qdq, node, 1)
        b_qp, b_codes = quant_of_input(qdq, node, 2)  # conv2 gained a bias from its batch norm
        assert b_codes.dtype == np.int32 and b_qp.bits == 32
        expected_scale = np.float64(x_qp.scale) * w_qp.scale.astype(np.float64)
        np.testing.assert_allclose(b_qp.scale, expected_scale, rtol=1e-7)
    # fc's bias has no batch norm in the way: compare with the float bias directly.
    fc = next(n for n in qdq.nodes if n.op == "linear")
    x_qp, _ = quant_of_input(qdq, fc, 0)
    w_qp, _ = quant_of_input(qdq, fc, 1)
    _, b_codes = quant_of_input(qdq, fc, 2)
    b = quantized[0].constants["b4"].astype(np.float64)
    expected = np.rint(b / (np.float64(x_qp.scale) * w_qp.scale.astype(np.float64)))
    np.testing.assert_array_equal(b_codes, expected)


def test_activation_params_cover_the_calibration_range(quantized):
    """Recomputed from the float graph's own values (run_graph), not the PTQ collector."""
    g, calib, qdq = quantized
    lo = {"x": 0.0, "relu1": 0.0}
    hi = {"x": 0.0, "relu1": 0.0}
    for batch in calib:
        env = all_values(g, {"x": batch})
        env["x"] = batch
        for name in lo:
            lo[name], hi[name] = min(lo[name], env[name].min()), max(hi[name], env[name].max())
    for name in lo:
        q = next(n for n in qdq.nodes if n.op == "quantize" and n.inputs[0] == name)
        qp = qdq.values[q.outputs[0]].quant
        assert qp.dtype == "int8"
        np.testing.assert_allclose(qp.scale, (hi[name] - lo[name]) / 255, rtol=1e-6)
        assert qp.qmin <= qp.zero_point <= qp.qmax


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("data, bound", [("calibration", 0.04), ("fresh", 0.1)])
def test_quantized_output_is_close_to_float(quantized, data, bound):
    """On fresh data a few activations exceed the calibrated ranges and saturate."""
    g, calib, qdq = quantized
    x = calib[0] if data == "calibration" else randn(*X_SHAPE)
    expected, actual = run_graph(g, {"x": x})["y"], run_graph(qdq, {"x": x})["y"]
    error = np.abs(actual - expected).max() / np.abs(expected).max()
    assert error < bound, error
    assert np.corrcoef(actual.ravel(), expected.ravel())[0, 1] > 0.995


def test_export_runs_in_onnxruntime_within_one_step(quantized, tmp_path):
    _, _, qdq = quantized
    model = export_onnx(qdq, tmp_path / "qdq.onnx")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out_scale = float(qdq.constants[producer(qdq, "y").inputs[1]])
    diffs = []
    for _ in range(10):
        x = randn(*X_SHAPE)
        diffs.append(np.abs(session.run(None, {"x": x})[0] - run_graph(qdq, {"x": x})["y"]) / out_scale)
    diffs = np.concatenate(diffs)
    print(f"\nPTQ graph vs ORT: {np.mean(diffs < 1e-3):.4f} of {diffs.size} outputs exact")
    assert diffs.max() <= 1 + 1e-3
    types = [n.op_type for n in model.graph.node]
    assert types.count("Conv") == 3 and "BatchNormalization" not in types


def test_per_tensor_weights_and_uint8_activations():
    g = small_net()
    qdq = quantize_graph(g, batches(2), per_channel=False, act_signed=False, act_observer=RangeObserver)
    for node in (n for n in qdq.nodes if n.op == "conv2d"):
        qp, _ = quant_of_input(qdq, node, 1)
        assert qp.axis is None and qp.scale.size == 1
    assert all(qdq.values[n.outputs[0]].dtype == "uint8" for n in qdq.nodes if n.op == "quantize")
    x = randn(*X_SHAPE)
    expected = run_graph(g, {"x": x})["y"]
    assert np.abs(run_graph(qdq, {"x": x})["y"] - expected).max() < 0.1 * np.abs(expected).max()


def test_bn_that_cannot_fold_stays_float_between_dequantize_and_quantize():
    g = Graph("bn_after_relu")
    x = g.add_input("x", (2, 3, 5, 5))
    r = g.add_node("relu", [x]).outputs[0]
    g.mark_output(add_bn(g, r, 3, "bn"))
    qdq = quantize_graph(g, [randn(2, 3, 5, 5)], act_observer=RangeObserver)
    assert "batch_norm" in [n.op for n in qdq.nodes]
    x = randn(2, 3, 5, 5)
    np.testing.assert_allclose(run_graph(qdq, {"x": x})["bn"], run_graph(g, {"x": x})["bn"], atol=0.05)


def test_calibrate_onnx_equals_quantize_graph_of_the_import(tmp_path):
    g = small_net()
    path = tmp_path / "float.onnx"
    export_onnx(g, path)
    calib = batches(2)
    from_file = calibrate_onnx(path, calib, act_observer=RangeObserver)
    direct = quantize_graph(g, calib, act_observer=RangeObserver)
    x = randn(*X_SHAPE)
    np.testing.assert_array_equal(run_graph(from_file, {"x": x})["y"], run_graph(direct, {"x": x})["y"])


@pytest.mark.parametrize("name", ["minmax", "ema", "histogram", "percentile"])
def test_registry_observers(name):
    g = small_net()
    qdq = quantize_graph(g, batches(3), act_observer=name)
    x = randn(*X_SHAPE)
    expected = run_graph(g, {"x": x})["y"]
    error = np.abs(run_graph(qdq, {"x": x})["y"] - expected).max() / np.abs(expected).max()
    assert error < 0.15, (name, error)


def test_default_observer_is_minmax():
    g = small_net()
    calib = batches(2)
    a, b = quantize_graph(g, calib), quantize_graph(g, calib, act_observer=RangeObserver)
    x = randn(*X_SHAPE)
    np.testing.assert_allclose(run_graph(a, {"x": x})["y"], run_graph(b, {"x": x})["y"], atol=1e-6)


def test_qconfig_factories_replace_the_options():
    """A QConfig-like object: act_observer() / weight_observer() made without arguments."""
    class QConfigLike:
        act_observer = staticmethod(lambda: RangeObserver(bits=8, signed=False))
        weight_observer = staticmethod(lambda: RangeObserver(bits=8, signed=True, symmetric=True,
                                                             narrow_range=True))
    qdq = quantize_graph(small_net(), batches(2), qconfig=QConfigLike())
    assert all(qdq.values[n.outputs[0]].dtype == "uint8" for n in qdq.nodes if n.op == "quantize")
    qp, codes = quant_of_input(qdq, next(n for n in qdq.nodes if n.op == "linear"), 1)
    assert qp.axis is None and np.abs(codes).max() == 127  # the per-tensor weight observer


def test_qconfig_presets_by_name():
    g, calib = small_net(), batches(2)
    per_tensor = quantize_graph(g, calib, qconfig="per_tensor")
    qp, _ = quant_of_input(per_tensor, next(n for n in per_tensor.nodes if n.op == "conv2d"), 1)
    assert qp.axis is None
    a = quantize_graph(g, calib, qconfig="minmax")
    b = quantize_graph(g, calib, act_observer="minmax")
    for name in b.constants:  # same parameters: the preset's weights are per channel min/max
        np.testing.assert_array_equal(a.constants[name], b.constants[name], err_msg=name)


# ---------------------------------------------------------------- errors

def test_empty_calibration_data_is_an_error():
    with pytest.raises(QuantError, match="no calibration data"):
        quantize_graph(small_net(), [], act_observer=RangeObserver)
    with pytest.raises(QuantError, match="no calibration data"):
        quantize_graph(small_net(), iter(()), act_observer=RangeObserver)


def test_nan_batch_is_an_error_naming_the_batch():
    bad = randn(*X_SHAPE)
    bad[0, 1, 2, 3] = np.nan
    with pytest.raises(QuantError, match="batch 1: input 'x' contains NaN"):
        quantize_graph(small_net(), [randn(*X_SHAPE), bad], act_observer=RangeObserver)


def test_nan_inside_the_graph_names_the_tensor():
    g = Graph("log")
    x = g.add_input("x", (2, 3))
    g.add_node("relu", [g.add_node("log", [x], name="log").outputs[0]], outputs=["y"])
    g.mark_output("y")
    with pytest.raises(QuantError, match="tensor 'log' contains NaN"), np.errstate(invalid="ignore"):
        quantize_graph(g, [np.full((2, 3), -1.0, np.float32)], act_observer=RangeObserver)


def test_wrong_batch_shape_and_unknown_observer():
    with pytest.raises(QuantError, match="input 'x' has shape \\[1, 3, 12, 12\\]"):
        quantize_graph(small_net(), [randn(1, 3, 12, 12)], act_observer=RangeObserver)
    with pytest.raises(QuantError, match="act_observer: unknown observer 'median'"):
        quantize_graph(small_net(), batches(1), act_observer="median")


def test_batches_may_be_loader_tuples_or_dicts():
    g = small_net()
    x = randn(*X_SHAPE)
    a = quantize_graph(g, [(x, np.zeros(4, np.int64))], act_observer=RangeObserver)
    b = quantize_graph(g, [{"x": x}], act_observer=RangeObserver)
    assert a.values["x_quantized"].quant == b.values["x_quantized"].quant
    assert isinstance(a.values["x_quantized"].quant, QuantParams)
