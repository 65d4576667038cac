"""x86 fp32 max pool.

* ``maxpool2d_f32_nchw_x86`` (op ``max_pool2d``, requires x86, priority 5): NCHW fp32 maps of at least 56 x 56,
  any window, stride, pads and ceil_mode (the output shape carries the ceil extension). Params: x f32 [N,C,H,W]
  -> y [N,C,OH,OW].
  The depthwise conv's layout and tile (x86_fp32.py, depthwise_f32_tile.py) with max for the sum: per channel
  the plane is padded with -inf and split into its stride phases, so that every tap reads unit-stride vectors,
  and a register tile of rows x columns takes the maximum over the taps. NaN in a window gives NaN
  (llvm.maximum, as the generic lowering). compiler/relax/ops_nn.py calls it when the target has it; the
  generic lowering's window loop (not vectorised: a padded window's condition and strided loads) measured
  0.93 ms on ResNet-18's 64 x 112 x 112 3x3/2 pool.
"""
from __future__ import annotations

from tvm import s_tir, te

from .depthwise_f32_tile import tile_depthwise_f32
from .node_attrs import conv_attrs
from .registry import register_kernel
from .te_utils import create, max_keeping_nan
from .x86_fp32 import dw_column_tile, phase_split_input, schedule_phase_split

NAN_MAX = max_keeping_nan()   # NaN in, NaN out, as the light-op max pool (compiler/relax/common.max_reducer)


MIN_PIXELS = 56 * 56


def _is_large_nchw_pool(attrs, in_types, out_type):
    """`applies`: a 2-D window over an NCHW map of at least MIN_PIXELS (a smaller pool costs little either way and
    stays a light op, which the CPU backend may fuse with its neighbours)."""
    shape = in_types[0][0]
    return len(shape) == 4 and len(attrs.get("kernel", ())) == 2 and shape[2] * shape[3] >= MIN_PIXELS


@register_kernel("max_pool2d", "float32", requires={"x86"}, priority=5, applies=_is_large_nchw_pool,
                 name="maxpool2d_f32_nchw_x86")
def maxpool2d_f32_x86(attrs, in_types, out_type, target):
    """Max pool: per-channel -inf padded phase-split staging, rows x columns register tile of maxima."""
    (N, C, H, W), _ = in_types[0]
    KH, KW = attrs["kernel"]
    OH, OW = (int(v) for v in out_type[0][2:])
    sh, sw = conv_attrs(attrs)[0]
    x = te.placeholder((N, C, H, W), "float32", "x")
    xs = phase_split_input(x, attrs, OH, OW, KH, KW, pad_value=float("-inf"))
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    acc = te.compute((N, C, OH, OW), lambda n, c, h, w: NAN_MAX(
        xs[n, c, h * sh + rh, rw % sw, w + rw // sw], axis=[rh, rw]), name="acc")
    y = te.compute((N, C, OH, OW), lambda *i: acc(*i), name="out")   # the tile's write-back
    sch = s_tir.Schedule(create([x, y]))
    no = tile_depthwise_f32(sch, OH, OW, None, dw_column_tile([sh, sw], OW))
    sch.compute_at(sch.get_sblock("xs"), no)
    if sw > 1:
        schedule_phase_split(sch, no)
    return sch.mod["main"]
