"""The TE and schedule pieces shared by the Winograd kernels (x86_winograd_fp32.py, aarch64_winograd_fp32.py,
winograd_int8.py): the transforms as sums over the non-zero matrix entries (`lincomb`; `transform_rows`: the
F(4x4) integer transforms with their shared partial sums written once), the schedule steps of the
input transform ("tin" then "vin") and the output transform ("zt" then "out"), which every kernel computes the same
way, and the ISA-neutral fp32 F(m x m, 3 x 3) itself (`winograd_compute`, its filter transform
`pack_winograd_weight`), which the fp32 kernels schedule each for their vectors."""
from __future__ import annotations

import numpy as np
from tvm import te, tirx

from .compute import bias_placeholder
from .dot_product import round_up
from .fp32_packed_conv import pad_rows16
from .node_attrs import conv_attrs, conv_out_hw
from .te_utils import bias_clip, image_cell
from .winograd_matrices import winograd_matrices

F32 = "float32"


def lincomb(M, row, term, dtype):
    """sum_j M[row, j] * term(j) in `dtype` for a symbolic `row` (unrolled to a constant by the schedule): a
    Select chain whose branches hold only the non-zero entries (+1 / -1 as add / subtract). In uint32 the
    sum wraps (exact modulo 2^32) and a leading negative entry is 0 - t. Integer rows add their positive terms
    first: TVM 0.27 mis-simplified a uint32 row that began with `0 - t * c` for c > 1 (x86_vnni_winograd_int8's
    output transform; the order is exact in integers, float rows keep theirs)."""
    integer = not dtype.startswith("float")

    def branch(i):
        acc = None
        order = sorted(range(len(M[i])), key=lambda j: M[i][j] < 0) if integer else range(len(M[i]))
        for j in order:
            c = M[i][j]
            if c == 0:
                continue
            t = term(j)
            if abs(c) != 1:
                t = t * tirx.const(abs(int(c)) if integer else abs(float(c)), dtype)
            if acc is None:
                acc = t if c > 0 else tirx.const(0, dtype) - t
            else:
                acc = acc + t if c > 0 else acc - t
        return acc if acc is not None else tirx.const(0, dtype)

    return _select_row(row, [branch(i) for i in range(len(M))])


def _select_row(row, rows):
    """rows[row] for a symbolic `row` (a constant once the schedule unrolls it): a Select chain."""
    expr = rows[-1]
    for i in range(len(rows) - 2, -1, -1):
        expr = tirx.Select(row == i, rows[i], expr)
    return expr


def _f43_input_rows(t, k):
    """BT t of F(4x4, 3x3) (winograd_matrices(4, 3)'s BT) with its shared differences computed once:
    4 t0 - 5 t2 + t4 = 4 (t0 - t2) + (t4 - t2), and rows 3 and 4 are f +- 2 g. k: a constant of t's dtype."""
    f, g = t[4] - t[2], t[3] - t[1]
    return [f + (t[0] - t[2]) * k(4), (t[3] + t[4]) - (t[1] + t[2]) * k(4), (t[4] - t[3]) + (t[1] - t[2]) * k(4),
            f + g * k(2), f - g * k(2), (t[5] - t[3]) + (t[1] - t[3]) * k(4)]


def _f43_scaled_output_rows(t, k):
    """ATr t of x86_vnni_winograd_int8 (AT of F(4x4, 3x3), columns scaled by r = 6, -4, -4, 1, 1, 24): every row
    is made of t1 +- t2 and t3 +- t4, each computed once; positive terms first (see `lincomb`)."""
    a, b, c, d = t[1] + t[2], t[1] - t[2], t[3] + t[4], t[3] - t[4]
    return [t[0] * k(6) + c - a * k(4), d * k(2) - b * k(4), (c - a) * k(4), d * k(8) - b * k(4) + t[5] * k(24)]


def _key(M):
    """A matrix as the FACTORED_ROWS key: its entries, which must be integers."""
    rows = np.asarray(M)
    if not np.array_equal(rows, np.rint(rows)):
        return None
    return tuple(tuple(int(v) for v in row) for row in rows)


FACTORED_ROWS = {   # integer transform matrix -> its rows with shared partial sums (`_check_factored_rows`)
    _key([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
          [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]): _f43_input_rows,
    _key([[6, -4, -4, 1, 1, 0], [0, -4, 4, 2, -2, 0], [0, -4, -4, 4, 4, 0], [0, -4, 4, 8, -8, 24]]):
        _f43_scaled_output_rows,
}


def _check_factored_rows():
    """Each factored form is its matrix's product, exactly (Python integers on a unit basis and random values)."""
    rng = np.random.default_rng(0)
    for M, rows in FACTORED_ROWS.items():
        n = len(M[0])
        for t in (list(np.eye(n, dtype=np.int64)), list(rng.integers(-2 ** 20, 2 ** 20, (n, 64)))):
            if not np.array_equal(np.array(rows(t, int)), np.array(M) @ np.array(t)):
                raise AssertionError(f"winograd_common: factored rows differ from {M}")


_check_factored_rows()


def transform_rows(M, row, term, dtype):
    """`lincomb`, but for an integer matrix of FACTORED_ROWS in integer arithmetic its factored rows: the
    partial sums that several rows share are written identically, so LLVM computes them once per tile (fewer
    adds than lincomb's term-by-term rows). Exact in integers; int16 callers check their partial sums' bounds."""
    program = FACTORED_ROWS.get(_key(M)) if not dtype.startswith("float") else None
    if program is None:
        return lincomb(M, row, term, dtype)
    return _select_row(row, program([term(j) for j in range(len(M[0]))], lambda v: tirx.const(v, dtype)))


def is_winograd_3x3_f32(attrs, in_types):
    """A dense fp32 3x3 conv, stride 1, dilation 1, no fused residual add: the shapes an fp32 Winograd
    F(m x m, 3 x 3) kernel can take (each ISA adds its own channel and map-size rule)."""
    s, _, d, g = conv_attrs(attrs)
    (_, C, _, _), xdt = in_types[0]
    (_, Cw, KH, KW), _ = in_types[1]
    return ((KH, KW) == (3, 3) and s == [1, 1] and d == [1, 1] and g == 1 and Cw == C and xdt == "float32"
            and "fused_add" not in attrs)


def pads_within(P, t):
    """Rounding the P tiles up to a multiple of the tile height t wastes at most 1/8 of them."""
    return round_up(P, t) - P <= P // 8


def gemm_tile(P, tiles):
    """The GEMM register tile height of the int8 (and NEON fp32) Winograd kernels: the first of `tiles` that
    `pads_within` P (ordered by preference). x86_winograd_fp32.py has its own rule (`gemm_tile(P, Op)`, tile
    height and channel blocks)."""
    return next((t for t in tiles if pads_within(P, t)), 1)


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


def schedule_fp32_input(sch, lanes):
    """winograd_compute's input side: the channels-last staging "xh" in parallel over (image, row, column): rows
    alone are 10-30 chunks on ResNet's maps, too few for many threads; then the input transform per (tile,
    `lanes` channels)."""
    n_, hh, ww, _ = sch.get_loops(sch.get_sblock("xh"))
    sch.parallel(sch.fuse(n_, hh, ww))
    schedule_input_transform(sch, lanes)


def schedule_output_transform(sch, loops, m, lanes):
    """Block "out" per (image, `lanes` output channels, m x m tile) in parallel over (image, channels, tiles), its
    "zt" [P, a, m, O] computed per tile: unrolled over the tile, vectorised over the channels. `loops`: the (n, o,
    h, w) loops of "out" in that order whatever its layout."""
    n_, o, h, w = loops
    oo0, oo1 = sch.split(o, [None, lanes])
    th, i = sch.split(h, [None, m])
    tw, j = sch.split(w, [None, m])
    sch.reorder(n_, oo0, th, tw, i, j, oo1)
    tiles = sch.fuse(n_, oo0, th, tw)   # tile columns too: 7x7 maps give few (channel block, tile row) chunks
    sch.parallel(tiles)
    unroll_then_vectorize(sch, [i, j, oo1])
    zb = sch.get_sblock("zt")
    sch.compute_at(zb, tiles)
    unroll_then_vectorize(sch, sch.get_loops(zb)[-3:])


def pack_winograd_weight(w, m):
    """f32 [O, C, 3, 3] -> U = G w G^T packed f32 [a*a, Op/16, C, 16] (computed in float64)."""
    _, G, _ = winograd_matrices(m, 3)
    w = pad_rows16(np.asarray(w, np.float64))
    O, C = w.shape[:2]
    a = m + 2
    u = np.einsum("ik,ockl,jl->ijoc", G, w, G).reshape(a * a, O // 16, 16, C)
    return np.ascontiguousarray(u.transpose(0, 1, 3, 2).astype(np.float32))


def winograd_out_type(attrs, in_types):
    """The (shape, dtype) of a conv node's output (prepare_constants gets no out_type)."""
    s, p, d, _ = conv_attrs(attrs)
    (N, _, H, W), dt = in_types[0]
    O, _, KH, KW = in_types[1][0]
    return (N, O) + conv_out_hw(H, W, KH, KW, s, p, d), dt


def winograd_compute(attrs, in_types, m, pt=1):
    """(params, y): the unscheduled TE of fp32 F(m x m, 3 x 3). x NCHW is staged padded and channels-last ("xh"
    [N, nH*m+2, nW*m+2, C]), transformed ("tin" then "vin" [a*a, Pp, C], P = N*nH*nW tiles rounded up to Pp, a
    multiple of the GEMM tile height `pt`: the extra tiles repeat the last one and are never read), multiplied
    ("gemm" [a*a, Pp, Op] with u_packed [a*a, Op/16, C, 16]) and transformed back ("zt", then "out" with bias and
    clip)."""
    _, p, _, _ = conv_attrs(attrs)
    (N, C, H, W), _ = in_types[0]
    O = in_types[1][0][0]
    Op = round_up(O, 16)
    OH, OW = conv_out_hw(H, W, 3, 3, [1, 1], p, [1, 1])
    AT, _, BT = winograd_matrices(m, 3)
    a = m + 2
    nH, nW = (OH + m - 1) // m, (OW + m - 1) // m
    P = N * nH * nW
    Pp = round_up(P, pt)
    t, l = p[0], p[1]
    x = te.placeholder((N, C, H, W), F32, "x")
    u = te.placeholder((a * a, Op // 16, C, 16), F32, "u_packed")
    args = [x, u]
    bias = bias_placeholder(in_types, args, F32, "b")

    def staged(nn, hh, ww, c):
        inside, ih, iw = image_cell(hh, ww, t, l, H, W)
        return tirx.if_then_else(inside, x[nn, c, ih, iw], tirx.const(0.0, F32))

    xh = te.compute((N, nH * m + 2, nW * m + 2, C), staged, name="xh")

    def tile(q):   # tile index -> (n, tile row, tile column)
        q = te.min(q, P - 1) if Pp != P else q
        return q // (nH * nW), q // nW % nH, q % nW

    def tin_f(q, e1, r2, c):
        nn, th, tw = tile(q)
        return lincomb(BT, e1, lambda r1: xh[nn, th * m + r1, tw * m + r2, c], F32)

    tin = te.compute((Pp, a, a, C), tin_f, name="tin")
    vin = te.compute((a * a, Pp, C), lambda e, q, c: lincomb(BT, e % a, lambda r2: tin[q, e // a, r2, c], F32),
                     name="vin")
    rc = te.reduce_axis((0, C), "rc")
    gemm = te.compute((a * a, Pp, Op), lambda e, q, o: te.sum(vin[e, q, rc] * u[e, o // 16, rc, o % 16], axis=rc),
                      name="gemm")
    zt = te.compute((P, a, m, Op), lambda q, e1, j, o: lincomb(AT, j, lambda e2: gemm[e1 * a + e2, q, o], F32),
                    name="zt")

    def out_f(nn, o, h, w):
        q = (nn * nH + h // m) * nW + w // m
        return bias_clip(lincomb(AT, h % m, lambda e1: zt[q, e1, w % m, o], F32), bias, o, attrs)

    y = te.compute((N, O, OH, OW), out_f, name="out")
    return args, y
