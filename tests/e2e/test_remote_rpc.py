"""Remote devices through TVM's own RPC (runtime/remote.py, `yuan run/bench --rpc`): a real
`python -m tvm.exec.rpc_server` on 127.0.0.1 (a free port) runs the uploaded module; its outputs
must equal the local run and the quantized model's own (NumPy) output bit for bit. Unreachable or
malformed addresses and a library the remote cannot load are one-line errors. `yuan profile --rpc`
times every op the VM calls, on the device."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from yuan import runtime
from yuan.cli import main
from yuan.compiler.build import compile_graph
from yuan.runtime import remote
from yuan.runtime.profiler import _record_calls



def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """'127.0.0.1:PORT' of an RPC server started for these tests (its own process group, ended after)."""
    port = _free_port()
    log = open(tmp_path_factory.mktemp("rpc") / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1",
                             "--port", str(port), "--port-end", str(port + 1)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:   # wait until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the RPC server did not start: {open(log.name).read()[-500:]}")
                time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)   # the server and the session workers it forked
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def model(small_cnn_int8):
    lib = compile_graph(small_cnn_int8["graph"], "x86", str(small_cnn_int8["dir"] / "small_cnn_rpc.so"))
    return dict(small_cnn_int8, lib=lib)


def _one_line_error(result, pattern):
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert re.search(pattern, lines[0]), lines[0]


def test_run_over_rpc_equals_local_run_and_reference(model, server, tmp_path):
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(main, ["run", model["lib"], "-i", str(model["x_path"]),
                                       "--rpc", server, "-o", str(out)])
    assert result.exit_code == 0, result.output
    remote_out = np.load(out)["output"]
    np.testing.assert_array_equal(remote_out, model["expected"])
    np.testing.assert_array_equal(remote_out, runtime.load(model["lib"]).run(model["x"])["output"])


def test_remote_predictor_surface(model, server):
    with remote.load(model["lib"], server) as p:   # the server serves the next test after this ends
        assert p.input_names == ["input"] and p.output_names == ["output"]
        assert p.device.dlpack_device_type() > 128          # an RPC session's device, not the local CPU
        np.testing.assert_array_equal(p.run({"input": model["x"]})["output"], model["expected"])
        stats = p.benchmark(repeat=4, warmup=1)
        assert stats["repeat"] == 4 and 0 < stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]
        with pytest.raises(runtime.RuntimeInputError,
                           match=r"expected shape \[2, 3, 16, 16\], got \[1, 3, 16, 16\]"):
            p.run(model["x"][:1])


def test_bench_over_rpc(model, server):
    result = CliRunner().invoke(main, ["bench", model["lib"], "--rpc", server, "--repeat", "3", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    assert "median" in result.output and f"over 3 runs (target x86, on the RPC device {server})" in result.output
    assert "memory (measured)" not in result.output      # the local process measures nothing remote


def test_unreachable_or_malformed_address_is_one_line(model):
    closed = _free_port()
    cases = {f"127.0.0.1:{closed}": rf"RemoteError: cannot reach the TVM RPC server at 127.0.0.1:{closed}: "
                                    rf"Connect to 127.0.0.1:{closed} failed; start one there with",
             "no-such-host.invalid:9090": r"cannot reach the TVM RPC server at no-such-host.invalid:9090",
             f"127.0.0.1:{closed}/rk3588": rf"cannot reach the RPC tracker at 127.0.0.1:{closed} \(key 'rk3588'\)",
             "localhost": r"--rpc 'localhost': expected HOST:PORT",
             "localhost:99999": r"expected HOST:PORT .* PORT in 1..65535",
             "localhost:9090/": r"expected HOST:PORT"}
    for address, pattern in cases.items():
        for command in (["run", model["lib"], "-i", str(model["x_path"])], ["bench", model["lib"]]):
            _one_line_error(CliRunner().invoke(main, command + ["--rpc", address]), pattern)


def test_library_the_remote_cannot_load_is_one_line(model, server):
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("aarch64-linux-gnu-g++ not installed (apt-get install g++-aarch64-linux-gnu)")
    lib = compile_graph(model["graph"], "aarch64", str(model["dir"] / "small_cnn_rpc_aarch64.so"))
    result = CliRunner().invoke(main, ["run", lib, "-i", str(model["x_path"]), "--rpc", server])
    _one_line_error(result, r"the remote side cannot load '.*small_cnn_rpc_aarch64.so' \(built for target aarch64")


def test_profile_over_rpc_times_every_op_the_vm_calls(model, server, tmp_path):
    trace = tmp_path / "trace.json"
    result = CliRunner().invoke(main, ["profile", model["lib"], "-i", str(model["x_path"]), "--rpc", server,
                                       "--repeat", "3", "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    assert f"measured on the RPC device {server}" in result.output
    # the ops, in order, are the calls the VM makes when it runs the model here (instrumented)
    local = runtime.load(model["lib"])
    expected = [name for name, _ in _record_calls(local, local.device_inputs(model["x"]))[0]]
    events = [e for e in json.loads(trace.read_text())["traceEvents"] if e["ph"] == "X"]
    assert len(events) == 3 * len(expected)
    assert [e["args"]["symbol"] for e in events] == 3 * expected
    assert set(local.metadata["kernels"]) <= set(expected)          # every kernel of the sidecar
    assert all(e["dur"] > 0 and e["args"]["kernel"] in result.output for e in events)
    ratio = float(re.search(r"sum / end to end = ([\d.]+)", result.output).group(1))
    print(f"\nprofile --rpc: {len(expected)} ops, per-op sum / end to end = {ratio:.2f}")   # a figure, not a check


def test_profile_over_rpc_refuses_threads(model, server):
    result = CliRunner().invoke(main, ["profile", model["lib"], "--rpc", server, "--threads", "2"])
    _one_line_error(result, r"--threads sizes this machine's thread pool")
