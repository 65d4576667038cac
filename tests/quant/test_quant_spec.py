"""quant.spec's SPEC §4/§5 integer operators against independent references: naive loops
over pixels with Python integers on tiny shapes, exact rationals (fractions) for rounding."""
import math
from fractions import Fraction

import numpy as np
import pytest

from yuan.compiler.ir import QuantParams
from yuan.frontend import functional as F
from yuan.frontend.tensor import Tensor
from yuan.quant import QuantError, spec


def _qp(scale, zero=0, **kw):
    return QuantParams(np.float32(scale), zero, **kw)


def _round_half_up(fraction):
    return math.floor(fraction + Fraction(1, 2))


def _rq(acc, m, n):
    """requantize by exact rational arithmetic: round_half_up(acc * m / 2^n)."""
    return _round_half_up(Fraction(int(acc) * int(m), 2 ** int(n)))


def _rne(fraction):
    """round half to even of an exact rational."""
    floor = math.floor(fraction)
    rest = fraction - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        return floor + 1
    return floor


def _naive_multiplier(M):
    """(m, n) written out with Python floats/ints per SPEC §4."""
    f, e = math.frexp(M)
    m = _rne(Fraction(f) * 2 ** 31)
    if m == 2 ** 31:
        m, e = 2 ** 30, e + 1
    return m, 31 - e


# ------------------------------------------------------------------ §4 requantization

def test_requant_multiplier_matches_definition_and_error_bound():
    rng = np.random.default_rng(0)
    values = np.concatenate([10.0 ** rng.uniform(-9, 8, 500), [1.0, 0.5, 0.75, 1 - 2.0 ** -40, 2.0 ** -20]])
    m, n = spec.requant_multiplier(values)
    for M, mi, ni in zip(values, m, n):
        assert (int(mi), int(ni)) == _naive_multiplier(float(M))
        assert 2 ** 30 <= mi < 2 ** 31 and 1 <= ni <= 62
        assert abs(Fraction(int(mi), 2 ** int(ni)) - Fraction(float(M))) <= Fraction(float(M)) * Fraction(1, 2 ** 31)


def test_requant_multiplier_carry_and_scalar_shape():
    m, n = spec.requant_multiplier(1 - 2.0 ** -40)     # f * 2^31 rounds up to 2^31: carry into the exponent
    assert (int(m), int(n)) == (2 ** 30, 30) and np.shape(m) == ()


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf, np.nan, 2.0 ** -40, 2.0 ** 35])
def test_requant_multiplier_rejects_out_of_range(bad):
    with pytest.raises(QuantError):
        spec.requant_multiplier(bad)


def test_requantize_rounds_half_up_including_negative_ties():
    m, n = 2 ** 30, 31                       # M = 0.5 exactly: every odd acc is a tie
    acc = np.array([3, -3, 1, -1, 5, -5, 0, 2, -2])
    expected = [2, -1, 1, 0, 3, -2, 0, 1, -1]   # ties go towards +inf
    assert spec.requantize(acc, m, n).tolist() == expected
    assert expected == [_rq(a, m, n) for a in acc]


def test_requantize_matches_exact_rational_rounding():
    rng = np.random.default_rng(1)
    acc = rng.integers(-2 ** 31, 2 ** 31, 400)
    M = 10.0 ** rng.uniform(-6, 0, 400)
    m, n = spec.requant_multiplier(M)
    got = spec.requantize(acc, m, n)
    assert got.tolist() == [_rq(a, mi, ni) for a, mi, ni in zip(acc, m, n)]
    # and the fixed-point result is within half a step (plus the multiplier error) of acc * M
    assert np.all(np.abs(got - acc * M) <= 0.5 + np.abs(acc) * M * 2.0 ** -30)


# ------------------------------------------------------------------ bias, bounds, codes

def test_quantize_bias_rounds_half_even_and_saturates():
    s_x, s_w = np.float32(0.5), np.array([0.5, 0.5, 0.5, 1e-3], np.float32)
    bias = np.array([0.625, 0.875, -0.625, 1e9], np.float32)     # /0.25 = 2.5, 3.5, -2.5, huge
    assert spec.quantize_bias(bias, s_x, s_w).tolist() == [2, 4, -2, 2 ** 31 - 1]
    assert spec.quantize_bias(bias, s_x, s_w).dtype == np.int32


def test_activation_bounds():
    qp = _qp(0.05, -10)
    assert spec.activation_bounds(qp) == (-128, 127)
    assert spec.activation_bounds(qp, "relu") == (-10, 127)
    assert spec.activation_bounds(qp, "relu6") == (-10, -10 + 120)
    assert spec.activation_bounds(_qp(0.01, 100), "relu6") == (100, 127)
    with pytest.raises(QuantError):
        spec.activation_bounds(qp, "gelu")


def test_codes_of_recovers_dequantized_codes_exactly():
    rng = np.random.default_rng(2)
    for scale in (1e-7, 0.0123, 3.7, 1000.0):
        qp = _qp(scale, int(rng.integers(-128, 128)))
        q = rng.integers(-128, 128, 1000)
        assert np.array_equal(spec.codes_of(spec.dequantize(q, qp), qp), q)


def test_choose_qparams_of_all_zero_tensor_has_usable_scale():
    qp = spec.choose_qparams(0.0, 0.0)
    assert float(qp.scale) == spec.MIN_SCALE
    spec.requant_multiplier(np.float64(qp.scale) * 0.01 / 0.1)   # stays in range


# ------------------------------------------------------------------ conv2d / linear

def _naive_conv_acc(q_x, z_x, q_w, bias_q, stride, pads, dilation, groups):
    n, c, h, w = q_x.shape
    o, cg, kh, kw = q_w.shape
    t, l, b, r = pads
    oh = (h + t + b - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + l + r - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    acc = np.zeros((n, o, oh, ow), object)
    for bi in range(n):
        for co in range(o):
            g = co // (o // groups)
            for y in range(oh):
                for x in range(ow):
                    total = 0 if bias_q is None else int(bias_q[co])
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                yy = y * stride[0] - t + i * dilation[0]
                                xx = x * stride[1] - l + j * dilation[1]
                                if 0 <= yy < h and 0 <= xx < w:   # padding is real 0, i.e. X = 0
                                    total += (int(q_x[bi, g * cg + ci, yy, xx]) - z_x) * int(q_w[co, ci, i, j])
                    acc[bi, co, y, x] = total
    return acc


CONV_CASES = [  # (N, C, H, W, O, k, stride, pads (t, l, b, r), dilation, groups)
    (2, 3, 6, 5, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, 4, 7, 7, 6, (3, 2), (2, 1), (0, 1, 2, 0), (1, 1), 2),
    (1, 4, 8, 8, 4, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 4),     # depthwise, strided
    (2, 6, 9, 8, 6, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 6),     # depthwise, dilated
    (1, 5, 4, 4, 3, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),     # pointwise
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_accumulate_matches_naive_loops(case):
    n, c, h, w, o, k, stride, pads, dilation, groups = case
    rng = np.random.default_rng(3)
    q_x = rng.integers(-128, 128, (n, c, h, w)).astype(np.int8)
    q_w = rng.integers(-127, 128, (o, c // groups) + k).astype(np.int8)
    bias_q = rng.integers(-5000, 5000, o).astype(np.int32)
    z_x = int(rng.integers(-128, 128))
    acc = spec.conv2d_accumulate(q_x, z_x, q_w, bias_q, stride, pads, dilation, groups)
    assert acc.dtype == np.int64
    assert np.array_equal(acc, _naive_conv_acc(q_x, z_x, q_w, bias_q, stride, pads, dilation, groups).astype(np.int64))


def test_conv2d_accumulate_is_exact_at_extreme_codes():
    # All codes at their extremes: |acc| = 255 * 127 * 3*3*64, far beyond float32's exact range.
    q_x = np.full((1, 64, 3, 3), -128, np.int8)
    q_w = np.full((2, 64, 3, 3), 127, np.int8)
    acc = spec.conv2d_accumulate(q_x, 127, q_w, np.array([1, -1], np.int32))
    assert acc[0, :, 0, 0].tolist() == [-255 * 127 * 576 + 1, -255 * 127 * 576 - 1]


@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_conv2d_full_pipeline_matches_naive(activation):
    rng = np.random.default_rng(4)
    q_x = rng.integers(-128, 128, (2, 4, 5, 5)).astype(np.int8)
    q_w = rng.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8)
    qp_x, qp_y = _qp(0.02, 5), _qp(0.03, -7)
    qp_w = QuantParams(np.array([0.01, 0.002, 0.05, 0.007], np.float32), np.zeros(4, np.int64), axis=0,
                       narrow_range=True)
    bias = np.array([0.1, -0.37, 2.5, -0.9], np.float32)
    got = spec.conv2d(q_x, qp_x, q_w, qp_w, bias, qp_y, activation, 2, 1, 1, 2)
    # naive: every step written out
    bias_q = [_rne(Fraction(float(b)) / (Fraction(float(qp_x.scale)) * Fraction(float(s))))
              for b, s in zip(bias, qp_w.scale)]
    acc = _naive_conv_acc(q_x, 5, q_w, bias_q, (2, 2), (1, 1, 1, 1), (1, 1), 2)
    lo, hi = {None: (-128, 127), "relu": (-7, 127), "relu6": (-7, min(127, -7 + round(6 / 0.03)))}[activation]
    expected = np.empty(acc.shape, np.int64)
    for idx in np.ndindex(acc.shape):
        c = idx[1]
        M = np.float64(qp_x.scale) * np.float64(qp_w.scale[c]) / np.float64(qp_y.scale)
        expected[idx] = min(max(_rq(acc[idx], *_naive_multiplier(float(M))) - 7, lo), hi)
    assert np.array_equal(got, expected)
    # and it approximates the float conv within a couple of output steps
    ref = F.conv2d(Tensor(spec.dequantize(q_x, qp_x)), Tensor(spec.dequantize(q_w, qp_w)), Tensor(bias),
                   stride=2, padding=1, groups=2).data
    ref = {None: ref, "relu": np.maximum(ref, 0), "relu6": np.clip(ref, 0, 6)}[activation]
    inside = (expected > -128) & (expected < 127)
    assert np.all(np.abs(spec.dequantize(got, qp_y) - ref)[inside] <= 0.51 * 0.03 + 1e-6)


def test_linear_matches_naive():
    rng = np.random.default_rng(5)
    q_x = rng.integers(-128, 128, (3, 7)).astype(np.int8)
    q_w = rng.integers(-127, 128, (4, 7)).astype(np.int8)
    qp_x, qp_y = _qp(0.1, -3), _qp(0.5, 2)
    qp_w = QuantParams(np.full(4, 0.02, np.float32), np.zeros(4, np.int64), axis=0, narrow_range=True)
    bias = np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    got = spec.linear(q_x, qp_x, q_w, qp_w, bias, qp_y, "relu")
    m, n = _naive_multiplier(float(np.float64(np.float32(0.1)) * np.float64(np.float32(0.02)) / np.float64(np.float32(0.5))))
    for i in range(3):
        for c in range(4):
            acc = sum((int(q_x[i, k]) + 3) * int(q_w[c, k]) for k in range(7))
            acc += _rne(Fraction(float(bias[c])) / (Fraction(float(np.float32(0.1))) * Fraction(float(np.float32(0.02)))))
            assert got[i, c] == min(max(_rq(acc, m, n) + 2, 2), 127)


def test_accumulator_overflow_is_an_error():
    q_x = np.full((1, 1), 100, np.int8)
    with pytest.raises(QuantError, match="overflow"):
        spec.linear_accumulate(q_x, 0, np.full((1, 1), 100, np.int8), np.array([2 ** 31 - 1], np.int32))


# ------------------------------------------------------------------ add / concat

def test_add_matches_written_out_formula_and_float_sum():
    rng = np.random.default_rng(6)
    q_a, q_b = rng.integers(-128, 128, 500), rng.integers(-128, 128, 500)
    qp_a, qp_b, qp_y = _qp(0.02, 3), _qp(0.05, -20), _qp(0.06, 1)
    got = spec.add(q_a, qp_a, q_b, qp_b, qp_y)
    M_a, M_b = float(np.float32(0.02)) / float(np.float32(0.06)), float(np.float32(0.05)) / float(np.float32(0.06))
    _, n = _naive_multiplier(max(M_a, M_b))
    m_a, m_b = _rne(Fraction(M_a) * 2 ** n), _rne(Fraction(M_b) * 2 ** n)
    assert spec.add_multipliers(np.float32(0.02), np.float32(0.05), np.float32(0.06)) == (m_a, m_b, n)
    assert 2 ** 30 <= max(m_a, m_b) < 2 ** 31
    expected = [min(max(_round_half_up(Fraction((int(a) - 3) * m_a + (int(b) + 20) * m_b, 2 ** n)) + 1, -128), 127)
                for a, b in zip(q_a, q_b)]
    assert got.tolist() == expected
    real = spec.dequantize(q_a, qp_a) + spec.dequantize(q_b, qp_b)
    inside = (got > -128) & (got < 127)
    assert np.all(np.abs(spec.dequantize(got, qp_y) - real)[inside] <= 0.06 * 0.5 + 1e-5)
    relu = spec.add(q_a, qp_a, q_b, qp_b, qp_y, "relu")
    assert np.array_equal(relu, np.maximum(got, 1))


def test_concat_copies_matching_inputs_and_rescales_others():
    rng = np.random.default_rng(7)
    qp_y = _qp(0.1, 4)
    q_same = rng.integers(-128, 128, (2, 3, 2, 2))
    q_other = rng.integers(-128, 128, (2, 2, 2, 2))
    qp_other = _qp(0.25, -6)
    got = spec.concat([q_same, q_other], [qp_y, qp_other], qp_y, axis=1)
    assert np.array_equal(got[:, :3], q_same)
    m, n = _naive_multiplier(float(np.float32(0.25)) / float(np.float32(0.1)))
    expected = np.vectorize(lambda q: min(max(_rq(int(q) + 6, m, n) + 4, -128), 127))(q_other)
    assert np.array_equal(got[:, 3:], expected)


def test_relu_clamps_on_codes():
    qp = _qp(0.1, -20)
    q = np.arange(-128, 128)
    assert np.array_equal(spec.clamp_activation(q, qp, "relu"), np.maximum(q, -20))
    assert np.array_equal(spec.clamp_activation(q, qp, "relu6"), np.clip(q, -20, 40))


# ------------------------------------------------------------------ pools

def _naive_windows(h, w, k, stride, pads):
    t, l, b, r = pads
    oh, ow = (h + t + b - k[0]) // stride[0] + 1, (w + l + r - k[1]) // stride[1] + 1
    for y in range(oh):
        for x in range(ow):
            cells = [(y * stride[0] - t + i, x * stride[1] - l + j) for i in range(k[0]) for j in range(k[1])]
            yield y, x, [(a, c) for a, c in cells if 0 <= a < h and 0 <= c < w], len(cells)


def test_max_pool_on_codes_ignores_padding():
    rng = np.random.default_rng(8)
    q = rng.integers(-128, -100, (1, 2, 5, 5))     # all negative: a zero pad must never win
    got = spec.max_pool2d(q, 3, 2, 1)
    for y, x, cells, _ in _naive_windows(5, 5, (3, 3), (2, 2), (1, 1, 1, 1)):
        for c in range(2):
            assert got[0, c, y, x] == max(q[0, c, a, b] for a, b in cells)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_naive(count_include_pad):
    rng = np.random.default_rng(9)
    q = rng.integers(-128, 128, (2, 3, 5, 6))
    qp_x, qp_y = _qp(0.1, -5), _qp(0.07, 2)
    got = spec.avg_pool2d(q, qp_x, qp_y, 3, 2, 1, count_include_pad)
    for y, x, cells, full in _naive_windows(5, 6, (3, 3), (2, 2), (1, 1, 1, 1)):
        k = full if count_include_pad else len(cells)
        m, n = _naive_multiplier(float(np.float32(0.1)) / (float(np.float32(0.07)) * k))
        for b in range(2):
            for c in range(3):
                acc = sum(int(q[b, c, i, j]) + 5 for i, j in cells)
                assert got[b, c, y, x] == min(max(_rq(acc, m, n) + 2, -128), 127)


def test_global_and_adaptive_avg_pool_match_naive():
    rng = np.random.default_rng(10)
    q = rng.integers(-128, 128, (2, 3, 5, 7))
    qp_x, qp_y = _qp(0.1, 7), _qp(0.02, -3)
    glob = spec.global_avg_pool2d(q, qp_x, qp_y)
    m, n = _naive_multiplier(float(np.float32(0.1)) / (float(np.float32(0.02)) * 35))
    for b in range(2):
        for c in range(3):
            assert glob[b, c, 0, 0] == min(max(_rq(int((q[b, c] - 7).sum()), m, n) - 3, -128), 127)
    adaptive = spec.adaptive_avg_pool2d(q, qp_x, qp_y, (2, 3))   # uneven bins: 5 -> 2, 7 -> 3
    assert adaptive.shape == (2, 3, 2, 3)
    for oy in range(2):
        r0, r1 = (oy * 5) // 2, -(-((oy + 1) * 5) // 2)
        for ox in range(3):
            c0, c1 = (ox * 7) // 3, -(-((ox + 1) * 7) // 3)
            k = (r1 - r0) * (c1 - c0)
            m, n = _naive_multiplier(float(np.float32(0.1)) / (float(np.float32(0.02)) * k))
            acc = (q[:, :, r0:r1, c0:c1] - 7).sum(axis=(2, 3))
            expected = np.vectorize(lambda a: min(max(_rq(int(a), m, n) - 3, -128), 127))(acc)
            assert np.array_equal(adaptive[:, :, oy, ox], expected)
    assert np.array_equal(spec.adaptive_avg_pool2d(q, qp_x, qp_y, 1), glob)


# ------------------------------------------------------------------ lookup tables, BN folding

@pytest.mark.parametrize("name,f", [
    ("hardswish", lambda x: x * min(max(x + 3, 0), 6) / 6),
    ("sigmoid", lambda x: 1 / (1 + math.exp(-x))),
    ("hardsigmoid", lambda x: min(max(x / 6 + 0.5, 0), 1)),
    ("tanh", math.tanh),
])
def test_lookup_tables_match_direct_evaluation(name, f):
    qp_x, qp_y = _qp(0.05, 10), _qp(1 / 128, -60)
    table = spec.build_lut(name, qp_x, qp_y)
    assert table.shape == (256,)
    for q in range(-128, 128):
        y = f((q - 10) * float(np.float32(0.05))) / float(np.float32(1 / 128))
        expected = min(max(round(y) - 60, -128), 127)   # Python round: half to even
        assert abs(table[q + 128] - expected) <= (0 if abs(y - math.floor(y) - 0.5) > 1e-9 else 1), q
    q = np.array([[-128, 0], [127, 10]])
    assert np.array_equal(spec.apply_lut(q, table, qp_x), table[q + 128])


def test_fold_bn_matches_conv_then_batch_norm():
    rng = np.random.default_rng(11)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    mean, var = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    gamma, beta = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    x = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    ref = F.batch_norm(F.conv2d(x, Tensor(w), Tensor(b), padding=1), Tensor(mean), Tensor(var), Tensor(gamma),
                       Tensor(beta), training=False, eps=1e-5).data
    w_fold, b_fold = spec.fold_bn(w, b, mean, var, gamma, beta, 1e-5)
    assert w_fold.dtype == np.float32 and b_fold.dtype == np.float32
    np.testing.assert_allclose(F.conv2d(x, Tensor(w_fold), Tensor(b_fold), padding=1).data, ref, rtol=1e-5, atol=1e-5)
