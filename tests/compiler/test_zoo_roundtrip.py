"""Every zoo model at small size: eager == traced graph == exported ONNX in ONNX Runtime,
and ONNX -> import -> graph still computes the same thing."""
import numpy as np
import pytest

from yuan.compiler.ir import run_graph
from yuan.compiler.onnx import export_onnx, import_onnx
from yuan.frontend.models import get_model
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace

import onnxruntime as ort

ZOO = {
    "small_cnn": (dict(in_channels=1, num_classes=10, width=0.5), (2, 1, 28, 28)),
    "small_cnn_digits": (dict(in_channels=1, num_classes=10, input_size=8), (2, 1, 8, 8)),
    "resnet_small": (dict(depth=8, in_channels=3, num_classes=10, width=0.25), (2, 3, 16, 16)),
    "resnet18": (dict(num_classes=10, width=0.125), (1, 3, 32, 32)),
    "resnet50": (dict(num_classes=10, width=0.125), (1, 3, 32, 32)),
    "mobilenet_v2": (dict(num_classes=10, width=0.25, input_size=32), (1, 3, 32, 32)),
    "shufflenet_v2": (dict(num_classes=10, width=0.5), (1, 3, 32, 32)),
    "shufflenet_v1": (dict(num_classes=10, groups=3, width=0.25), (1, 3, 32, 32)),
}


def _randomise_bn(model, rng):
    """Non-trivial running statistics, so batch norm is really exercised in eval mode."""
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.data[...] = rng.normal(0, 0.1, buf.shape)
        elif name.endswith("running_var"):
            buf.data[...] = rng.uniform(0.5, 1.5, buf.shape)


@pytest.mark.parametrize("key", sorted(ZOO))
def test_eager_trace_onnx_agree(key, tmp_path):
    kwargs, shape = ZOO[key]
    name = "small_cnn" if key.startswith("small_cnn") else key
    manual_seed(0)
    rng = np.random.default_rng(1)
    model = get_model(name, **kwargs)
    _randomise_bn(model, rng)
    model.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    eager = model(Tensor(x)).numpy()

    graph = trace(model, Tensor(x))
    traced = run_graph(graph, {"input": x})["output"]
    np.testing.assert_allclose(traced, eager, rtol=1e-5, atol=1e-5)

    path = str(tmp_path / f"{key}.onnx")
    export_onnx(graph, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {"input": x})[0]
    np.testing.assert_allclose(onnx_out, eager, rtol=1e-5, atol=1e-5)

    reimported = import_onnx(path)
    np.testing.assert_allclose(run_graph(reimported, {"input": x})["output"], eager, rtol=1e-5, atol=1e-5)
