"""A few seeds of the random-graph fuzzer in every run (bench/fuzz.py runs hundreds): each random CNN,
imported and compiled by Yuan, agrees with ONNX Runtime in float (1e-4 relative) and, after ONNX
Runtime's own int8 quantization, with ONNX Runtime's int8 result (one output LSB, or cosine 0.999)."""
import itertools

import pytest

from yuan import runtime
from yuan.compiler.build import compile_graph
from yuan.compiler.onnx import import_onnx
from tests.reliability.random_graphs import check_seed

SEEDS = (*range(8), 36)   # 36: chained int8 hardsigmoids once hung TVM's simplifier (nested NaN selects)


@pytest.fixture(scope="module")
def compile_and_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    counter = itertools.count()

    def run(model, x):
        # a fresh file name per model: a process that loaded a library keeps that path's code
        path = compile_graph(import_onnx(model), "x86", str(folder / f"m{next(counter)}.so"))
        return next(iter(runtime.load(path).run({"x": x}).values()))
    return run


@pytest.mark.parametrize("seed", SEEDS)
def test_random_cnn_matches_onnxruntime(seed, compile_and_run, tmp_path):
    r = check_seed(seed, compile_and_run, str(tmp_path))
    assert r["float_ok"], f"seed {seed} {r['recipe']}: float: {r['float_detail']}"
    assert r["int8_ok"] is not False, f"seed {seed} {r['recipe']}: int8: {r['int8_detail']}"
