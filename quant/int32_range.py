"""The int32 range of conv2d / linear (quant/SPEC.md §5, "Int32 range"), checked at conversion.

The integer arithmetic keeps the bias and the accumulator in int32, and both grow with the bit
widths: the bias code is b / (s_x · s_w[c]), which finer scales (more bits) make larger; the
accumulator Σ (q_x - z_x) · q_w grows with both code ranges.

* A bias code past int32 would be clipped: every output of that channel is wrong, whatever the
  input. That is certain, so it is a QuantError.
* An accumulator past int32 happens only for some inputs. The bound below is the worst case over
  all inputs; real data usually stays far below it, and the integer reference checks every
  accumulator it computes (a QuantError when one leaves int32). So a layer over the bound gets a
  QuantWarning: the conversion goes on, and the user learns which layer is at risk and why.

Error messages name the bit widths and what to change; callers prefix the layer (graph node or
module), as every quant error does. Warnings carry the layer themselves.
"""
import math
import warnings

import numpy as np

from . import spec
from .errors import QuantError, QuantWarning

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def checked_bias_codes(bias, q_w, qp_x, qp_w, layer):
    """int32 bias codes (SPEC §5) of a conv2d / linear with integer weights `q_w` [O, ...]: a
    QuantError if they would be clipped, a QuantWarning naming `layer` if some input could push
    the accumulator out of int32. `bias` may be None (then None is returned)."""
    check_bias_fits(bias, qp_x, qp_w, q_w.shape[0])
    bias_q = None if bias is None else spec.quantize_bias(bias, qp_x.scale, _per_channel(qp_w.scale, q_w.shape[0]))
    _warn_if_accumulator_may_overflow(q_w, bias_q, qp_x, qp_w, layer)
    return bias_q


def check_bias_fits(bias, qp_x, qp_w, channels):
    """QuantError if b / (s_x · s_w[c]) leaves int32 for some channel (quantize_bias would clip it).
    No bias (None) always fits."""
    if bias is None:
        return
    s_w = _per_channel(qp_w.scale, channels).astype(np.float64)
    codes = _bias_codes(bias, qp_x, s_w)
    if _fits_int32(codes):
        return
    channel = int(np.argmax(np.abs(codes)))
    worst = abs(float(codes[channel]))
    # Per-tensor weights give every channel the largest s_w: offered only where that is enough.
    per_tensor_fits = qp_w.axis is not None and _fits_int32(_bias_codes(bias, qp_x, s_w.max()))
    raise QuantError(
        f"{_bit_widths(qp_x, qp_w)}: the int32 bias overflows: |bias / (s_x * s_w)| reaches {worst:.3g} "
        f"in output channel {channel} (int32 max {INT32_MAX}), so it would be clipped and the outputs wrong; "
        f"use {_fewer_bits(worst)} (e.g. 8-bit activations and weights)"
        f"{', or per-tensor weight scales (per_channel=False)' if per_tensor_fits else ''}")


def _bias_codes(bias, qp_x, s_w):
    """round_half_even(b / (s_x · s_w)) in float64, as quantize_bias computes it before its clamp
    hides an overflow."""
    scale = np.float64(np.asarray(qp_x.scale, np.float32).reshape(())) * s_w
    return np.rint(np.asarray(bias, np.float32).astype(np.float64) / scale)


def _fits_int32(codes):
    return bool(np.all((codes >= INT32_MIN) & (codes <= INT32_MAX)))


def accumulator_bound(q_w, bias_q, qp_x):
    """Per output channel, max |q_x - z_x| · Σ |q_w| + |bias_q|: no input can take |acc| past it."""
    weight_l1 = np.abs(np.asarray(q_w, np.int64).reshape(q_w.shape[0], -1)).sum(axis=1)
    bound = max_input_code(qp_x) * weight_l1
    if bias_q is not None:
        bound = bound + np.abs(np.asarray(bias_q, np.int64).reshape(-1))
    return bound


def max_input_code(qp_x):
    """The largest |q_x - z_x| an input code can take (the zero point may sit anywhere in range)."""
    z = int(np.asarray(qp_x.zero_point).reshape(-1)[0])
    return max(qp_x.qmax - z, z - qp_x.qmin)


def _warn_if_accumulator_may_overflow(q_w, bias_q, qp_x, qp_w, layer):
    bound = accumulator_bound(q_w, bias_q, qp_x)
    channel = int(np.argmax(bound))
    if bound[channel] <= INT32_MAX:
        return
    warnings.warn(
        f"{layer}: {_bit_widths(qp_x, qp_w)}: the int32 accumulator may overflow on some inputs: "
        f"max |q_x - z_x| {max_input_code(qp_x)} x sum |q_w| + |bias| reaches {bound[channel]:.3g} in output "
        f"channel {channel} (int32 max {INT32_MAX}); use {_fewer_bits(bound[channel])} "
        f"(e.g. 8-bit activations and weights) to rule it out", QuantWarning, stacklevel=3)


def _per_channel(scale, channels):
    return np.broadcast_to(np.asarray(scale, np.float32), (channels,))


def _bit_widths(qp_x, qp_w):
    return f"{qp_x.bits}-bit activations x {qp_w.bits}-bit weights"


def _fewer_bits(value):
    """What brings `value` into int32: each activation or weight bit fewer halves it."""
    bits = max(1, math.ceil(math.log2(value / INT32_MAX)))
    return f"at least {bits} bit{'s' if bits > 1 else ''} fewer across activations and weights"
