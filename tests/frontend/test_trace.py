import numpy as np
import pytest

from yuan.compiler.ir import Graph, run_graph
from yuan.frontend import nn
from yuan.frontend import functional as F
from yuan.frontend.errors import TraceError
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.add = nn.Add()
        self.relu = nn.ReLU6()

    def forward(self, x):
        return self.relu(self.add(self.bn(self.conv(x)), x))


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_graph_structure_names_and_constants():
    m = Residual()
    g = trace(m, Tensor(_x(1, 2, 4, 4)))
    assert [n.op for n in g.nodes] == ["conv2d", "batch_norm", "add", "clip"]
    assert g.nodes[0].name == "conv.conv2d"
    assert g.nodes[0].inputs[1:] == ["conv.weight", "conv.bias"]
    assert set(g.constants) >= {"conv.weight", "bn.running_mean", "bn.running_var"}
    assert g.inputs == ["input"] and g.outputs == ["output"]
    assert g.values["output"].shape == (1, 2, 4, 4)
    assert g.nodes[0].attrs["pads"] == [1, 1, 1, 1]
    text = str(g)
    assert "conv2d" in text and "conv.weight" in text


def test_traced_graph_computes_what_eager_computes():
    m = Residual()
    m.bn.running_mean.data[...] = [0.3, -0.2]
    m.bn.running_var.data[...] = [2.0, 0.5]
    x = _x(2, 2, 4, 4)
    g = trace(m, Tensor(x))
    eager = m.eval()(Tensor(x)).numpy()
    np.testing.assert_allclose(run_graph(g, {"input": x})["output"], eager, rtol=1e-5, atol=1e-6)


def test_trace_restores_training_mode_and_constant_scalars():
    class Scale(nn.Module):
        def forward(self, x):
            return x * 0.5 + 1.0
    m = Scale()
    m.train()
    g = trace(m, _x(1, 3))
    assert m.training
    x = _x(1, 3, seed=4)
    np.testing.assert_allclose(run_graph(g, {"input": x})["output"], x * 0.5 + 1.0, rtol=1e-6)


def test_multiple_inputs_and_outputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.cat = nn.Concat(axis=1)

        def forward(self, a, b):
            c = self.cat(a, b)
            return c, F.relu(c)
    g = trace(Two(), (_x(1, 2), _x(1, 3)), input_names=["a", "b"], output_names=["cat", "act"])
    assert g.inputs == ["a", "b"] and g.outputs == ["cat", "act"]
    out = run_graph(g, {"a": np.ones((1, 2), np.float32), "b": -np.ones((1, 3), np.float32)})
    assert np.array_equal(out["act"], [[1, 1, 0, 0, 0]])


def test_identity_model_gets_an_output_node():
    g = trace(nn.Identity(), _x(1, 2))
    assert g.outputs == ["output"] and g.nodes[0].op == "identity"


def test_wrong_name_counts_are_clear_errors():
    with pytest.raises(TraceError, match="2 input names"):
        trace(nn.ReLU(), _x(1, 2), input_names=["a", "b"])


def test_serialised_trace_round_trips(tmp_path):
    m = Residual()
    x = _x(1, 2, 4, 4)
    g = trace(m, x)
    path = str(tmp_path / "g.npz")
    g.save(path)
    g2 = Graph.load(path)
    assert str(g2) == str(g)
    np.testing.assert_array_equal(run_graph(g2, {"input": x})["output"], run_graph(g, {"input": x})["output"])
