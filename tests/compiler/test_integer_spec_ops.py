"""Integer IR ops (design.md "Integer IR ops"): each kernel against an independent naive loop in
Python integers (tiny shapes), int8/uint8 data movement, and the error classes."""
import numpy as np
import pytest

from yuan import quant
from yuan.compiler.ir import Graph, QuantizationError, QuantParams, ShapeInferenceError, evaluate_op
from yuan.compiler.ir import integer_spec as ispec
from yuan.compiler.onnx import OnnxExportError, export_onnx
from yuan.quant import spec
from yuan.quant.errors import QuantError

RNG = np.random.default_rng(5)


def codes(shape, dtype="int8"):
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max + 1, shape).astype(dtype)


def naive_requant(acc, m, n, zy, lo, hi):
    """SPEC §4 with Python ints: (acc*m + 2^(n-1)) >> n (floor shift), + zy, clamped."""
    return min(max(((int(acc) * int(m) + (1 << (int(n) - 1))) >> int(n)) + zy, lo), hi)


def multipliers(count):
    m, n = ispec.requant_multiplier(RNG.uniform(0.0005, 0.01, count))
    return m.tolist(), n.tolist()


def test_quant_error_is_the_compiler_quantization_error():
    assert QuantError is QuantizationError and quant.QuantError is QuantizationError
    assert spec.quantize is ispec.quantize and spec.requantize is ispec.requantize
    with pytest.raises(QuantError):
        spec.requant_multiplier(0.0)


def test_qconv2d_matches_naive_loops():
    x, w = codes((1, 4, 5, 6)), codes((6, 2, 3, 2))
    w[w == -128] = -127
    b = RNG.integers(-500, 500, 6).astype(np.int32)
    m, n = multipliers(6)
    attrs = dict(strides=[2, 1], pads=[1, 0, 1, 1], dilations=[1, 2], group=2, x_zero_point=3,
                 multiplier=m, shift=n, y_zero_point=-4, out_min=-100, out_max=120, out_dtype="int8")
    (y,) = evaluate_op("qconv2d", [x, w, b], attrs)
    (t, l, bo, r), (sh, sw), (dh, dw) = attrs["pads"], attrs["strides"], attrs["dilations"]
    xp = np.zeros((1, 4, 5 + t + bo, 6 + l + r), np.int64)
    xp[:, :, t:t + 5, l:l + 6] = x.astype(np.int64) - 3
    expected = np.zeros(y.shape, np.int64)
    for o in range(6):
        g = o // 3
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):
                acc = int(b[o])
                for c in range(2):
                    for ki in range(3):
                        for kj in range(2):
                            acc += int(xp[0, g * 2 + c, i * sh + ki * dh, j * sw + kj * dw]) * int(w[o, c, ki, kj])
                expected[0, o, i, j] = naive_requant(acc, m[o], n[o], -4, -100, 120)
    assert y.dtype == np.int8 and np.array_equal(y, expected)


def test_qlinear_matches_naive_loops_uint8_input_per_tensor_multiplier():
    x, w = codes((3, 7), "uint8"), codes((4, 7))
    m, n = multipliers(1)
    attrs = dict(x_zero_point=128, multiplier=m, shift=n, y_zero_point=10, out_min=0, out_max=255,
                 out_dtype="uint8")
    (y,) = evaluate_op("qlinear", [x, w], attrs)
    expected = [[naive_requant(sum((int(x[r, k]) - 128) * int(w[o, k]) for k in range(7)), m[0], n[0], 10, 0, 255)
                 for o in range(4)] for r in range(3)]
    assert y.dtype == np.uint8 and np.array_equal(y, expected)


def test_qadd_matches_naive_loop():
    a, b = codes((2, 3, 4)), codes((2, 3, 4))
    m_a, m_b, n = ispec.add_multipliers(0.05, 0.08, 0.1)
    attrs = dict(a_zero_point=-3, b_zero_point=7, a_multiplier=m_a, b_multiplier=m_b, shift=n,
                 y_zero_point=2, out_min=2, out_max=127, out_dtype="int8")
    (y,) = evaluate_op("qadd", [a, b], attrs)
    expected = np.vectorize(lambda p, q: min(max((((int(p) + 3) * m_a + (int(q) - 7) * m_b + (1 << (n - 1))) >> n)
                                                 + 2, 2), 127))(a, b)
    assert np.array_equal(y, expected)


def test_requantize_per_channel_from_int32():
    x = RNG.integers(-20000, 20000, (2, 3, 2)).astype(np.int32)
    m, n = multipliers(3)
    attrs = dict(x_zero_point=5, multiplier=m, shift=n, y_zero_point=-1, out_min=-128, out_max=127,
                 out_dtype="int8")
    (y,) = evaluate_op("requantize", [x], attrs)
    expected = np.array([[[naive_requant(int(x[i, c, k]) - 5, m[c], n[c], -1, -128, 127) for k in range(2)]
                          for c in range(3)] for i in range(2)])
    assert np.array_equal(y, expected)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_qavg_pool2d_matches_naive_loop_and_integer_spec(count_include_pad):
    x = codes((1, 2, 5, 5))
    qp_x, qp_y = QuantParams(0.04, -2), QuantParams(0.03, 1)
    kernel, strides, pads = [3, 3], [2, 2], [1, 1, 1, 1]
    _, count = ispec.window_sums(np.zeros((1, 1, 5, 5)), 0, kernel, strides, pads)
    divisor = ispec.avg_pool_divisors(count, kernel, count_include_pad)
    m, n = ispec.average_multipliers(0.04, 0.03, divisor)
    attrs = dict(kernel=kernel, strides=strides, pads=pads, x_zero_point=-2, y_zero_point=1,
                 out_min=-128, out_max=127, out_dtype="int8")
    (y,) = evaluate_op("qavg_pool2d", [x, m.astype(np.int32), n.astype(np.int32)], attrs)
    for c in range(2):
        for i in range(3):
            for j in range(3):
                cells = [(r, s) for r in range(2 * i - 1, 2 * i + 2) for s in range(2 * j - 1, 2 * j + 2)
                         if 0 <= r < 5 and 0 <= s < 5]
                acc = sum(int(x[0, c, r, s]) + 2 for r, s in cells)
                assert divisor[i, j] == (9 if count_include_pad else len(cells))
                assert y[0, c, i, j] == naive_requant(acc, m[i, j], n[i, j], 1, -128, 127)
    assert np.array_equal(y, spec.avg_pool2d(x, qp_x, qp_y, 3, 2, 1, count_include_pad))


def test_qglobal_avg_pool2d_and_lut():
    x = codes((2, 3, 3, 4), "uint8")
    m, n = ispec.average_multipliers(0.02, 0.05, 12)
    attrs = dict(x_zero_point=100, multiplier=[int(m)], shift=[int(n)], y_zero_point=3, out_min=0,
                 out_max=255, out_dtype="uint8")
    (y,) = evaluate_op("qglobal_avg_pool2d", [x], attrs)
    assert y.shape == (2, 3, 1, 1)
    for i in range(2):
        for c in range(3):
            acc = sum(int(v) - 100 for v in x[i, c].ravel())
            assert y[i, c, 0, 0] == naive_requant(acc, m, n, 3, 0, 255)
    table = codes((256,))
    q = codes((4, 5))
    (looked_up,) = evaluate_op("lut", [q, table])
    assert np.array_equal(looked_up, [[table[int(v) + 128] for v in row] for row in q])


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_data_movement_ops_accept_integer_tensors(dtype):
    x = codes((2, 6, 4, 4), dtype)
    cases = [("max_pool2d", [x], {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
             ("concat", [x, x], {"axis": 1}), ("reshape", [x], {"shape": [2, -1]}),
             ("flatten", [x], {"axis": 1}), ("split", [x], {"axis": 1, "sizes": [2, 4]}),
             ("channel_shuffle", [x], {"groups": 3}), ("transpose", [x], {"perm": [0, 2, 3, 1]}),
             ("identity", [x], {})]
    for op, arrays, attrs in cases:
        for y in evaluate_op(op, arrays, attrs):
            assert y.dtype == np.dtype(dtype), op
    (pooled,) = evaluate_op("max_pool2d", [x], cases[0][2])
    assert np.array_equal(pooled, spec.max_pool2d(x, 3, 2, 1))


def test_integer_ops_reject_float_inputs_and_are_not_exported(tmp_path):
    g = Graph("g")
    x = g.add_input("x", (1, 2, 4, 4), "float32")
    w = g.add_constant("w", np.ones((2, 2, 1, 1), np.int8))
    attrs = dict(x_zero_point=0, multiplier=[1 << 30], shift=[31], y_zero_point=0, out_min=-128,
                 out_max=127, out_dtype="int8")
    with pytest.raises(ShapeInferenceError, match="int8 or uint8"):
        g.add_node("qconv2d", [x, w], attrs)
    q = g.add_input("q", (1, 2, 4, 4), "int8")
    g.mark_output(g.add_node("qconv2d", [q, w], attrs).outputs[0])
    with pytest.raises(OnnxExportError, match="qconv2d"):
        export_onnx(g, str(tmp_path / "int.onnx"))
