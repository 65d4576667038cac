"""A corrupt module cannot kill the host: compile_graph records each artifact's SHA-256 in the sidecar,
yuan.runtime.load checks it (and the sidecar's shape) before the library reaches TVM, and every
problem is one RuntimeLoadError line naming the file."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from yuan import runtime
from yuan.compiler.build import compile_graph, sidecar_path
from yuan.frontend.models import get_model
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from yuan.runtime import RuntimeLoadError


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The tiny MLP compiled once: (path of m.so, its sidecar dict, an input)."""
    manual_seed(0)
    model = get_model("mlp", in_features=4, num_classes=2, hidden=(4,)).eval()
    graph = trace(model, Tensor(np.zeros((1, 4), np.float32)))
    path = compile_graph(graph, "x86", str(tmp_path_factory.mktemp("module") / "m.so"))
    with open(sidecar_path(path)) as f:
        meta = json.load(f)
    return path, meta, np.ones((1, 4), np.float32)


def _copy(compiled, folder, name="m", meta=None, library=None):
    """A copy of the compiled module as folder/name.so, with `meta` (a dict, or raw text/bytes) as its sidecar
    and `library` (bytes) as its library when given. Returns the .so path."""
    path, original_meta, _ = compiled
    so = folder / f"{name}.so"
    so.write_bytes(library if library is not None else open(path, "rb").read())
    meta = original_meta if meta is None else meta
    raw = meta if isinstance(meta, bytes) else (meta if isinstance(meta, str) else json.dumps(meta)).encode()
    (folder / f"{name}.json").write_bytes(raw)
    return str(so)


def _overwrite_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + b"\xff" * 4096 + data[middle + 4096:]


def _one_line_load_error(path, *fragments):
    with pytest.raises(RuntimeLoadError) as info:
        runtime.load(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    for fragment in fragments:
        assert fragment in message, message


def test_the_sidecar_records_the_sha256_of_each_artifact(compiled):
    path, meta, _ = compiled
    assert meta["version"] >= 2
    assert meta["artifacts"] == {"so": "m.so"}
    assert meta["sha256"] == {"so": hashlib.sha256(open(path, "rb").read()).hexdigest()}


def test_a_module_changed_since_it_was_compiled_is_refused(compiled, tmp_path):
    library = open(compiled[0], "rb").read()
    for name, damaged in (("middle", _overwrite_middle(library)), ("appended", library + b"\0")):
        so = _copy(compiled, tmp_path, name, library=damaged)
        _one_line_load_error(so, f"{name}.so", "changed since it was compiled", f"{name}.json")


def test_a_corrupt_module_is_one_error_line_and_the_process_lives(compiled, tmp_path):
    """In a child process: were the check missing, TVM could abort the interpreter (no exit code 1)."""
    so = _copy(compiled, tmp_path, library=_overwrite_middle(open(compiled[0], "rb").read()))
    np.save(tmp_path / "x.npy", compiled[2])
    proc = subprocess.run([sys.executable, "-m", "yuan", "run", so, "-i", str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: RuntimeLoadError:"), proc.stderr
    assert "m.so" in lines[0] and "changed since it was compiled" in lines[0]


def test_an_intact_copy_loads_and_runs(compiled, tmp_path):
    so = _copy(compiled, tmp_path, "copy")
    out = runtime.load(so).run(compiled[2])
    assert list(out.values())[0].shape == (1, 2)


def test_an_old_sidecar_without_hashes_is_accepted_unchecked(compiled, tmp_path):
    """Format version 1 predates the hashes (see yuan.runtime's docstring)."""
    meta = {k: v for k, v in compiled[1].items() if k != "sha256"}
    meta["version"] = 1
    assert runtime.load(_copy(compiled, tmp_path, "old", meta=meta)).run(compiled[2])


def test_a_current_sidecar_without_its_hash_is_refused(compiled, tmp_path):
    meta = {k: v for k, v in compiled[1].items() if k != "sha256"}
    _one_line_load_error(_copy(compiled, tmp_path, meta=meta), "m.json", "records no SHA-256", "recompile")


def _edited(meta, edit):
    meta = json.loads(json.dumps(meta))
    edit(meta)
    return meta


BAD_SIDECARS = {
    "not json": ("{this is not json", "is not valid JSON"),
    "binary": (b"\xff\xfe\x00garbage", "is not valid JSON"),
    "a list": ("[1, 2]", "is not Yuan model metadata"),
    "no inputs": (lambda m: m.pop("inputs"), "has no 'inputs'"),
    "no outputs": (lambda m: m.pop("outputs"), "has no 'outputs'"),
    "inputs not a list": (lambda m: m.update(inputs={"x": 1}), "'inputs' must be a list"),
    "input not an object": (lambda m: m["inputs"].__setitem__(0, "x"), "inputs[0]: must be an object"),
    "name not a string": (lambda m: m["inputs"][0].update(name=3), "inputs[0]: 'name' must be a string"),
    "shape a string": (lambda m: m["inputs"][0].update(shape="1,4"), "'shape' must be a list of non-negative"),
    "negative dim": (lambda m: m["outputs"][0].update(shape=[-1, 2]), "outputs[0]: 'shape' must be a list"),
    "float dim": (lambda m: m["inputs"][0].update(shape=[1.5, 4]), "'shape' must be a list"),
    "dtype a number": (lambda m: m["inputs"][0].update(dtype=5), "'dtype' must be a NumPy dtype name"),
    "unknown dtype": (lambda m: m["outputs"][0].update(dtype="float99"), "'dtype' must be a NumPy dtype name"),
    "no dtype": (lambda m: m["inputs"][0].pop("dtype"), "'dtype' must be a NumPy dtype name"),
    "entry a number": (lambda m: m.update(entry=3), "'entry' must be a function name"),
    "sha256 a string": (lambda m: m.update(sha256="abc"), "'sha256' must map"),
}


@pytest.mark.parametrize("case", sorted(BAD_SIDECARS))
def test_an_invalid_sidecar_is_one_line_naming_it(compiled, tmp_path, case):
    bad, expected = BAD_SIDECARS[case]
    meta = bad if isinstance(bad, (str, bytes)) else _edited(compiled[1], bad)
    _one_line_load_error(_copy(compiled, tmp_path, meta=meta), "m.json", expected)


def test_runtime_imports_only_tvm_numpy_and_the_standard_library():
    import ast
    source = open(runtime.__file__).read()
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            roots.add(node.module.split(".")[0])
    assert roots - set(sys.stdlib_module_names) <= {"tvm", "numpy"}, roots


def test_recompiling_over_a_damaged_module_repairs_it(compiled, tmp_path):
    """Recompiling over a module replaces both files together: the new hash matches the new library."""
    so = _copy(compiled, tmp_path, library=_overwrite_middle(open(compiled[0], "rb").read()))
    manual_seed(0)
    graph = trace(get_model("mlp", in_features=4, num_classes=2, hidden=(4,)).eval(),
                  Tensor(np.zeros((1, 4), np.float32)))
    compile_graph(graph, "x86", so)
    assert runtime.load(so).run(compiled[2])
    assert sorted(os.listdir(tmp_path)) == ["m.json", "m.so"]
