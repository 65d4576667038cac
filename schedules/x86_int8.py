"""x86 int8 fast paths.

* ``qconv2d_int8_nchw_vnni`` / ``qconv2d_int8_nhwc_vnni`` (requires avx512_vnni, priority 10): the
  dot-product conv of dot_product.py with AVX-512 VNNI ``vpdpbusd`` (u8 x s8 -> s32, 16 output channels
  x 4 input channels). The input is staged as uint8 (x + 128 for int8 input). Applies when group == 1
  (any C and O: both zero-padded in the packed weight); needs constant w (and b). The NHWC variant is
  chosen when compiler/passes/layout_plan.py keeps activations channels-last (registry.preferred_layouts).
  Params: x, w_packed int8 [Op/16, KH, KW, Cp/4, 16, 4], bias_eff int32 [O], mult, shift -> y. With few
  input channels (the RGB stem) the kernel columns are folded into the reduction (column_fold.py: 7 x 3
  channels padded once to 24 instead of 7 x 4 = 28; w_packed [Op/16, KH, 1, Kp/4, 16, 4]).
* ``qconv2d_dw_int8_nchw_x86`` (requires x86, priority 5): depthwise qconv2d (group == C, weight
  [C*mult, 1, KH, KW]), padded (x - zx) staged per channel as int16, int32 accumulation vectorised over
  output columns, parallel over N*O, requantize fused. Params as the generic qconv2d.
"""
from __future__ import annotations

from tvm import s_tir, te, tirx

from .constants import prep_requant
from .compute import bias_placeholder, plus_int_bias
from .cpu_schedules import first_divisor
from .dot_product import DotProductConv
from .intrinsics import VNNI
from .node_attrs import conv_attrs, conv_out_hw
from .registry import register_kernel
from .requant import RequantEpilogue
from .te_utils import create, image_cell

I8 = ("int8", "uint8")

# 16 output channels (one zmm of int32 lanes) x 8 columns per tile; where the map's width only allows 7 or
# fewer columns (7x7, 14x14, 28x28 maps), 2 x 16 channels x 7 columns. A measured rule, not a derived one
# (vpdpbusd's 4-cycle latency is covered by 7 chains already): thread CPU time on Zen 4, kernel alone,
# 0.85-0.87x on most of ResNet-50's 14x14 / 7x7 layers, 0.95x on 28x28, 1.04x on the 512 -> 2048 7x7 1x1;
# neutral on 56x56 maps and 1.06x on the 112x112 stem, which therefore keep one group.
VNNI_CONV = DotProductConv(VNNI, "the VNNI conv", column_tiles=(8, 7, 6, 4, 5, 3, 2, 1), lane_groups=(2, 1),
                           groups_below_columns=8, pads_output_channels=True, vectorize_nhwc_staging=True,
                           folds_columns=True)
_VNNI_KERNEL = dict(requires={"avx512_vnni"}, priority=10, applies=VNNI_CONV.applies,
                    prepare_constants=VNNI_CONV.prepare, needs_constant=(1, 2))


@register_kernel("qconv2d", I8, name="qconv2d_int8_nchw_vnni", **_VNNI_KERNEL)
def qconv2d_vnni(attrs, in_types, out_type, target):
    """Direct conv, NHWC uint8 staging + vpdpbusd over 16 output channels x 4 input channels."""
    return VNNI_CONV.build(attrs, in_types, out_type, channels_last=False)


@register_kernel("qconv2d", I8, name="qconv2d_int8_nhwc_vnni", layouts=("NHWC",), **_VNNI_KERNEL)
def qconv2d_vnni_nhwc(attrs, in_types, out_type, target):
    """The VNNI conv for channels-last activations (layout planning): staging the padded uint8 input is
    a contiguous copy and the requantized output is written 16 channels at a time."""
    return VNNI_CONV.build(attrs, in_types, out_type, channels_last=True)


def _dw_int8_applies(attrs, in_types, out_type):
    g = conv_attrs(attrs)[3]
    C = in_types[0][0][1]
    O = in_types[1][0][0]
    return g > 1 and g == C and in_types[1][0][1] == 1 and O % C == 0 and in_types[1][1] == "int8"


@register_kernel("qconv2d", I8, requires={"x86"}, priority=5, applies=_dw_int8_applies,
                 prepare_constants=prep_requant, name="qconv2d_dw_int8_nchw_x86")
def dwconv2d_int8(attrs, in_types, out_type, target):
    """Depthwise qconv2d: per-channel int16 staging of (x - zx) (0 in the padding), int32 accumulation
    vectorised over output columns, parallel over N*O, requantize fused into the write-back."""
    s, p, d, g = conv_attrs(attrs)
    (N, C, H, W), xdt = in_types[0]
    O, _, KH, KW = in_types[1][0]
    mult = O // C
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    zx = int(attrs.get("x_zero_point", 0))
    x = te.placeholder((N, C, H, W), xdt, "x")
    w = te.placeholder((O, 1, KH, KW), "int8", "w")
    args = [x, w]
    bias = bias_placeholder(in_types, args)
    epilogue = RequantEpilogue(attrs, out_type)
    t, l, b_, r = p

    def stage(nn, cc, hh, ww):
        inside, ih, iw = image_cell(hh, ww, t, l, H, W)
        v = x[nn, cc, ih, iw].astype("int16")
        return tirx.if_then_else(inside, v - tirx.const(zx, "int16"), tirx.const(0, "int16"))

    xs = te.compute((N, C, H + t + b_, W + l + r), stage, name="xs")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    acc = te.compute((N, O, OH, OW), lambda nn, o, h, ww: te.sum(
        xs[nn, o // mult, h * s[0] + rh * d[0], ww * s[1] + rw * d[1]].astype("int32")
        * w[o, 0, rh, rw].astype("int32"), axis=[rh, rw]), name="acc")
    y = te.compute((N, O, OH, OW), lambda nn, o, h, ww: epilogue(plus_int_bias(acc[nn, o, h, ww], bias, o), o), name="out")
    sch = s_tir.Schedule(create(args + epilogue.params + [y]))
    blk = sch.get_sblock("acc")
    ln, lo_, lh, lw, lrh, lrw = sch.get_loops(blk)
    vt = first_divisor(OW, (16, 14, 8, 7, 12, 6, 4, 5, 3, 2))
    w0, w1 = sch.split(lw, [None, vt])
    sch.reorder(ln, lo_, lh, w0, lrh, lrw, w1)
    cw = sch.cache_write(blk, 0, "global")
    sch.reverse_compute_at(cw, w0)
    sch.reverse_compute_inline(sch.get_sblock("out"))
    no = sch.fuse(ln, lo_)
    sch.parallel(no)
    if vt > 1:
        sch.vectorize(w1)
    init = sch.decompose_reduction(blk, lrh)
    if vt > 1:
        sch.vectorize(sch.get_loops(init)[-1])
        sch.vectorize(sch.get_loops(cw)[-1])
    sch.unroll(lrw)
    sch.compute_at(sch.get_sblock("xs"), no)
    if W + l + r <= 64:
        sch.vectorize(sch.get_loops(sch.get_sblock("xs"))[-1])
    return sch.mod["main"]
