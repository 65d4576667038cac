"""The reference interpreter against independent, loop-based references on tiny shapes."""
import itertools
import math

import numpy as np
import pytest

from yuan.compiler.ir import Graph, InterpreterError, run_graph
from yuan.compiler.ir.values import Node

RNG = np.random.default_rng(2)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def run_op(op, inputs, attrs=None, constants=()):
    """Run one op: `inputs` become graph inputs, `constants` graph constants."""
    g = Graph(op)
    names = [g.add_input(f"x{k}", a.shape, a.dtype.name) for k, a in enumerate(inputs)]
    names += [g.add_constant(f"c{k}", a) if a is not None else "" for k, a in enumerate(constants)]
    node = g.add_node(op, names, attrs)
    g.mark_output(*node.outputs)
    out = run_graph(g, {f"x{k}": a for k, a in enumerate(inputs)})
    return [out[o] for o in node.outputs] if len(node.outputs) > 1 else out[node.outputs[0]]


# ---------------------------------------------------------------- naive references

def naive_conv2d(x, w, b, strides, pads, dilations, group):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = strides, pads, dilations
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, oh, ow), np.float64)
    per_group = o // group
    for b_, oc, i, j in itertools.product(range(n), range(o), range(oh), range(ow)):
        g = oc // per_group
        total = 0.0
        for ic, ki, kj in itertools.product(range(cg), range(kh), range(kw)):
            r, s = i * sh - pt + ki * dh, j * sw - pl + kj * dw
            if 0 <= r < h and 0 <= s < wd:
                total += float(x[b_, g * cg + ic, r, s]) * float(w[oc, ic, ki, kj])
        y[b_, oc, i, j] = total + (float(b[oc]) if b is not None else 0.0)
    return y


def pool_out(size, k, s, pb, pe, ceil_mode):
    if not ceil_mode:
        return (size + pb + pe - k) // s + 1
    out = math.ceil((size + pb + pe - k) / s) + 1
    return out - 1 if (out - 1) * s >= size + pb else out


def naive_pool(x, kind, kernel, strides, pads, ceil_mode=0, count_include_pad=1):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, strides, pads
    oh, ow = pool_out(h, kh, sh, pt, pb, ceil_mode), pool_out(w, kw, sw, pl, pr, ceil_mode)
    y = np.zeros((n, c, oh, ow), np.float64)
    for i, j in itertools.product(range(oh), range(ow)):
        h0, w0 = i * sh - pt, j * sw - pl
        h1, w1 = min(h0 + kh, h + pb), min(w0 + kw, w + pr)  # windows end at the padding
        padded_cells = (h1 - h0) * (w1 - w0)
        window = x[:, :, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)].astype(np.float64)
        if kind == "max":
            y[:, :, i, j] = window.max(axis=(2, 3))
        else:
            divisor = padded_cells if count_include_pad else window.shape[2] * window.shape[3]
            y[:, :, i, j] = window.sum(axis=(2, 3)) / divisor
    return y


CONV_CASES = [
    dict(x=(1, 2, 5, 5), w=(3, 2, 3, 3), strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1),
    dict(x=(2, 4, 7, 6), w=(4, 2, 3, 2), strides=[2, 1], pads=[1, 0, 2, 1], dilations=[1, 2], group=2),
    dict(x=(1, 3, 6, 6), w=(3, 1, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1], dilations=[2, 2], group=3),
    dict(x=(1, 2, 4, 4), w=(5, 2, 1, 1), strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv2d_matches_naive_loops(case, with_bias):
    x, w = randn(*case["x"]), randn(*case["w"])
    b = randn(case["w"][0]) if with_bias else None
    attrs = {k: case[k] for k in ("strides", "pads", "dilations", "group")}
    got = run_op("conv2d", [x], attrs, [w, b] if with_bias else [w])
    np.testing.assert_allclose(got, naive_conv2d(x, w, b, **attrs), rtol=1e-5, atol=1e-5)


POOL_CASES = [
    dict(kernel=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=0),
    dict(kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=0),
    dict(kernel=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1], ceil_mode=1),
    dict(kernel=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),  # last window dropped
    dict(kernel=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=1),  # window past the end
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_matches_naive_loops(case):
    x = randn(2, 3, 6, 7)
    np.testing.assert_allclose(run_op("max_pool2d", [x], case), naive_pool(x, "max", **case), rtol=1e-6)


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_avg_pool_matches_naive_loops(case, count_include_pad):
    x = randn(2, 3, 6, 7)
    attrs = dict(case, count_include_pad=count_include_pad)
    np.testing.assert_allclose(run_op("avg_pool2d", [x], attrs),
                               naive_pool(x, "avg", **attrs), rtol=1e-5, atol=1e-6)


def test_adaptive_avg_pool_uses_overlapping_bins():
    x = randn(1, 2, 5, 7)
    got = run_op("adaptive_avg_pool2d", [x], {"output_size": [3, 2]})
    expected = np.zeros((1, 2, 3, 2))
    for i, j in itertools.product(range(3), range(2)):
        r0, r1 = math.floor(i * 5 / 3), math.ceil((i + 1) * 5 / 3)
        c0, c1 = math.floor(j * 7 / 2), math.ceil((j + 1) * 7 / 2)
        expected[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_batch_norm_and_linear_formulas():
    x = randn(2, 3, 2, 2)
    scale, bias, mean, var = randn(3), randn(3), randn(3), np.abs(randn(3)) + 1
    got = run_op("batch_norm", [x], {"epsilon": 0.01}, [scale, bias, mean, var])
    for c in range(3):
        ref = (x[:, c] - mean[c]) / np.sqrt(var[c] + 0.01) * scale[c] + bias[c]
        np.testing.assert_allclose(got[:, c], ref, rtol=1e-5, atol=1e-6)
    a, w, b = randn(4, 3), randn(2, 3), randn(2)
    expected = [[sum(a[i, k] * w[o, k] for k in range(3)) + b[o] for o in range(2)] for i in range(4)]
    np.testing.assert_allclose(run_op("linear", [a], None, [w, b]), expected, rtol=1e-5, atol=1e-6)


def test_quantize_rounds_half_to_even_and_clamps():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.6, 300.0, -300.0], np.float32)
    scale, zp = np.float32(1.0), np.int8(0)
    q = run_op("quantize", [x], None, [scale, zp])
    assert q.dtype == np.int8
    assert q.tolist() == [0, 2, 2, 0, -2, -2, 127, 127, -128]
    q = run_op("quantize", [x], {"narrow_range": 1}, [scale, zp])
    assert q.tolist()[-1] == -127
    q = run_op("quantize", [x], {"bits": 4, "signed": 0}, [np.float32(0.5), np.uint8(3)])
    assert q.dtype == np.uint8
    assert q.tolist() == [4, 6, 8, 2, 0, 0, 15, 15, 0]


def test_per_axis_quantize_and_dequantize():
    x = np.array([[1.0, -1.0, 0.25], [2.0, 0.3, -0.7]], np.float32)
    scale = np.array([0.5, 0.1], np.float32)
    zp = np.array([1, -2], np.int8)
    q = run_op("quantize", [x], {"axis": 0}, [scale, zp])
    assert q.tolist() == [[3, -1, 1], [18, 1, -9]]
    dq = run_op("dequantize", [q], {"axis": 0}, [scale, zp])
    np.testing.assert_allclose(dq, [[1.0, -1.0, 0.0], [2.0, 0.3, -0.7]], rtol=1e-6)
    assert dq.dtype == np.float32


@pytest.mark.parametrize("pads,mode", [([1, 2, 0, 3], "constant"), ([0, -1, 2, -2], "constant"),
                                       ([2, 1, 1, 3], "reflect"), ([1, 0, 2, 2], "edge")])
def test_pad_modes(pads, mode):
    x = randn(4, 6)
    got = run_op("pad", [x], {"pads": pads, "mode": mode, "value": 7.0})
    cropped = x[max(-pads[0], 0): 4 - max(-pads[2], 0), max(-pads[1], 0): 6 - max(-pads[3], 0)]
    widths = [(max(pads[0], 0), max(pads[2], 0)), (max(pads[1], 0), max(pads[3], 0))]
    kwargs = {"constant_values": 7.0} if mode == "constant" else {}
    np.testing.assert_array_equal(got, np.pad(cropped, widths, mode=mode, **kwargs))


def test_tensor_ops_against_python_semantics():
    x = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    got = run_op("slice", [x], {"starts": [2, -1], "ends": [-100, 0], "axes": [0, 2], "steps": [-1, -2]})
    np.testing.assert_array_equal(got, x[2:-100:-1, :, -1:0:-2])
    shuffled = run_op("channel_shuffle", [np.arange(6, dtype=np.float32).reshape(1, 6, 1, 1)], {"groups": 2})
    assert shuffled.reshape(-1).tolist() == [0, 3, 1, 4, 2, 5]
    assert run_op("flatten", [x], {"axis": 2}).shape == (3, 4, 5)
    assert run_op("flatten", [x], {"axis": 0}).shape == (60,)
    assert run_op("reshape", [x], {"shape": [5, -1]}).shape == (5, 12)
    a, b = run_op("split", [x], {"axis": 1, "sizes": [1, 3]})
    np.testing.assert_array_equal(b, x[:, 1:])
    np.testing.assert_array_equal(run_op("reduce_max", [x], {"axes": [0, 2], "keepdims": 0}), x.max(axis=(0, 2)))
    assert run_op("reduce_sum", [x]).shape == (1, 1, 1)  # default: all axes
    ints = np.array([-7, 7, -8], np.int64)
    assert run_op("div", [ints], None, [np.int64(2)]).tolist() == [-3, 3, -4]  # truncates
    assert run_op("clip", [np.array([-100, 0, 100], np.int8)], {"min": -5.5, "max": 6.5}).tolist() == [-5, 0, 6]


def test_softmax_and_activations():
    x = randn(2, 3, 4) * 10
    s = run_op("softmax", [x], {"axis": 1})
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(run_op("log_softmax", [x], {"axis": 1}), np.log(s), rtol=1e-5, atol=1e-5)
    big = np.array([-1000.0, 0.0, 1000.0], np.float32)
    np.testing.assert_allclose(run_op("sigmoid", [big]), [0.0, 0.5, 1.0])
    v = np.array([-4.0, -3.0, -1.0, 0.0, 1.5, 3.0, 5.0], np.float32)
    np.testing.assert_allclose(run_op("hardswish", [v]), v * np.clip(v + 3, 0, 6) / 6, rtol=1e-6)
    np.testing.assert_allclose(run_op("hardsigmoid", [v]), np.clip(v + 3, 0, 6) / 6, rtol=1e-6)


def test_errors_name_node_and_op():
    g = Graph()
    x = g.add_input("x", (2,))
    g.add_node("relu", [x], outputs=["y"])
    g.nodes.append(Node("frobnicate", ["y"], ["z"], {}, "mystery"))
    g.values["z"] = g.values["y"]
    g.outputs = ["z"]
    with pytest.raises(InterpreterError, match="node 'mystery' \\(frobnicate\\).*'frobnicate'"):
        run_graph(g, {"x": np.ones(2, np.float32)})
    g = Graph()
    g.add_input("x", (2, 3))
    with pytest.raises(InterpreterError, match="missing \\['x'\\]"):
        run_graph(g, {})
    with pytest.raises(InterpreterError, match="shape \\[3, 2\\]"):
        run_graph(g, {"x": np.ones((3, 2), np.float32)})


# ---------------------------------------------------------------- speed

def resnet18(num_classes=10):
    g = Graph("resnet18")
    rng = np.random.default_rng(3)
    x = g.add_input("x", (1, 3, 32, 32))

    def const(name, array):
        return g.add_constant(name, np.asarray(array, np.float32))

    def conv_bn(x, cin, cout, k, stride, name, relu=True):
        w = const(f"{name}.w", rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k)))
        y = g.add_node("conv2d", [x, w], {"strides": [stride] * 2, "pads": [k // 2] * 4}, name=name).outputs[0]
        bn = [const(f"{name}.bn.{p}", v) for p, v in
              (("scale", np.ones(cout)), ("bias", np.zeros(cout)), ("mean", np.zeros(cout)), ("var", np.ones(cout)))]
        y = g.add_node("batch_norm", [y] + bn, name=f"{name}.bn").outputs[0]
        return g.add_node("relu", [y]).outputs[0] if relu else y

    y = conv_bn(x, 3, 64, 3, 1, "stem")
    cin = 64
    for stage, cout in enumerate([64, 128, 256, 512]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            name = f"layer{stage + 1}.{block}"
            out = conv_bn(conv_bn(y, cin, cout, 3, stride, f"{name}.conv1"), cout, cout, 3, 1,
                          f"{name}.conv2", relu=False)
            skip = conv_bn(y, cin, cout, 1, stride, f"{name}.down", relu=False) if stride != 1 or cin != cout else y
            y = g.add_node("relu", [g.add_node("add", [out, skip]).outputs[0]]).outputs[0]
            cin = cout
    y = g.add_node("flatten", [g.add_node("global_avg_pool2d", [y]).outputs[0]]).outputs[0]
    fc_w = const("fc.w", rng.standard_normal((num_classes, 512)) * 0.01)
    g.add_node("linear", [y, fc_w, const("fc.b", np.zeros(num_classes))], outputs=["logits"])
    g.mark_output("logits")
    return g


def test_resnet18_runs_end_to_end():
    # Speed is measured in bench/, never asserted in tests.
    g = resnet18()
    logits = run_graph(g, {"x": randn(1, 3, 32, 32)})["logits"]
    assert logits.shape == (1, 10) and np.all(np.isfinite(logits))
