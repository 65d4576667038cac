"""Training end to end on real data (scikit-learn's 8x8 digits): must actually learn."""
import numpy as np
import pytest

pytest.importorskip("sklearn")

from yuan.config import make_config  # noqa: E402
from yuan.train import fit, random_shift  # noqa: E402


def test_small_cnn_learns_digits(tmp_path):
    cfg = make_config({
        "name": "digits_test", "seed": 0,
        "model": {"name": "small_cnn", "args": {"in_channels": 1, "num_classes": 10, "input_size": 8}},
        "data": {"name": "digits", "batch_size": 32},
        "optim": {"name": "adam", "lr": 0.003},
        "train": {"epochs": 4, "progress": False},
        "output": {"dir": str(tmp_path)},
    })
    lines = []
    model, results = fit(cfg, log=lines.append)
    # Chance is 10 %; a working conv net + optimizer + loader gets >90 % within a few epochs.
    assert results["test_acc"] > 0.9, lines
    assert (tmp_path / "last.npz").exists()
    assert any(line.startswith("results:") for line in lines)


def test_random_shift_is_a_crop_of_the_padded_image():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 5, 5)).astype(np.float32)
    out = random_shift(x, 2, np.random.default_rng(1))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(6):
        windows = [padded[i, :, dy:dy + 5, dx:dx + 5] for dy in range(5) for dx in range(5)]
        assert any(np.array_equal(out[i], w) for w in windows)


def test_learned_quantizer_scales_get_no_weight_decay():
    from yuan import quant
    from yuan.frontend.models import get_model
    from yuan.train import build_optimizer
    qat = quant.quantize_qat(get_model("small_cnn", input_size=8), qconfig=quant.get_qconfig("lsq"))
    opt = build_optimizer(make_config({"optim": {"weight_decay": 1e-4}}), qat)
    decayed, exempt = opt.param_groups
    scales = [p for n, p in qat.named_parameters() if n.endswith(".scale")]
    assert scales and {id(p) for p in exempt["params"]} == {id(p) for p in scales}
    assert exempt["weight_decay"] == 0.0 and decayed["weight_decay"] == 1e-4
