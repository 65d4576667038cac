"""Quantized zoo models -> QDQ Graph -> ONNX: ONNX Runtime runs them and agrees with the
integer reference (quant/SPEC.md) to within 1 LSB of the output scale, almost always exactly."""
import numpy as np
import pytest

from yuan.compiler.ir import run_graph
from yuan.compiler.onnx import export_onnx, import_onnx
from yuan.frontend.models import get_model
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from yuan import quant
from tests.conftest import QUANT_ZOO, ZOO, int8_zoo_model, zoo_input

import onnxruntime as ort







@pytest.mark.parametrize("name", QUANT_ZOO)
def test_qdq_export_agrees_with_integer_reference(name, tmp_path):
    size = ZOO[name][1]
    qmodel = int8_zoo_model(name)
    x = zoo_input(size, 7)
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
    quant.calibrate(qat_model, [zoo_input(16, 1)])
    qat_model.eval()
    x = zoo_input(16, 3)
    graph = trace(qat_model, Tensor(x))
    assert sum(n.op == "quantize" for n in graph.nodes) >= 3
    path = str(tmp_path / "qat.onnx")
    export_onnx(graph, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    ref = run_graph(graph, {"input": x})["output"]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
