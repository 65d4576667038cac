"""An NCHW fp32 depthwise conv over a phase-split staged input, its register tiling and the partitioned
per-channel staging (ISA-neutral; used by x86_fp32.py and aarch64_depthwise.py): block "acc" [N, O, OH, OW]
with the taps (rh, rw) as its reduction, block "out" its bias/clip write-back, block "xs" the staged plane."""
from __future__ import annotations

from tvm import te, tirx

from .cpu_schedules import first_divisor
from .node_attrs import conv_attrs
from .te_utils import bias_clip, image_cell


def phase_split_extent(s, d, OH, OW, KH, KW):
    """(Hs, Wq): the staged rows, and the columns per stride phase, that the taps of OH x OW outputs read
    (strides s, dilations d): staged[h, p, q] = padded[h, q * sw + p]."""
    Hs = (OH - 1) * s[0] + (KH - 1) * d[0] + 1
    Wq = ((OW - 1) * s[1] + (KW - 1) * d[1] + 1 + s[1] - 1) // s[1]
    return Hs, Wq


def phase_split_staging(x, pads, sw, Hs, Wq):
    """Block "xs" [N, C, Hs, sw, Wq]: x's planes zero-padded (pads (top, left)) and phase-split, xs[h, p, q] =
    padded[h, q*sw + p], as one Select per cell (that `stage_plane` partitions away)."""
    N, C, H, W = (int(v) for v in x.shape)
    t, l = pads

    def stage(nn, cc, hh, ph, q):   # padded cell (hh, q*sw + ph): the image's, if inside
        inside, ih, iw = image_cell(hh, q * sw + ph, t, l, H, W)
        return tirx.Select(inside, x[nn, cc, ih, iw], tirx.const(0.0, "float32"))

    return te.compute((N, C, Hs, sw, Wq), stage, name="xs")


def _parts(extent, lo, hi):
    """The extents of [0, lo), [lo, hi), [hi, extent) (lo, hi clipped into [0, extent]), empty ones left out."""
    lo = min(max(lo, 0), extent)
    hi = min(max(hi, lo), extent)
    return [n for n in (lo, hi - lo, extent - hi) if n > 0]


def stage_plane(sch, at, pads, image, sw, lanes=4, block="xs"):
    """Block "xs" (a channel's padded phase-split plane, `phase_split_staging`) computed under loop `at`, its
    loops partitioned so that the image rows x the `lanes`-column groups whose every phase is inside form one
    loop nest with no condition left, vectorised over the group: per group one contiguous load of sw vectors
    and a de-interleave (NEON uzp1/uzp2 for stride 2); the pad rows become zero fills, the edge groups a few
    unrolled stores. (A select per element, or a zero-guarded copy of the plane first, cost about one
    instruction per staged value more: half a stride-2 layer's budget, as it has only 2.25 MACs per input
    value.) With `at` None, `block` (any name) stays where it is and its last three loops are (hh, ph, q)."""
    (t, l), (H, W) = pads, image
    blk = sch.get_sblock(block)
    if at is not None:
        sch.compute_at(blk, at, preserve_unit_loops=True)   # (.., hh, ph, q) even where only one phase is read
        sch.storage_align(blk, 0, 3, lanes, 0)   # staged rows of whole vectors (the plane is compacted to what is read)
    lh, lph, lq = sch.get_loops(blk)[-3:]
    q0, q1 = sch.split(lq, [None, lanes])
    sch.reorder(q0, lph)   # (.., hh, q0, ph, q1): a group's phases side by side, as in the image
    sch.unroll(lph)
    rows = _parts(sch.get(lh).extent.value, t, t + H)
    if len(rows) > 1:   # the image rows apart from the pad rows above and below
        blk = sch.get_child_blocks(sch.loop_partition(lh, rows[:-1] + [None])[1 if t > 0 else 0])[0]
    q0 = sch.get_loops(blk)[-3]
    lo = ((l + sw - 1) // sw + lanes - 1) // lanes   # the first group with no left pad column
    hi = ((W + l - sw) // sw + 1) // lanes           # the groups before it have no right pad column
    groups = _parts(sch.get(q0).extent.value, lo, hi)
    parts = sch.loop_partition(q0, groups[:-1] + [None]) if len(groups) > 1 else [q0]
    inner = 1 if lo > 0 and len(groups) > 1 else 0
    for i, loop in enumerate(parts):
        blk = sch.get_child_blocks(loop)[0]
        group_lanes = sch.get_loops(blk)[-1]
        if i == inner and lo < hi:
            sch.vectorize(group_lanes)
            if sw > 1:
                group = sch.cache_read(blk, 0, "local")
                sch.compute_at(group, loop)
                sch.vectorize(sch.get_loops(group)[-1])
        else:
            sch.unroll(group_lanes)
            sch.unroll(loop)


def phase_split_dw_f32(xs, w, bias, attrs, out_shape, acc_w=None, epilogue=bias_clip):
    """y = "out"(bias, clip) of "acc": the depthwise conv of xs [N, C, Hs, sw, Wq] (staged[h, p, q] = padded
    plane[h, q*sw + p]) with w [O, 1, KH, KW] (output channel o reads input channel o // (O / C)). With
    `acc_w` > OW, "acc" has acc_w columns (xs must stage them) of which "out" keeps the first OW. `epilogue`
    (value, bias, o, attrs) -> the output: te_utils.bias_clip, or an ISA's own form of it."""
    (sh, sw), _, (dh, dw), _ = conv_attrs(attrs)
    O, _, KH, KW = (int(v) for v in w.shape)
    mult = O // int(xs.shape[1])
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    # column w*sw + rw*dw of the padded plane = phase (rw*dw) % sw, index w + (rw*dw) // sw
    N, O, OH, OW = out_shape
    acc = te.compute((N, O, OH, acc_w or OW), lambda nn, o, h, ww: te.sum(
        xs[nn, o // mult, h * sh + rh * dh, (rw * dw) % sw, ww + (rw * dw) // sw] * w[o, 0, rh, rw],
        axis=[rh, rw]), name="acc")
    return te.compute(out_shape, lambda nn, o, h, ww: epilogue(acc[nn, o, h, ww], bias, o, attrs), name="out")


def column_tile(ow):
    """Output columns per register tile: a divisor of OW that fills (most of) a 16-lane vector;
    a whole row up to 32 columns when OW has none (LLVM splits the wide vector)."""
    vt = first_divisor(ow, (16, 14, 8, 7, 12, 6, 10, 5, 4))
    if vt == 1:
        vt = ow if ow <= 32 else first_divisor(ow, (3, 2))
    return vt


def tile_depthwise_f32(sch, OH, OW, acc_w=None, vt=None, group=1, ht=None):
    """Block "acc" [N, O, OH, OW] in a register tile of ht rows x vt columns (vectorised over the columns, taps
    and rows unrolled), parallel over N*O, the write-back "out" fused into the tile. Returns the fused N*O loop.
    With `acc_w` (the padded "acc" width of phase_split_dw_f32) a tile is one padded row wide unless `vt` (a
    divisor of acc_w, else of OW) says otherwise; `vt` overrides `column_tile`, `ht` (a divisor of OH) the rows.
    With `group` > 1 the parallel loop runs over groups of that many channels (of which the returned loop is
    the channel inside its group), for a producer computed per group."""
    blk = sch.get_sblock("acc")
    ln, lo, lh, lw, lrh, lrw = sch.get_loops(blk)
    vt = vt or acc_w or column_tile(OW)
    ht = ht or (first_divisor(OH, (4, 2, 7, 3, 5)) if vt <= 16 else 1)
    h0, h1 = sch.split(lh, [None, ht])
    w0, w1 = sch.split(lw, [None, vt])
    lg, lo = sch.split(lo, [None, group]) if group > 1 else (lo, None)
    sch.reorder(*(v for v in (ln, lg, lo) if v is not None), h0, w0, lrh, lrw, h1, w1)
    cw = sch.cache_write(blk, 0, "global")
    if acc_w:   # "out" (OW of the acc_w columns) reads the register tile directly
        sch.compute_inline(cw)
        cw = sch.get_sblock("out")
    sch.reverse_compute_at(cw, w0)
    if not acc_w:
        sch.reverse_compute_inline(sch.get_sblock("out"))
    outer = sch.fuse(ln, lg)
    sch.parallel(outer)
    no = outer if group == 1 else lo
    sch.vectorize(w1)   # before decompose_reduction (TVM rejects it afterwards)
    for loop in (h1, lrw, lrh):
        sch.unroll(loop)
    init = sch.decompose_reduction(blk, lrh)
    for b in (init, cw):   # loops under (n*o, h0, w0) or (n*o/group, o, h0, w0); unit loops may have been dropped
        tile = sch.get_loops(b)[3 if group == 1 else 4:]
        if vt > 1 and tile:
            sch.vectorize(tile[-1])
            tile = tile[:-1]
        for loop in tile:
            sch.unroll(loop)
    return no
