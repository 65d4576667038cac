"""Training configs: YAML files validated against one schema.

Every section and key is listed in SCHEMA with its default, so an unknown key
(a typo such as `learning_rate`) fails at load time with the key's full path
instead of being silently ignored. Numbers with a meaningful range are listed in
RANGES, so an out-of-range value (a zero learning rate, a negative batch size)
fails at load time too, in one line naming the key, the value and what is allowed.
"""
import copy
import math
import os
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Range:
    """The finite numbers a key allows: above `low` and below `high` (None: unbounded), each end
    included unless `open_low` / `open_high`; `integer`: whole numbers only. `items`: the key is
    a list of such numbers, of exactly that many (an int) or of any length ("any")."""
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    integer: bool = False
    items: int | str | None = None

    def describe(self):
        bound = self._bound()
        if self.items is None:
            return f"{'an integer' if self.integer else 'a number'} {bound}"
        count = "" if self.items == "any" else f"{self.items} "
        return f"a list of {count}numbers, each {bound}" if bound else f"a list of {count}finite numbers"

    def _bound(self):
        """'in [0, 1)', '> 0', '<= 1', or '' when unbounded."""
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.open_low else '['}{self.low:g}, "
                    f"{self.high:g}{')' if self.open_high else ']'}")
        if self.low is not None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.open_high else '<='} {self.high:g}"
        return ""

    def contains(self, number):
        return (math.isfinite(number)
                and (not self.integer or float(number).is_integer())
                and (self.low is None or number > self.low or (number == self.low and not self.open_low))
                and (self.high is None or number < self.high or (number == self.high and not self.open_high)))


# Allowed numbers, next to SCHEMA's defaults. Only keys whose default is None may be null.
RANGES = {
    ("seed",): Range(low=0, integer=True),                       # numpy seeds are non-negative
    ("data", "batch_size"): Range(low=1, integer=True),
    ("data", "eval_batch_size"): Range(low=1, integer=True),
    ("data", "normalize", "mean"): Range(items="any"),
    ("data", "normalize", "std"): Range(low=0, open_low=True, items="any"),   # divided by
    ("data", "augment", "random_crop_padding"): Range(low=0, integer=True),
    ("optim", "lr"): Range(low=0, open_low=True),
    ("optim", "momentum"): Range(low=0, high=1, open_high=True),   # 1 never forgets: no convergence
    ("optim", "weight_decay"): Range(low=0),
    ("optim", "betas"): Range(low=0, high=1, open_high=True, items=2),
    ("schedule", "warmup_epochs"): Range(low=0),
    ("schedule", "step_size"): Range(low=0, open_low=True),       # epochs between decays
    ("schedule", "gamma"): Range(low=0, high=1, open_low=True),   # a decay factor
    ("train", "epochs"): Range(low=1, integer=True),
    ("train", "label_smoothing"): Range(low=0, high=1, open_high=True),
    ("train", "max_batches_per_epoch"): Range(low=1, integer=True),
}


def _where(path):
    return ".".join(path)


def _merge(schema, given, path):
    if not isinstance(given, dict):
        raise ConfigError(f"config: '{_where(path) or '<root>'}' must be a mapping, got {type(given).__name__}")
    unknown = [k for k in given if k not in schema]
    if unknown:
        where = _where(path) or "top level"
        raise ConfigError(f"config: unknown key(s) {', '.join(repr(_where(path + [k])) for k in unknown)} "
                          f"in {where}; allowed keys: {', '.join(schema)}")
    merged = {}
    for key, default in schema.items():
        if default is _ANY:
            value = given.get(key) or {}
            if not isinstance(value, dict):
                raise ConfigError(f"config: '{_where(path + [key])}' must be a mapping of arguments")
            merged[key] = dict(value)
        elif isinstance(default, dict):
            merged[key] = _merge(default, given.get(key) or {}, path + [key])
        else:
            merged[key] = _checked(copy.deepcopy(given.get(key, default)), default, path + [key])
        choices = CHOICES.get(tuple(path + [key]))
        if choices and merged[key] not in choices:
            raise ConfigError(f"config: '{_where(path + [key])}' is {merged[key]!r}; choose one of {', '.join(choices)}")
    return merged


def _checked(value, default, path):
    """The value of a leaf key, checked against RANGES where listed, else against its default's type."""
    allowed = RANGES.get(tuple(path))
    if allowed is None:
        return _typed(value, default, path)
    if value is None and default is None:
        return None
    return _in_range(value, allowed, default is None, path)


def _in_range(value, allowed, nullable, path):
    checked = _checked_number(value, allowed) if allowed.items is None else _checked_list(value, allowed)
    if checked is None:
        raise ConfigError(f"config: '{_where(path)}' must be {allowed.describe()}{' (or null)' if nullable else ''}, "
                          f"got {value!r}")
    return checked


def _checked_number(value, allowed):
    """The number `value` stands for if `allowed` contains it, else None."""
    number = _number(value)
    if number is None or not allowed.contains(number):
        return None
    return int(number) if allowed.integer else number


def _checked_list(value, allowed):
    """The list of numbers `value` stands for if `allowed` accepts it, else None."""
    if allowed.items == "any" and _number(value) is not None:
        value = [value]   # one number serves every channel
    if not isinstance(value, (list, tuple)) or not value or allowed.items not in ("any", len(value)):
        return None
    numbers = [_checked_number(v, allowed) for v in value]
    return None if None in numbers else numbers


def _number(value):
    """int / float (also a numeric string: YAML reads `1e-3` as one), else None. Booleans are not numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _typed(value, default, path):
    """Check a value against its default's type. YAML reads `1e-3` as a string, so numeric
    strings are accepted for numbers."""
    where = _where(path)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config: '{where}' must be true or false, got {value!r}")
    elif isinstance(default, (int, float)) and value is not None:
        number = _number(value)
        if number is None:
            raise ConfigError(f"config: '{where}' must be a number, got {value!r}")
        value = int(number) if isinstance(default, int) and float(number).is_integer() else number
    return value


def _check_consistency(config):
    norm = config["data"]["normalize"]
    if (norm["mean"] is None) != (norm["std"] is None):
        raise ConfigError("config: 'data.normalize' needs both mean and std (or neither)")
    if norm["mean"] is not None and _per_channel_counts_differ(len(norm["mean"]), len(norm["std"])):
        raise ConfigError(f"config: 'data.normalize.mean' has {len(norm['mean'])} values but "
                          f"'data.normalize.std' has {len(norm['std'])}; give one per channel (or one for all)")
    optim = config["optim"]
    if optim["name"] == "sgd" and optim["nesterov"] and optim["momentum"] == 0:
        raise ConfigError("config: 'optim.nesterov' is true but 'optim.momentum' is 0; Nesterov needs a "
                          "momentum in (0, 1)")
    return config


def _per_channel_counts_differ(a, b):
    """A single value broadcasts over every channel; two longer lists must match."""
    return a != b and a > 1 and b > 1


def make_config(overrides=None):
    """A full config: the schema defaults with `overrides` (a nested dict) applied and validated.

    A full config passes through unchanged in value, so this also re-validates a config after
    code changed it (e.g. a command-line `--epochs`)."""
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
