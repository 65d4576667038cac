"""The generic CPU schedules (parallel outer loops, vectorised inner loop) of the computes in
compute.py, and the tile-size helper of the fast paths."""
from __future__ import annotations

from tvm import s_tir


def first_divisor(n, candidates, default=1):
    """The first of `candidates` that divides n (tile sizes are tried in order of preference)."""
    return next((c for c in candidates if n % c == 0), default)


def weights_outweigh_map(H, W, Op, KH, KW):
    """Whether a direct conv loops over its output-channel blocks outside the rows of each image: when its weights
    (Op * KH * KW values per input channel) outweigh one image's (staged) input map (H * W values per input
    channel; the image loop stays outermost, so reuse never spans images), as on 7x7 / 14x14 maps with hundreds
    of channels. With rows outside, every row streams all the weights again (MobileNetV2's 320 -> 1280 on 7x7:
    1.6 MB, above L2, seven times); with blocks outside, each block's weights stay in L2 over the rows.
    Measured old / new interleaved (Zen 4, 1 thread): the fp32 tiled conv, MobileNetV2 fp32 x0.978, ResNet-18
    x0.997; the int8 dot-product conv, ResNet-18 int8 x0.968, MobileNetV2 / ShuffleNetV2 unchanged (rows outside
    everywhere cost ShuffleNetV2 int8 x1.02: its 1x1 convs on large maps then re-read the input per block)."""
    return Op * KH * KW > H * W


def schedule_generic(func, main="acc", epilogue=None, inline=("pad",), vec_limit=64):
    """Modest generic CPU schedule: inline padding, parallel over the two outer spatial loops,
    reduction loops before the innermost spatial loop, innermost spatial loop vectorised."""
    sch = s_tir.Schedule(func)
    for name in inline:
        try:
            sch.compute_inline(sch.get_sblock(name))
        except Exception:   # no such block (no padding needed)
            pass
    blk = sch.get_sblock(main)
    loops = sch.get_loops(blk)
    iters = sch.get(blk).iter_vars
    spatial = [l for l, iv in zip(loops, iters) if iv.iter_type == 0]
    reduce_ = [l for l, iv in zip(loops, iters) if iv.iter_type != 0]
    if len(spatial) >= 2:
        if reduce_:
            sch.reorder(*spatial[:-1], *reduce_, spatial[-1])
        ext = int(sch.get(spatial[-1]).extent)
        inner = spatial[-1]
        if ext > vec_limit:
            d = first_divisor(ext, (16, 8, 4, 2), None)
            if d:
                _, inner = sch.split(inner, [None, d])
                ext = d
            else:
                inner = None
        if inner is not None and ext > 1:
            sch.vectorize(inner)
        outer = spatial[:2] if len(spatial) > 2 else spatial[:1]
        sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
    elif len(spatial) == 1:
        sch.parallel(spatial[0])
    if epilogue is not None:
        _schedule_elementwise(sch, sch.get_sblock(epilogue), vec_limit)
    return sch.mod["main"]


def _schedule_elementwise(sch, blk, vec_limit=64):
    loops = sch.get_loops(blk)
    if len(loops) >= 3:
        sch.parallel(sch.fuse(*loops[:2]))
    elif len(loops) >= 1 and int(sch.get(loops[0]).extent) > 1 and len(loops) == 2:
        sch.parallel(loops[0])
    loops = sch.get_loops(blk)
    last = loops[-1]
    ext = int(sch.get(last).extent)
    if len(loops) > 1 and 1 < ext:
        if ext > vec_limit:
            d = first_divisor(ext, (16, 8, 4, 2), None)
            if not d:
                return
            _, last = sch.split(last, [None, d])
        sch.vectorize(last)


def schedule_elementwise(func, names=("out",)):
    sch = s_tir.Schedule(func)
    for nm in names:
        _schedule_elementwise(sch, sch.get_sblock(nm))
    return sch.mod["main"]


def schedule_rows_cols(func):
    """A [N, O] matmul: parallel over the fused rows*cols of the "acc" and "out" blocks."""
    sch = s_tir.Schedule(func)
    i, j, k = sch.get_loops(sch.get_sblock("acc"))
    sch.parallel(sch.fuse(i, j))
    sch.parallel(sch.fuse(*sch.get_loops(sch.get_sblock("out"))))
    return sch.mod["main"]


def schedule_channel_sums(func, channels_last):
    """qglobal_avg_pool2d: parallel over the fused batch*channels, or, channels-last, over the batch with
    the channels innermost (contiguous loads)."""
    sch = s_tir.Schedule(func)
    blk = sch.get_sblock("acc")
    lb, lc, lrh, lrw = sch.get_loops(blk)
    if channels_last:
        sch.reorder(lb, lrh, lrw, lc)
        sch.parallel(lb)
    else:
        sch.parallel(sch.fuse(lb, lc))
    return sch.mod["main"]
