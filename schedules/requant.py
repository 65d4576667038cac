"""Integer requantization: the TE epilogue clamp(((acc * m + 2^(n-1)) >> n) + zy) of every int8 kernel,
its mult/shift placeholders, and the mult/shift arrays read from the node's attrs.

Two formulations of the same integer function (quant/SPEC.md §4), chosen per kernel at build time:

* ``requant``: the spec as written, in int64 (any m, n in [1, 62]).
* ``requant32``: 32-bit lanes and one high multiply, for every shift n in [33, 62] (all the convs, pools and
  linears of the zoo models have n in [35, 45]: M = m / 2^n < 2^-2 is a typical conv scale ratio).

Proof that requant32 equals requant for every int32 acc, every m in [0, 2^31), n in [33, 62]:
  Let P = acc * m (exact, |P| < 2^62).
  (1) H = (int64(acc) * int64(m)) >> 32 = floor(P / 2^32), and |H| <= 2^30 fits int32 (LLVM emits it as
      a signed high multiply: vpmuldq on even and odd lanes, no 64-bit shifts or adds).
  (2) u = H >> (n - 33) = floor(floor(P / 2^32) / 2^(n-33)) = floor(P / 2^(n-1)) (nested floor
      divisions by positive integers compose); n - 33 in [0, 29], so the shift is defined.
  (3) Write P = u * 2^(n-1) + r with 0 <= r < 2^(n-1). Then
      floor((P + 2^(n-1)) / 2^n) = floor((u + 1) / 2 + r / 2^n) = floor((u + 1) / 2) = (u + 1) >> 1,
      because (u + 1) / 2 is an integer or a half-integer and r / 2^n < 1/2 never reaches the next one.
      |u| <= 2^30, so u + 1 does not overflow.
  (4) |q| <= 2^29, so q + zy stays in int32 for |zy| < 2^30, and the clamp to [lo, hi] is the same in
      int32 as in int64.
The formula is therefore the spec's result for the whole input range; tests/schedules/test_requant.py
checks it on the edges (acc = INT32_MIN, INT32_MAX, +-2^k +- 1; m = 0, 2^30, 2^31 - 1; n = 33 and 62) and on
random sweeps against Python integers.

``requant32_rounded`` folds the rounding and the zero point into one add before one shift: with s = n - 33
and c = 1 + 2 * zy,
  (5) ((u + 1) >> 1) + zy = floor((u + c) / 2) (2 * zy is even), and u + c = floor((H + c * 2^s) / 2^s), so
      by (2)'s nested floors the result is (H + K) >> (n - 32) with K = c * 2^s = (1 + 2 * zy) << (n - 33).
  (6) When |K| < 2^30 (`rounded32_applies`: every channel's shift, checked at build time), |H| <= 2^30 gives
      |H + K| < 2^31: it fits int32, and n - 32 is in [1, 30].
Two vector instructions fewer per 16 outputs than requant32 (an add and a shift; the zero point rides in K).
"""
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
    return _clamp_cast(r, "int64", lo, hi, out_dtype)


# requant32 is exact for these shifts (proof in the module docstring)
EXACT32_SHIFTS = (33, 62)


def _high_product(acc, m, n):
    """(H, n - 33): the high half of acc * m (module docstring (1)) and the shift left to apply to it."""
    high = tirx.shift_right(acc.astype("int64") * m.astype("int64"), tirx.const(32, "int64")).astype("int32")
    # & 31 changes nothing for n in [33, 62] but bounds the shift for TVM's analyzer, which otherwise
    # derives a bogus range for `high >> (n - 33)` and drops the output clamp as redundant.
    return high, tirx.bitwise_and(n - tirx.const(EXACT32_SHIFTS[0], "int32"), tirx.const(31, "int32"))


def requant32(acc, m, n, zy, lo, hi, out_dtype):
    """requant for shifts n in EXACT32_SHIFTS, m in [0, 2^31), |zy| < 2^30, with int32 lanes:
    u = mulhi(acc, m) >> (n - 33); q = (u + 1) >> 1 (module docstring: equal to requant bit for bit)."""
    high, s = _high_product(acc, m, n)
    u = tirx.shift_right(high, s)
    one = tirx.const(1, "int32")
    r = tirx.shift_right(u + one, one) + tirx.const(int(zy), "int32")
    return _clamp_cast(r, "int32", lo, hi, out_dtype)


def requant32_rounded(acc, m, n, zy, lo, hi, out_dtype):
    """requant32 with the rounding and zy in one add: (H + ((1 + 2 zy) << (n - 33))) >> (n - 32), H the high
    product (module docstring (5), (6)); only where `rounded32_applies`."""
    high, s = _high_product(acc, m, n)
    k = tirx.shift_left(tirx.const(1 + 2 * int(zy), "int32"), s)
    r = tirx.shift_right(high + k, s + tirx.const(1, "int32"))
    return _clamp_cast(r, "int32", lo, hi, out_dtype)


def rounded32_applies(n_arr, zy):
    """Whether requant32_rounded's K = (1 + 2 zy) << (n - 33) stays below 2^30 for every shift (requant32's
    conditions besides)."""
    s = np.asarray(n_arr, np.int64) - EXACT32_SHIFTS[0]
    return bool(np.all(abs(1 + 2 * int(zy)) * (np.int64(1) << s) < 2 ** 30))


def wrapping_add(a, b):
    """a + b for int32 values whose sum fits int32 (an int32 accumulator plus its bias), computed as uint32:
    LLVM then cannot widen a signed `add nsw` into a 64-bit add in front of requant32's product, which
    would cost it the 32-bit high multiply (vpmuldq)."""
    return (a.astype("uint32") + b.astype("uint32")).astype("int32")


def exact32_applies(m_arr, n_arr, zy):
    """Whether requant32 computes the spec for these mult/shift arrays and output zero point."""
    m_arr, n_arr = np.asarray(m_arr, np.int64), np.asarray(n_arr, np.int64)
    return bool(np.all((n_arr >= EXACT32_SHIFTS[0]) & (n_arr <= EXACT32_SHIFTS[1])) and np.all(m_arr >= 0)
                and np.all(m_arr < 2 ** 31) and abs(int(zy)) < 2 ** 30)


def _clamp_cast(r, dtype, lo, hi, out_dtype):
    r = te.max(te.min(r, tirx.const(int(hi), dtype)), tirx.const(int(lo), dtype))
    return r.astype(out_dtype)


def qadd_value(a, b, za, zb, code_range, ma, mb, shift, zy, lo, hi, out_dtype):
    """SPEC §5 add: clamp(((A * ma + B * mb + 2^(shift-1)) >> shift) + zy, lo, hi), A = a - za, B = b - zb.
    a, b: integer codes (TE values) within code_range = (min, max) (an 8-bit dtype's range for int8 /
    uint8 inputs). In int32 (``qadd32``) when its proof covers the constants, else in int64."""
    za, zb, ma, mb, shift = (int(v) for v in (za, zb, ma, mb, shift))
    bound = max(max(abs(code_range[0] - z), abs(code_range[1] - z)) for z in (za, zb))
    if bound <= 255 and QADD32_SHIFTS[0] <= shift <= QADD32_SHIFTS[1] and 0 <= min(ma, mb) \
            and max(ma, mb) < 2 ** 31 and abs(int(zy)) < 2 ** 30:
        I32 = lambda v: tirx.const(int(v), "int32")   # noqa: E731
        A, B = a.astype("int32") - I32(za), b.astype("int32") - I32(zb)
        return qadd32(A, B, ma, mb, shift, zy, lo, hi, out_dtype)
    I64 = lambda v: tirx.const(int(v), "int64")   # noqa: E731
    A, B = a.astype("int64") - I64(za), b.astype("int64") - I64(zb)
    r = tirx.shift_right(A * I64(ma) + B * I64(mb) + I64(1 << (shift - 1)), I64(shift)) + I64(zy)
    return _clamp_cast(r, "int64", lo, hi, out_dtype)


# qadd32 is exact for these shifts
QADD32_SHIFTS = (17, 46)


def qadd32(A, B, ma, mb, shift, zy, lo, hi, out_dtype):
    """The add of SPEC §5 in int32 for |A|, |B| <= 255, ma, mb in [0, 2^31), shift n in [17, 46],
    |zy| < 2^30. Proof: split m = h * 2^16 + l (0 <= h < 2^15, 0 <= l < 2^16); then
    S = A * ma + B * mb = H * 2^16 + L with H = A * ha + B * hb (|H| < 2 * 255 * 2^15 < 2^24) and
    L = A * la + B * lb (|L| < 2 * 255 * 2^16 < 2^25), both exact in int32. Since 2^(n-1) = 2^(n-17) * 2^16,
      floor((S + 2^(n-1)) / 2^n) = floor(floor(((H + 2^(n-17)) * 2^16 + L) / 2^16) / 2^(n-16))
                                 = (H + 2^(n-17) + (L >> 16)) >> (n - 16)
    (nested floor divisions compose; >> is flooring), where the sum is below 2^24 + 2^29 + 2^9 < 2^31 and
    the shift n - 16 is in [1, 30]. The result is below 2^30 in magnitude, so + zy and the clamp are exact."""
    I32 = lambda v: tirx.const(int(v), "int32")   # noqa: E731
    (ha, la), (hb, lb) = divmod(int(ma), 1 << 16), divmod(int(mb), 1 << 16)
    H = A * I32(ha) + B * I32(hb)
    L = A * I32(la) + B * I32(lb)
    r = tirx.shift_right(H + I32(1 << (shift - 17)) + tirx.shift_right(L, I32(16)), I32(shift - 16)) + I32(zy)
    return _clamp_cast(r, "int32", lo, hi, out_dtype)


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
    inputs; ``epilogue(acc_value, c)`` requantizes with channel c's (or the only) mult/shift.
    The kernel is specialised on the attrs' shifts: when they all allow it, it uses the 32-bit ``requant32``
    (so the mult/shift buffers must be the ones kernel_inputs makes from the same attrs).

    attrs ``fused_add`` (set by compiler/relax/fuse_residual.py) asks for the qadd that consumes the conv to
    be computed here too (``ResidualAdd``). Only kernels that pass ``fuses_add=True`` (and the output index
    to ``epilogue``) accept it; for the others the constructor raises, so selection skips them."""

    def __init__(self, attrs, out_type, fuses_add=False):
        m_arr, n_arr = requant_arrays(attrs)
        self.mult = te.placeholder((len(m_arr),), "int32", "mult")
        self.shift = te.placeholder((len(m_arr),), "int32", "shift")
        fused = attrs.get("fused_add")
        if fused and not fuses_add:
            raise NotImplementedError("this kernel does not fuse a residual add")
        self.add = ResidualAdd(fused, out_type) if fused else None
        own_type = (out_type[0], fused["conv_dtype"]) if fused else out_type
        self.zero_point, self.dtype, self.lo, self.hi = output_params(attrs, own_type)
        self.formula = requant
        if exact32_applies(m_arr, n_arr, self.zero_point):
            self.formula = requant32_rounded if rounded32_applies(n_arr, self.zero_point) else requant32

    @property
    def params(self):
        return [self.mult, self.shift] + ([self.add.residual] if self.add else [])

    def __call__(self, acc, c, index=None):
        m, n = per_channel(self.mult, c), per_channel(self.shift, c)
        # requant32's proof needs an int32 accumulator (requantize of int32 - zero point is int64)
        formula = self.formula if _dtype_of(acc) == "int32" else requant
        if self.add is None:
            return formula(acc, m, n, self.zero_point, self.lo, self.hi, self.dtype)
        # the conv's own output code first (clamped to its range), exactly as the unfused graph stores it
        return self.add(formula(acc, m, n, self.zero_point, self.lo, self.hi, "int32"), index)


def _dtype_of(value):
    """The dtype of a TE value: a PrimExpr (.ty) or a tensor element (.dtype); int64 when unknown."""
    for attr in ("ty", "dtype"):
        if hasattr(value, attr):
            return str(getattr(value, attr))
    return "int64"


class ResidualAdd:
    """The qadd y = add(conv, residual) (or add(residual, conv)) fused into the conv's write-back: reads the
    residual at the output index, SPEC §5 add with the qadd's own constants. fused = {"qadd": the qadd's
    attrs, "conv_input": 0 or 1 (which qadd input the conv is), "conv_dtype", "residual_dtype"}."""

    def __init__(self, fused, out_type):
        self.residual = te.placeholder(tuple(out_type[0]), fused["residual_dtype"], "residual")
        self.attrs = fused["qadd"]
        self.conv_input = int(fused["conv_input"])
        ranges = [INT_RANGES[fused[key]] for key in ("conv_dtype", "residual_dtype")]
        self.code_range = (min(r[0] for r in ranges), max(r[1] for r in ranges))   # both inputs' codes
        self.zero_point, self.dtype, self.lo, self.hi = output_params(self.attrs, out_type)

    def __call__(self, conv_code, index):
        a = self.attrs
        other = self.residual[tuple(index)]
        codes = (conv_code, other) if self.conv_input == 0 else (other, conv_code)
        return qadd_value(*codes, a.get("a_zero_point", 0), a.get("b_zero_point", 0), self.code_range,
                          qparams_list(a["a_multiplier"])[0], qparams_list(a["b_multiplier"])[0],
                          qparams_list(a["shift"])[0], self.zero_point, self.lo, self.hi, self.dtype)
