"""A built wheel works away from the checkout: it installs only `yuan/`, carries the files read at run
time, and `yuan` compiles float and QDQ ONNX models from an unrelated directory.

The wheel is built from a copy of the sources (so the checkout gains no build/ folder), unpacked into a
folder that goes first on PYTHONPATH, and used from an empty working directory by a fresh interpreter,
as `pip install <checkout>` would leave it (dependencies come from this environment)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from yuan.compiler.onnx import export_onnx
from yuan.frontend.models import get_model
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from tests.conftest import int8_zoo_model, zoo_input

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = ["pyproject.toml", "README.md", "yuan", "frontend", "quant", "compiler", "schedules", "runtime", "configs"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site dir holding the unpacked wheel, wheel file names)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(path, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(work / "dist"), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next((work / "dist").glob("yuan-*.whl"))
    site = work / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(site)
    return site, names


def _run(site, cwd, *args):
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_wheel_installs_one_top_level_package(installed):
    _, names = installed
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"yuan"}
    for data in ("yuan/configs/targets.yaml", "yuan/compiler/backends/cuda_stub.c",
                 "yuan/runtime/arm64/build_arm64_root.sh", "yuan/runtime/cpp/yuan_run.cc", "yuan/runtime/cpp/Makefile",
                 "yuan/quant/SPEC.md", "yuan/schedules/README.md"):
        assert data in names, data
    assert not any(n.startswith(("yuan/tests/", "tests/", "yuan/bench/")) for n in names)


def test_installed_cli_compiles_float_and_qdq_models(installed, tmp_path):
    site, _ = installed
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    where = _run(site, empty, "-c", "import yuan, yuan.compiler; print(yuan.__file__, yuan.compiler.__file__)")
    assert where.returncode == 0, where.stderr
    assert all(p.startswith(str(site)) for p in where.stdout.split()), where.stdout
    assert _run(site, empty, "-m", "yuan", "--help").returncode == 0

    float_graph = trace(get_model("small_cnn", in_channels=3, num_classes=5, width=0.25, input_size=16).eval(),
                        Tensor(zoo_input(16, 0, n=1)))
    int8_graph = trace(int8_zoo_model("small_cnn"), Tensor(zoo_input(16, 0, n=1)))
    models = {"float": tmp_path / "float.onnx", "int8": tmp_path / "int8.onnx"}
    export_onnx(float_graph, str(models["float"]))
    export_onnx(int8_graph, str(models["int8"]))
    targets = ["x86", "x86-avx2"] + (["aarch64"] if shutil.which("aarch64-linux-gnu-g++") else [])
    x = zoo_input(16, 3, n=1)
    np.save(tmp_path / "x.npy", x)
    for kind, model in models.items():
        for target in targets:
            out = tmp_path / "out" / f"{kind}_{target}.so"
            proc = _run(site, empty, "-m", "yuan", "compile", str(model), "-t", target, "-o", str(out))
            assert proc.returncode == 0, f"{kind} {target}: {proc.stdout[-800:]}{proc.stderr[-1500:]}"
            meta = json.loads(out.with_suffix(".json").read_text())
            assert meta["target"] == target and out.exists()
        run = _run(site, empty, "-m", "yuan", "run", str(tmp_path / "out" / f"{kind}_x86-avx2.so"),
                   "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / f"{kind}_y.npy"))
        assert run.returncode == 0, run.stderr[-1500:]
    # the portable AVX2 build computes the integer spec exactly, like every other target
    ref = int8_zoo_model("small_cnn")(Tensor(x)).data
    assert np.array_equal(np.load(tmp_path / "int8_y.npy"), ref)
