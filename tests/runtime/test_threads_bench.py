"""bench/threads.py run: one worker process per thread count, outputs checked against an independent reference
(the NumPy graph interpreter), timings and per-kernel times printed; the workers use TVM's runtime only."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import X_SHAPE, small_net
from yuan.compiler.ir import run_graph

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "bench", "threads.py")
TAG = "small_fp32_b1"


@pytest.fixture
def prepared(small_module, tmp_path):
    """A folder as `threads.py prepare` writes it, for the small net: library, sidecar, input, reference."""
    for ext in (".so", ".json"):
        shutil.copy(small_module[:-3] + ext, tmp_path / f"{TAG}{ext}")
    x = np.random.default_rng(4).standard_normal(X_SHAPE).astype(np.float32)
    np.save(tmp_path / "x_b1.npy", x)
    np.save(tmp_path / f"{TAG}_ref.npy", run_graph(small_net(), {"x": x})["y"])
    manifest = [dict(tag=TAG, model="small", precision="fp32", batch=1, input="x_b1.npy")]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def _run(folder, *extra):
    return subprocess.run([sys.executable, SCRIPT, "run", "--dir", str(folder), "--threads", "1,2", "--rounds", "2",
                           "--number", "1", *extra], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TVM_USE_RUNTIME_LIB="1"))


def test_run_checks_outputs_and_prints_speed_ups(prepared):
    r = _run(prepared, "--kernels")
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"1 thread(s): pool of 1; outputs {TAG} ok" in r.stdout
    assert "2 thread(s): pool of " in r.stdout
    table = [line.split() for line in r.stdout.splitlines() if line.startswith(f"{TAG} ")]
    assert len(table) == 2 and all(row[2] == "1.00" and float(row[1]) > 0 for row in table)   # medians, minimums
    assert "(all ops)" in r.stdout and "scaling worst" in r.stdout


def test_a_wrong_output_fails_the_run(prepared):
    ref = np.load(prepared / f"{TAG}_ref.npy")
    np.save(prepared / f"{TAG}_ref.npy", ref + 1.0)
    r = _run(prepared)
    assert r.returncode == 1
    assert f"{TAG} MISMATCH" in r.stdout


def test_the_worker_imports_nothing_of_the_compiler(prepared):
    """What `run` needs on a machine with TVM's runtime only: no yuan.compiler / schedules / frontend / quant, no
    tvm.relax (the full TVM package imports tvm.tirx and tvm.te itself; the runtime-only one does not)."""
    code = ("import runpy, sys\n"
            f"sys.argv = [{SCRIPT!r}, 'worker', '--dir', {str(prepared)!r}, '--threads', '1', '--kernels']\n"
            "try:\n"
            f"    runpy.run_path({SCRIPT!r}, run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            "bad = [m for m in sys.modules if m.startswith(('yuan.compiler', 'yuan.schedules', 'yuan.frontend', "
            "'yuan.quant', 'tvm.relax'))]\n"
            "print('compiler modules:', bad)\n")
    r = subprocess.run([sys.executable, "-c", code], input='{"cmd": "quit"}\n', capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, TVM_USE_RUNTIME_LIB="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"checks": {"small_fp32_b1": true}' in r.stdout
    assert "compiler modules: []" in r.stdout
