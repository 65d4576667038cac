"""aarch64 fp32 fast paths (NEON, every Armv8-A CPU).

* ``conv2d_f32_nchw_neon`` (requires aarch64 + neon, priority 10): register-tiled direct conv (the TE of
  fp32_packed_conv.py), ``fmla`` over output channels. The input is padded once into a staging copy (no
  bounds check per element in the hot loop), the weight pre-packed at compile time to [Op/16, KH, KW, C, 16]
  (fp32_packed_conv.pack_w_f32, as on x86). Register tile: 4 fp32x4 vectors of output channels (16; 2 vectors
  when the column tile is 7) x up to 6 output columns: at most 28 accumulators of the 32 vector registers, the rest for
  weights and inputs. 1x1 convs run the same kernel: per input channel, 16 weights x 4-7 columns, a GEMM
  micro-kernel. The write-back (bias, clip) runs along output rows, as vectors of the tile's columns (the
  tile transposed in registers): a scalar write-back cost ~8 instructions per output, 0.5 per MAC of a 1x1
  conv with 16 input channels. Params: x f32 [N,C,H,W], w_packed f32 [Op/16, KH, KW, C, 16], (b f32 [O])
  -> y [N,O,OH,OW]. group == 1.
* ``linear_f32_neon`` (requires aarch64 + neon, priority 10): fp32_packed_conv.py's packed linear (ISA-neutral
  TE and schedule, as x86_fp32.py's linear_f32_tiled): per input k, x[i, k] broadcast into ``fmla`` over 32 (or
  16) outputs of the weight packed [Op/16, K, 16], a register tile of up to 4 rows. Params: x f32 [N,K],
  w_packed, (b [O]) -> y [N,O].
"""
from __future__ import annotations

from tvm import s_tir

from .cpu_schedules import first_divisor
from .fp32_packed_conv import (pack_linear_f32, pack_w_f32, packed_conv2d_f32, packed_linear_f32, packed_weight_prepare,
                               schedule_pad, ungrouped, write_back)
from .node_attrs import is_2d_input
from .registry import register_kernel
from .te_utils import create

# (columns per tile, channel vectors of 4 lanes per tile): the first column count dividing OW wins
TILES = ((6, 4), (4, 4), (5, 4), (7, 2), (3, 4), (2, 4), (1, 4))


@register_kernel("conv2d", "float32", requires={"aarch64", "neon"}, priority=10, applies=ungrouped,
                 prepare_constants=packed_weight_prepare("conv2d_f32_nchw_neon", pack_w_f32), needs_constant=(1,),
                 name="conv2d_f32_nchw_neon")
def conv2d_f32_neon(attrs, in_types, out_type, target):
    """Register tile (columns x 8 or 16 output channels), fmla over 4 channels, padded staging copy."""
    args, y, Op = packed_conv2d_f32(attrs, in_types)
    OW = int(y.shape[3])
    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    ln, lh, lw, lo_, lrh, lrw, lrc = sch.get_loops(blk)
    wt = first_divisor(OW, tuple(c for c, _ in TILES))
    lanes = 4 * dict(TILES)[wt]
    o0, o1 = sch.split(lo_, [None, lanes])
    w0, w1 = sch.split(lw, [None, wt])
    sch.reorder(ln, lh, o0, w0, lrh, lrw, lrc, w1, o1)
    cw = write_back(sch, blk, w0, (ln, lh, o0), o1, lrh, padded=Op != int(y.shape[1]))   # rows x channel blocks
    sch.unroll(w1)
    # "out" is inlined into the tile's write-back: make it a vector op along the output row (NCHW), with the tile
    # unrolled so it stays in registers (a one-column tile has no column loop left: its write-back stays as is)
    if Op == int(y.shape[1]) and wt > 1:
        wc, oc = sch.get_loops(cw)[-2:]
        sch.reorder(oc, wc)
        sch.vectorize(wc)
        sch.unroll(oc)
    schedule_pad(sch, attrs, in_types, vector_max=None)
    return sch.mod["main"]


@register_kernel("linear", "float32", requires={"aarch64", "neon"}, priority=10, applies=is_2d_input,
                 prepare_constants=packed_weight_prepare("linear_f32_neon", pack_linear_f32), needs_constant=(1,),
                 name="linear_f32_neon")
def linear_f32_neon(attrs, in_types, out_type, target):
    """Packed-weight linear: rows x 32 (16) outputs register tile, fmla with x[i, k] broadcast."""
    return packed_linear_f32(attrs, in_types)
