"""aarch64 fp32 fast paths (NEON, every Armv8-A CPU).

* ``conv2d_f32_nchw_neon`` (requires aarch64 + neon, priority 10): register-tiled direct conv (the TE of
  fp32_packed_conv.py), ``fmla`` over output channels. The input is padded once into a staging copy (no
  bounds check per element in the hot loop), the weight pre-packed at compile time to [Op/16, KH, KW, C, 16]
  (fp32_packed_conv.pack_w_f32, as on x86). Register tile: 4 fp32x4 vectors of output channels (16; 2 vectors
  when the column tile is 7) x up to 6 output columns: at most 28 accumulators of the 32 vector registers, the rest for
  weights and inputs. 1x1 convs run the same kernel: per input channel, 16 weights x 4-7 columns, a GEMM
  micro-kernel. Params: x f32 [N,C,H,W], w_packed f32 [Op/16, KH, KW, C, 16], (b f32 [O]) -> y [N,O,OH,OW].
  group == 1.
"""
from __future__ import annotations

from tvm import s_tir

from .cpu_schedules import first_divisor
from .fp32_packed_conv import packed_conv2d_f32, packed_weight_prepare, pack_w_f32, ungrouped, write_back
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
    write_back(sch, blk, w0, (ln, lh), o1, lrh, padded=Op != int(y.shape[1]))
    sch.unroll(w1)
    pl = sch.get_loops(sch.get_sblock("pad"))
    sch.parallel(sch.fuse(pl[0], pl[1]))
    return sch.mod["main"]
