"""Measured per-shape kernel choice (compiler/tuning.py, `yuan compile --tune`): the cache is written,
reused without timing, a non-default choice stays bit-exact, a wrong candidate is never chosen, and a
damaged or unwritable cache is a warning / one clear error. Timings are faked where the test needs a
particular winner (the code under test decides from whatever the timer says)."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from yuan.cli import main
from yuan.compiler import tune_measure
from yuan.compiler.build import compile_graph
from yuan.compiler.errors import BuildError
from yuan.compiler.ir import Graph
from yuan.compiler.ir.interpreter import run_graph
from yuan.compiler.targets import resolve_target
from yuan.compiler.tune_cache import TuneCacheError, TuneCacheWarning, cache_path
from yuan.compiler.tuning import check_tuning
from yuan.runtime import load
from yuan.schedules import get_kernel
from yuan.schedules.choices import shape_key

HOST = resolve_target("x86")
pytestmark = pytest.mark.skipif("avx2" not in HOST.features, reason="needs two or more x86 int8 kernels")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("YUAN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def two_convs():
    """x int8 -> qconv2d 3x3 (with bias) -> qconv2d 3x3: two distinct shapes."""
    rng = np.random.default_rng(3)

    def requant(o, zx):
        return dict(pads=[1, 1, 1, 1], x_zero_point=zx, y_zero_point=2, out_min=-128, out_max=127,
                    out_dtype="int8", multiplier=[int(v) for v in rng.integers(1 << 30, (1 << 31) - 1, o)],
                    shift=[int(v) for v in rng.integers(40, 42, o)])

    g = Graph("two_convs")
    x = g.add_input("x", (1, 16, 8, 8), "int8")
    w1 = g.add_constant("w1", rng.integers(-127, 128, (32, 16, 3, 3)).astype(np.int8))
    b1 = g.add_constant("b1", rng.integers(-3000, 3000, 32).astype(np.int32))
    h = g.add_node("qconv2d", [x, w1, b1], requant(32, -5), name="conv1").outputs[0]
    w2 = g.add_constant("w2", rng.integers(-127, 128, (32, 32, 3, 3)).astype(np.int8))
    g.add_node("qconv2d", [h, w2], requant(32, 3), outputs=["y"], name="conv2")
    g.mark_output("y")
    g.validate()
    return g


def compile_and_check(tmp_path, mode, name="m"):
    """Compile two_convs with `mode`; check the module bit for bit against the NumPy integer reference;
    return the sidecar's conv entries and kernel_choice summary."""
    g = two_convs()
    path = compile_graph(g, HOST, str(tmp_path / f"{name}.so"), tune=mode)
    x = np.random.default_rng(9).integers(-128, 128, (1, 16, 8, 8)).astype(np.int8)
    ref = run_graph(g, {"x": x})["y"]
    assert 0 < np.count_nonzero((ref > -128) & (ref < 127)), "degenerate case (all saturated)"
    np.testing.assert_array_equal(load(path).run({"x": x})["y"], ref)
    with open(str(tmp_path / f"{name}.json")) as f:
        meta = json.load(f)
    convs = [i for i in meta["kernel_info"].values() if i["op"] == "qconv2d"]
    assert len(convs) == 2
    return convs, meta["kernel_choice"]


@pytest.fixture
def timer_calls(monkeypatch):
    """Counts time_kernel calls (the real timer still runs)."""
    calls = []
    real = tune_measure.time_kernel

    def counting(cand, number):
        calls.append(cand.name)
        return real(cand, number)
    monkeypatch.setattr(tune_measure, "time_kernel", counting)
    return calls


def fake_timer(monkeypatch):
    """Lower priority = faster: the measurement then prefers the rule's last timed candidate."""
    monkeypatch.setattr(tune_measure, "time_kernel", lambda cand, number: 1e-6 * (1 + get_kernel(cand.name).priority))


def test_tune_fills_the_cache_and_a_later_compile_reuses_it_without_timing(tmp_path, cache_dir, timer_calls):
    convs, summary = compile_and_check(tmp_path, "tune", "tuned")
    assert summary["measured_now"] == 2 and summary["tuned_calls"] == 2 and timer_calls
    assert all(c["choice"] == "tuned" and c["kernel"] in c["tuned_us"] and len(c["tuned_us"]) >= 2 for c in convs)
    with open(cache_path(HOST)) as f:
        entries = json.load(f)["entries"]
    assert len(entries) == 2
    assert {e["kernel"] for e in entries.values()} == {c["kernel"] for c in convs}
    for e in entries.values():                   # the fastest, unless it beats the rule's pick by < MIN_GAIN
        us, fastest = e["medians_us"], min(e["medians_us"], key=e["medians_us"].get)
        assert e["kernel"] == fastest or (e["kernel"] == e["rule"]
                                          and us[fastest] > (1 - tune_measure.MIN_GAIN) * us[e["rule"]])

    timed = len(timer_calls)
    convs, summary = compile_and_check(tmp_path, "cached", "again")   # a compile without --tune
    assert len(timer_calls) == timed and summary["measured_now"] == 0
    assert all(c["choice"] == "tuned" for c in convs)


def test_a_non_default_choice_is_used_and_bit_exact(tmp_path, monkeypatch):
    rule, summary = compile_and_check(tmp_path, "rule", "rule")
    assert all(c["choice"] == "rule" for c in rule) and summary["tuned_calls"] == 0
    fake_timer(monkeypatch)
    tuned, summary = compile_and_check(tmp_path, "tune", "tuned")
    assert summary["differ_from_rule"] == 2
    for r, t in zip(rule, tuned):
        assert t["choice"] == "tuned" and t["kernel"] != r["kernel"]
        assert get_kernel(t["kernel"]).priority < get_kernel(r["kernel"]).priority

    with open(cache_path(HOST)) as f:           # a stale choice: a kernel that does not apply here
        data = json.load(f)
    for entry in data["entries"].values():
        entry["kernel"] = "qconv2d_int8_nhwc_sdot"
        entry["medians_us"][entry["kernel"]] = 0.1
    with open(cache_path(HOST), "w") as f:
        json.dump(data, f)
    stale, _ = compile_and_check(tmp_path, "cached", "stale")
    assert [c["kernel"] for c in stale] == [c["kernel"] for c in rule]
    assert all(c["choice"] == "rule" for c in stale)


def test_a_candidate_with_wrong_output_is_never_chosen(tmp_path, monkeypatch):
    fake_timer(monkeypatch)                       # the last timed candidate would win ...
    real_candidates, real_run = tune_measure.timed_candidates, tune_measure.Candidate.run
    liars = []

    def candidates(call):
        names = real_candidates(call)
        liars.append(names[-1])
        return names

    def run(cand):                                # ... but its output is off by one
        y = real_run(cand)
        return y + 1 if cand.name == liars[-1] else y
    monkeypatch.setattr(tune_measure, "timed_candidates", candidates)
    monkeypatch.setattr(tune_measure.Candidate, "run", run)
    convs, _ = compile_and_check(tmp_path, "tune")
    with open(cache_path(HOST)) as f:
        entries = list(json.load(f)["entries"].values())
    assert len(entries) == 2
    for entry in entries:
        (liar, why), = entry["rejected"].items()
        assert liar in liars and "differ" in why
        assert entry["kernel"] != liar and liar not in entry["medians_us"] and entry["medians_us"]
    assert not {c["kernel"] for c in convs} & set(liars)


def test_a_damaged_cache_is_ignored_with_a_warning(tmp_path):
    os.makedirs(os.path.dirname(cache_path(HOST)))
    with open(cache_path(HOST), "w") as f:
        f.write('{"format": "yuan-tune", "entries": [')
    with pytest.warns(TuneCacheWarning, match="ignored"):
        convs, summary = compile_and_check(tmp_path, "cached")
    assert all(c["choice"] == "rule" for c in convs) and summary["tuned_calls"] == 0


def test_tuning_that_cannot_save_or_run_fails_at_once(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("YUAN_CACHE_DIR", str(blocker))
    with pytest.raises(TuneCacheError, match="YUAN_CACHE_DIR"):
        check_tuning(HOST, "tune")
    assert check_tuning(HOST, "cached") is False            # reading needs no writable folder
    with pytest.raises(BuildError, match="do not run here"):
        check_tuning(resolve_target("aarch64"), "tune")
    model = tmp_path / "model.onnx"
    model.write_text("")                                            # refused before it is read
    res = CliRunner().invoke(main, ["compile", str(model), "--tune", "-o", str(tmp_path / "m.so")])
    assert res.exit_code != 0 and "TuneCacheError" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output


def test_shape_key_ignores_requantization_values_not_geometry():
    types = [((1, 8, 8, 16), "int8"), ((32, 16, 3, 3), "int8")], ((1, 8, 8, 32), "int8")
    a = dict(pads=[1, 1, 1, 1], multiplier=[3, 4], shift=[20, 21], x_zero_point=1, layout="NHWC")
    b = dict(a, multiplier=[5, 6], shift=[30, 31], x_zero_point=-7)
    assert shape_key("qconv2d", a, *types) == shape_key("qconv2d", b, *types)
    assert shape_key("qconv2d", a, *types) != shape_key("qconv2d", dict(a, pads=[0, 0, 0, 0]), *types)
    assert shape_key("qconv2d", a, *types) != shape_key("qconv2d", dict(a, multiplier=[3]), *types)
