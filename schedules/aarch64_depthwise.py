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
  then a register tile of up to 4 rows x 16 output columns (16 fp32x4 accumulators) of ``fmla`` with the tap's
  weight, bias and clip at the write-back (depthwise_f32_tile.py; the phases as in x86_fp32.py). The staging
  has no per-element branch (one costs ~10 instructions per staged value, more than the 9 MACs of its output):
  a vector row copy whose only condition is per row (zero guard rows above and below), then the column pads
  as a select over that copy whose reads the guards keep inside it (LLVM resolves the selects at compile
  time: plain vector copies, ``ld2`` for the stride-2 phases). Params as the generic conv2d.
"""
from __future__ import annotations

from tvm import s_tir, te, tirx

from .cpu_int8 import dw_applies, dw_prepare, schedule_dw_nhwc
from .compute import bias_placeholder
from .cpu_schedules import first_divisor
from .depthwise_f32_tile import phase_split_dw_f32, tile_depthwise_f32
from .dot_product import round_up
from .node_attrs import conv_attrs, conv_out_hw, is_depthwise_f32
from .registry import register_kernel
from .requant import RequantEpilogue, wrapping_add
from .te_utils import create, image_cell

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



@register_kernel("conv2d", "float32", requires=NEON, priority=5, applies=is_depthwise_f32,
                 name="dwconv2d_f32_nchw_neon")
def dwconv2d_f32_nchw_neon(attrs, in_types, out_type, target):
    """Depthwise fp32 conv: vectorised per-channel staging (rows, then column pads by select), rows x columns
    register tile of fmla vectorised over output columns, bias and clip fused into the write-back."""
    s, p, d, _ = conv_attrs(attrs)
    (N, C, H, W), _ = in_types[0]
    O, _, KH, KW = in_types[1][0]
    OH, OW = conv_out_hw(H, W, KH, KW, s, p, d)
    (sh, sw), (dh, dw), (t, l) = s, d, p[:2]
    x = te.placeholder((N, C, H, W), "float32", "x")
    w = te.placeholder((O, 1, KH, KW), "float32", "w")
    args = [x, w]
    bias = bias_placeholder(in_types, args, "float32", "b")
    if l > W:
        raise NotImplementedError("a left pad wider than the image")   # the guard row below would not cover it
    Hs = (OH - 1) * sh + (KH - 1) * dh + 1    # the staged rows and columns: those the taps touch
    Wq = round_up(((OW - 1) * sw + (KW - 1) * dw + sw) // sw, 4)   # whole vectors (the extra ones are zeros)
    guards = 2 + (Wq * sw) // W               # zero rows: one above, enough below for the last row's reads
    zero = tirx.const(0.0, "float32")

    def row(nn, cc, hh, ww):   # staged row hh - 1, zeros outside the image (the guards included)
        inside, ih, _ = image_cell(hh - 1, 0, t, 0, H, 1)
        return tirx.if_then_else(inside, x[nn, cc, ih, ww], zero)

    rows = te.compute((N, C, Hs + guards, W), row, name="rows")

    def stage(nn, cc, hh, ph, q):   # padded column q*sw + ph: image column q*sw + ph - l, if inside
        col = q * sw + ph - l
        # a vector select: rows[hh + 1, col] is read for every col in [-l, Wq * sw - l), which the guard rows keep
        # inside the staged plane (row hh + 1 starts W >= l values in; the last row has guards - 1 rows below)
        return tirx.Select(tirx.all(col >= 0, col < W), rows[nn, cc, hh + 1, col], zero)

    xs = te.compute((N, C, Hs, sw, Wq), stage, name="xs")
    y = phase_split_dw_f32(xs, w, bias, attrs, (N, O, OH, OW))
    sch = s_tir.Schedule(create(args + [y]))
    no = tile_depthwise_f32(sch, OH, OW)
    for name in ("xs", "rows"):   # stage this channel's plane right before its output channel is computed
        sch.compute_at(sch.get_sblock(name), no)
    if W % 4 == 0:
        sch.vectorize(sch.split(sch.get_loops(sch.get_sblock("rows"))[-1], [None, 4])[1])
    loops = sch.get_loops(sch.get_sblock("xs"))   # (n*o, hh, [ph,] q): a unit phase loop is dropped
    # q a plain loop (pairs of columns for stride 1, the phases innermost for stride 2): LLVM vectorises it and
    # resolves the selects at compile time (plain copies, ld2 for the phases); a TVM-vectorised select stays per lane
    if sw > 1:
        sch.reorder(loops[-1], loops[-2])
        sch.unroll(loops[-2])
    else:
        sch.unroll(sch.split(loops[-1], [None, 2])[1])
    return sch.mod["main"]

