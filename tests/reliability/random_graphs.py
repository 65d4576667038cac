"""Seeded random small CNNs as ONNX models, and the check that Yuan computes what ONNX Runtime does,
in float and after ONNX Runtime's own int8 quantization (quantize_static, QDQ).

Used by tests/reliability/test_fuzz.py (a few seeds in every CI run) and bench/fuzz.py (hundreds).
A helper module, not a test: pytest collects nothing from it.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

OPSET = 17
# layer kinds the generator draws from (each keeps the tensor 4-D NCHW)
LAYERS = ("conv", "dwconv", "conv_bn", "relu", "clip", "leaky_relu", "sigmoid", "hardsigmoid", "hardswish",
          "swish", "maxpool", "avgpool", "add_residual", "concat", "mul_const", "add_const", "mul_scalar",
          "add_scalar")


class RandomCNN:
    """Builds one random ONNX model from a seed: NCHW input, 2..6 layers, optional classifier head."""

    def __init__(self, seed: int, layers=LAYERS):
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.kinds = layers
        self.nodes, self.inits, self.count = [], [], 0
        self.recipe = []

    def _name(self, base):
        self.count += 1
        return f"{base}{self.count}"

    def _init(self, array, base):
        name = self._name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def _node(self, op, inputs, **attrs):
        out = self._name(op.lower() + "_out")
        self.nodes.append(helper.make_node(op, inputs, [out], name=self._name(op.lower()), **attrs))
        return out

    def _conv(self, x, c, out_c, group=1, bias=True):
        k = int(self.rng.choice([1, 3]))
        stride = int(self.rng.choice([1, 1, 2]))
        pad = k // 2 if self.rng.random() < 0.8 else 0
        w = self.rng.normal(0, 1.0 / np.sqrt(c // group * k * k), (out_c, c // group, k, k)).astype(np.float32)
        inputs = [x, self._init(w, "w")]
        if bias:
            inputs.append(self._init(self.rng.normal(0, 0.1, out_c).astype(np.float32), "b"))
        return self._node("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                          group=group), out_c, stride, k, pad

    def build(self) -> onnx.ModelProto:
        rng = self.rng
        c = int(rng.choice([1, 3, 4, 8]))
        h = w = int(rng.integers(6, 17))
        x = "x"
        shape = [1, c, h, w]
        for _ in range(int(rng.integers(2, 7))):
            kind = str(rng.choice(self.kinds))
            self.recipe.append(kind)
            if kind in ("conv", "conv_bn", "dwconv"):
                if kind == "dwconv":
                    x, out_c, s, k, p = self._conv(x, c, c, group=c)
                else:
                    x, out_c, s, k, p = self._conv(x, c, int(rng.choice([4, 8, 16])), bias=kind == "conv")
                h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
                c = out_c
                if kind == "conv_bn":
                    params = [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                              rng.uniform(0.5, 2.0, c)]
                    x = self._node("BatchNormalization", [x] + [self._init(p.astype(np.float32), "bn")
                                                                for p in params])
            elif kind == "relu":
                x = self._node("Relu", [x])
            elif kind == "clip":
                x = self._node("Clip", [x, self._init(np.float32(0), "lo"), self._init(np.float32(6), "hi")])
            elif kind == "leaky_relu":
                x = self._node("LeakyRelu", [x], alpha=float(rng.choice([0.01, 0.1, 0.2])))
            elif kind == "sigmoid":
                x = self._node("Sigmoid", [x])
            elif kind == "hardsigmoid":
                x = self._node("HardSigmoid", [x], alpha=0.2, beta=0.5)
            elif kind == "hardswish":
                x = self._node("HardSwish", [x])
            elif kind == "swish":
                x = self._node("Mul", [x, self._node("Sigmoid", [x])])
            elif kind in ("maxpool", "avgpool") and min(h, w) >= 2:
                op = "MaxPool" if kind == "maxpool" else "AveragePool"
                x = self._node(op, [x], kernel_shape=[2, 2], strides=[2, 2])
                h, w = h // 2, w // 2
            elif kind == "add_residual":
                y, _, s, k, p = self._conv(x, c, c)
                if s == 1 and k == 1 + 2 * p:
                    x = self._node("Add", [x, self._node("Relu", [y])])
            elif kind == "concat":
                y, out_c, s, k, p = self._conv(x, c, int(rng.choice([4, 8])))
                if s == 1 and k == 1 + 2 * p:
                    x = self._node("Concat", [x, y], axis=1)
                    c += out_c
            elif kind == "mul_const":
                x = self._node("Mul", [x, self._init(rng.uniform(0.5, 2.0, (1, c, 1, 1)).astype(np.float32), "m")])
            elif kind == "mul_scalar":
                x = self._node("Mul", [x, self._init(np.float32(rng.uniform(0.5, 2.0)), "ms")])
            elif kind == "add_scalar":
                x = self._node("Add", [x, self._init(np.float32(rng.normal(0, 0.5)), "as")])
            elif kind == "add_const":
                x = self._node("Add", [x, self._init(rng.normal(0, 0.5, (1, c, 1, 1)).astype(np.float32), "a")])
        if rng.random() < 0.5:
            x = self._node("Flatten", [self._node("GlobalAveragePool", [x])])
            classes = int(rng.integers(2, 11))
            fc_w = rng.normal(0, 1.0 / np.sqrt(c), (classes, c)).astype(np.float32)
            alpha, beta = (1.0, 1.0) if rng.random() < 0.7 else (float(rng.uniform(0.5, 2)), float(rng.uniform(0.5, 2)))
            x = self._node("Gemm", [x, self._init(fc_w, "fc_w"), self._init(rng.normal(0, 0.1, classes).astype(np.float32), "fc_b")],
                           transB=1, alpha=alpha, beta=beta)
            out_shape = [1, classes]
        else:
            out_shape = None
        graph = helper.make_graph(self.nodes, f"fuzz_{self.seed}",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                                  [helper.make_tensor_value_info(x, TensorProto.FLOAT, out_shape)], self.inits)
        opsets = [helper.make_opsetid("", OPSET)]
        model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
        model = onnx.shape_inference.infer_shapes(model)
        onnx.checker.check_model(model)
        self.input_shape = tuple(shape)
        return model


class _Reader(CalibrationDataReader):
    def __init__(self, batches):
        self._it = iter([{"x": b} for b in batches])

    def get_next(self):
        return next(self._it, None)


def quantize_with_ort(model: onnx.ModelProto, batches, workdir: str, seed: int) -> onnx.ModelProto:
    """ORT's static QDQ quantization (per-channel int8 weights; activations int8 or uint8 by seed)."""
    src, dst = os.path.join(workdir, "float.onnx"), os.path.join(workdir, "qdq.onnx")
    onnx.save(model, src)
    act = QuantType.QInt8 if seed % 2 else QuantType.QUInt8
    quantize_static(src, dst, _Reader(batches), quant_format=QuantFormat.QDQ, activation_type=act,
                    weight_type=QuantType.QInt8, per_channel=True)
    return onnx.load(dst)


def run_ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def output_lsb(qdq: onnx.ModelProto) -> float:
    """Scale of the int8 code behind the graph output (the last DequantizeLinear); 0 when the output
    is not dequantized (then only the cosine counts)."""
    out = qdq.graph.output[0].name
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    for node in qdq.graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] == out:
            return float(np.max(inits[node.input[1]]))
    return 0.0


def cosine(a, b) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return 1.0 if denom == 0 else float(a @ b / denom)


def check_seed(seed: int, compile_and_run, workdir: str | None = None) -> dict:
    """Build the model of `seed`, compare Yuan with ONNX Runtime in float and in int8.

    compile_and_run(model, x) -> output array (Yuan's import + compile + run). Returns a dict:
    recipe, float_ok, int8_ok, and details / the error text of what failed."""
    gen = RandomCNN(seed)
    model = gen.build()
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal(gen.input_shape).astype(np.float32)
    result = {"seed": seed, "recipe": gen.recipe}
    try:
        ref, got = run_ort(model, x), compile_and_run(model, x)
        err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-6))
        result["float_ok"], result["float_detail"] = err < 1e-4, f"max rel err {err:.2e}"
    except Exception as exc:  # reported, not raised: the fuzzer counts failures
        result["float_ok"], result["float_detail"] = False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        try:
            qdq = quantize_with_ort(model, [rng.standard_normal(gen.input_shape).astype(np.float32)
                                            for _ in range(4)], tmp, seed)
        except Exception as exc:
            result["int8_ok"], result["int8_detail"] = None, f"ORT could not quantize: {exc}"
            return result
        try:
            ref, got = run_ort(qdq, x), compile_and_run(qdq, x)
            lsb = output_lsb(qdq)
            diff = float(np.abs(got - ref).max())
            cos = cosine(got, ref)
            within = (lsb > 0 and diff <= lsb * 1.001) or cos >= 0.999
            result["int8_ok"] = bool(within)
            result["int8_detail"] = f"max diff {diff / lsb if lsb else diff:.2f} {'LSB' if lsb else ''}, cosine {cos:.5f}"
        except Exception as exc:
            result["int8_ok"], result["int8_detail"] = False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return result
