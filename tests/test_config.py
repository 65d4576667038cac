import pytest

from frontend.config import ConfigError, load_config, make_config


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
    paths = sorted(glob.glob("configs/*.yaml"))
    assert paths
    for path in paths:
        if path.endswith("targets.yaml"):
            continue
        load_config(path)
