"""The TE and schedule pieces shared by the Winograd kernels (x86_winograd_fp32.py, winograd_int8.py): the
transforms as sums over the non-zero matrix entries (`lincomb`), and the schedule steps of the input transform
("tin" then "vin") and the output transform ("zt" then "out"), which both kernels compute the same way."""
from __future__ import annotations

from tvm import tirx


def lincomb(M, row, term, dtype):
    """sum_j M[row, j] * term(j) in `dtype` for a symbolic `row` (unrolled to a constant by the schedule): a
    Select chain whose branches hold only the non-zero entries (+1 / -1 as add / subtract). In uint32 the
    sum wraps (exact modulo 2^32) and a leading negative entry is 0 - t."""
    def branch(i):
        acc = None
        for j, c in enumerate(M[i]):
            if c == 0:
                continue
            t = term(j)
            if abs(c) != 1:
                t = t * tirx.const(abs(float(c)) if dtype.startswith("float") else abs(int(c)), dtype)
            if acc is None:
                acc = t if c > 0 else tirx.const(0, dtype) - t
            else:
                acc = acc + t if c > 0 else acc - t
        return acc if acc is not None else tirx.const(0, dtype)

    expr = branch(len(M) - 1)
    for i in range(len(M) - 2, -1, -1):
        expr = tirx.Select(row == i, branch(i), expr)
    return expr


def unroll_then_vectorize(sch, loops):
    """The register-resident part of a stage: unroll every loop but the last (the transform indices then select
    constant matrix rows), vectorise the last."""
    for loop in loops[:-1]:
        sch.unroll(loop)
    sch.vectorize(loops[-1])


def schedule_input_transform(sch, lanes):
    """Block "vin" [a*a, P, C] per (tile, `lanes` channels) in parallel over the tiles, its "tin" [P, a, a, C] computed
    right there: both unrolled over the transform indices, vectorised over the channels."""
    vb = sch.get_sblock("vin")
    e, q, c = sch.get_loops(vb)
    c0, c1 = sch.split(c, [None, lanes])
    sch.reorder(q, c0, e, c1)
    sch.parallel(q)
    unroll_then_vectorize(sch, [e, c1])
    tb = sch.get_sblock("tin")
    sch.compute_at(tb, c0)
    unroll_then_vectorize(sch, sch.get_loops(tb)[-3:])


def schedule_output_transform(sch, loops, m, lanes):
    """Block "out" per (image, `lanes` output channels, m x m tile) in parallel over (image, channels, tile rows), its
    "zt" [P, a, m, O] computed per tile: unrolled over the tile, vectorised over the channels. `loops`: the (n, o,
    h, w) loops of "out" in that order whatever its layout."""
    n_, o, h, w = loops
    oo0, oo1 = sch.split(o, [None, lanes])
    th, i = sch.split(h, [None, m])
    tw, j = sch.split(w, [None, m])
    sch.reorder(n_, oo0, th, tw, i, j, oo1)
    sch.parallel(sch.fuse(n_, oo0, th))
    unroll_then_vectorize(sch, [i, j, oo1])
    zb = sch.get_sblock("zt")
    sch.compute_at(zb, tw)
    unroll_then_vectorize(sch, sch.get_loops(zb)[-3:])
