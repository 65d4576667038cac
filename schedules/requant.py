"""Integer requantization: the TE epilogue clamp(((acc * m + 2^(n-1)) >> n) + zy) of every int8 kernel,
its mult/shift placeholders, and the mult/shift arrays read from the node's attrs."""
from __future__ import annotations

import numpy as np
from tvm import te, tirx

INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-2 ** 31, 2 ** 31 - 1)}


def qparams_list(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        return [int(x) for x in np.asarray(v).reshape(-1)]
    return [int(v)]


def requant_arrays(attrs, key_m="multiplier", key_n="shift"):
    """The int32 mult/shift arrays of attrs multiplier/shift, one of them repeated when the other is
    per-channel."""
    m = np.asarray(qparams_list(attrs[key_m]), np.int32)
    n = np.asarray(qparams_list(attrs[key_n]), np.int32)
    if len(m) != len(n):
        if len(m) == 1:
            m = np.repeat(m, len(n))
        elif len(n) == 1:
            n = np.repeat(n, len(m))
        else:
            raise ValueError("multiplier/shift lengths differ")
    return m, n


def out_bounds(attrs, out_dtype):
    """(lo, hi): the output clamp, attrs out_min/out_max inside the dtype's range."""
    lo, hi = INT_RANGES[out_dtype]
    lo = int(attrs.get("out_min", lo) if attrs.get("out_min") is not None else lo)
    hi = int(attrs.get("out_max", hi) if attrs.get("out_max") is not None else hi)
    return lo, hi


def requant(acc, m, n, zy, lo, hi, out_dtype):
    """clamp(((int64(acc) * m + (1 << (n - 1))) >> n) + zy, lo, hi) cast to out_dtype (all int64 math)."""
    a = acc.astype("int64")
    m = m.astype("int64")
    n = n.astype("int64")
    one = tirx.const(1, "int64")
    r = tirx.shift_right(a * m + tirx.shift_left(one, n - one), n) + tirx.const(int(zy), "int64")
    r = te.max(te.min(r, tirx.const(int(hi), "int64")), tirx.const(int(lo), "int64"))
    return r.astype(out_dtype)


def per_channel(buf, c):
    """Element c of a per-channel parameter buffer, or its only element when it is per-tensor."""
    return buf[c] if int(buf.shape[0]) > 1 else buf[0]


def output_params(attrs, out_type):
    """(y_zero_point, out dtype, lo, hi) of a requantizing kernel."""
    odt = out_type[1]
    lo, hi = out_bounds(attrs, odt)
    return int(attrs.get("y_zero_point", 0)), odt, lo, hi


class RequantEpilogue:
    """The write-back of an int32 accumulator: mult/shift placeholders (length 1 or the channel count,
    from attrs) and the output zero point, dtype and bounds. ``params`` go after the kernel's other
    inputs; ``epilogue(acc_value, c)`` requantizes with channel c's (or the only) mult/shift."""

    def __init__(self, attrs, out_type):
        m_arr, _ = requant_arrays(attrs)
        self.mult = te.placeholder((len(m_arr),), "int32", "mult")
        self.shift = te.placeholder((len(m_arr),), "int32", "shift")
        self.zero_point, self.dtype, self.lo, self.hi = output_params(attrs, out_type)

    @property
    def params(self):
        return [self.mult, self.shift]

    def __call__(self, acc, c):
        return requant(acc, per_channel(self.mult, c), per_channel(self.shift, c), self.zero_point, self.lo, self.hi,
                       self.dtype)
