import numpy as np
import pytest

from yuan.frontend import nn
from yuan.frontend.tensor import Tensor


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.pool = nn.GlobalAvgPool2d()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.block(x))))


def test_registration_and_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["block.conv.weight", "block.bn.weight", "block.bn.bias", "fc.weight", "fc.bias"]
    assert [n for n, _ in net.named_buffers()] == ["block.bn.running_mean", "block.bn.running_var"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.conv", "block.bn", "block.relu",
                                                   "pool", "flatten", "fc"]


def test_train_eval_propagates():
    net = Net().eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_state_dict_round_trip_is_exact():
    a, b = Net(), Net()
    a(Tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)))  # moves BN stats
    b.load_state_dict(a.state_dict())
    for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and np.array_equal(ta, tb)
    x = Tensor(np.ones((1, 3, 5, 5), np.float32))
    assert np.array_equal(a.eval()(x).numpy(), b.eval()(x).numpy())


def test_state_dict_is_a_copy():
    net = Net()
    sd = net.state_dict()
    sd["fc.bias"][...] = 123.0
    assert not np.any(net.fc.bias.numpy() == 123.0)


def test_mismatched_state_dict_lists_every_problem():
    net = Net()
    sd = net.state_dict()
    sd["fc.weight"] = np.zeros((3, 4), np.float32)
    del sd["fc.bias"]
    sd["extra.weight"] = np.zeros(1, np.float32)
    with pytest.raises(nn.StateDictError) as err:
        net.load_state_dict(sd)
    msg = str(err.value)
    assert "fc.weight: checkpoint (3, 4) vs model (2, 4)" in msg
    assert "missing keys: fc.bias" in msg
    assert "unexpected keys: extra.weight" in msg


def test_non_strict_load_ignores_missing_but_not_shapes():
    net = Net()
    sd = {"fc.bias": np.array([1.0, 2.0], np.float32)}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert "fc.weight" in missing and not unexpected
    assert np.array_equal(net.fc.bias.numpy(), [1.0, 2.0])
    with pytest.raises(nn.StateDictError, match="shape mismatch"):
        net.load_state_dict({"fc.bias": np.zeros(5, np.float32)}, strict=False)


def test_wrong_input_shape_names_the_layer():
    from yuan.frontend.errors import ShapeError
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ShapeError, match="conv2d"):
        conv(Tensor(np.zeros((1, 5, 8, 8), np.float32)))
    fc = nn.Linear(4, 2)
    with pytest.raises(ShapeError, match="linear"):
        fc(Tensor(np.zeros((1, 5), np.float32)))


def test_sequential_and_repr():
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU)
    out = seq(Tensor(np.ones((2, 4), np.float32)))
    assert out.shape == (2, 2)
    assert "(0): Linear(in_features=4, out_features=3, bias=True)" in repr(seq)


def test_layers_match_numpy_reference():
    rng = np.random.default_rng(1)
    fc = nn.Linear(4, 3)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    expect = x @ fc.weight.numpy().T + fc.bias.numpy()
    assert np.allclose(fc(Tensor(x)).numpy(), expect, atol=1e-6)
    bn = nn.BatchNorm2d(3).eval()
    bn.running_mean.data[...] = [1, 2, 3]
    bn.running_var.data[...] = [4, 1, 0.25]
    xi = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    ref = (xi - np.array([1, 2, 3]).reshape(1, 3, 1, 1)) / np.sqrt(np.array([4, 1, 0.25]).reshape(1, 3, 1, 1) + 1e-5)
    assert np.allclose(bn(Tensor(xi)).numpy(), ref, atol=1e-5)


def test_add_and_concat_modules():
    a = Tensor(np.ones((1, 2, 2, 2), np.float32))
    b = Tensor(np.full((1, 3, 2, 2), 2.0, np.float32))
    assert nn.Concat(axis=1)(a, b).shape == (1, 5, 2, 2)
    assert np.all(nn.Add()(a, a).numpy() == 2.0)
