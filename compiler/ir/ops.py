"""The IR op table (docs/design.md, "IR ops") as data: op name -> OpSchema."""
from __future__ import annotations

import dataclasses

from . import shape_inference as si
from .layout import LAYOUT_OPS, NCHW, layout_aware_infer
from .errors import GraphError
from .image_ops import image_schemas
from .schema import REQUIRED, AttrSpec, Derived, OpSchema


def _attrs(**specs) -> dict[str, AttrSpec]:
    return specs


INT = lambda default=REQUIRED: AttrSpec("int", default)           # noqa: E731
FLOAT = lambda default=REQUIRED: AttrSpec("float", default)       # noqa: E731
INTS = lambda default=REQUIRED: AttrSpec("ints", default)         # noqa: E731
OPT_FLOAT = AttrSpec("float", None, optional=True)
OPT_INT = AttrSpec("int", None, optional=True)

# Pools default their stride to the kernel size, like frontend's max_pool2d(stride=None).
STRIDES_LIKE_KERNEL = Derived(lambda attrs, inputs: attrs["kernel"], "same as kernel")
POOL_ATTRS = dict(kernel=INTS(), strides=AttrSpec("ints", STRIDES_LIKE_KERNEL),
                  pads=INTS([0, 0, 0, 0]), ceil_mode=INT(0))
REDUCE_ATTRS = dict(axes=AttrSpec("ints", Derived(si.all_axes, "all axes")), keepdims=INT(1))


def _schemas():
    yield OpSchema("conv2d", ("x", "w", "b?"), si.conv2d, _attrs(
        strides=INTS([1, 1]), pads=INTS([0, 0, 0, 0]), dilations=INTS([1, 1]), group=INT(1)),
        doc="2-D convolution, weight [O, I/group, kh, kw], pads [top, left, bottom, right]")
    yield OpSchema("linear", ("x", "w", "b?"), si.linear, doc="y = x @ w.T + b, w [out, in]")
    yield OpSchema("matmul", ("a", "b"), si.matmul, doc="NumPy matmul semantics")
    yield OpSchema("batch_norm", ("x", "scale", "bias", "mean", "var"), si.batch_norm,
                   _attrs(epsilon=FLOAT(1e-5)), doc="inference-form batch norm over axis 1")
    for op in ("relu", "identity", "neg"):
        yield OpSchema(op, ("x",), si.same_as_input)
    for op in ("sigmoid", "tanh", "hardswish", "exp", "log", "sqrt"):
        yield OpSchema(op, ("x",), si.float_unary)
    yield OpSchema("leaky_relu", ("x",), si.float_unary, _attrs(alpha=FLOAT(0.01)),
                   doc="x where x >= 0, else alpha * x")
    yield OpSchema("hardsigmoid", ("x",), si.hardsigmoid,
                   _attrs(alpha=FLOAT(1.0 / 6.0), beta=FLOAT(0.5)),
                   doc="max(0, min(1, alpha * x + beta))")
    yield OpSchema("clip", ("x",), si.clip, _attrs(min=OPT_FLOAT, max=OPT_FLOAT),
                   doc="clamp to [min, max]; None means unbounded on that side")
    yield OpSchema("max_pool2d", ("x",), si.max_pool2d, _attrs(**POOL_ATTRS))
    yield OpSchema("avg_pool2d", ("x",), si.avg_pool2d,
                   _attrs(**POOL_ATTRS, count_include_pad=INT(1)))
    yield OpSchema("global_avg_pool2d", ("x",), si.global_avg_pool2d, doc="output N,C,1,1")
    yield OpSchema("adaptive_avg_pool2d", ("x",), si.adaptive_avg_pool2d,
                   _attrs(output_size=INTS()), doc="PyTorch adaptive average pooling bins")
    for op in ("add", "sub", "mul", "div", "pow"):
        yield OpSchema(op, ("a", "b"), si.broadcast, doc="NumPy broadcasting")
    yield OpSchema("concat", ("xs*",), si.concat, _attrs(axis=INT()))
    yield OpSchema("split", ("x",), si.split, _attrs(axis=INT(), sizes=INTS()),
                   num_outputs=lambda attrs: len(attrs["sizes"]))
    yield OpSchema("reshape", ("x",), si.reshape, _attrs(shape=INTS()),
                   doc="shape may hold one -1; 0 is a literal zero-sized dim")
    yield OpSchema("flatten", ("x",), si.flatten, _attrs(axis=INT(1)),
                   doc="keep dims before axis, flatten the rest (torch.flatten(x, axis))")
    yield OpSchema("transpose", ("x",), si.transpose, _attrs(perm=INTS()))
    yield OpSchema("squeeze", ("x",), si.squeeze, _attrs(axes=INTS()))
    yield OpSchema("unsqueeze", ("x",), si.unsqueeze, _attrs(axes=INTS()),
                   doc="axes index the output")
    yield OpSchema("slice", ("x",), si.slice_, _attrs(
        starts=INTS(), ends=INTS(),
        axes=AttrSpec("ints", Derived(lambda a, i: list(range(len(a["starts"]))), "0..n-1")),
        steps=AttrSpec("ints", Derived(lambda a, i: [1] * len(a["starts"]), "all 1"))),
        doc="Python slicing per axis (out-of-range starts/ends are clamped)")
    for op in ("reduce_mean", "reduce_sum", "reduce_max"):
        yield OpSchema(op, ("x",), si.reduce, _attrs(**REDUCE_ATTRS),
                       doc="axes default to all axes; [] reduces nothing")
    for op in ("softmax", "log_softmax"):
        yield OpSchema(op, ("x",), si.softmax, _attrs(axis=INT(-1)))
    yield OpSchema("pad", ("x",), si.pad, _attrs(
        pads=INTS(), mode=AttrSpec("str", "constant"), value=FLOAT(0.0)),
        doc="pads [begin..., end...] (ONNX order); negative pads crop; modes constant/reflect/edge")
    yield OpSchema("channel_shuffle", ("x",), si.channel_shuffle, _attrs(groups=INT()))
    yield OpSchema("quantize", ("x", "scale", "zero_point?"), si.quantize, _attrs(
        axis=OPT_INT, bits=INT(8), signed=INT(1), narrow_range=INT(0)),
        doc="q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)")
    yield OpSchema("dequantize", ("x", "scale", "zero_point?"), si.dequantize,
                   _attrs(axis=OPT_INT), doc="y = (x - zero_point) * scale")
    yield from image_schemas()
    yield from _integer_schemas()


# Integer ops (design.md "Integer IR ops"): SPEC §5 arithmetic, run by compiler.ir.integer_spec.
STR = lambda default=REQUIRED: AttrSpec("str", default)           # noqa: E731
OUTPUT_ATTRS = dict(y_zero_point=INT(), out_min=INT(), out_max=INT(), out_dtype=STR())
REQUANT_ATTRS = dict(x_zero_point=INT(), multiplier=INTS(), shift=INTS(), **OUTPUT_ATTRS)
CONV_ATTRS = dict(strides=INTS([1, 1]), pads=INTS([0, 0, 0, 0]), dilations=INTS([1, 1]), group=INT(1))
REQUANT_DOC = "y = clamp(((acc * m + (1 << (n - 1))) >> n) + y_zero_point, out_min, out_max)"


def _integer_schemas():
    yield OpSchema("qconv2d", ("x", "w", "b?"), si.qconv2d, _attrs(**CONV_ATTRS, **REQUANT_ATTRS),
                   doc="acc = conv(x - x_zero_point, w int8) + b int32; " + REQUANT_DOC)
    yield OpSchema("qlinear", ("x", "w", "b?"), si.qlinear, _attrs(**REQUANT_ATTRS),
                   doc="acc = (x - x_zero_point) @ w.T + b; " + REQUANT_DOC)
    yield OpSchema("qadd", ("a", "b"), si.qadd, _attrs(
        a_zero_point=INT(), b_zero_point=INT(), a_multiplier=INT(), b_multiplier=INT(), shift=INT(),
        **OUTPUT_ATTRS), doc="clamp(((A*m_a + B*m_b + (1 << (n-1))) >> n) + y_zero_point, out_min, out_max)")
    yield OpSchema("requantize", ("x",), si.requantize, _attrs(**REQUANT_ATTRS),
                   doc="acc = x - x_zero_point; " + REQUANT_DOC + " (per-channel m/n along axis 1)")
    yield OpSchema("qavg_pool2d", ("x", "multiplier_map", "shift_map"), si.qavg_pool2d, _attrs(
        kernel=INTS(), strides=AttrSpec("ints", STRIDES_LIKE_KERNEL), pads=INTS([0, 0, 0, 0]),
        x_zero_point=INT(), **OUTPUT_ATTRS),
        doc="acc = window sum of x - x_zero_point (pads add 0); m/n per output cell from the maps")
    yield OpSchema("qglobal_avg_pool2d", ("x",), si.qglobal_avg_pool2d, _attrs(**REQUANT_ATTRS),
                   doc="acc = sum over H, W of x - x_zero_point; output N,C,1,1")
    yield OpSchema("lut", ("x", "table"), si.lut, doc="y = table[x - qmin(x.dtype)]")


def _with_layout(schema: OpSchema) -> OpSchema:
    """Ops in LAYOUT_OPS take layout="NCHW" (default) or "NHWC" (ir/layout.py)."""
    if schema.name not in LAYOUT_OPS:
        return schema
    return dataclasses.replace(schema, infer=layout_aware_infer(schema.infer),
                               attrs={**schema.attrs, "layout": AttrSpec("str", NCHW)})


OP_SCHEMAS: dict[str, OpSchema] = {s.name: _with_layout(s) for s in _schemas()}


def get_schema(op: str) -> OpSchema:
    try:
        return OP_SCHEMAS[op]
    except KeyError:
        raise GraphError(f"unknown IR op '{op}'; known ops: {', '.join(sorted(OP_SCHEMAS))}") from None
