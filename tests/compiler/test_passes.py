"""compiler.passes: batch-norm folding, constant folding, dead-code elimination."""
import numpy as np
import pytest

from yuan.compiler.ir import Graph, run_graph
from yuan.compiler.passes import eliminate_dead_code, fold_batch_norm, fold_constants

RNG = np.random.default_rng(7)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def add_bn(g, x, channels, name):
    """A batch norm with random, clearly non-trivial statistics."""
    params = [g.add_constant(f"{name}_gamma", RNG.uniform(0.5, 2.0, channels).astype(np.float32)),
              g.add_constant(f"{name}_beta", randn(channels)),
              g.add_constant(f"{name}_mean", randn(channels)),
              g.add_constant(f"{name}_var", RNG.uniform(0.2, 3.0, channels).astype(np.float32))]
    return g.add_node("batch_norm", [x] + params, {"epsilon": 1e-3}, name=name).outputs[0]


def conv_bn_relu(in_c=4, out_c=6, group=1, bias=True, stride=1):
    g = Graph("conv_bn_relu")
    x = g.add_input("x", (2, in_c, 7, 7))
    w = g.add_constant("w", randn(out_c, in_c // group, 3, 3))
    b = g.add_constant("b", randn(out_c)) if bias else ""
    c = g.add_node("conv2d", [x, w, b], {"pads": [1, 1, 1, 1], "group": group,
                                         "strides": [stride, stride]}, name="conv").outputs[0]
    y = add_bn(g, c, out_c, "bn")
    g.add_node("relu", [y], outputs=["y"], name="relu")
    g.mark_output("y")
    return g


def assert_same_outputs(original, transformed, feed, rtol=1e-5, atol=1e-5):
    expected, actual = run_graph(original, feed), run_graph(transformed, feed)
    assert list(actual) == list(expected)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=rtol, atol=atol, err_msg=name)


# ---------------------------------------------------------------- batch-norm folding

@pytest.mark.parametrize("in_c, out_c, group, bias, stride", [
    (4, 6, 1, True, 1),      # plain
    (4, 6, 1, False, 2),     # no bias: the folded layer gains one
    (4, 8, 2, True, 1),      # grouped
    (6, 6, 6, True, 1),      # depthwise
    (6, 12, 6, False, 1),    # depthwise with channel multiplier
])
def test_folded_conv_bn_relu_matches_original(in_c, out_c, group, bias, stride):
    g = conv_bn_relu(in_c, out_c, group, bias, stride)
    folded = fold_batch_norm(g)
    folded.validate()
    assert [n.op for n in folded.nodes] == ["conv2d", "relu"]
    assert len(folded.nodes) == len(g.nodes) - 1
    assert [n.op for n in g.nodes] == ["conv2d", "batch_norm", "relu"]  # original untouched
    assert_same_outputs(g, folded, {"x": randn(2, in_c, 7, 7)})
    assert all(a.dtype == np.float32 for a in folded.constants.values())


def test_folded_weights_follow_the_formula():
    """Independent check of SPEC §7 on a 1x1 conv: w*gamma/sqrt(var+eps), beta+(b-mean)*..."""
    g = Graph("one_by_one")
    x = g.add_input("x", (1, 2, 1, 1))
    w = g.add_constant("w", np.array([[[[2.0]], [[1.0]]], [[[-1.0]], [[4.0]]]], np.float32))
    b = g.add_constant("b", np.array([1.0, -2.0], np.float32))
    c = g.add_node("conv2d", [x, w, b]).outputs[0]
    params = [g.add_constant(n, np.array(v, np.float32)) for n, v in
              [("gamma", [2.0, 0.5]), ("beta", [0.25, 1.0]), ("mean", [3.0, -1.0]), ("var", [3.0, 15.0])]]
    g.add_node("batch_norm", [c] + params, {"epsilon": 1.0}, outputs=["y"])
    g.mark_output("y")
    folded = fold_batch_norm(g)
    conv = folded.nodes[0]
    # channel 0: factor 2/sqrt(4) = 1; channel 1: factor 0.5/sqrt(16) = 1/8
    np.testing.assert_array_equal(folded.constants[conv.inputs[1]].reshape(2, 2), [[2.0, 1.0], [-1 / 8, 0.5]])
    np.testing.assert_array_equal(folded.constants[conv.inputs[2]], [0.25 + (1 - 3), 1.0 + (-2 + 1) / 8])
    assert conv.outputs == ["y"]


def test_linear_bn_folds():
    g = Graph("linear_bn")
    x = g.add_input("x", (3, 5))
    h = g.add_node("linear", [x, g.add_constant("w", randn(4, 5)), g.add_constant("b", randn(4))]).outputs[0]
    g.mark_output(add_bn(g, h, 4, "bn"))
    folded = fold_batch_norm(g)
    assert [n.op for n in folded.nodes] == ["linear"]
    assert folded.outputs == g.outputs
    assert_same_outputs(g, folded, {"x": randn(3, 5)})


def test_bn_after_conv_with_two_consumers_stays():
    g = Graph("shared")
    x = g.add_input("x", (1, 3, 5, 5))
    c = g.add_node("conv2d", [x, g.add_constant("w", randn(4, 3, 3, 3))], name="conv").outputs[0]
    y = add_bn(g, c, 4, "bn")
    g.add_node("add", [y, c], outputs=["y"])  # the conv output is read twice
    g.mark_output("y")
    folded = fold_batch_norm(g)
    assert [n.op for n in folded.nodes] == ["conv2d", "batch_norm", "add"]
    assert_same_outputs(g, folded, {"x": randn(1, 3, 5, 5)})


def test_bn_not_after_a_layer_stays_and_shared_weights_are_not_changed():
    g = Graph("others")
    x = g.add_input("x", (1, 3, 5, 5))
    w = g.add_constant("w", randn(3, 3, 1, 1))
    a = g.add_node("conv2d", [x, w], name="conv_a").outputs[0]
    a = add_bn(g, a, 3, "bn_a")                                  # folds into conv_a
    r = g.add_node("relu", [x]).outputs[0]
    r = add_bn(g, r, 3, "bn_r")                                  # after relu: stays
    b = g.add_node("conv2d", [r, w], name="conv_b").outputs[0]   # same weight, no bn
    g.add_node("add", [a, b], outputs=["y"])
    g.mark_output("y")
    folded = fold_batch_norm(g)
    assert [n.op for n in folded.nodes].count("batch_norm") == 1
    conv_b = next(n for n in folded.nodes if n.name == "conv_b")
    np.testing.assert_array_equal(folded.constants[conv_b.inputs[1]], g.constants["w"])
    assert_same_outputs(g, folded, {"x": randn(1, 3, 5, 5)})


def test_bn_writing_a_graph_output_of_the_conv_stays():
    g = conv_bn_relu()
    g.mark_output("conv")  # the pre-bn value is itself an output
    folded = fold_batch_norm(g)
    assert "batch_norm" in [n.op for n in folded.nodes]


# ---------------------------------------------------------------- constant folding / dead code

def test_constant_subgraph_is_folded_and_qdq_weights_are_kept():
    g = Graph("consts")
    x = g.add_input("x", (2, 6))
    c = g.add_constant("c", np.arange(6, dtype=np.float32).reshape(2, 3))
    flat = g.add_node("reshape", [c], {"shape": [6]}, name="reshape").outputs[0]
    doubled = g.add_node("mul", [flat, g.add_constant("two", np.float32(2))], name="double").outputs[0]
    w_q = g.add_constant("w_q", np.array([[1, -2, 3, 4, 5, 6]] * 3, np.int8))
    w = g.add_node("dequantize", [w_q, g.add_constant("w_s", np.float32(0.5))], name="dq").outputs[0]
    h = g.add_node("add", [x, doubled], name="add").outputs[0]
    g.add_node("linear", [h, w], outputs=["y"], name="fc")
    g.mark_output("y")
    folded = fold_constants(g)
    folded.validate()
    assert [n.op for n in folded.nodes] == ["dequantize", "add", "linear"]
    np.testing.assert_array_equal(folded.constants["double"], np.arange(6) * 2.0)
    assert "c" not in folded.constants and "two" not in folded.constants  # now unused
    assert_same_outputs(g, folded, {"x": randn(2, 6)}, rtol=0, atol=0)


def test_constant_node_writing_an_output_is_kept():
    g = Graph("const_out")
    g.add_input("x", (2,))
    g.add_node("neg", [g.add_constant("c", np.ones(2, np.float32))], outputs=["y"])
    g.mark_output("y")
    assert [n.op for n in fold_constants(g).nodes] == ["neg"]


def test_dead_code_is_removed_and_inputs_kept():
    g = Graph("dead")
    x = g.add_input("x", (2, 3))
    g.add_input("unused", (1,))
    g.add_node("relu", [x], outputs=["y"])
    g.add_node("exp", [x], outputs=["dead"])
    g.add_node("linear", ["dead", g.add_constant("w_dead", randn(3, 3))], outputs=["dead2"])
    g.mark_output("y")
    clean = eliminate_dead_code(g)
    assert [n.op for n in clean.nodes] == ["relu"]
    assert clean.constants == {} and clean.inputs == ["x", "unused"]
    assert len(g.nodes) == 3  # original untouched
