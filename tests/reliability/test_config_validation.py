"""Bad training configs, model arguments and data are refused before training starts, each with ONE
line that names the key (or argument, or dataset), the value and what is allowed: never a traceback
from deep inside the loop, never a run that silently trains nothing."""
import numpy as np
import pytest
from click.testing import CliRunner

from yuan.config import RANGES, SCHEMA, ConfigError, load_config, make_config
from yuan.frontend.data import ArrayDataset, DatasetError, get_dataset
from yuan.frontend.data.bundled import DATASETS
from yuan.frontend.models import ModelConfigError, get_model
from yuan.train import fit


def one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------- config keys and ranges

# (overrides, key path, value as the message shows it, allowed range as the message states it)
BAD_CONFIGS = [
    ({"train": {"epochs": 0}}, "train.epochs", "0", "an integer >= 1"),
    ({"train": {"epochs": -2}}, "train.epochs", "-2", "an integer >= 1"),
    ({"train": {"epochs": 2.5}}, "train.epochs", "2.5", "an integer >= 1"),
    ({"train": {"epochs": "3x"}}, "train.epochs", "'3x'", "an integer >= 1"),
    ({"train": {"epochs": True}}, "train.epochs", "True", "an integer >= 1"),
    ({"optim": {"lr": 0}}, "optim.lr", "0", "a number > 0"),
    ({"optim": {"lr": -0.01}}, "optim.lr", "-0.01", "a number > 0"),
    ({"optim": {"lr": float("nan")}}, "optim.lr", "nan", "a number > 0"),
    ({"optim": {"lr": "fast"}}, "optim.lr", "'fast'", "a number > 0"),
    ({"optim": {"momentum": 1.0}}, "optim.momentum", "1.0", "a number in [0, 1)"),
    ({"optim": {"momentum": -0.5}}, "optim.momentum", "-0.5", "a number in [0, 1)"),
    ({"optim": {"weight_decay": -1e-4}}, "optim.weight_decay", "-0.0001", "a number >= 0"),
    ({"optim": {"name": "adam", "betas": [0.9]}}, "optim.betas", "[0.9]", "a list of 2 numbers, each in [0, 1)"),
    ({"optim": {"name": "adam", "betas": [0.9, 1.0]}}, "optim.betas", "[0.9, 1.0]",
     "a list of 2 numbers, each in [0, 1)"),
    ({"optim": {"name": "adamw", "betas": [-0.1, 0.99]}}, "optim.betas", "[-0.1, 0.99]",
     "a list of 2 numbers, each in [0, 1)"),
    ({"optim": {"name": "adam", "betas": 0.9}}, "optim.betas", "0.9", "a list of 2 numbers, each in [0, 1)"),
    ({"data": {"batch_size": 0}}, "data.batch_size", "0", "an integer >= 1"),
    ({"data": {"batch_size": -32}}, "data.batch_size", "-32", "an integer >= 1"),
    ({"data": {"eval_batch_size": 0}}, "data.eval_batch_size", "0", "an integer >= 1"),
    ({"data": {"normalize": {"mean": [0.1], "std": [0]}}}, "data.normalize.std", "[0]",
     "a list of numbers, each > 0 (or null)"),
    ({"data": {"normalize": {"mean": [0.1, 0.2], "std": [0.3, -0.3]}}}, "data.normalize.std", "[0.3, -0.3]",
     "a list of numbers, each > 0 (or null)"),
    ({"data": {"augment": {"random_crop_padding": -1}}}, "data.augment.random_crop_padding", "-1",
     "an integer >= 0"),
    ({"schedule": {"name": "step", "step_size": 0}}, "schedule.step_size", "0", "a number > 0"),
    ({"schedule": {"name": "step", "gamma": 0}}, "schedule.gamma", "0", "a number in (0, 1]"),
    ({"schedule": {"name": "step", "gamma": -0.5}}, "schedule.gamma", "-0.5", "a number in (0, 1]"),
    ({"schedule": {"warmup_epochs": -1}}, "schedule.warmup_epochs", "-1", "a number >= 0"),
    ({"train": {"label_smoothing": 1.0}}, "train.label_smoothing", "1.0", "a number in [0, 1)"),
    ({"train": {"label_smoothing": -0.1}}, "train.label_smoothing", "-0.1", "a number in [0, 1)"),
    ({"train": {"max_batches_per_epoch": 0}}, "train.max_batches_per_epoch", "0", "an integer >= 1 (or null)"),
    ({"seed": -1}, "seed", "-1", "an integer >= 0"),
]


@pytest.mark.parametrize("overrides, key, value, allowed", BAD_CONFIGS,
                         ids=[f"{key}={value}" for _, key, value, _ in BAD_CONFIGS])
def test_out_of_range_value_names_key_value_and_range(overrides, key, value, allowed):
    with pytest.raises(ConfigError) as err:
        make_config(overrides)
    assert one_line(err) == f"config: '{key}' must be {allowed}, got {value}"


@pytest.mark.parametrize("overrides, key", [
    ({"data": {"normalize": {"mean": [0.1, 0.2, 0.3], "std": [0.2, 0.2]}}}, "data.normalize.mean"),
    ({"optim": {"name": "sgd", "nesterov": True, "momentum": 0.0}}, "optim.nesterov"),
    ({"data": {"normalize": {"mean": [0.5]}}}, "data.normalize"),
])
def test_inconsistent_keys_are_named(overrides, key):
    with pytest.raises(ConfigError) as err:
        make_config(overrides)
    assert f"'{key}'" in one_line(err)


@pytest.mark.parametrize("overrides, key, expected", [
    ({"train": {"epochs": "3"}}, ("train", "epochs"), 3),            # YAML strings that are numbers
    ({"train": {"epochs": 4.0}}, ("train", "epochs"), 4),
    ({"optim": {"lr": "1e-3"}}, ("optim", "lr"), 0.001),
    ({"optim": {"momentum": 0.0}}, ("optim", "momentum"), 0.0),      # range ends that are allowed
    ({"train": {"label_smoothing": 0.0}}, ("train", "label_smoothing"), 0.0),
    ({"schedule": {"gamma": 1.0}}, ("schedule", "gamma"), 1.0),
    ({"train": {"max_batches_per_epoch": None}}, ("train", "max_batches_per_epoch"), None),
    ({"data": {"normalize": {"mean": 0.5, "std": 0.25}}}, ("data", "normalize", "std"), [0.25]),
])
def test_values_inside_the_ranges_are_kept(overrides, key, expected):
    config = make_config(overrides)
    for part in key:
        config = config[part]
    assert config == expected


def test_every_ranged_key_exists_in_the_schema():
    for path in RANGES:
        node = SCHEMA
        for part in path:
            assert isinstance(node, dict) and part in node, path
            node = node[part]


def test_bundled_configs_satisfy_the_ranges():
    import glob
    paths = [p for p in sorted(glob.glob("configs/*.yaml"))     # training configs (not targets, preprocess specs)
             if not p.endswith(("targets.yaml", "_preprocess.yaml"))]
    assert paths
    for path in paths:
        load_config(path)


def test_yaml_file_error_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: -1e-3\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert one_line(err) == f"{path}: config: 'optim.lr' must be a number > 0, got '-1e-3'"   # as written


def test_yuan_train_prints_one_line_and_no_traceback(tmp_path):
    from yuan.cli import main
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 2.5\n")
    result = CliRunner().invoke(main, ["train", str(path)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "'train.epochs' must be an integer >= 1, got 2.5" in lines[0], result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- model arguments

@pytest.mark.parametrize("name, kwargs, argument, shown", [
    ("small_cnn", dict(width=0), "width", "0"),
    ("small_cnn", dict(width=-0.5), "width", "-0.5"),
    ("small_cnn", dict(num_classes=0), "num_classes", "0"),
    ("small_cnn", dict(in_channels=0), "in_channels", "0"),
    ("small_cnn", dict(num_classes=2.5), "num_classes", "2.5"),
    ("resnet_small", dict(width=0), "width", "0"),
    ("resnet_small", dict(depth=-4), "depth", "-4"),
    ("resnet18", dict(in_channels=-1), "in_channels", "-1"),
    ("mobilenet_v2", dict(width="wide"), "width", "'wide'"),
    ("mobilenet_v2", dict(dropout=1.0), "dropout", "1.0"),
    ("shufflenet_v2", dict(num_classes=-3), "num_classes", "-3"),
    ("shufflenet_v1", dict(width=0), "width", "0"),
    ("mlp", dict(in_features=0), "in_features", "0"),
    ("mlp", dict(hidden=[16, 0]), "hidden[1]", "0"),
])
def test_bad_model_size_is_a_model_config_error_naming_the_argument(name, kwargs, argument, shown):
    with pytest.raises(ModelConfigError) as err:
        get_model(name, **kwargs)
    message = one_line(err)
    assert message.startswith(f"{name}: {argument} must be") and message.endswith(f"got {shown}"), message


# ---------------------------------------------------------------- data against the config and model

@pytest.fixture
def tiny_dataset(monkeypatch):
    """Registers dataset 'tiny' (8x8 grey images, labels given per test) for both splits."""
    def register(labels, samples=None):
        labels = np.asarray(labels, np.int64)
        count = len(labels) if samples is None else samples
        rng = np.random.default_rng(0)
        x = rng.random((count, 1, 8, 8), dtype=np.float32)
        monkeypatch.setitem(DATASETS, "tiny", lambda split, **kw: ArrayDataset(x, labels[:count]))
    return register


def tiny_config(tmp_path, **sections):
    config = {
        "model": {"name": "mlp", "args": {"in_features": 64, "num_classes": 4, "hidden": [8]}},
        "data": {"name": "tiny", "batch_size": 4, "eval_batch_size": 8},
        "train": {"epochs": 1, "max_batches_per_epoch": 1, "progress": False},
        "output": {"dir": str(tmp_path)},
    }
    for section, values in sections.items():
        config[section] = {**config[section], **values}
    return make_config(config)


def test_tiny_valid_config_trains(tmp_path, tiny_dataset):
    tiny_dataset([0, 1, 2, 3] * 4)
    _, results = fit(tiny_config(tmp_path), log=lambda line: None)
    assert results["epochs"] == 1 and (tmp_path / "last.npz").exists()


def test_label_above_num_classes_is_reported_before_training(tmp_path, tiny_dataset):
    tiny_dataset([0, 1, 2, 9] * 4)
    with pytest.raises(ConfigError) as err:
        fit(tiny_config(tmp_path), log=lambda line: None)
    assert one_line(err) == ("config: dataset 'tiny' (train split) has labels up to 9 but model 'mlp' has "
                             "num_classes=4; set 'model.args.num_classes' to at least 10")
    assert not (tmp_path / "last.npz").exists()


def test_num_classes_default_of_the_model_is_used(tmp_path, tiny_dataset):
    tiny_dataset([0, 10, 2, 3] * 4)   # mlp's default num_classes is 10
    with pytest.raises(ConfigError, match="labels up to 10 .* num_classes=10"):
        fit(tiny_config(tmp_path, model={"args": {"in_features": 64}}), log=lambda line: None)


def test_negative_label_is_reported(tmp_path, tiny_dataset):
    tiny_dataset([0, -1, 2, 3] * 4)
    with pytest.raises(ConfigError, match=r"dataset 'tiny' \(train split\) has a negative label \(-1\)"):
        fit(tiny_config(tmp_path), log=lambda line: None)


def test_training_set_smaller_than_a_batch_is_reported(tmp_path, tiny_dataset):
    tiny_dataset([0, 1, 2], samples=3)
    with pytest.raises(ConfigError) as err:
        fit(tiny_config(tmp_path), log=lambda line: None)
    assert one_line(err) == ("config: 'data.batch_size' is 4 but dataset 'tiny' has only 3 training samples, "
                             "so no full batch would train; use at most 3")


def test_normalize_values_must_match_the_channels(tmp_path, tiny_dataset):
    tiny_dataset([0, 1, 2, 3] * 4)
    config = tiny_config(tmp_path, data={"normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}})
    with pytest.raises(ConfigError, match=r"'data.normalize.mean' has 3 values but dataset 'tiny' samples have 1"):
        fit(config, log=lambda line: None)


def test_empty_dataset_is_an_error_naming_it(monkeypatch):
    monkeypatch.setitem(DATASETS, "nothing", lambda split, **kw: ArrayDataset(np.zeros((0, 1, 8, 8)), []))
    with pytest.raises(DatasetError) as err:
        get_dataset("nothing", split="test", seed=3)
    assert one_line(err) == "dataset 'nothing' (split='test', seed=3) has no samples"


def test_a_split_that_ends_up_empty_is_an_error():
    pytest.importorskip("sklearn")
    with pytest.raises(DatasetError, match=r"dataset 'digits' \(split='test', test_fraction=0.001\) has no samples"):
        get_dataset("digits", split="test", test_fraction=0.001)


def test_config_changed_after_loading_is_checked_again(tmp_path, tiny_dataset):
    # `yuan train --epochs 0` sets the key after load_config: fit() validates again.
    tiny_dataset([0, 1, 2, 3] * 4)
    config = tiny_config(tmp_path)
    config["train"]["epochs"] = 0
    with pytest.raises(ConfigError, match=r"'train\.epochs' must be an integer >= 1, got 0"):
        fit(config, log=lambda line: None)
