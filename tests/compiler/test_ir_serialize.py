"""Graph file round trip, corrupt files, and the printer."""
import json

import numpy as np
import pytest

from yuan.compiler.ir import Graph, GraphError, QuantParams, run_graph


def sample_graph():
    g = Graph("sample")
    x = g.add_input("x", (1, 3, 8, 8))
    w = g.add_constant("conv1.weight", np.arange(216, dtype=np.float32).reshape(8, 3, 3, 3) / 100)
    c = g.add_node("conv2d", [x, w], {"strides": [2, 2], "pads": [1, 1, 1, 1]}, outputs=["y"], name="conv1")
    h = g.add_node("hardsigmoid", c.outputs, {"alpha": 0.2}, name="gate").outputs[0]
    clip = g.add_node("clip", [h], {"min": 0.0, "max": float("inf")}).outputs[0]
    scale = g.add_constant("scale", np.float32(1 / 3))
    zp = g.add_constant("zp", np.int8(-1))
    g.add_node("quantize", [clip, scale, zp], {"bits": 4, "narrow_range": 1}, outputs=["q"])
    g.add_node("dequantize", ["q", scale, zp], outputs=["dq"])
    g.add_node("split", ["dq"], {"axis": 1, "sizes": [3, 5]}, outputs=["a", "b"])
    g.values["a"].quant = QuantParams(np.float32(0.1), np.int8(2))
    g.mark_output("a", "b", "q")
    return g


def test_save_load_round_trip_is_exact(tmp_path):
    g = sample_graph()
    path = tmp_path / "graph.yuan"
    g.save(path)
    assert path.exists() and not (tmp_path / "graph.yuan.npz").exists()
    back = Graph.load(path)
    assert back.name == g.name and back.inputs == g.inputs and back.outputs == g.outputs
    assert back.nodes == g.nodes  # ops, names, inputs, outputs and attrs (inf included)
    assert back.values == g.values  # shapes, dtypes and quant params
    assert back.constants.keys() == g.constants.keys()
    for name, array in g.constants.items():
        assert back.constants[name].dtype == array.dtype
        assert back.constants[name].tobytes() == array.tobytes()
    feed = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    for name, value in run_graph(g, feed).items():
        np.testing.assert_array_equal(run_graph(back, feed)[name], value)
    assert str(back) == str(g)


def test_corrupt_files_raise_graph_error_naming_the_file(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8).tobytes())
    with pytest.raises(GraphError, match="junk.npz"):
        Graph.load(junk)
    with pytest.raises(GraphError, match="absent.npz.*no such file"):
        Graph.load(tmp_path / "absent.npz")
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(2))
    with pytest.raises(GraphError, match="other.npz.*not a Yuan graph"):
        Graph.load(other)
    truncated = tmp_path / "truncated.npz"
    sample_graph().save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(GraphError, match="truncated.npz"):
        Graph.load(truncated)


def test_inconsistent_structure_is_rejected(tmp_path):
    path = tmp_path / "g.npz"
    sample_graph().save(path)
    with np.load(path) as archive:
        entries = {k: archive[k] for k in archive.files}
    structure = json.loads(str(entries["__graph__"]))
    structure["nodes"][0]["inputs"] = ["x", "missing_weight"]
    entries["__graph__"] = np.array(json.dumps(structure))
    np.savez(path, **entries)
    with pytest.raises(GraphError, match="g.npz.*missing_weight"):
        Graph.load(path)


def test_printer_lists_inputs_constants_nodes_and_quant():
    text = str(sample_graph())
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "graph 'sample' {"
    assert "input %x: float32[1,3,8,8]" in lines
    assert "const %conv1.weight: float32[8,3,3,3]" in lines  # summarised, no values
    assert "const %zp: int8[] = -1" in lines  # one-element constants show their value
    assert ("%y: float32[1,8,4,4] = conv2d(%x, %conv1.weight) strides=[2,2] pads=[1,1,1,1]  # conv1"
            in lines)
    assert "%gate: float32[1,8,4,4] = hardsigmoid(%y) alpha=0.2" in lines
    assert ("%q: int8[1,8,4,4] {int8/4bit narrow scale=0.333333 zp=-1} = "
            "quantize(%clip, %scale, %zp) bits=4 narrow_range=1  # quantize") in lines
    assert any(line.startswith("%a: float32[1,3,4,4] {int8 scale=0.1 zp=2}, %b: float32[1,5,4,4]")
               for line in lines)
    assert lines[-4:] == ["output %a", "output %b", "output %q", "}"]
    assert "0.01" not in text  # constant values are not dumped
