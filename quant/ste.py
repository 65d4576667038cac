"""Autograd Functions for fake quantization, with straight-through estimators (STE).

Every forward value is exactly `spec.fake_quantize(x, qparams)` (float32, then in
the input's float dtype). Gradients:

* `FakeQuantizeSTE`: clipped STE, d out / d x = 1 where x lies in the
  representable range [(qmin - z) s, (qmax - z) s], 0 outside.
* `LSQFunction` (Esser et al. 2020): the clipped STE for x, and for the scale
  d out / d s = round(x/s) - x/s inside, (qmin - z) below, (qmax - z) above,
  summed per tensor or per channel, times `grad_scale`.
* `TQTFunction` (Jain et al. 2020): the clipped STE for x, and for log2 t
  (s = 2^ceil(log2 t) / 2^(bits-1), STE through ceil, z = 0)
  d out / d log2 t = s ln2 * (round(x/s) - x/s) inside, s ln2 * qmin / qmax outside.

None of these has a single Graph IR op: while a tracer is active, callers use
`quantize_dequantize`, which records a `quantize` and a `dequantize` node with
the same numbers (`fake_quantize_ste` chooses for you).
"""
import numpy as np

from yuan.compiler.ir import QuantParams
from yuan.frontend import autograd
from yuan.frontend.autograd import Function
from yuan.frontend.tensor import Tensor

from . import spec


def _along(param, ndim, axis):
    """Shape a per-tensor (0-d / size-1) or per-channel (1-D) parameter to broadcast along axis."""
    param = np.asarray(param)
    if axis is None or param.ndim == 0:
        return param.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return param.reshape(shape)


def _sum_to(array, axis, shape):
    """Sum an element-wise gradient down to a per-tensor or per-channel parameter shape."""
    if axis is None:
        return np.asarray(array.sum()).reshape(shape)
    axis = axis % array.ndim
    others = tuple(i for i in range(array.ndim) if i != axis)
    return array.sum(axis=others).reshape(shape)


def _clamp_regions(x, scale, zero_point, qmin, qmax, axis):
    """(v = x / s in float32 as the spec computes it, below-range mask, above-range mask)."""
    s = _along(np.asarray(scale, np.float32), x.ndim, axis)
    z = _along(np.asarray(zero_point, np.int64), x.ndim, axis)
    x32 = np.asarray(x, np.float32)
    v = x32 / s
    low = (qmin - z) * s.astype(np.float64)
    high = (qmax - z) * s.astype(np.float64)
    return v, x32 < low, x32 > high


def _output(y, x):
    return y.astype(x.dtype, copy=False) if x.dtype.kind == "f" else y


# ------------------------------------------------------------------ plain STE

class FakeQuantizeSTE(Function):
    """apply(x, qparams=QuantParams): spec.fake_quantize with the clipped STE."""

    ir_op = None  # traced as quantize + dequantize, see quantize_dequantize

    @staticmethod
    def forward(ctx, x, qparams=None):
        _, below, above = _clamp_regions(x, qparams.scale, qparams.zero_point, qparams.qmin,
                                          qparams.qmax, qparams.axis)
        ctx.inside = ~(below | above)
        return _output(spec.fake_quantize(x, qparams), x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.inside


# ------------------------------------------------------------------ LSQ

class LSQFunction(Function):
    """apply(x, scale, zero_point=array, axis, bits, signed, narrow_range, grad_scale, min_scale).

    `scale` is the learnable Tensor; the value used is max(scale, min_scale) in float32.
    """

    ir_op = None

    @staticmethod
    def forward(ctx, x, scale, zero_point=0, axis=None, bits=8, signed=True, narrow_range=False,
                grad_scale=1.0, min_scale=1e-8):
        s = np.maximum(np.asarray(scale, np.float32), np.float32(min_scale))
        qp = QuantParams(s, zero_point, axis, bits, signed, narrow_range)
        v, below, above = _clamp_regions(x, s, zero_point, qp.qmin, qp.qmax, axis)
        z = _along(np.asarray(zero_point, np.int64), x.ndim, axis)
        inside = ~(below | above)
        # d out / d s in units of the grid: round(v) - v inside, (q - z) at the clamps.
        ds = np.where(inside, np.rint(v).astype(np.float64) - v, 0.0)
        ds = ds + below * (qp.qmin - z) + above * (qp.qmax - z)
        ctx.inside, ctx.ds = inside, ds
        ctx.axis, ctx.scale_shape, ctx.grad_scale = axis, np.shape(scale), grad_scale
        return _output(spec.fake_quantize(x, qp), x)

    @staticmethod
    def backward(ctx, g):
        gx = g * ctx.inside if ctx.needs_input_grad[0] else None
        gs = None
        if ctx.needs_input_grad[1]:
            gs = _sum_to(g * ctx.ds, ctx.axis, ctx.scale_shape) * ctx.grad_scale
        return gx, gs


# ------------------------------------------------------------------ TQT

def tqt_scale(log2_t, bits, signed):
    """Power-of-two scale 2^ceil(log2 t) / 2^(bits-1) (signed) or / 2^bits (unsigned), float32."""
    exponent = np.ceil(np.asarray(log2_t, np.float64)) - (bits - 1 if signed else bits)
    return np.ldexp(np.float32(1.0), exponent.astype(np.int32)).astype(np.float32)


class TQTFunction(Function):
    """apply(x, log2_t, axis, bits, signed, narrow_range): symmetric power-of-two fake quant."""

    ir_op = None

    @staticmethod
    def forward(ctx, x, log2_t, axis=None, bits=8, signed=True, narrow_range=False):
        s = tqt_scale(log2_t, bits, signed)
        qp = QuantParams(s, 0, axis, bits, signed, narrow_range)
        v, below, above = _clamp_regions(x, s, 0, qp.qmin, qp.qmax, axis)
        inside = ~(below | above)
        grid = np.where(inside, np.rint(v).astype(np.float64) - v, 0.0) + below * qp.qmin + above * qp.qmax
        ctx.inside = inside
        ctx.dlog = grid * _along(s.astype(np.float64), x.ndim, axis) * np.log(2.0)
        ctx.axis, ctx.shape = axis, np.shape(log2_t)
        return _output(spec.fake_quantize(x, qp), x)

    @staticmethod
    def backward(ctx, g):
        gx = g * ctx.inside if ctx.needs_input_grad[0] else None
        gl = _sum_to(g * ctx.dlog, ctx.axis, ctx.shape) if ctx.needs_input_grad[1] else None
        return gx, gl


# ------------------------------------------------------------------ traced form

class _CodecOp(Function):
    """Base of the traced quantize / dequantize: `convert(array, QuantParams)` is the spec.py
    function; the parameters come in as (scale, zero_point) inputs and attributes."""

    differentiable = False
    convert = None

    @classmethod
    def forward(cls, ctx, x, scale, zero_point, axis=None, bits=8, signed=True, narrow_range=False):
        return cls.convert(x, QuantParams(scale, zero_point, axis, bits, signed, narrow_range))


class QuantizeOp(_CodecOp):
    """apply(x, scale, zero_point, axis, bits, signed, narrow_range) -> integer codes (IR `quantize`)."""

    ir_op = "quantize"
    convert = staticmethod(spec.quantize)

    @classmethod
    def ir_attrs(cls, axis=None, bits=8, signed=True, narrow_range=False):
        return {"axis": axis, "bits": int(bits), "signed": int(bool(signed)),
                "narrow_range": int(bool(narrow_range))}


class DequantizeOp(_CodecOp):
    """apply(q, scale, zero_point, axis, ...) -> float32 (IR `dequantize`)."""

    ir_op = "dequantize"
    convert = staticmethod(spec.dequantize)

    @classmethod
    def ir_attrs(cls, axis=None, **_):
        return {"axis": axis}


def quantize_dequantize(x, qparams, scale=None):
    """Record `quantize` then `dequantize` (used while tracing): value spec.fake_quantize(x, qp).

    `scale` may be the Tensor holding qparams.scale (e.g. a Parameter) so the graph
    constant carries its name; otherwise a constant is made from qparams.
    """
    qp = qparams
    if scale is None or scale.dtype != np.float32 or not np.array_equal(scale.data, qp.scale):
        scale = Tensor(np.array(qp.scale, np.float32))
    zero_point = Tensor(np.asarray(qp.zero_point).astype(spec.storage_dtype(qp.bits, qp.signed)))
    attrs = dict(axis=qp.axis, bits=qp.bits, signed=qp.signed, narrow_range=qp.narrow_range)
    q = QuantizeOp.apply(x, scale, zero_point, **attrs)
    return DequantizeOp.apply(q, scale, zero_point, **attrs)


def fake_quantize_ste(x, qparams):
    """Tensor -> Tensor of value spec.fake_quantize(x, qparams): the clipped STE eagerly,
    a quantize/dequantize pair while a tracer is active."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    if autograd.active_tracer() is not None:
        return quantize_dequantize(x, qparams)
    return FakeQuantizeSTE.apply(x, qparams=qparams)
