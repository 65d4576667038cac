import numpy as np
import pytest

from yuan.frontend import nn, optim
from yuan.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from yuan.frontend.tensor import Tensor
from yuan.frontend import functional as F


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_round_trip_weights_config_and_optimizer(tmp_path):
    model = _model()
    opt = optim.SGD(list(model.parameters()), lr=0.1, momentum=0.9)
    x = Tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    loss = F.cross_entropy(model(x), np.array([0, 1, 0, 1, 1]))
    loss.backward()
    opt.step()
    cfg = {"model": {"name": "mlp", "args": {"hidden": 4}}, "seed": 3}
    path = str(tmp_path / "ck.npz")
    save_checkpoint(path, model, cfg, opt, epoch=7, input_shape=[1, 3])
    ck = load_checkpoint(path)
    assert ck["config"] == cfg
    assert ck["meta"]["epoch"] == 7 and ck["meta"]["input_shape"] == [1, 3]
    for k, v in model.state_dict().items():
        assert np.array_equal(ck["model_state"][k], v)
    opt2 = optim.SGD(list(_model().parameters()), lr=0.1, momentum=0.9)
    opt2.load_state_dict(ck["optimizer_state"])
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"][0]["lr"] == s2["param_groups"][0]["lr"]


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(str(tmp_path / "nope.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(CheckpointError, match="bad.npz.*not a readable"):
        load_checkpoint(str(bad))
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a Yuan checkpoint"):
        load_checkpoint(str(foreign))
