"""The training loop behind `yuan train CONFIG.yaml` and its Python twin `fit(config)`."""
import math
import os
import time

import click
import numpy as np

from yuan.frontend import functional as F
from yuan.frontend import optim
from yuan.frontend.autograd import no_grad
from .checkpoint import save_checkpoint
from .config import ConfigError, make_config
from yuan.frontend.data import DataLoader, get_dataset
from yuan.frontend.models import get_model, resolve_model_arguments
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor


def build_model(config):
    return get_model(config["model"]["name"], **config["model"]["args"])


def build_datasets(config):
    data = config["data"]
    return (get_dataset(data["name"], split="train", **data["args"]),
            get_dataset(data["name"], split="test", **data["args"]))


def check_data_fits(config, train_set, test_set):
    """Mismatches between the data and the config / model that training would otherwise hit
    mid-epoch (an index error in the loss) or not at all (zero steps): a ConfigError each."""
    _check_one_full_batch(config, train_set)
    num_classes = resolve_model_arguments(config["model"]["name"], **config["model"]["args"]).get("num_classes")
    for split, dataset in (("train", train_set), ("test", test_set)):
        _check_labels(config, split, dataset, num_classes)
    _check_normalize_channels(config, train_set)


def _check_one_full_batch(config, train_set):
    # Training drops the last incomplete batch, so a set smaller than one batch trains nothing.
    batch, n = config["data"]["batch_size"], len(train_set)
    if n < batch:
        raise ConfigError(f"config: 'data.batch_size' is {batch} but dataset '{config['data']['name']}' has only "
                          f"{n} training samples, so no full batch would train; use at most {n}")


def _check_labels(config, split, dataset, num_classes):
    labels = getattr(dataset, "labels", lambda: None)()
    if labels is None or num_classes is None or not np.issubdtype(np.asarray(labels).dtype, np.integer):
        return   # unknown without decoding every sample, or not class labels (regression targets)
    where = f"dataset '{config['data']['name']}' ({split} split)"
    low, high = int(np.min(labels)), int(np.max(labels))
    if low < 0:
        raise ConfigError(f"config: {where} has a negative label ({low}); class labels must be 0 .. num_classes-1")
    if high >= num_classes:
        raise ConfigError(f"config: {where} has labels up to {high} but model '{config['model']['name']}' has "
                          f"num_classes={num_classes}; set 'model.args.num_classes' to at least {high + 1}")


def _check_normalize_channels(config, train_set):
    mean, std = config["data"]["normalize"]["mean"], config["data"]["normalize"]["std"]
    if mean is None:
        return
    shape = np.shape(train_set[0][0])
    channels = shape[0] if len(shape) == 3 else None
    for key, values in (("mean", mean), ("std", std)):
        if channels is not None and len(values) not in (1, channels):
            raise ConfigError(f"config: 'data.normalize.{key}' has {len(values)} values but dataset "
                              f"'{config['data']['name']}' samples have {channels} channel(s); give one per channel")


def build_optimizer(config, model, lr_scale=1.0):
    """The configured optimizer. Parameters marked `no_weight_decay` (e.g. learned quantizer
    scales, which decay would pull towards zero) go in a group without weight decay."""
    o = config["optim"]
    params = list(model.parameters())
    exempt = [p for p in params if getattr(p, "no_weight_decay", False)]
    params = [{"params": [p for p in params if not getattr(p, "no_weight_decay", False)]}]
    if exempt:
        params.append({"params": exempt, "weight_decay": 0.0})
    lr = o["lr"] * lr_scale
    if o["name"] == "sgd":
        return optim.SGD(params, lr=lr, momentum=o["momentum"], nesterov=o["nesterov"],
                         weight_decay=o["weight_decay"])
    cls = optim.Adam if o["name"] == "adam" else optim.AdamW
    return cls(params, lr=lr, betas=tuple(o["betas"]), weight_decay=o["weight_decay"])


def build_schedule(config, optimizer, steps_per_epoch):
    """Per-step LR schedule (cosine or step decay), optionally after a linear warm-up."""
    s, epochs = config["schedule"], config["train"]["epochs"]
    warmup = int(s["warmup_epochs"] * steps_per_epoch)
    total = max(1, epochs * steps_per_epoch - warmup)
    if s["name"] == "cosine":
        after = optim.CosineAnnealingLR(optimizer, T_max=total)
    elif s["name"] == "step":
        # At least one step: a fraction of an epoch shorter than a step would round to 0.
        step_size = max(1, round(s["step_size"] * steps_per_epoch))
        after = optim.StepLR(optimizer, step_size=step_size, gamma=s["gamma"])
    else:
        after = None
    if warmup:
        return optim.LinearWarmup(optimizer, warmup_steps=warmup, start_factor=0.1, after=after)
    return after


class BatchPreprocess:
    """Normalisation and augmentation applied to whole NumPy batches (fast: no per-sample loop)."""

    def __init__(self, config, rng):
        data = config["data"]
        norm = data["normalize"]
        self.mean = None if norm["mean"] is None else np.asarray(norm["mean"], np.float32).reshape(1, -1, 1, 1)
        self.std = None if norm["std"] is None else np.asarray(norm["std"], np.float32).reshape(1, -1, 1, 1)
        self.pad = int(data["augment"]["random_crop_padding"])
        self.flip = bool(data["augment"]["horizontal_flip"])
        self.rng = rng

    def __call__(self, x, train):
        x = np.asarray(x, np.float32)
        if train and self.pad:
            x = random_shift(x, self.pad, self.rng)
        if train and self.flip:
            flip = self.rng.random(len(x)) < 0.5
            x = np.where(flip[:, None, None, None], x[..., ::-1], x)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return np.ascontiguousarray(x, dtype=np.float32)


def random_shift(x, pad, rng):
    """Random crop after zero padding, done for the whole batch with one gather."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    rows = (dy[:, None] + np.arange(h)[None, :])[:, None, :, None]
    cols = (dx[:, None] + np.arange(w)[None, :])[:, None, None, :]
    return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]


def evaluate(model, loader, preprocess=None):
    """-> (mean loss, accuracy) over the loader, in eval mode."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with no_grad():
        for x, y in loader:
            if preprocess is not None:
                x = preprocess(x, train=False)
            logits = model(Tensor(x))
            total_loss += float(F.cross_entropy(logits, y, reduction="sum").item())
            correct += int((logits.data.argmax(axis=1) == y).sum())
            count += len(y)
    model.train(was_training)
    return total_loss / max(count, 1), correct / max(count, 1)


def train_one_epoch(model, loader, optimizer, schedule, preprocess, config, progress_label=None):
    model.train()
    smoothing = config["train"]["label_smoothing"]
    limit = config["train"]["max_batches_per_epoch"]
    total_loss, correct, count = 0.0, 0, 0
    batches = len(loader) if limit is None else min(limit, len(loader))
    show = config["train"]["progress"] and progress_label is not None
    with click.progressbar(length=batches, label=progress_label, show_pos=True) if show else _NullBar() as bar:
        for i, (x, y) in enumerate(loader):
            if i >= batches:
                break
            logits = model(Tensor(preprocess(x, train=True)))
            loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            value = float(loss.item())
            if not math.isfinite(value):
                raise FloatingPointError(f"training diverged: loss is {value} at batch {i}; lower optim.lr")
            total_loss += value * len(y)
            correct += int((logits.data.argmax(axis=1) == y).sum())
            count += len(y)
            bar.update(1)
    return total_loss / max(count, 1), correct / max(count, 1)


class _NullBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def fit(config, log=click.echo):
    """Train the configured model; save `last.npz` in the output dir; return (model, results dict).

    Everything that can be checked before the first step is: the config (again, since code such
    as a command-line `--epochs` may have changed it since loading), the model's arguments, the
    datasets (empty, labels outside the model's classes)."""
    config = make_config(config)
    manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    model = build_model(config)
    train_set, test_set = build_datasets(config)
    check_data_fits(config, train_set, test_set)
    data = config["data"]
    train_loader = DataLoader(train_set, batch_size=data["batch_size"], shuffle=True, drop_last=True,
                              seed=config["seed"])
    test_loader = DataLoader(test_set, batch_size=data["eval_batch_size"])
    optimizer = build_optimizer(config, model)
    steps = len(train_loader)
    if config["train"]["max_batches_per_epoch"] is not None:
        steps = min(steps, config["train"]["max_batches_per_epoch"])
    schedule = build_schedule(config, optimizer, steps)
    preprocess = BatchPreprocess(config, rng)
    n_params = sum(p.size for p in model.parameters())
    log(f"model {config['model']['name']} ({n_params:,} parameters), data {data['name']}: "
        f"{len(train_set)} train / {len(test_set)} test")

    history, start = [], time.perf_counter()
    epochs = config["train"]["epochs"]
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        train_loss, train_acc = train_one_epoch(model, train_loader, optimizer, schedule, preprocess, config,
                                                progress_label=f"epoch {epoch}/{epochs}")
        test_loss, test_acc = evaluate(model, test_loader, preprocess)
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                        "test_loss": test_loss, "test_acc": test_acc, "seconds": seconds})
        log(f"epoch {epoch}/{epochs}: train loss {train_loss:.4f} acc {train_acc:.2%} | "
            f"test loss {test_loss:.4f} acc {test_acc:.2%} | {seconds:.1f}s")

    results = {"test_acc": history[-1]["test_acc"] if history else None,
               "test_loss": history[-1]["test_loss"] if history else None,
               "epochs": epochs, "seconds": time.perf_counter() - start, "parameters": int(n_params)}
    out_dir = config["output"]["dir"] or os.path.join("runs", config["name"])
    input_shape = [1] + list(np.shape(train_set[0][0]))
    checkpoint = save_checkpoint(os.path.join(out_dir, "last.npz"), model, config, optimizer,
                                 history=history, results=results, input_shape=input_shape)
    results["checkpoint"] = checkpoint
    log(f"results: {config['name']} test accuracy {results['test_acc']:.2%} after {epochs} epochs "
        f"in {results['seconds']:.0f}s; checkpoint {checkpoint}")
    return model, results
