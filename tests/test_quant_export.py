"""Quantized zoo models -> QDQ Graph -> ONNX: ONNX Runtime runs them and agrees with the
integer reference (quant/SPEC.md) to within 1 LSB of the output scale, almost always exactly."""
import numpy as np
import pytest

from compiler.ir import run_graph
from compiler.onnx import export_onnx, import_onnx
from frontend.models import get_model
from frontend.random import manual_seed
from frontend.tensor import Tensor
from frontend.trace import trace
import quant

ort = pytest.importorskip("onnxruntime")

ZOO = [
    ("small_cnn", dict(in_channels=3, width=0.25, input_size=16), 16),
    ("resnet_small", dict(depth=8, width=0.25, zero_init_residual=False), 16),
    ("resnet18", dict(width=0.25), 32),
    ("mobilenet_v2", dict(width=0.25, input_size=32), 32),
    ("shufflenet_v2", dict(width=0.25), 32),
    ("shufflenet_v1", dict(width=0.25, groups=3), 32),
]


def _x(size, seed, n=2):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def _quantized(name, kwargs, size, qconfig=None):
    manual_seed(0)
    model = get_model(name, num_classes=5, **kwargs).eval()
    qat_model = quant.quantize_qat(model, qconfig=qconfig)
    quant.calibrate(qat_model, [_x(size, seed) for seed in (1, 2)])
    return quant.quantize(qat_model.eval())


@pytest.mark.parametrize("name,kwargs,size", ZOO, ids=[z[0] for z in ZOO])
def test_qdq_export_agrees_with_integer_reference(name, kwargs, size, tmp_path):
    qmodel = _quantized(name, kwargs, size)
    x = _x(size, 7)
    reference = qmodel(Tensor(x)).data
    graph = trace(qmodel, Tensor(x))
    ops = {n.op for n in graph.nodes}
    assert {"quantize", "dequantize"} <= ops
    # Weights travel as integer constants, not float.
    assert any(c.dtype == np.int8 for c in graph.constants.values())
    path = str(tmp_path / f"{name}_int8.onnx")
    export_onnx(graph, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    out_scale = float(qmodel.model(qmodel.quant(Tensor(x))).qparams.scale)  # before the DequantStub
    lsb = np.abs(got - reference) / out_scale
    # ONNX Runtime requantizes in float (SPEC §8, outside the guarantee): at most 1 LSB apart.
    assert lsb.max() <= 1.0 + 1e-3, f"{name}: max difference {lsb.max():.2f} LSB"
    assert np.mean(lsb < 1e-3) >= 0.8, f"{name}: only {np.mean(lsb < 1e-3):.0%} of outputs exact"
    # The QDQ graph survives an ONNX round trip.
    np.testing.assert_allclose(run_graph(import_onnx(path), {"input": x})["output"],
                               run_graph(graph, {"input": x})["output"], rtol=0, atol=1e-6)


def test_qat_model_traces_to_qdq_and_matches_eager(tmp_path):
    manual_seed(0)
    model = get_model("small_cnn", in_channels=3, num_classes=5, width=0.25, input_size=16).eval()
    qat_model = quant.quantize_qat(model)
    quant.calibrate(qat_model, [_x(16, 1)])
    qat_model.eval()
    x = _x(16, 3)
    graph = trace(qat_model, Tensor(x))
    assert sum(n.op == "quantize" for n in graph.nodes) >= 3
    path = str(tmp_path / "qat.onnx")
    export_onnx(graph, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    ref = run_graph(graph, {"input": x})["output"]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
