"""yuan.runtime.profiler and `yuan profile`: every call of a run is timed, the table names every
kernel of the sidecar, the Chrome trace has one complete event per op per run."""
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

import yuan
from yuan.cli import main
from yuan.runtime.profiler import profile

REPEAT = 3


@pytest.fixture(scope="module")
def prof(small_module):
    return profile(yuan.load(small_module), repeat=REPEAT)


def test_every_kernel_of_the_sidecar_is_profiled_once(prof, small_module):
    meta = yuan.load(small_module).metadata
    symbols = [op.symbol for op in prof.ops]
    assert sorted(s for s in symbols if s in meta["kernel_info"]) == sorted(meta["kernels"])
    table = prof.table()
    for symbol in meta["kernels"]:
        info = meta["kernel_info"][symbol]
        assert info["node"] in table and info["kernel"] in table
    # every call that is not a kernel is a light op, shown by its function name
    for op in prof.ops:
        assert op.seconds > 0 and len(op.runs) == REPEAT
        if op.symbol not in meta["kernel_info"]:
            assert op.name == op.symbol and op.symbol in table


def test_kernel_info_matches_the_graph(prof):
    # conv1 of small_net: 8 output channels over 3x3x3 windows, 4x8x12x12 outputs
    conv1 = next(op for op in prof.ops if op.info.get("node") == "conv1")
    assert conv1.info["op"] == "conv2d" and conv1.info["output"] == [4, 8, 12, 12]
    assert conv1.info["macs"] == 4 * 8 * 12 * 12 * 3 * 3 * 3
    assert conv1.gops == pytest.approx(2 * conv1.info["macs"] / conv1.seconds / 1e9)


def test_chrome_trace_has_one_complete_event_per_op_per_run(prof, tmp_path):
    path = tmp_path / "trace.json"
    prof.write_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    n = len(prof.ops)
    assert len(events) == REPEAT * n
    end = 0.0
    for k, e in enumerate(events):
        assert e["ts"] >= 0 and e["dur"] >= 0 and {"name", "pid", "tid"} <= set(e)
        assert (e["args"]["run"], e["args"]["index"]) == (k // n, k % n)
        assert e["args"]["symbol"] == prof.ops[k % n].symbol
        assert e["ts"] >= end - 1e-3     # slices follow each other, never overlap
        end = e["ts"] + e["dur"]
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]   # no temporary file left


def test_profile_command(small_module, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).standard_normal((4, 3, 12, 12)).astype(np.float32))
    trace = tmp_path / "t.json"
    res = CliRunner().invoke(main, ["profile", small_module, "-i", str(x), "--repeat", "2", "--top", "2",
                                    "--threads", "1", "--trace", str(trace)])
    assert res.exit_code == 0, res.output
    assert "per-op sum" in res.output and "faster calls not shown" in res.output
    calls = int(re.search(r"(\d+) calls: per-op sum", res.output).group(1))
    assert calls > len(yuan.load(small_module).metadata["kernels"])   # the kernels and the light ops
    assert len([e for e in json.loads(trace.read_text())["traceEvents"] if e["ph"] == "X"]) == 2 * calls


@pytest.mark.parametrize("args, words", [
    (["--repeat", "0"], "--repeat"),
    (["-i", "MODULE"], "input"),      # the library itself is not a .npy input
])
def test_profile_command_rejects_bad_options_in_one_line(small_module, args, words):
    args = [small_module if a == "MODULE" else a for a in args]
    res = CliRunner().invoke(main, ["profile", small_module, *args])
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit)
    errors = [line for line in res.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in res.output


def test_profile_command_missing_module(tmp_path):
    res = CliRunner().invoke(main, ["profile", str(tmp_path / "nothere.so")])
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit)
    assert res.output.strip().splitlines() == [f"Error: RuntimeLoadError: model library "
                                               f"'{tmp_path / 'nothere.so'}' does not exist"]
