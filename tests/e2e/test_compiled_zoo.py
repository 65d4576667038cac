"""Every zoo model at small size through the whole deploy path:
trace -> compiler.build.compile_graph(..., "x86") -> runtime.load -> run.

* float: the compiled library agrees with ONNX Runtime running export_onnx of the same graph
  (rtol 1e-4 of the output's magnitude);
* int8 (quantize_qat -> calibrate -> quantize, traced to QDQ): the compiled library equals the
  integer model's own output bit for bit, and every convolution ran as a qconv2d kernel
  (the sidecar's `kernels`).

Each (model, float/int8) pair is compiled once per session (the `compiled` fixture)."""
import collections

import numpy as np
import pytest





from yuan.compiler.build import compile_graph  # noqa: E402
from yuan.compiler.onnx import export_onnx  # noqa: E402
from yuan.frontend.tensor import Tensor  # noqa: E402
from yuan.frontend.trace import trace  # noqa: E402
from yuan import runtime  # noqa: E402
from tests.conftest import ZOO, float_zoo_model, int8_zoo_model, run_ort, zoo_input  # noqa: E402

Compiled = collections.namedtuple("Compiled", "model graph path predictor")


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """compiled(name, kind) with kind "float" or "int8": the eager model, its traced graph,
    the x86 library path and a loaded Predictor, built once per session."""
    build_dir = tmp_path_factory.mktemp("compiled_zoo")
    cache = {}

    def get(name, kind):
        key = (name, kind)
        if key not in cache:
            _, size = ZOO[name]
            model = float_zoo_model(name) if kind == "float" else int8_zoo_model(name)
            graph = trace(model, Tensor(zoo_input(size, 0)))
            path = compile_graph(graph, "x86", str(build_dir / f"{name}_{kind}.so"))
            cache[key] = Compiled(model, graph, path, runtime.load(path))
        return cache[key]

    return get


@pytest.mark.parametrize("name", sorted(ZOO))
def test_float_matches_onnxruntime(name, compiled, tmp_path):
    c = compiled(name, "float")
    graph, pred = c.graph, c.predictor
    meta = pred.metadata
    assert meta["target"] == "x86" and meta["inputs"][0]["dtype"] == "float32"
    assert not {"quantize", "qconv2d"} & set(meta["ops"]), meta["ops"]
    assert any(k.startswith(("conv2d", "dwconv2d")) for k in meta["kernels"]), meta["kernels"]
    x = zoo_input(ZOO[name][1], 3)
    got = pred.run({graph.inputs[0]: x})
    ort_out = run_ort(export_onnx(graph, str(tmp_path / f"{name}.onnx")), {graph.inputs[0]: x})
    for out in graph.outputs:
        ref = ort_out[out]
        assert got[out].shape == ref.shape and got[out].dtype == np.float32
        scale = float(np.abs(ref).max())
        assert scale > 0
        # rtol 1e-4 elementwise; atol 1e-4 of the output's magnitude (logits near zero)
        np.testing.assert_allclose(got[out], ref, rtol=1e-4, atol=1e-4 * scale,
                                   err_msg=f"{name}: compiled x86 vs ONNX Runtime")


@pytest.mark.parametrize("name", sorted(ZOO))
def test_int8_is_bit_exact_and_uses_qconv2d(name, compiled):
    c = compiled(name, "int8")
    graph, pred = c.graph, c.predictor
    meta = pred.metadata
    in_quant = meta["inputs"][0]["quant"]
    assert in_quant is not None and in_quant["bits"] == 8
    assert meta["outputs"][0]["dtype"] == "float32"
    # Every convolution of the QDQ graph became an integer qconv2d kernel; none stayed float.
    n_conv = sum(node.op == "conv2d" for node in graph.nodes)
    qconv = [k for k in meta["kernels"] if k.startswith("qconv2d")]
    assert n_conv > 0 and len(qconv) == n_conv, (n_conv, meta["kernels"])
    assert "conv2d" not in meta["ops"] and "qconv2d" in meta["ops"], meta["ops"]
    assert not any(k.startswith(("conv2d", "dwconv2d")) for k in meta["kernels"]), meta["kernels"]
    for seed in (7, 8):
        x = zoo_input(ZOO[name][1], seed)
        got = pred.run({graph.inputs[0]: x})[graph.outputs[0]]
        ref = c.model(Tensor(x)).data
        assert got.dtype == ref.dtype and got.shape == ref.shape
        assert np.array_equal(got, ref), \
            f"{name}: {np.count_nonzero(got != ref)} of {got.size} outputs differ, " \
            f"max |diff| {np.abs(got - ref).max():.3g}"
