"""Preprocessing specs: a small YAML/dict pipeline of image ops -> an IR Graph, prepended to a model so
a compiled module takes raw camera bytes (`yuan compile model.onnx --preprocess PRE.yaml`).

    input: {shape: [1, 480, 640, 3], dtype: uint8, layout: NHWC}
    steps:
      - to_float: {scale: 0.00392156862745098}
      - bgr_to_rgb
      - resize: {size: 256, mode: bilinear}        # int: shorter side, aspect kept; [h, w]: exact
      - center_crop: {size: 224}
      - normalize: imagenet                        # or {mean: [...], std: [...]}
      - hwc_to_chw

Each step becomes one IR op of compiler/ir/image_ops.py (center_crop a `crop`), checked by that op's
shape rule; every problem is one PreprocessSpecError line naming the key (`steps[2] (resize)`).
"""
from __future__ import annotations

import os

from .errors import GraphError
from .graph import Graph
from .image_ops import COORDINATE_MODES, NEAREST_MODES
from .layout import NCHW, NHWC

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}   # on [0, 1] pixels
INPUT_DTYPES = ("uint8", "int8", "uint16", "int16", "float32")
RESIZE_MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest"}
LAYOUT_NAMES = {"NHWC": NHWC, "HWC": NHWC, "NCHW": NCHW, "CHW": NCHW}


class PreprocessSpecError(GraphError):
    """A preprocessing spec is malformed: the message names the key."""


def load_spec(path) -> dict:
    """The spec in a YAML file (a mapping with `input` and `steps`), checked: a bad spec fails here,
    before a caller's slow work."""
    import yaml
    try:
        with open(path) as f:
            spec = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PreprocessSpecError(f"preprocess spec {path}: not valid YAML: {first}") from None
    if not isinstance(spec, dict):
        raise PreprocessSpecError(f"preprocess spec {path}: expected a mapping with 'input' and 'steps'")
    build_preprocess_graph(spec, str(path))
    return spec


class _Builder:
    """Adds one IR node per step, tracking the current value and its layout."""

    def __init__(self, spec: dict, source: str, reserved=()):
        self.source = source
        self.where = "spec"
        self._check_keys(spec, {"input", "steps"}, required={"input", "steps"})
        inp = spec["input"]
        self.where = "input"
        if not isinstance(inp, dict):
            self.fail("expected a mapping with shape, dtype, layout")
        self._check_keys(inp, {"shape", "dtype", "layout", "name"}, required={"shape"})
        shape = inp["shape"]
        if not (isinstance(shape, (list, tuple)) and len(shape) == 4
                and all(isinstance(d, int) and d >= 1 for d in shape)):
            self.fail(f"shape must be 4 positive integers (N, H, W, C or N, C, H, W), got {shape!r}")
        dtype = inp.get("dtype", "uint8")
        if dtype not in INPUT_DTYPES:
            self.fail(f"dtype {dtype!r} is not an image dtype ({', '.join(INPUT_DTYPES)})")
        self.layout = LAYOUT_NAMES.get(str(inp.get("layout", NHWC)).upper())
        if self.layout is None:
            self.fail(f"layout {inp.get('layout')!r} must be NHWC (HWC) or NCHW (CHW)")
        self.graph = Graph("preprocess")
        self.graph.reserve_names(reserved)
        name = str(inp.get("name", "image"))
        self.current = self.graph.add_input(name, tuple(shape), dtype)

    def fail(self, message):
        raise PreprocessSpecError(f"preprocess spec {self.source}: {self.where}: {message}")

    def _check_keys(self, mapping, allowed, required=()):
        unknown = sorted(set(mapping) - set(allowed))
        if unknown:
            self.fail(f"unknown key(s) {unknown}; expected {sorted(allowed) or 'none'}")
        missing = sorted(set(required) - set(mapping))
        if missing:
            self.fail(f"missing key(s) {missing}")

    @property
    def shape(self):
        return self.graph.values[self.current].shape

    def hw(self):
        return self.shape[1:3] if self.layout == NHWC else self.shape[2:4]

    def add(self, op, attrs=None):
        try:
            node = self.graph.add_node(op, [self.current], attrs, name=f"preprocess_{op}")
        except GraphError as exc:
            self.fail(str(exc).split(": ", 1)[-1])
        self.current = node.outputs[0]

    # ------------------------------------------------------------ steps

    def to_float(self, p):
        self._check_keys(p, {"scale"})
        self.add("to_float", {"scale": p.get("scale", 1.0)})

    def bgr_to_rgb(self, p):
        self._check_keys(p, set())
        self.add("bgr_to_rgb", {"layout": self.layout})

    def resize(self, p):
        self._check_keys(p, {"size", "mode", "coordinate_mode", "nearest_mode"}, required={"size"})
        mode = p.get("mode", "bilinear")
        if mode not in RESIZE_MODES:
            self.fail(f"mode {mode!r} must be one of {sorted(RESIZE_MODES)}")
        for key, choices in (("coordinate_mode", COORDINATE_MODES), ("nearest_mode", NEAREST_MODES)):
            if key in p and p[key] not in choices:
                self.fail(f"{key} {p[key]!r} must be one of {list(choices)}")
        attrs = {"size": self._resize_size(p["size"]), "mode": RESIZE_MODES[mode], "layout": self.layout}
        attrs.update({k: p[k] for k in ("coordinate_mode", "nearest_mode") if k in p})
        self.add("resize", attrs)

    def _resize_size(self, size):
        h, w = self.hw()
        if isinstance(size, int) and size >= 1:     # shorter side -> size (torchvision Resize(int))
            return [size, int(size * w / h)] if h <= w else [int(size * h / w), size]
        return self._pair(size, "size")

    def _pair(self, size, key):
        if isinstance(size, int) and size >= 1:
            return [size, size]
        if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v >= 1 for v in size):
            return list(size)
        self.fail(f"{key} must be a positive integer or [height, width], got {size!r}")

    def crop(self, p):
        keys = {"top", "left", "height", "width"}
        self._check_keys(p, keys, required=keys)
        self.add("crop", {**{k: p[k] for k in keys}, "layout": self.layout})

    def center_crop(self, p):
        self._check_keys(p, {"size"}, required={"size"})
        (h, w), (ch, cw) = self.hw(), self._pair(p["size"], "size")
        # torchvision's CenterCrop offsets; a crop larger than the image fails in the crop op's check
        self.add("crop", {"top": int(round((h - ch) / 2)), "left": int(round((w - cw) / 2)),
                          "height": ch, "width": cw, "layout": self.layout})

    def normalize(self, p):
        if p == "imagenet":
            p = IMAGENET
        elif not isinstance(p, dict):
            self.fail(f"expected 'imagenet' or a mapping with mean and std, got {p!r}")
        self._check_keys(p, {"mean", "std"}, required={"mean", "std"})
        self.add("normalize", {"mean": _floats(p["mean"]), "std": _floats(p["std"]), "layout": self.layout})

    def hwc_to_chw(self, p):
        self._check_keys(p, set())
        if self.layout != NHWC:
            self.fail("the image is already NCHW")
        self.add("hwc_to_chw")
        self.layout = NCHW

    def step(self, index, item):
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            name, params = next(iter(item.items()))
            params = {} if params is None else params
        else:
            self.where = f"steps[{index}]"
            self.fail(f"expected an op name or a one-key mapping {{op: {{...}}}}, got {item!r}")
        self.where = f"steps[{index}] ({name})"
        if name not in STEPS:
            self.fail(f"unknown op {name!r}; known: {', '.join(STEPS)}")
        if not isinstance(params, dict) and name != "normalize":
            self.fail(f"expected a mapping of parameters, got {params!r}")
        getattr(self, name)(params)


STEPS = ("to_float", "bgr_to_rgb", "resize", "crop", "center_crop", "normalize", "hwc_to_chw")


def _floats(values):
    values = values if isinstance(values, (list, tuple)) else [values]
    return [float(v) for v in values]


def build_preprocess_graph(spec: dict, source: str = "", reserved=()) -> Graph:
    """The spec as a Graph: one input (the raw image), one output (what the model reads)."""
    b = _Builder(spec, source or "<dict>", reserved)
    steps = spec["steps"]
    if not isinstance(steps, list) or not steps:
        b.where = "steps"
        b.fail("expected a non-empty list of ops")
    for index, item in enumerate(steps):
        b.step(index, item)
    b.graph.mark_output(b.current)
    return b.graph


def prepend_preprocess(model: Graph, spec: dict, source: str = "") -> Graph:
    """`model` reading its first input through the spec's pipeline: the returned graph's first input
    is the raw image (the spec's input.name, default "image"); the model's other inputs stay."""
    source = os.fspath(source) if source else "<dict>"
    target = model.inputs[0]
    pre = build_preprocess_graph(spec, source, reserved=model.values)
    out, want = pre.values[pre.outputs[0]], model.values[target]
    if (out.shape, out.dtype) != (want.shape, want.dtype):
        raise PreprocessSpecError(
            f"preprocess spec {source}: steps give {out.dtype}{list(out.shape)}, but the model's input "
            f"'{target}' is {want.dtype}{list(want.shape)}")
    raw = pre.inputs[0]
    if raw in model.values:
        raise PreprocessSpecError(f"preprocess spec {source}: input.name '{raw}' is taken in the model")
    pre.rename_value(pre.outputs[0], target)
    g = model.copy()
    g.values.update({k: v for k, v in pre.values.items() if k != target})
    g.nodes = pre.nodes + g.nodes
    g.inputs = [raw if i == target else i for i in g.inputs]
    g.values[target] = want
    g.validate()
    return g


__all__ = ["PreprocessSpecError", "load_spec", "build_preprocess_graph", "prepend_preprocess", "STEPS",
           "IMAGENET"]
