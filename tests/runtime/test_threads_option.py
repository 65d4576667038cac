"""--threads on run and bench: the pool is sized before the module loads (each run in a fresh process,
since a started pool cannot grow), and a thread count for an RPC device is refused in one line."""
import subprocess
import sys

import numpy as np
import pytest


def _yuan(*args):
    return subprocess.run([sys.executable, "-m", "yuan", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("threads", [1, 2])
def test_bench_runs_on_the_requested_threads(small_module, threads):
    r = _yuan("bench", small_module, "--repeat", "2", "--warmup", "0", "--threads", str(threads))
    assert r.returncode == 0, r.stderr
    assert f", {threads} thread{'s' if threads > 1 else ''})" in r.stdout


def test_run_with_threads_gives_the_same_outputs(small_module, tmp_path):
    from yuan import runtime
    predictor = runtime.load(small_module)
    spec = predictor.metadata["inputs"][0]
    x = np.random.default_rng(0).standard_normal(spec["shape"]).astype(spec["dtype"])
    np.save(tmp_path / "x.npy", x)
    r = _yuan("run", small_module, "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz"), "--threads", "1")
    assert r.returncode == 0, r.stderr
    expected = predictor.run(x)
    got = np.load(tmp_path / "y.npz")
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)


def test_threads_for_an_rpc_device_is_refused(small_module):
    r = _yuan("bench", small_module, "--threads", "2", "--rpc", "127.0.0.1:9")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "TVM_NUM_THREADS" in r.stderr.strip().splitlines()[-1]


def test_default_threads_counts_physical_cores():
    """One per core (package, core) among the CPUs this process may use: lscpu's view, counted independently."""
    import os
    import shutil
    from yuan.runtime.threads import default_threads
    allowed = os.sched_getaffinity(0)
    count = default_threads()
    assert 1 <= count <= len(allowed)
    if shutil.which("lscpu"):
        rows = subprocess.run(["lscpu", "-p=CPU,CORE,SOCKET"], capture_output=True, text=True).stdout.splitlines()
        cores = {tuple(r.split(",")[1:]) for r in rows if not r.startswith("#") and int(r.split(",")[0]) in allowed}
        assert count == len(cores)


@pytest.mark.parametrize("env_threads", [None, "1"])
def test_bench_without_threads_uses_the_cores_or_the_environment(small_module, env_threads):
    import os
    from yuan.runtime.threads import default_threads
    env = {k: v for k, v in os.environ.items() if k != "TVM_NUM_THREADS"}
    if env_threads:
        env["TVM_NUM_THREADS"] = env_threads
    r = subprocess.run([sys.executable, "-m", "yuan", "bench", small_module, "--repeat", "2", "--warmup", "0"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    expected = int(env_threads) if env_threads else default_threads()
    assert f", {expected} thread{'s' if expected > 1 else ''})" in r.stdout
