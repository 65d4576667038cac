"""The x86 fp32 max pool kernel (schedules/x86_pool_fp32.py) against NumPy, NaN included, and the lowering
that calls it (compiler/relax/ops_nn.py) against the IR's reference interpreter."""
import json
import math

import numpy as np
import pytest

from tests.schedules.conftest import HOST, run

RNG = np.random.default_rng(7)
pytestmark = pytest.mark.skipif("x86" not in HOST.features, reason="host is no x86")


def _out_hw(size, k, s, p0, p1, ceil):
    v = (size + p0 + p1 - k) / s
    return (math.ceil(v) if ceil else math.floor(v)) + 1


def _reference(x, kernel, strides, pads, ceil):
    (kh, kw), (sh, sw), (t, l, b, r) = kernel, strides, pads
    oh, ow = _out_hw(x.shape[2], kh, sh, t, b, ceil), _out_hw(x.shape[3], kw, sw, l, r, ceil)
    extra_h, extra_w = max(0, (oh - 1) * sh + kh - x.shape[2] - t), max(0, (ow - 1) * sw + kw - x.shape[3] - l)
    xp = np.pad(x, ((0, 0), (0, 0), (t, extra_h), (l, extra_w)), constant_values=-np.inf)
    taps = [xp[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw] for i in range(kh) for j in range(kw)]
    return np.stack(taps).max(axis=0)   # np.max propagates NaN


@pytest.mark.parametrize("xs,kernel,strides,pads,ceil", [
    ((1, 5, 57, 57), [3, 3], [2, 2], [1, 1, 1, 1], 0),
    ((2, 3, 59, 60), [3, 3], [2, 2], [0, 0, 0, 0], 1),    # ceil_mode: the last window hangs over
    ((1, 4, 56, 64), [2, 2], [2, 2], [0, 0, 0, 0], 0),
    ((1, 3, 63, 63), [3, 3], [1, 1], [1, 0, 1, 2], 0),    # stride 1, asymmetric pads
])
def test_maxpool2d_f32_matches_numpy(xs, kernel, strides, pads, ceil):
    x = RNG.standard_normal(xs).astype("float32")
    x.flat[RNG.integers(0, x.size, 3)] = np.nan
    ref = _reference(x, kernel, strides, pads, ceil)
    attrs = dict(kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil)
    y = run("max_pool2d", attrs, [x], (ref.shape, "float32"), HOST, "maxpool2d_f32_nchw_x86")
    assert np.isnan(ref).any() and not np.isnan(ref).all()
    np.testing.assert_array_equal(y, ref)


def test_max_pool_lowering_uses_the_kernel_on_large_maps(tmp_path):
    from yuan import runtime
    from yuan.compiler.build import compile_graph, sidecar_path
    from yuan.compiler.ir import Graph, run_graph
    g = Graph("pool")
    x = g.add_input("x", (1, 6, 57, 57), "float32")
    y = g.add_node("max_pool2d", [x], dict(kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])).outputs[0]
    small = g.add_node("max_pool2d", [y], dict(kernel=[2, 2], strides=[2, 2])).outputs[0]   # on 29 x 29: light op
    g.mark_output(y, small)
    lib = compile_graph(g, "x86", str(tmp_path / "pool.so"))
    kernels = [info["kernel"] for info in json.load(open(sidecar_path(lib)))["kernel_info"].values()]
    assert kernels == ["maxpool2d_f32_nchw_x86"], kernels
    feed = {"x": RNG.standard_normal((1, 6, 57, 57)).astype("float32")}
    got, ref = runtime.load(lib).run(feed), run_graph(g, feed)
    for name in (y, small):
        np.testing.assert_array_equal(got[name], ref[name])
