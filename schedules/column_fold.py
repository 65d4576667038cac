"""Kernel columns folded into the reduction of the dot-product conv, for inputs with few channels (the RGB
stem: C = 3, 7x7 / 2).

The dot-product intrinsics reduce 4 input channels at a time, so a conv with C = 3 pads every tap to 4
channels: the 7x7 stem spends 7 * 4 = 28 slots per kernel row on 21 products. Folded, the KW taps of a kernel
row and their C channels form one reduction of KW * C values, padded once: 21 -> 24 (6 instructions
instead of 7).

That works without an im2col copy because, in a padded input whose rows are stored flat (column-major
within the row: [N, Hp, Wp * C]), the KW * C inputs of output column ow are contiguous, starting at
ow * stride * C (with dilation 1). So the staged input is [N, Hp, Wf] (Wf >= Wp * C, long enough for the
padded reduction of the last column; the values past the image meet zero weights), the weight is refolded
to [O, Kp, KH, 1] (Kp = KW * C rounded up to 4; element kw * C + c holds w[o, c, kh, kw]) and packed as
usual, and the conv becomes a KH x 1 conv over Kp "channels" reading xs[n, h * sh + rh * dh, ow * sw * C + j].
The zero-point bias correction is unchanged (every real weight still meets x + offset or the padding's
zx + offset).
"""
from __future__ import annotations

import numpy as np
from tvm import te, tirx

from .node_attrs import conv_attrs, conv_out_hw
from .te_utils import image_cell


def round_up4(n):
    return (n + 3) // 4 * 4


def folds_columns(in_c, kw, dilation_w):
    """Whether folding saves reduction steps: KW * C rounded up to 4 once beats C rounded up KW times."""
    return dilation_w == 1 and kw > 1 and round_up4(kw * in_c) < kw * round_up4(in_c)


def fold_columns_weight(w):
    """int8 [O, C, KH, KW] -> [O, Kp, KH, 1]: element kw * C + c of the reduction holds w[o, c, kh, kw]
    (the order of the flat input row), zero past KW * C."""
    O, C, KH, KW = w.shape
    folded = np.zeros((O, round_up4(KW * C), KH, 1), w.dtype)
    folded[:, :KW * C, :, 0] = w.transpose(0, 3, 1, 2).reshape(O, KW * C, KH)
    return folded


def column_folded_input(attrs, in_types, dims, a_dtype, offset, channels_last):
    """(x, xs, Kp): the input placeholder and block "xs", the padded input with flat rows [N, Hp, Wf] in
    a_dtype (x + offset, the zero point + offset in the pads and past the image), and the folded
    reduction length Kp. dims = (N, C, H, W) of the activation."""
    N, C, H, W = dims
    s, (t, l, b_, r), d, _ = conv_attrs(attrs)
    KW = in_types[1][0][3]
    OW = conv_out_hw(H, W, in_types[1][0][2], KW, s, (t, l, b_, r), d)[1]
    Kp = round_up4(KW * C)
    Wf = max((W + l + r) * C, (OW - 1) * s[1] * C + Kp)
    zx = int(attrs.get("x_zero_point", 0))
    x = te.placeholder(tuple(in_types[0][0]), in_types[0][1], "x")

    def stage(nn, hh, q):
        inside, ih, iw = image_cell(hh, q // C, t, l, H, W)
        cc = q % C
        v = (x[nn, ih, iw, cc] if channels_last else x[nn, cc, ih, iw]).astype("int32")
        return tirx.if_then_else(inside, v + offset, tirx.const(zx + offset, "int32")).astype(a_dtype)

    return x, te.compute((N, H + t + b_, Wf), stage, name="xs"), Kp
