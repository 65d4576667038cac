"""Quantization settings the int32 arithmetic cannot hold (quant/SPEC.md §5, "Int32 range") are refused
in one line naming the layer, the bit widths and the fix, never turned into silently wrong outputs;
a worst-case accumulator overflow is a warning; bad bit widths and calibration data fail up front."""
import warnings

import numpy as np
import pytest

from tests.conftest import float_zoo_model, zoo_input
from yuan import quant
from yuan.compiler.ir import Graph, QuantParams, run_graph
from yuan.frontend import nn
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from yuan.quant.errors import QuantError, QuantWarning
from yuan.quant.graph_ptq import quantize_graph
from yuan.quant.int32_range import INT32_MAX, accumulator_bound, check_bias_fits, checked_bias_codes

RNG = np.random.default_rng(5)


def one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message, message
    return message


def cosine(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---------------------------------------------------------------- graph PTQ

def small_weights_big_bias_graph():
    """linear with weights ~1e-3 and biases ~5: at 16 bits s_x * s_w ~ 1e-11, so bias codes ~ 5e11."""
    g = Graph("big_bias")
    x = g.add_input("x", (4, 8))
    w = g.add_constant("w", (1e-3 * RNG.standard_normal((3, 8))).astype(np.float32))
    b = g.add_constant("b", np.array([5.0, -5.0, 0.5], np.float32))
    g.add_node("linear", [x, w, b], outputs=["y"], name="fc")
    g.mark_output("y")
    return g


def linear_batches(count=3, shape=(4, 8)):
    return [RNG.standard_normal(shape).astype(np.float32) for _ in range(count)]


def test_16_bit_graph_ptq_bias_overflow_names_node_bits_and_fix():
    with pytest.raises(QuantError) as err:
        quantize_graph(small_weights_big_bias_graph(), linear_batches(), bits=16)
    message = one_line(err)
    assert message.startswith("node 'fc' (linear): 16-bit activations x 16-bit weights: the int32 bias overflows")
    assert "output channel 0" in message and "8-bit activations and weights" in message


def test_same_graph_at_8_bits_quantizes_accurately(no_warnings):
    g, calib = small_weights_big_bias_graph(), linear_batches()
    qdq = quantize_graph(g, calib, bits=8)
    x = calib[0]
    assert cosine(run_graph(g, {"x": x})["y"], run_graph(qdq, {"x": x})["y"]) > 0.999


def test_per_tensor_is_suggested_only_where_it_fits():
    # One channel has tiny weights: per channel its s_w is tiny, per tensor it gets the big one.
    g = Graph("dead_channel")
    x = g.add_input("x", (4, 8))
    w = np.ones((2, 8), np.float32)
    w[1] = 1e-6
    g.add_node("linear", [x, g.add_constant("w", w), g.add_constant("b", np.array([0.0, 2.0], np.float32))],
               outputs=["y"], name="fc")
    g.mark_output("y")
    with pytest.raises(QuantError, match=r"output channel 1 .*, or per-tensor weight scales \(per_channel=False\)$"):
        quantize_graph(g, linear_batches(), bits=12, weight_bits=12)
    quantize_graph(g, linear_batches(), bits=12, weight_bits=12, per_channel=False)   # the advice works


def test_accumulator_that_may_overflow_is_a_warning_naming_the_node():
    # 1024 inputs at +-127 with 16-bit activations: the worst case is 32768 * 127 * 1024 > 2^31.
    g = Graph("wide")
    x = g.add_input("x", (4, 1024))
    w = np.where(RNG.random((2, 1024)) < 0.5, -1.0, 1.0).astype(np.float32)
    g.add_node("linear", [x, g.add_constant("w", w)], outputs=["y"], name="wide_fc")
    g.mark_output("y")
    with pytest.warns(QuantWarning, match=r"node 'wide_fc' \(linear\): 16-bit activations x 8-bit weights: "
                                          r"the int32 accumulator may overflow"):
        qdq = quantize_graph(g, linear_batches(shape=(4, 1024)), bits=16, weight_bits=8)
    assert qdq.outputs == ["y"]


def test_int8_graph_ptq_of_a_zoo_net_is_untouched(no_warnings):
    model = float_zoo_model("small_cnn")
    graph = trace(model, Tensor(zoo_input(16, 0)))
    quantize_graph(graph, [zoo_input(16, seed) for seed in (1, 2)])


@pytest.mark.parametrize("kwargs, name", [(dict(bits=32), "bits"), (dict(bits=8, weight_bits=1), "weight_bits"),
                                          (dict(bits=8.5), "bits")])
def test_graph_ptq_bit_width_is_checked_before_calibration(kwargs, name):
    with pytest.raises(QuantError) as err:
        quantize_graph(small_weights_big_bias_graph(), [], **kwargs)   # no data: the bit width must fail first
    assert one_line(err).startswith(f"quantize_graph: {name} must be an integer in [2, 16]")


# ---------------------------------------------------------------- QAT / conversion (modules)

def big_bias_model():
    layer = nn.Linear(8, 3)
    layer.weight.data[...] = 1e-3 * np.linspace(-1, 1, 24).reshape(3, 8)
    layer.bias.data[...] = [5.0, -5.0, 0.5]
    return nn.Sequential(layer)


def qat_model(bits):
    return quant.quantize_qat(big_bias_model(), qconfig=quant.make_qconfig(bits=bits, act="minmax"))


BIAS_OVERFLOW = r"^'model\.0' \(Linear\): 16-bit activations x 16-bit weights: the int32 bias overflows"


def test_16_bit_qconfig_fails_at_calibration_naming_the_layer():
    with pytest.raises(QuantError) as err:
        quant.calibrate(qat_model(16), linear_batches(2))
    assert "use at least" in one_line(err)
    assert err.match(BIAS_OVERFLOW)


def test_16_bit_qconfig_fails_at_conversion_and_in_eval():
    qat = qat_model(16)
    for x in linear_batches(2):   # training-mode forwards: observers see data, no calibrate() check
        qat(Tensor(x))
    with pytest.raises(QuantError, match=BIAS_OVERFLOW):
        quant.quantize(qat)
    with pytest.raises(QuantError, match=BIAS_OVERFLOW):
        qat.eval()(Tensor(linear_batches(1)[0]))


def test_8_bit_qconfig_converts_the_same_model_exactly(no_warnings):
    model, calib = big_bias_model(), linear_batches(2)
    qat = quant.calibrate(qat_model(8), calib)
    qmodel = quant.quantize(qat)
    x = Tensor(calib[0])
    np.testing.assert_array_equal(qmodel(x).data, qat.eval()(x).data)
    assert cosine(model(x).data, qmodel(x).data) > 0.999


def test_int8_zoo_model_converts_without_warnings(no_warnings):
    qat = quant.quantize_qat(float_zoo_model("small_cnn"))
    quant.calibrate(qat, [zoo_input(16, seed) for seed in (1, 2)])
    quant.quantize(qat)


@pytest.mark.parametrize("kwargs, name", [(dict(bits=16, act_bits=17), "act_bits"), (dict(bits=1), "bits"),
                                          (dict(bits=True), "bits")])
def test_make_qconfig_bit_width_is_checked_when_given(kwargs, name):
    with pytest.raises(QuantError) as err:
        quant.make_qconfig(**kwargs)
    assert one_line(err).startswith(f"make_qconfig: {name} must be an integer in [2, 16]")


# ---------------------------------------------------------------- calibration data

@pytest.mark.parametrize("data, kwargs, pattern", [
    ([], {}, "calibrate: the data yielded no batches"),
    (iter(()), {}, "calibrate: the data yielded no batches"),
    (5, {}, "calibrate: data must be an iterable of input arrays or \\(x, y\\) batches, got int"),
    (None, {}, "calibrate: data must be an iterable .* got NoneType"),
    ([np.zeros((2, 8), np.float32)], {"num_batches": 0}, "calibrate: num_batches must be an integer >= 1"),
])
def test_unusable_calibration_data_is_one_line(data, kwargs, pattern):
    with pytest.raises(QuantError, match=pattern) as err:
        quant.calibrate(qat_model(8), data, **kwargs)
    one_line(err)


# ---------------------------------------------------------------- the rule itself (quant/int32_range.py)

def test_bias_fits_exactly_up_to_the_int32_limit():
    qp_x = QuantParams(np.float32(1.0), 0, bits=8)
    qp_w = QuantParams(np.ones(1, np.float32), np.zeros(1, np.int64), axis=0, bits=8, narrow_range=True)
    # s_x * s_w = 1, so the code is the bias itself; 2^31 - 128 is the largest float32 below 2^31.
    check_bias_fits(np.array([2.0 ** 31 - 128], np.float32), qp_x, qp_w, 1)
    assert 2 ** 31 - 128 <= INT32_MAX
    check_bias_fits(np.array([-2.0 ** 31], np.float32), qp_x, qp_w, 1)       # int32 min is representable
    with pytest.raises(QuantError, match="reaches 2.15e\\+09 in output channel 0"):
        check_bias_fits(np.array([2.0 ** 31], np.float32), qp_x, qp_w, 1)
    check_bias_fits(None, qp_x, qp_w, 1)


def test_accumulator_bound_is_reached_by_the_extreme_input():
    # Zero point at qmin (a ReLU output): every input code max - z = 255 with positive weights
    # gives exactly the bound.
    qp_x = QuantParams(np.float32(0.1), np.int64(-128), bits=8)
    q_w = np.array([[3, 5, 7], [1, -2, 4]], np.int8)
    bias_q = np.array([10, -20], np.int32)
    bound = accumulator_bound(q_w, bias_q, qp_x)
    assert bound.tolist() == [255 * 15 + 10, 255 * 7 + 20]
    extreme = np.full(3, 255, np.int64)
    assert int(extreme @ q_w[0].astype(np.int64) + bias_q[0]) == bound[0]


def test_checked_bias_codes_are_the_spec_codes():
    qp_x = QuantParams(np.float32(0.02), np.int64(3), bits=8)
    w = RNG.standard_normal((4, 6)).astype(np.float32)
    qp_w = quant.spec.choose_qparams(w.min(axis=1), w.max(axis=1), bits=8, symmetric=True, narrow_range=True,
                                     axis=0)
    bias = RNG.standard_normal(4).astype(np.float32)
    codes = checked_bias_codes(bias, quant.spec.quantize(w, qp_w), qp_x, qp_w, "layer")
    np.testing.assert_array_equal(codes, quant.spec.quantize_bias(bias, qp_x.scale, qp_w.scale))


# ---------------------------------------------------------------- the recipes behind `yuan quantize`

@pytest.mark.parametrize("kwargs, pattern", [(dict(epochs=0), "epochs must be an integer >= 1, got 0"),
                                             (dict(epochs=2.5), "epochs must be an integer >= 1, got 2.5"),
                                             (dict(lr_scale=0.0), "lr_scale must be a number > 0, got 0.0")])
def test_qat_finetune_refuses_settings_that_would_skip_training(kwargs, pattern):
    from yuan.config import ConfigError, make_config
    from yuan.quant_recipes import qat_finetune
    with pytest.raises(ConfigError, match=pattern):
        qat_finetune(big_bias_model(), make_config(), linear_batches(2), lambda x, train: x, **kwargs)


def test_ptq_recipe_refuses_zero_calibration_batches():
    from yuan.quant_recipes import post_training_quantize
    with pytest.raises(QuantError, match=r"calibrate: num_batches must be an integer >= 1 \(or None for all\), got 0"):
        post_training_quantize(big_bias_model(), [(x, None) for x in linear_batches(2)], lambda x, train: x,
                               num_batches=0)
