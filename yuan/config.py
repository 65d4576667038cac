"""Training configs: YAML files validated against one schema.

Every section and key is listed in SCHEMA with its default, so an unknown key
(a typo such as `learning_rate`) fails at load time with the key's full path
instead of being silently ignored.
"""
import copy
import os

import yaml


class ConfigError(ValueError):
    pass


_ANY = object()   # marks free-form mappings (kwargs forwarded to a factory)

SCHEMA = {
    "name": "run",
    "seed": 0,
    "model": {"name": "small_cnn", "args": _ANY},
    "data": {
        "name": "mnist5k",
        "args": _ANY,
        "batch_size": 64,
        "eval_batch_size": 500,
        "normalize": {"mean": None, "std": None},
        "augment": {"random_crop_padding": 0, "horizontal_flip": False},
    },
    "optim": {
        "name": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0,
        "betas": [0.9, 0.999],
    },
    "schedule": {"name": "cosine", "warmup_epochs": 0, "step_size": 1, "gamma": 0.1},
    "train": {"epochs": 5, "label_smoothing": 0.0, "max_batches_per_epoch": None, "progress": True},
    "output": {"dir": None},
}

CHOICES = {
    ("optim", "name"): ("sgd", "adam", "adamw"),
    ("schedule", "name"): ("none", "cosine", "step"),
}


def _merge(schema, given, path):
    if not isinstance(given, dict):
        raise ConfigError(f"config: '{'.'.join(path) or '<root>'}' must be a mapping, got {type(given).__name__}")
    unknown = [k for k in given if k not in schema]
    if unknown:
        where = ".".join(path) or "top level"
        raise ConfigError(f"config: unknown key(s) {', '.join(repr('.'.join(path + [k])) for k in unknown)} "
                          f"in {where}; allowed keys: {', '.join(schema)}")
    merged = {}
    for key, default in schema.items():
        if default is _ANY:
            value = given.get(key) or {}
            if not isinstance(value, dict):
                raise ConfigError(f"config: '{'.'.join(path + [key])}' must be a mapping of arguments")
            merged[key] = dict(value)
        elif isinstance(default, dict):
            merged[key] = _merge(default, given.get(key) or {}, path + [key])
        else:
            merged[key] = _typed(copy.deepcopy(given.get(key, default)), default, path + [key])
        choices = CHOICES.get(tuple(path + [key]))
        if choices and merged[key] not in choices:
            raise ConfigError(f"config: '{'.'.join(path + [key])}' is {merged[key]!r}; choose one of {', '.join(choices)}")
    return merged


def _typed(value, default, path):
    """Check a value against its default's type. YAML reads `1e-3` as a string, so numeric
    strings are accepted for numbers."""
    where = ".".join(path)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config: '{where}' must be true or false, got {value!r}")
    elif isinstance(default, (int, float)) and value is not None:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"config: '{where}' must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config: '{where}' must be a number, got {value!r}")
        if isinstance(default, int) and not isinstance(default, bool) and float(value).is_integer():
            value = int(value)
    return value


def _check_consistency(config):
    if config["train"]["epochs"] < 1:
        raise ConfigError(f"config: 'train.epochs' must be at least 1, got {config['train']['epochs']}")
    norm = config["data"]["normalize"]
    if (norm["mean"] is None) != (norm["std"] is None):
        raise ConfigError("config: 'data.normalize' needs both mean and std (or neither)")
    return config


def make_config(overrides=None):
    """A full config: the schema defaults with `overrides` (a nested dict) applied and validated."""
    return _check_consistency(_merge(SCHEMA, overrides or {}, []))


def load_config(path):
    if not os.path.isfile(path):
        raise ConfigError(f"config file '{path}' does not exist")
    with open(path) as f:
        try:
            raw = yaml.safe_load(f) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from None
    try:
        return make_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
