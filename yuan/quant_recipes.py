"""Quantization recipes on top of the training loop: PTQ and QAT fine-tuning of a float model.

`yuan quantize` and bench/quant_accuracy.py use these, so the numbers the bench
prints are what the command produces.
"""
import copy

import numpy as np

from yuan.frontend import optim
from yuan.frontend.data import DataLoader
from .config import ConfigError
from .train import BatchPreprocess, build_datasets, build_optimizer, evaluate, train_one_epoch

from yuan.quant.qconfig import get_qconfig
from yuan.quant.quantize import calibrate, quantize, quantize_qat


def loaders(config):
    """(train loader, test loader, preprocess) exactly as `yuan train` builds them."""
    train_set, test_set = build_datasets(config)
    data = config["data"]
    train_loader = DataLoader(train_set, batch_size=data["batch_size"], shuffle=True, drop_last=True,
                              seed=config["seed"])
    test_loader = DataLoader(test_set, batch_size=data["eval_batch_size"])
    preprocess = BatchPreprocess(config, np.random.default_rng(config["seed"]))
    return train_loader, test_loader, preprocess


def post_training_quantize(model, train_loader, preprocess, qconfig="minmax", num_batches=20):
    """Float model -> calibrated QAT model -> integer model (the model is not modified)."""
    qat = quantize_qat(copy.deepcopy(model).eval(), qconfig=get_qconfig(qconfig))
    batches = (preprocess(x, train=False) for x, _ in train_loader)
    calibrate(qat, batches, num_batches=num_batches)
    return quantize(qat), qat


def qat_finetune(model, config, train_loader, preprocess, qconfig="ema", epochs=3, lr_scale=0.1,
                 calib_batches=10, log=None):
    """Float model -> QAT model fine-tuned for `epochs` at `lr_scale` x the config's LR -> integer model.

    Observers start from a short calibration so the first training steps see sensible scales.
    """
    # Checked before calibration: zero epochs would return a model that was never fine-tuned.
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"QAT fine-tuning: epochs must be an integer >= 1, got {epochs!r}")
    if not lr_scale > 0:
        raise ConfigError(f"QAT fine-tuning: lr_scale must be a number > 0, got {lr_scale!r}")
    qat = quantize_qat(copy.deepcopy(model).eval(), qconfig=get_qconfig(qconfig))
    calibrate(qat, (preprocess(x, train=False) for x, _ in train_loader), num_batches=calib_batches)
    opt = build_optimizer(config, qat, lr_scale=lr_scale)
    limit = config["train"]["max_batches_per_epoch"]
    steps = len(train_loader) if limit is None else min(limit, len(train_loader))
    schedule = optim.CosineAnnealingLR(opt, T_max=max(1, epochs * steps))
    quiet = dict(config, train=dict(config["train"], progress=False))
    for epoch in range(1, epochs + 1):
        loss, acc = train_one_epoch(qat, train_loader, opt, schedule, preprocess, quiet)
        if log is not None:
            log(f"  qat[{qconfig}] epoch {epoch}/{epochs}: train loss {loss:.4f} acc {acc:.2%}")
    return quantize(qat), qat


def accuracy(model, test_loader, preprocess):
    return evaluate(model, test_loader, preprocess)[1]
