"""x86 fp32 conv without AVX-512: the packed-weight conv of fp32_packed_conv.py tiled for 16 ymm registers.

* ``conv2d_f32_nchw_avx2`` (requires avx2 + fma, priority 8; the AVX-512 ``conv2d_f32_nchw_tiled`` (10)
  wins where present): the same TE, weight packing and params as conv2d_f32_nchw_tiled (x f32 [N,C,H,W],
  w_packed f32 [Op/16, KH, KW, C, 16], (b [O]) -> y). Register tile (16 ymm): 6 or 4 output columns x
  16 channels (2 ymm: LLVM splits the <16 x float>) where OW allows, else up to 8 columns x 8 channels (half
  a packed block). Applies when group == 1; needs constant w.
Exists so that an AVX2-only build's fp32 is a register-tiled kernel too (the fair baseline for its int8).
"""
from __future__ import annotations

from tvm import s_tir

from .cpu_schedules import first_divisor
from .fp32_packed_conv import packed_conv2d_f32, packed_weight_prepare, pack_w_f32, schedule_pad, ungrouped, write_back
from .registry import register_kernel
from .te_utils import create

# (lanes, column tiles). Measured on ResNet-18's convs (Zen 4, AVX2 build, best of 20): 4-6 columns x 16
# channels (12 of the 16 ymm as accumulators) where OW has such a divisor (56, 28, 112: ~95 GFLOPS); 7
# columns x 16 spill (~25); on 14x14 / 7x7 maps 7 columns x 8 channels is 3-6x faster than 2 or 7 x 16.
WIDE_COLUMNS = (6, 4)
NARROW_TILE = (8, (8, 7, 5, 3, 2, 1))


@register_kernel("conv2d", "float32", requires={"avx2", "fma"}, priority=8, applies=ungrouped,
                 prepare_constants=packed_weight_prepare("conv2d_f32_nchw_avx2", pack_w_f32), needs_constant=(1,),
                 name="conv2d_f32_nchw_avx2")
def conv2d_f32_avx2(attrs, in_types, out_type, target):
    """Register tile (4-6 columns x 16 channels, or up to 8 x 8), fp32 FMA vectorised over output channels."""
    OW = int(out_type[0][3])
    if first_divisor(OW, WIDE_COLUMNS) > 1:
        return tiled_schedule(attrs, in_types, 16, WIDE_COLUMNS)
    return tiled_schedule(attrs, in_types, *NARROW_TILE)


def tiled_schedule(attrs, in_types, lanes, column_tiles):
    """The packed conv with a register tile of (first of column_tiles dividing OW) columns x `lanes` (8 or 16)
    output channels; a tile of 8 covers half of a packed 16-channel block."""
    args, y, Op = packed_conv2d_f32(attrs, in_types)
    O, OW = int(y.shape[1]), int(y.shape[3])
    sch = s_tir.Schedule(create(args + [y]))
    blk = sch.get_sblock("acc")
    ln, lh, lw, lo_, lrh, lrw, lrc = sch.get_loops(blk)
    o0, oh, o1 = sch.split(lo_, [None, 16 // lanes, lanes])
    w0, w1 = sch.split(lw, [None, first_divisor(OW, column_tiles)])
    sch.reorder(ln, lh, o0, w0, oh, lrh, lrw, lrc, w1, o1)
    write_back(sch, blk, w0, (ln, lh, o0), o1, lrh, padded=Op != O)   # 7x7 maps: 7 x Op/16 chunks, not 7
    sch.unroll(w1)
    schedule_pad(sch, attrs, in_types)
    return sch.mod["main"]
