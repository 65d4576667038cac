"""Helpers shared by tests in several folders: tests never import each other, they import these.

Sections: gradient checking; ONNX Runtime as the reference; a float Graph for PTQ; a float ONNX model
for ORT's quantizer; small quantized zoo models. Helpers of one folder live in its own conftest.py.
"""
import atexit
import os
import shutil
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader

from yuan import quant
from yuan.compiler.ir import Graph
from yuan.frontend.autograd import no_grad
from yuan.frontend.models import get_model
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.quant import spec
from yuan.quant.errors import QuantError

# Compiles in tests (and the `yuan` processes they start) use the written kernel rule, never choices
# that `yuan compile --tune` measured on this machine into ~/.cache/yuan (compiler/tune_cache.py).
os.environ["YUAN_CACHE_DIR"] = tempfile.mkdtemp(prefix="yuan-test-cache-")
atexit.register(shutil.rmtree, os.environ["YUAN_CACHE_DIR"], True)



# ---------------------------------------------------------------- gradient check (float64)

def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def gradcheck(fn, *arrays, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """Check the gradients of every input of `fn(*tensors)` against central differences.

    The scalar being differentiated is sum_k <out_k, R_k> for fixed random R_k, so
    every output element matters with a different weight. Inputs are float64.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    tensors = [Tensor(a.copy(), requires_grad=True, dtype=np.float64) for a in arrays]
    outs = _outputs(fn(*tensors))
    weights = [rng.standard_normal(o.shape) for o in outs]
    for o in outs:
        assert o.dtype == np.float64, f"op produced {o.dtype} from float64 inputs"
    total = outs[0] * weights[0]
    total = total.sum()
    for o, w in zip(outs[1:], weights[1:]):
        total = total + (o * w).sum()
    total.backward()

    def value(current):
        with no_grad():
            result = _outputs(fn(*[Tensor(a, dtype=np.float64) for a in current]))
        return sum(float(np.sum(o.data * w)) for o, w in zip(result, weights))

    for k, (a, t) in enumerate(zip(arrays, tensors)):
        assert t.grad is not None, f"input {k} got no gradient"
        assert t.grad.shape == a.shape and t.grad.dtype == np.float64
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [b.copy() for b in arrays]
            minus = [b.copy() for b in arrays]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            numeric[idx] = (value(plus) - value(minus)) / (2 * eps)
        np.testing.assert_allclose(t.grad, numeric, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {k} (shape {a.shape})")


# ---------------------------------------------------------------- ONNX Runtime as the reference

def run_ort(model, feed):
    """Outputs by name; graph optimizations off so ORT computes the ops as written."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


# ---------------------------------------------------------------- a float Graph for PTQ (quant.graph_ptq)

PTQ_RNG = np.random.default_rng(21)   # the float graphs of the PTQ tests

X_SHAPE = (4, 3, 12, 12)

def randn(*shape, scale=1.0, rng=None):
    return ((rng or PTQ_RNG).standard_normal(shape) * scale).astype(np.float32)

class RangeObserver:
    """Minimal observer (the Observer interface of docs/design.md): running min/max."""

    def __init__(self, bits=8, signed=True, symmetric=False, narrow_range=False, axis=None):
        self.options = dict(bits=bits, signed=signed, symmetric=symmetric, narrow_range=narrow_range)
        self.lo, self.hi = np.inf, -np.inf

    def observe(self, array):
        self.lo, self.hi = min(self.lo, float(array.min())), max(self.hi, float(array.max()))

    def qparams(self):
        if self.lo > self.hi:
            raise QuantError("observer has seen no data")
        return spec.choose_qparams(self.lo, self.hi, **self.options)

def add_bn(g, x, c, name, rng=None):
    rng = rng or PTQ_RNG
    params = [g.add_constant(f"{name}_gamma", rng.uniform(0.5, 1.5, c).astype(np.float32)),
              g.add_constant(f"{name}_beta", randn(c, scale=0.2, rng=rng)),
              g.add_constant(f"{name}_mean", randn(c, scale=0.2, rng=rng)),
              g.add_constant(f"{name}_var", rng.uniform(0.5, 2.0, c).astype(np.float32))]
    return g.add_node("batch_norm", [x] + params, name=name).outputs[0]


def small_net(seed=21):
    """conv-bn-relu-maxpool, conv-bn-relu + residual add-relu, depthwise conv-hardswish,
    concat, global pool, flatten, linear. The same network for a seed, whatever ran before."""
    rng = np.random.default_rng(seed)
    g = Graph("small_net")
    x = g.add_input("x", X_SHAPE)
    c1 = g.add_node("conv2d", [x, g.add_constant("w1", randn(8, 3, 3, 3, scale=0.4, rng=rng)),
                               g.add_constant("b1", randn(8, scale=0.1, rng=rng))],
                    {"pads": [1, 1, 1, 1]}, name="conv1").outputs[0]
    r1 = g.add_node("relu", [add_bn(g, c1, 8, "bn1", rng)], name="relu1").outputs[0]
    p = g.add_node("max_pool2d", [r1], {"kernel": [2, 2]}, name="pool").outputs[0]
    c2 = g.add_node("conv2d", [p, g.add_constant("w2", randn(8, 8, 3, 3, scale=0.2, rng=rng))],
                    {"pads": [1, 1, 1, 1]}, name="conv2").outputs[0]
    r2 = g.add_node("relu", [add_bn(g, c2, 8, "bn2", rng)], name="relu2").outputs[0]
    a = g.add_node("add", [r2, p], name="add").outputs[0]
    r3 = g.add_node("relu", [a], name="relu3").outputs[0]
    c3 = g.add_node("conv2d", [r3, g.add_constant("w3", randn(8, 1, 3, 3, scale=0.5, rng=rng)),
                               g.add_constant("b3", randn(8, scale=0.1, rng=rng))],
                    {"pads": [1, 1, 1, 1], "group": 8}, name="dwconv").outputs[0]
    h = g.add_node("hardswish", [c3], name="hswish").outputs[0]
    cat = g.add_node("concat", [r3, h], {"axis": 1}, name="concat").outputs[0]
    gp = g.add_node("global_avg_pool2d", [cat], name="gap").outputs[0]
    f = g.add_node("flatten", [gp], name="flatten").outputs[0]
    g.add_node("linear", [f, g.add_constant("w4", randn(10, 16, scale=0.5, rng=rng)),
                          g.add_constant("b4", randn(10, scale=0.1, rng=rng))], outputs=["y"], name="fc")
    g.mark_output("y")
    g.validate()
    return g


def batches(count=6, seed=22):
    rng = np.random.default_rng(seed)
    return [randn(*X_SHAPE, rng=rng) for _ in range(count)]


# ---------------------------------------------------------------- a float ONNX model for ORT's quantizer

QDQ_RNG = np.random.default_rng(11)   # calibration data of the ORT QDQ tests

BATCH, IN_SHAPE = 2, (2, 3, 10, 10)

def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)

def info(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)

def float_model():
    """conv-relu-conv-add(residual)-globalpool-flatten-gemm, opset 13, static batch."""
    n = helper.make_node
    r = np.random.default_rng(3)
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        n("Relu", ["c1"], ["r1"], name="relu1"),
        n("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], group=2),
        n("Add", ["c2", "r1"], ["s"], name="add"),
        n("Relu", ["s"], ["r2"], name="relu2"),
        n("MaxPool", ["r2"], ["m"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        n("GlobalAveragePool", ["m"], ["g"], name="gap"),
        n("Flatten", ["g"], ["f"], name="flatten"),
        n("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1),
    ]
    inits = [init("w1", r.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)),
             init("b1", r.normal(0, 0.2, 8).astype(np.float32)),
             init("w2", r.normal(0, 0.3, (8, 4, 3, 3)).astype(np.float32)),
             init("b2", r.normal(0, 0.2, 8).astype(np.float32)),
             init("w3", r.normal(0, 0.5, (6, 8)).astype(np.float32)),
             init("b3", r.normal(0, 0.2, 6).astype(np.float32))]
    graph = helper.make_graph(nodes, "float_net", [info("x", IN_SHAPE)], [info("y", [BATCH, 6])], inits)
    opsets = [helper.make_opsetid("", 13)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    return model

class ListReader(CalibrationDataReader):
    """Feeds a fixed list of batches to ORT's calibrator."""

    def __init__(self, batches):
        self._batches = iter([{"x": b} for b in batches])

    def get_next(self):
        return next(self._batches, None)

def calibration_batches(count=8):
    return [QDQ_RNG.standard_normal(IN_SHAPE).astype(np.float32) for _ in range(count)]

def ort_session(model, optimize):
    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

def output_scale(model):
    """Scale of the DequantizeLinear that writes the graph output, read from the ONNX model."""
    out = model.graph.output[0].name
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == out)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return float(inits[dq.input[1]])


# ---------------------------------------------------------------- small zoo models, float and int8

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
QUANT_ZOO = [name for name in ZOO if name != "resnet50"]   # the NumPy-only quant tests skip the slowest


def zoo_input(size, seed, n=2):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def float_zoo_model(name):
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


def int8_zoo_model(name, qconfig=None):
    """float_zoo_model(name) quantized: QAT wrappers, calibrated on two batches, converted."""
    _, size = ZOO[name]
    qat = quant.quantize_qat(float_zoo_model(name), qconfig=qconfig)
    quant.calibrate(qat, [zoo_input(size, seed) for seed in (1, 2)])
    return quant.quantize(qat.eval())
