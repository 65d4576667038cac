import pytest

from yuan.config import ConfigError, load_config, make_config


def test_defaults_fill_missing_keys():
    cfg = make_config({"optim": {"lr": 0.3}})
    assert cfg["optim"]["lr"] == 0.3
    assert cfg["optim"]["name"] == "sgd"
    assert cfg["train"]["epochs"] == 5


def test_unknown_key_is_named_with_its_path():
    with pytest.raises(ConfigError, match=r"'optim\.learning_rate'.*allowed keys: name, lr"):
        make_config({"optim": {"learning_rate": 0.1}})


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="'modle'"):
        make_config({"modle": {}})


def test_bad_choice_lists_choices():
    with pytest.raises(ConfigError, match="choose one of sgd, adam, adamw"):
        make_config({"optim": {"name": "lbfgs"}})


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml.*'train\.epoch'"):
        load_config(str(typo))


def test_bundled_configs_load():
    import glob

    from yuan.compiler.ir.preprocess import load_spec
    paths = sorted(glob.glob("configs/*.yaml"))
    assert paths
    for path in paths:
        if path.endswith("targets.yaml"):
            continue
        if path.endswith("_preprocess.yaml"):   # preprocessing specs: tests/compiler/test_preprocess_option.py
            load_spec(path)
            continue
        load_config(path)


def test_numbers_written_like_1e_3_are_numbers():
    # PyYAML reads `1e-3` as a string; the config must still treat it as a learning rate.
    assert make_config({"optim": {"lr": "1e-3"}})["optim"]["lr"] == 0.001
    with pytest.raises(ConfigError, match="'optim.lr' must be a number"):
        make_config({"optim": {"lr": "fast"}})
    with pytest.raises(ConfigError, match="'train.progress' must be true or false"):
        make_config({"train": {"progress": "yes"}})


def test_inconsistent_values_are_rejected():
    with pytest.raises(ConfigError, match=r"'train\.epochs' must be an integer >= 1, got 0"):
        make_config({"train": {"epochs": 0}})
    with pytest.raises(ConfigError, match="needs both mean and std"):
        make_config({"data": {"normalize": {"mean": [0.5]}}})


def test_binary_file_is_a_config_error(tmp_path):
    blob = tmp_path / "model.onnx"
    blob.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="model.onnx"):
        load_config(str(blob))
