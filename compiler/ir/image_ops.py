"""Image preprocessing IR ops: resize, crop, normalize, bgr_to_rgb, hwc_to_chw, to_float.

One file holds each op's schema, shape rule and NumPy kernel, so the interpreter, the frontend's
training transforms (frontend/data/preprocess.py) and the compiled kernels' tests share one
definition. `resize` follows ONNX Resize (opset 13+) exactly as ONNX Runtime computes it: float32
source coordinates, clamped into the image, 4-tap bilinear weights dx*dy, or nearest pixels by
`nearest_mode`. Nearest also resizes integer pixels (uint8 stays uint8, exactly); linear needs floats
(an integer blend would need a rounding rule of its own). 4-D ops take `layout` "NCHW" (default) or
"NHWC" (a decoded camera image).
"""
from __future__ import annotations

import numpy as np

from .errors import ShapeInferenceError
from .layout import LAYOUTS, NCHW, NHWC
from .schema import REQUIRED, AttrSpec, OpSchema
from .shape_inference import FLOAT_DTYPES

RESIZE_MODES = ("linear", "nearest")
COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
INT_DTYPES = ("uint8", "int8", "int16", "int32", "int64")


def _require(cond, msg):
    if not cond:
        raise ShapeInferenceError(msg)


def _choice(attrs, key, choices):
    _require(attrs[key] in choices, f"{key} must be one of {list(choices)}, got {attrs[key]!r}")


def _image_axes(x, attrs, what):
    """(channel, height, width) axes of the 4-D input `x` for attrs["layout"]."""
    _require(len(x.shape) == 4, f"{what} input '{x.name}' must be 4-D, got shape {list(x.shape)}")
    _choice(attrs, "layout", LAYOUTS)
    return (3, 1, 2) if attrs["layout"] == NHWC else (1, 2, 3)


def _with_dims(shape, updates):
    shape = list(shape)
    for axis, size in updates.items():
        shape[axis] = size
    return tuple(shape)


# ---------------------------------------------------------------- resize

def _resize_scales(attrs, in_hw):
    """The per-axis scales the coordinates use: given ones, else output / input (ONNX, float32)."""
    if attrs["scales"] is not None:
        return [np.float32(s) for s in attrs["scales"]]
    return [np.float32(o) / np.float32(i) for o, i in zip(attrs["size"], in_hw)]


def infer_resize(inputs, attrs):
    x = inputs[0]
    _, h, w = _image_axes(x, attrs, "resize")
    for key, choices in (("mode", RESIZE_MODES), ("coordinate_mode", COORDINATE_MODES),
                         ("nearest_mode", NEAREST_MODES)):
        _choice(attrs, key, choices)
    # nearest copies pixels, exact in any dtype; a linear blend of integers would need a rounding rule
    _require(x.dtype in FLOAT_DTYPES or (attrs["mode"] == "nearest" and x.dtype in INT_DTYPES),
             f"resize input '{x.name}' is {x.dtype}: mode {attrs['mode']!r} needs a float tensor (convert "
             f"with to_float first; nearest also takes integer pixels)")
    size = attrs["size"]
    _require(len(size) == 2 and min(size) >= 1, f"size must be [height, width] >= 1, got {size}")
    scales = attrs["scales"]
    _require(scales is None or (len(scales) == 2 and min(scales) > 0),
             f"scales must be two positive numbers, got {scales}")
    return [(_with_dims(x.shape, {h: size[0], w: size[1]}), x.dtype)]


def source_coordinates(out_size: int, in_size: int, scale, mode: str) -> np.ndarray:
    """Input coordinate of each output index (float32, ONNX coordinate_transformation_mode)."""
    x = np.arange(out_size, dtype=np.float32)
    scale = np.float32(scale)
    if mode == "asymmetric":
        return x / scale
    if mode == "align_corners":
        if out_size == 1:
            return np.zeros(1, np.float32)
        return x * np.float32(in_size - 1) / np.float32(out_size - 1)
    if mode == "pytorch_half_pixel" and out_size == 1:
        return np.zeros(1, np.float32)
    return (x + np.float32(0.5)) / scale - np.float32(0.5)


def nearest_indices(coords: np.ndarray, in_size: int, nearest_mode: str) -> np.ndarray:
    """Pixel each coordinate picks; x - floor(x) is exact, so ties are found exactly."""
    lo = np.floor(coords)
    frac = coords - lo
    up = {"round_prefer_floor": frac > 0.5, "round_prefer_ceil": frac >= 0.5,
          "floor": np.zeros_like(frac, bool), "ceil": frac > 0}[nearest_mode]
    return np.clip(lo.astype(np.int64) + up, 0, in_size - 1)


def linear_taps(coords: np.ndarray, in_size: int):
    """(lo, hi, frac): the two pixels each coordinate blends and the weight of `hi`."""
    c = np.clip(coords, np.float32(0), np.float32(in_size - 1))
    lo = np.floor(c).astype(np.int64)
    return lo, np.minimum(lo + 1, in_size - 1), c - lo.astype(np.float32)


def resize_array(x: np.ndarray, attrs: dict, axes=(2, 3)) -> np.ndarray:
    """ONNX Resize of axes (height, width) of `x` to attrs["size"]."""
    x = np.asarray(x)
    (ah, aw), (oh, ow) = axes, attrs["size"]
    in_h, in_w = x.shape[ah], x.shape[aw]
    sh, sw = _resize_scales(attrs, (in_h, in_w))
    ys = source_coordinates(oh, in_h, sh, attrs["coordinate_mode"])
    xs = source_coordinates(ow, in_w, sw, attrs["coordinate_mode"])
    if attrs["mode"] == "nearest":
        rows = nearest_indices(ys, in_h, attrs["nearest_mode"])
        cols = nearest_indices(xs, in_w, attrs["nearest_mode"])
        return np.take(np.take(x, rows, axis=ah), cols, axis=aw)
    y0, y1, fy = linear_taps(ys, in_h)
    x0, x1, fx = linear_taps(xs, in_w)
    one = np.float32(1)

    def along(v, axis):   # a per-row / per-column weight shaped to broadcast on `axis`
        shape = [1] * x.ndim
        shape[axis] = -1
        return v.reshape(shape)

    wy0, wy1, wx0, wx1 = along(one - fy, ah), along(fy, ah), along(one - fx, aw), along(fx, aw)

    def tap(rows, cols):
        return np.take(np.take(x, rows, axis=ah), cols, axis=aw)
    # ONNX Runtime's order: dx2*dy2*X11 + dx1*dy2*X21 + dx2*dy1*X12 + dx1*dy1*X22
    out = (wx0 * wy0) * tap(y0, x0) + (wx1 * wy0) * tap(y0, x1) \
        + (wx0 * wy1) * tap(y1, x0) + (wx1 * wy1) * tap(y1, x1)
    return out.astype(x.dtype, copy=False)


def resize(inputs, attrs):
    _, h, w = (3, 1, 2) if attrs["layout"] == NHWC else (1, 2, 3)
    return resize_array(inputs[0], attrs, (h, w))


# ---------------------------------------------------------------- crop, flips, layout, casts

def infer_crop(inputs, attrs):
    x = inputs[0]
    _, h, w = _image_axes(x, attrs, "crop")
    top, left, height, width = attrs["top"], attrs["left"], attrs["height"], attrs["width"]
    _require(top >= 0 and left >= 0 and height >= 1 and width >= 1,
             f"crop box top={top} left={left} height={height} width={width} must be >= 0 and sizes >= 1")
    _require(top + height <= x.shape[h] and left + width <= x.shape[w],
             f"crop box rows {top}..{top + height}, columns {left}..{left + width} leaves the "
             f"{x.shape[h]}x{x.shape[w]} image '{x.name}'")
    return [(_with_dims(x.shape, {h: height, w: width}), x.dtype)]


def crop(inputs, attrs):
    x = inputs[0]
    h = 1 if attrs["layout"] == NHWC else 2
    index = [slice(None)] * 4
    index[h] = slice(attrs["top"], attrs["top"] + attrs["height"])
    index[h + 1] = slice(attrs["left"], attrs["left"] + attrs["width"])
    return x[tuple(index)]


def infer_normalize(inputs, attrs):
    x = inputs[0]
    c, _, _ = _image_axes(x, attrs, "normalize")
    _require(x.dtype in FLOAT_DTYPES, f"normalize input '{x.name}' must be a float tensor, got {x.dtype}")
    for key in ("mean", "std"):
        _require(len(attrs[key]) in (1, x.shape[c]),
                 f"{key} has {len(attrs[key])} values; the input has {x.shape[c]} channels")
    _require(all(s != 0 for s in attrs["std"]), f"std must be non-zero, got {attrs['std']}")
    return [(x.shape, x.dtype)]


def channel_params(attrs, key, layout, dtype="float32"):
    """attrs[key] as an array broadcasting along the channel axis of a 4-D `layout` tensor."""
    shape = (1, 1, 1, -1) if layout == NHWC else (1, -1, 1, 1)
    return np.asarray(attrs[key], dtype=dtype).reshape(shape)


def normalize(inputs, attrs):
    x = inputs[0]
    mean = channel_params(attrs, "mean", attrs["layout"], x.dtype)
    std = channel_params(attrs, "std", attrs["layout"], x.dtype)
    return (x - mean) / std


def infer_bgr_to_rgb(inputs, attrs):
    x = inputs[0]
    c, _, _ = _image_axes(x, attrs, "bgr_to_rgb")
    _require(x.shape[c] == 3, f"bgr_to_rgb input '{x.name}' must have 3 channels, got {x.shape[c]}")
    return [(x.shape, x.dtype)]


def bgr_to_rgb(inputs, attrs):
    return np.flip(inputs[0], axis=3 if attrs["layout"] == NHWC else 1)


def infer_hwc_to_chw(inputs, attrs):
    x = inputs[0]
    _require(len(x.shape) == 4, f"hwc_to_chw input '{x.name}' must be 4-D NHWC, got {list(x.shape)}")
    n, h, w, c = x.shape
    return [((n, c, h, w), x.dtype)]


HWC_TO_CHW = (0, 3, 1, 2)


def hwc_to_chw(inputs, attrs):
    return np.transpose(inputs[0], HWC_TO_CHW)


def infer_to_float(inputs, attrs):
    x = inputs[0]
    _require(x.dtype in INT_DTYPES, f"to_float input '{x.name}' must be an integer tensor "
                                    f"(e.g. uint8 pixels), got {x.dtype}")
    return [(x.shape, "float32")]


def to_float(inputs, attrs):
    y = inputs[0].astype(np.float32)
    return y if attrs["scale"] == 1.0 else y * np.float32(attrs["scale"])


# ---------------------------------------------------------------- the table

def _str(default=REQUIRED):
    return AttrSpec("str", default)


def image_schemas():
    """The preprocessing rows of the IR op table (ops.py adds them to OP_SCHEMAS)."""
    layout = {"layout": _str(NCHW)}
    yield OpSchema("resize", ("x",), infer_resize, {
        "size": AttrSpec("ints"), "mode": _str("linear"), "coordinate_mode": _str("half_pixel"),
        "nearest_mode": _str("round_prefer_floor"), "scales": AttrSpec("floats", None, optional=True),
        **layout}, doc="ONNX Resize of H, W to size [oh, ow]; scales (default size / input) map coordinates")
    yield OpSchema("crop", ("x",), infer_crop, {
        "top": AttrSpec("int"), "left": AttrSpec("int"), "height": AttrSpec("int"),
        "width": AttrSpec("int"), **layout}, doc="fixed box; must lie inside the image")
    yield OpSchema("normalize", ("x",), infer_normalize, {
        "mean": AttrSpec("floats"), "std": AttrSpec("floats"), **layout},
        doc="(x - mean[c]) / std[c]")
    yield OpSchema("bgr_to_rgb", ("x",), infer_bgr_to_rgb, dict(layout),
                   doc="reverse the 3 channels")
    yield OpSchema("hwc_to_chw", ("x",), infer_hwc_to_chw, doc="NHWC -> NCHW")
    yield OpSchema("to_float", ("x",), infer_to_float, {"scale": AttrSpec("float", 1.0)},
                   doc="integer -> float32, times scale")


IMAGE_KERNELS = {"resize": resize, "crop": crop, "normalize": normalize, "bgr_to_rgb": bgr_to_rgb,
                 "hwc_to_chw": hwc_to_chw, "to_float": to_float}
