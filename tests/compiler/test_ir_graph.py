"""Graph building, validation, naming, maps, copy and QuantParams."""
import pathlib
import re

import numpy as np
import pytest

from yuan.compiler.ir import OP_SCHEMAS, Graph, GraphError, QuantParams, ShapeInferenceError, run_graph


def _design_ops():
    """Op names in the op tables of docs/design.md ("### IR ops" and "## Integer IR ops")."""
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text()
    ops = set()
    for title in ("### IR ops", "## Integer IR ops"):
        section = text[text.index(title):]
        rows = re.findall(r"^\| ([a-z0-9_ ,/]+) \|", section.split("\n\n|", 1)[1].split("\n\n")[0], flags=re.M)
        for cell in rows:
            ops.update(name for name in re.split(r"[ ,/]+", cell) if name and name != "op")
    return ops


DESIGN_OPS = _design_ops()


def small_graph():
    g = Graph("small")
    x = g.add_input("x", (1, 3, 8, 8))
    w = g.add_constant("conv.weight", np.ones((4, 3, 3, 3), np.float32))
    conv = g.add_node("conv2d", [x, w], {"strides": [2, 2], "pads": [1, 1, 1, 1]}, name="conv")
    relu = g.add_node("relu", conv.outputs, name="relu")
    g.mark_output(relu.outputs[0])
    return g


def test_op_table_has_every_design_op():
    assert DESIGN_OPS and sorted(OP_SCHEMAS) == sorted(DESIGN_OPS)


def test_add_node_infers_shapes_and_fills_default_attrs():
    g = small_graph()
    conv = g.nodes[0]
    assert g.values[conv.outputs[0]].shape == (1, 4, 4, 4)
    assert g.values[conv.outputs[0]].dtype == "float32"
    assert conv.attrs == {"strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1}
    pool = g.add_node("max_pool2d", ["relu"], {"kernel": (2, 2)})
    assert pool.attrs["strides"] == [2, 2]  # pools default their stride to the kernel
    assert g.values[pool.outputs[0]].shape == (1, 4, 2, 2)
    parts = g.add_node("split", [pool.outputs[0]], {"axis": 1, "sizes": [1, 3]})
    assert [g.values[o].shape for o in parts.outputs] == [(1, 1, 2, 2), (1, 3, 2, 2)]
    g.validate()


def test_add_node_errors_name_the_node():
    g = small_graph()
    with pytest.raises(GraphError, match="unknown IR op 'conv3d'"):
        g.add_node("conv3d", ["x"])
    with pytest.raises(GraphError, match=r"node 'fc' \(linear\).*in-features"):
        g.add_node("linear", ["relu", g.add_constant("w", np.ones((2, 5), np.float32))], name="fc")
    with pytest.raises(GraphError, match=r"unknown attribute.*'stride'"):
        g.add_node("conv2d", ["x", "conv.weight"], {"stride": [1, 1]})
    with pytest.raises(GraphError, match="missing required attribute 'axis'"):
        g.add_node("concat", ["x", "x"])
    with pytest.raises(GraphError, match="input 'nope' is not defined"):
        g.add_node("relu", ["nope"])
    with pytest.raises(GraphError, match="expects 1..1 inputs"):
        g.add_node("relu", ["x", "x"])
    with pytest.raises(GraphError, match="already defined"):
        g.add_node("relu", ["x"], outputs=["relu"])
    with pytest.raises(ShapeInferenceError, match="share one dtype"):
        g.add_node("add", ["x", g.add_constant("i", np.int64(1))])
    with pytest.raises(GraphError, match="expected ints"):
        g.add_node("transpose", ["x"], {"perm": "0123"})
    with pytest.raises(GraphError, match="input 1 \\(scale\\) is required"):
        g.add_node("batch_norm", ["x", "", "", "", ""])


def test_names_are_unique_and_constants_are_copied():
    g = Graph()
    a = np.zeros(3, np.float32)
    first = g.add_constant("c", a)
    second = g.add_constant("c", np.ones(3))
    assert (first, second) == ("c", "c_1")
    assert g.constants["c_1"].dtype == np.float64  # dtypes are kept as given
    a[0] = 5.0
    assert g.constants["c"][0] == 0.0
    with pytest.raises(GraphError, match="already defined"):
        g.add_input("c", (3,))
    g.reserve_names(["relu"])
    x = g.add_input("x", (3,))
    assert g.add_node("relu", [x]).outputs == ["relu_1"]
    assert g.unique_name("x") == "x_1"


def test_producer_and_consumer_maps():
    g = small_graph()
    g.add_node("add", ["relu", "relu"], name="double")
    assert g.producer("relu").name == "relu"
    assert g.producer("x") is None
    assert [n.name for n in g.consumers("conv")] == ["relu"]
    assert [n.name for n in g.consumers("relu")] == ["double"]  # listed once though used twice
    assert [n.name for n in g.consumer_map()["conv.weight"]] == ["conv"]


def test_validate_catches_order_undefined_and_stale_shapes():
    g = small_graph()
    g.nodes.reverse()
    with pytest.raises(GraphError, match="topological order"):
        g.validate()
    g = small_graph()
    g.values["relu"].shape = (1, 4, 5, 5)
    with pytest.raises(GraphError, match="node 'relu'.*inference gives"):
        g.validate()
    g = small_graph()
    g.outputs.append("ghost")
    with pytest.raises(GraphError, match="graph output 'ghost'"):
        g.validate()
    g = small_graph()
    g.nodes[1].attrs["bogus"] = 1
    with pytest.raises(GraphError, match="unknown attribute"):
        g.validate()


def test_copy_is_deep():
    g = small_graph()
    c = g.copy()
    c.constants["conv.weight"][...] = 0
    c.nodes[0].attrs["strides"][0] = 1
    c.add_node("sigmoid", ["relu"])
    assert g.constants["conv.weight"].max() == 1.0
    assert g.nodes[0].attrs["strides"] == [2, 2]
    assert len(g.nodes) == 2 and len(c.nodes) == 3
    feed = {"x": np.ones((1, 3, 8, 8), np.float32)}
    assert run_graph(g, feed)["relu"].max() > 0


def test_prune_drops_dead_nodes_and_constants():
    g = small_graph()
    g.add_constant("unused", np.ones(2))
    g.add_node("sigmoid", ["relu"], name="dead")
    g.prune()
    assert [n.name for n in g.nodes] == ["conv", "relu"]
    assert "unused" not in g.constants and "dead" not in g.values
    g.validate()


def test_quant_params_properties_and_checks():
    q = QuantParams(0.5, 3, bits=8, signed=False)
    assert (q.qmin, q.qmax, q.dtype) == (0, 255, "uint8")
    q = QuantParams([0.1, 0.2], [0, 0], axis=0, bits=4, signed=True, narrow_range=True)
    assert (q.qmin, q.qmax, q.dtype, q.per_axis) == (-7, 7, "int8", True)
    assert q.scale.dtype == np.float32
    assert QuantParams.from_dict(q.to_dict()) == q
    assert QuantParams(1.0, 0, bits=16).dtype == "int16"
    with pytest.raises(GraphError, match="one scale"):
        QuantParams([0.1, 0.2], 0)
    with pytest.raises(GraphError, match="zero_point"):
        QuantParams(0.1, 300, bits=8, signed=False)
    with pytest.raises(GraphError, match="positive"):
        QuantParams(0.0, 0)


def test_quantize_output_carries_quant_params():
    g = Graph()
    x = g.add_input("x", (2, 4))
    s = g.add_constant("s", np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    z = g.add_constant("z", np.zeros(4, np.int8))
    q = g.add_node("quantize", [x, s, z], {"axis": 1, "bits": 4}).outputs[0]
    assert g.values[q].dtype == "int8"
    assert g.values[q].quant == QuantParams([0.1, 0.2, 0.3, 0.4], np.zeros(4, np.int8), axis=1, bits=4)
