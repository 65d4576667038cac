"""Bundled configs: compile targets (targets.yaml) and example training configs, read through importlib.resources."""
