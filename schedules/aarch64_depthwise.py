"""aarch64 depthwise convs (NEON, every Armv8-A CPU; ``sdot`` does not help: a depthwise conv has no sum over
channels for it to fold).

* ``qconv2d_dw_int8_nhwc_neon`` (requires aarch64 + neon, priority 10, layout NHWC): depthwise qconv2d with
  group == C == O. The input is staged once as a padded int16 copy of x - x_zero_point ([N, H+t+b, W+l+r, C],
  zeros in the pads: no bounds check in the hot loop), the weight pre-packed int16 [KH, KW, C] (as
  cpu_int8.py's kernel). Per tap, one 8-lane int16 weight vector feeds ``smlal`` / ``smlal2`` into two int32x4
  accumulators for each of up to 8 output columns (16 accumulators, no spills), 3 instructions per 8 MACs
  counting the input load; the requantize (requant.py) is fused into the write-back. Params: x[N,H,W,C],
  w_packed int16[KH,KW,C], bias int32[C], mult, shift -> y[N,OH,OW,C]. Integer math: bit-exact.
* ``dwconv2d_f32_nchw_neon`` (requires aarch64 + neon, priority 5, NCHW as every fp32 conv on aarch64): depthwise
  conv2d (group == C, weight [C*mult, 1, KH, KW]), per output channel: its input plane staged with zero pads
  (phase-split for stride 2: staged[h, p, q] = padded[h, q*sw + p], so strided taps read unit-stride vectors),
  then a register tile of whole 4-lane vectors (`neon_dw_tile`; a width OW % 4 != 0 padded) of ``fmla`` with
  the tap's weight, bias and clip (fmax / fmin: `neon_bias_clip`) at the write-back (depthwise_f32_tile.py; the
  phases as in x86_fp32.py). The staging (`stage_plane`, there too) is partitioned so that no condition is left
  where it copies: the image rows x the 4-column groups whose every phase is inside are a vector copy (stride 2: one
  contiguous load per group, de-interleaved by ld2 / uzp1+uzp2, no per-lane gathers), the pad rows zero
  fills, the edge groups a few unrolled stores. MobileNetV2's depthwise layers, qemu -cpu cortex-a76
  instruction counts (bench/arm_fp32_layers.py --depthwise): 0.59-0.78 instructions per MAC at stride 1,
  0.91-1.63 at stride 2 (the narrow maps' edge groups and pad columns weigh most; 1.62-2.19 with the former
  select staging), 0.75 over the model's 17 (1.11 before). Params as the generic conv2d.
"""
from __future__ import annotations

from tvm import s_tir, te, tirx

from .cpu_int8 import dw_applies, dw_prepare, schedule_dw_nhwc
from .compute import bias_placeholder
from .cpu_schedules import first_divisor
from .depthwise_f32_tile import (phase_split_dw_f32, phase_split_extent, phase_split_staging, stage_plane,
                                 tile_depthwise_f32)
from .dot_product import round_up
from .node_attrs import conv_attrs, conv_out_hw, is_depthwise_f32
from .registry import register_kernel
from .requant import RequantEpilogue, wrapping_add
from .te_utils import create, image_cell, llvm_maximum, llvm_minimum

NEON = {"aarch64", "neon"}
LANES = (8, 4, 2, 1)                        # int16 lanes per vector: the first that divides C
COLUMN_TILES = (8, 7, 6, 5, 4, 3, 2, 1)     # output columns per tile: the first that divides OW


@register_kernel("qconv2d", ("int8", "uint8"), requires=NEON, priority=10, applies=dw_applies,
                 prepare_constants=dw_prepare("qconv2d_dw_int8_nhwc_neon"), needs_constant=(1, 2),
                 name="qconv2d_dw_int8_nhwc_neon", layouts=("NHWC",))
def dwconv2d_int8_nhwc_neon(attrs, in_types, out_type, target):
    """Depthwise NHWC qconv2d: padded int16 staging, smlal/smlal2 over 8 channels x up to 8 output columns."""
    s, p, d, _ = conv_attrs(attrs)
    (N, H, W, C), xdt = in_types[0]
    KH, KW = in_types[1][0][2:]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    t, l, b_, r = p
    zx = int(attrs.get("x_zero_point", 0))
    x = te.placeholder((N, H, W, C), xdt, "x")
    wp = te.placeholder((KH, KW, C), "int16", "w_packed")
    bias = te.placeholder((C,), "int32", "bias")
    epilogue = RequantEpilogue(attrs, out_type)

    def stage(nn, hh, ww, cc):   # x - zx fits int16 for either 8-bit dtype; the pads hold x = zx, i.e. 0
        inside, ih, iw = image_cell(hh, ww, t, l, H, W)
        return tirx.if_then_else(inside, x[nn, ih, iw, cc].astype("int16") - tirx.const(zx, "int16"),
                                 tirx.const(0, "int16"))

    xs = te.compute((N, H + t + b_, W + l + r, C), stage, name="xs")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    acc = te.compute((N, OH, OW, C), lambda nn, h, ww, c: te.sum(
        xs[nn, h * s[0] + rh * d[0], ww * s[1] + rw * d[1], c].astype("int32") * wp[rh, rw, c].astype("int32"),
        axis=[rh, rw]), name="acc")
    y = te.compute((N, OH, OW, C), lambda nn, h, ww, c: epilogue(wrapping_add(acc[nn, h, ww, c], bias[c]), c),
                   name="out")
    sch = s_tir.Schedule(create([x, wp, bias] + epilogue.params + [y]))
    # channel blocks outside the columns: each tap's weight vector is loaded once per tile of columns
    lrh, init, cw = schedule_dw_nhwc(sch, first_divisor(C, LANES), first_divisor(OW, COLUMN_TILES), True)
    for loop in (lrh, sch.get_loops(init)[-2], sch.get_loops(cw)[-2]):   # all taps, the tile's write-back
        sch.unroll(loop)
    xl = sch.get_loops(sch.get_sblock("xs"))
    sch.parallel(sch.fuse(xl[0], xl[1]))
    if C % 8 == 0:
        xc0, xc1 = sch.split(xl[3], [None, 8])
        sch.vectorize(xc1)
    return sch.mod["main"]


def neon_bias_clip(value, bias, c, attrs):
    """te_utils.bias_clip with the clamp as llvm.maximum / minimum: AArch64's fmax / fmin, one instruction
    each where the selects take two (compare, bit-select), and like them NaN stays NaN (only -0.0 becomes
    +0.0 at a bound of 0). MobileNetV2's depthwise layers: about 0.05 instructions per MAC fewer."""
    value = value if bias is None else value + bias[c]
    for key, clamp in (("clip_min", llvm_maximum), ("clip_max", llvm_minimum)):
        if attrs.get(key) is not None:
            value = clamp(value, tirx.const(float(attrs[key]), "float32"))
    return value


def neon_dw_tile(OH, OW):
    """(acc_w, vt, ht) of the fp32 depthwise tile: whole 4-lane vectors (a width OW % 4 != 0 padded to acc_w),
    vt columns (the whole row up to 16, else 8 or 4), ht rows (a divisor of OH) for at most 8 accumulators.
    Measured on MobileNetV2 (qemu instruction counts): 16 accumulators spill (112x112: 0.73 -> 0.63
    instructions per MAC with 8), and narrow maps prefer whole rows (14x14: 4 x 7 1.12, 16 x 2 0.83)."""
    acc_w = round_up(OW, 4) if OW % 4 else None
    width = acc_w or OW
    vt = width if width <= 16 else first_divisor(width, (8, 4))
    ht = max(h for h in range(1, max(32 // vt, 1) + 1) if OH % h == 0)
    return acc_w, vt, ht


@register_kernel("conv2d", "float32", requires=NEON, priority=5, applies=is_depthwise_f32,
                 name="dwconv2d_f32_nchw_neon")
def dwconv2d_f32_nchw_neon(attrs, in_types, out_type, target):
    """Depthwise fp32 conv: per-channel staging partitioned into condition-free vector copies (de-interleaving
    for stride 2), rows x columns register tile of fmla vectorised over output columns, bias and clip fused into
    the write-back."""
    s, p, d, _ = conv_attrs(attrs)
    (N, C, H, W), _ = in_types[0]
    O, _, KH, KW = in_types[1][0]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    sw, (t, l) = s[1], p[:2]
    x = te.placeholder((N, C, H, W), "float32", "x")
    w = te.placeholder((O, 1, KH, KW), "float32", "w")
    args = [x, w]
    bias = bias_placeholder(in_types, args, "float32", "b")
    acc_w, vt, ht = neon_dw_tile(OH, OW)
    Hs, Wq = phase_split_extent(s, d, OH, acc_w or OW, KH, KW)   # the staged rows and columns the taps read

    xs = phase_split_staging(x, (t, l), sw, Hs, Wq)
    y = phase_split_dw_f32(xs, w, bias, attrs, (N, O, OH, OW), acc_w, neon_bias_clip)
    sch = s_tir.Schedule(create(args + [y]))
    no = tile_depthwise_f32(sch, OH, OW, acc_w, vt, ht=ht)
    stage_plane(sch, no, (t, l), (H, W), sw)
    return sch.mod["main"]

