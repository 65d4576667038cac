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

pytest.importorskip("tvm")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from compiler.build import compile_graph  # noqa: E402
from compiler.onnx import export_onnx  # noqa: E402
from frontend.models import get_model  # noqa: E402
from frontend.random import manual_seed  # noqa: E402
from frontend.tensor import Tensor  # noqa: E402
from frontend.trace import trace  # noqa: E402
import runtime  # noqa: E402
from tests.onnx_helpers import run_ort  # noqa: E402

# name -> (get_model kwargs, input size). Tiny on purpose: each compile takes seconds.
ZOO = {
    "small_cnn": (dict(in_channels=3, width=0.25, input_size=16), 16),
    "resnet_small": (dict(depth=8, width=0.25, zero_init_residual=False), 16),
    "resnet18": (dict(width=0.25), 32),
    "resnet50": (dict(width=0.125), 32),
    "mobilenet_v2": (dict(width=0.25, input_size=32), 32),
    "shufflenet_v2": (dict(width=0.25), 32),
    "shufflenet_v1": (dict(width=0.25, groups=3), 32),
}
BATCH = 2


def _x(size, seed, n=BATCH):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def _float_model(name):
    """The zoo model in eval mode with non-trivial batch-norm statistics (so folding is tested)."""
    kwargs, _ = ZOO[name]
    manual_seed(0)
    model = get_model(name, num_classes=5, **kwargs)
    rng = np.random.default_rng(1)
    for buf_name, buf in model.named_buffers():
        if buf_name.endswith("running_mean"):
            buf.data[...] = rng.normal(0, 0.1, buf.shape)
        elif buf_name.endswith("running_var"):
            buf.data[...] = rng.uniform(0.5, 1.5, buf.shape)
    return model.eval()


def _int8_model(name):
    import quant
    _, size = ZOO[name]
    qat = quant.quantize_qat(_float_model(name))
    quant.calibrate(qat, [_x(size, seed) for seed in (1, 2)])
    return quant.quantize(qat.eval())


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
            model = _float_model(name) if kind == "float" else _int8_model(name)
            graph = trace(model, Tensor(_x(size, 0)))
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
    x = _x(ZOO[name][1], 3)
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
        x = _x(ZOO[name][1], seed)
        got = pred.run({graph.inputs[0]: x})[graph.outputs[0]]
        ref = c.model(Tensor(x)).data
        assert got.dtype == ref.dtype and got.shape == ref.shape
        assert np.array_equal(got, ref), \
            f"{name}: {np.count_nonzero(got != ref)} of {got.size} outputs differ, " \
            f"max |diff| {np.abs(got - ref).max():.3g}"
