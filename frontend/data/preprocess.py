"""Training transforms that are exactly the deployable preprocessing ops (compiler/ir/image_ops.py).

Each transform runs the IR op's own NumPy kernel (through `evaluate_op`, which also checks the
attributes and shapes as the compiler will), so what a model is trained on is what the compiled
module computes from raw camera bytes. They work on NumPy batches in the op's layout (a decoded
camera batch is NHWC uint8); ``__call__`` takes one image (HWC / CHW) and ``batch`` a batch.

    pipeline = Preprocess.from_spec(load_spec("configs/imagenet_preprocess.yaml"))
    x = pipeline.batch(frames)          # uint8 [N, 480, 640, 3] BGR -> float32 [N, 3, 224, 224]
"""
from __future__ import annotations

import numpy as np

from yuan.compiler.ir.interpreter import evaluate_op, run_graph
from yuan.compiler.ir.preprocess import build_preprocess_graph
from .transforms import Transform


class ImageOp(Transform):
    """One preprocessing IR op as a transform: ``ImageOp("resize", size=[224, 224], layout="NHWC")``."""

    op = None

    def __init__(self, op: str | None = None, **attrs):
        super().__init__()
        self.op = op or type(self).op
        self.attrs = attrs

    def batch(self, x, rng=None):
        return evaluate_op(self.op, [np.asarray(x)], self.attrs)[0]

    def __call__(self, x, rng=None):
        return self.batch(np.asarray(x)[None])[0]


class ResizeImage(ImageOp):
    """ONNX Resize of H, W: mode "linear" / "nearest", coordinate_mode, nearest_mode, layout."""
    op = "resize"

    def __init__(self, size, **attrs):
        super().__init__(size=[int(size), int(size)] if np.isscalar(size) else list(size), **attrs)


class CropImage(ImageOp):
    """Fixed box: top, left, height, width, layout."""
    op = "crop"


class NormalizeImage(ImageOp):
    """(x - mean[c]) / std[c] along the layout's channel axis."""
    op = "normalize"


class BgrToRgb(ImageOp):
    op = "bgr_to_rgb"


class HwcToChw(ImageOp):
    op = "hwc_to_chw"


class ToFloat(ImageOp):
    """Integer pixels -> float32, times `scale`."""
    op = "to_float"


class Preprocess(Transform):
    """A preprocessing spec (compiler/ir/preprocess.py) as a transform: the same graph that
    `yuan compile --preprocess` prepends, run by the reference interpreter. Batches may have any
    batch size; the spec's other dimensions must match."""

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = spec
        self._graphs = {}

    @classmethod
    def from_spec(cls, spec: dict) -> "Preprocess":
        build_preprocess_graph(spec)   # a bad spec fails here, not on the first batch
        return cls(spec)

    def _graph(self, batch_size: int):
        if batch_size not in self._graphs:
            shape = [batch_size] + list(self.spec["input"]["shape"][1:])
            self._graphs[batch_size] = build_preprocess_graph(
                {**self.spec, "input": {**self.spec["input"], "shape": shape}})
        return self._graphs[batch_size]

    def batch(self, x, rng=None):
        x = np.asarray(x)
        g = self._graph(len(x))
        return run_graph(g, {g.inputs[0]: x})[g.outputs[0]]

    def __call__(self, x, rng=None):
        return self.batch(np.asarray(x)[None])[0]
