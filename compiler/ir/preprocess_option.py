"""What `yuan compile --preprocess X` names, turned into a preprocessing spec (compiler/ir/preprocess.py):

* a YAML file (`pre.yaml`), or a bundled one by name (`imagenet` -> configs/imagenet_preprocess.yaml);
* an inline list `key=value,...`, for the common case without writing a file:

      resize=256,crop=224,normalize=imagenet,layout=hwc,dtype=uint8,order=bgr,input=480x640

  keys: `input` (HxW of the raw image; default: the model input's HxW), `dtype` (of the raw image;
  default uint8), `layout` (hwc | chw, or nhwc | nchw; default hwc), `order` (rgb | bgr; default rgb), `scale`
  (multiplies integer pixels when they become float; default 1/255, as torchvision's ToTensor),
  `resize` (N: shorter side, or HxW), `mode` (bilinear | linear | nearest), `crop` (N or HxW, centred),
  `normalize` (imagenet, or MEAN/MEAN/MEAN:STD/STD/STD).
  The steps always run in one order: to float, BGR->RGB, resize, centre crop, normalize, HWC->CHW.

The option is read and checked before any slow work; an inline spec is completed (batch, channels,
default size) from the model's first input once the model is imported.
"""
from __future__ import annotations

import importlib.resources
import os

from .layout import NHWC
from .preprocess import LAYOUT_NAMES, RESIZE_MODES, PreprocessSpecError, build_preprocess_graph, load_spec

INLINE_KEYS = ("input", "dtype", "layout", "order", "scale", "resize", "mode", "crop", "normalize")


class PreprocessOption:
    """A parsed --preprocess value: `spec_for(model_graph)` gives the spec dict; `source` names it."""

    def __init__(self, text: str):
        self.source = text
        self._spec = None
        self._inline = None
        if "=" in text:
            self._inline = _parse_inline(text)
        elif os.path.isfile(text):
            self._spec = load_spec(text)
        else:
            bundled = importlib.resources.files("yuan.configs").joinpath(f"{text}_preprocess.yaml")
            if not bundled.is_file():
                raise PreprocessSpecError(f"--preprocess {text!r}: no such file, bundled spec (imagenet) or "
                                          f"inline list (key=value,...; keys: {', '.join(INLINE_KEYS)})")
            with importlib.resources.as_file(bundled) as path:
                self._spec = load_spec(path)

    def spec_for(self, model) -> dict:
        if self._spec is not None:
            return self._spec
        spec = _inline_spec(self._inline, model.values[model.inputs[0]].shape, self.source)
        build_preprocess_graph(spec, self.source)   # the spec's own checks, naming the step
        return spec


def _fail(text, message):
    raise PreprocessSpecError(f"--preprocess {text!r}: {message}")


def _parse_inline(text: str) -> dict:
    options = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key or not value:
            _fail(text, f"'{item}' is not key=value")
        if key not in INLINE_KEYS:
            _fail(text, f"unknown key '{key}'; keys: {', '.join(INLINE_KEYS)}")
        if key in options:
            _fail(text, f"'{key}' is given twice")
        options[key] = value
    # the names the YAML form accepts (preprocess.py), written in lower case
    for key, allowed in (("layout", [k.lower() for k in LAYOUT_NAMES]), ("order", ("rgb", "bgr")),
                         ("mode", list(RESIZE_MODES))):
        if key in options and options[key].lower() not in allowed:
            _fail(text, f"{key}={options[key]} must be one of {', '.join(allowed)}")
    for key in ("input", "resize", "crop"):
        if key in options:
            options[key] = _size(text, key, options[key], single_ok=key != "input")
    if "scale" in options:
        options["scale"] = _number(text, "scale", options["scale"])
    if "normalize" in options:
        options["normalize"] = _mean_std(text, options["normalize"])
    return options


def _size(text, key, value, single_ok):
    parts = value.lower().split("x")
    if not all(p.isdigit() and int(p) >= 1 for p in parts) or len(parts) not in ((1, 2) if single_ok else (2,)):
        _fail(text, f"{key}={value} must be {'N or ' if single_ok else ''}HxW with positive integers")
    return int(parts[0]) if len(parts) == 1 else [int(p) for p in parts]


def _number(text, key, value):
    try:
        if "/" in value:
            num, den = value.split("/")
            return float(num) / float(den)
        return float(value)
    except (ValueError, ZeroDivisionError):
        _fail(text, f"{key}={value} is not a number (e.g. 0.0039 or 1/255)")


def _mean_std(text, value):
    if value == "imagenet":
        return value
    mean, sep, std = value.partition(":")
    try:
        pair = {"mean": [float(v) for v in mean.split("/")], "std": [float(v) for v in std.split("/")]}
    except ValueError:
        pair = None
    if not sep or pair is None:
        _fail(text, f"normalize={value} must be imagenet or MEAN/MEAN/MEAN:STD/STD/STD")
    return pair


def _inline_spec(options: dict, model_shape, text: str) -> dict:
    """The YAML-form spec of an inline option, for a model whose first input is `model_shape` (NCHW)."""
    if len(model_shape) != 4:
        _fail(text, f"the model's first input is {list(model_shape)}, not an NCHW image")
    n, c, h, w = model_shape
    ih, iw = options.get("input", [h, w])
    layout = LAYOUT_NAMES[options.get("layout", "hwc").upper()]
    dtype = options.get("dtype", "uint8")
    steps = []
    if dtype != "float32":
        steps.append({"to_float": {"scale": options.get("scale", 1 / 255)}})
    if options.get("order", "rgb").lower() == "bgr":
        steps.append("bgr_to_rgb")
    if "resize" in options:
        steps.append({"resize": {"size": options["resize"], "mode": options.get("mode", "bilinear").lower()}})
    if "crop" in options:
        steps.append({"center_crop": {"size": options["crop"]}})
    if "normalize" in options:
        steps.append({"normalize": options["normalize"]})
    if layout == NHWC:
        steps.append("hwc_to_chw")
    if not steps:
        _fail(text, "asks for no preprocessing (a float32 CHW image at the model's size is its input already)")
    shape = [n, ih, iw, c] if layout == NHWC else [n, c, ih, iw]
    return {"input": {"shape": shape, "dtype": dtype, "layout": layout}, "steps": steps}


__all__ = ["PreprocessOption", "INLINE_KEYS"]
