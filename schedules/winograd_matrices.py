"""Winograd F(m, r) transform matrices (Toom-Cook, float64), shared by the fp32 and int8 Winograd kernels.

`winograd_matrices(m, r) -> (AT, G, BT)`, numpy float64, shapes AT [m, a], G [a, r], BT [a, a] with
a = m + r - 1, such that the 1-D correlation y[i] = sum_k d[i + k] g[k] (i < m, d of length a) is
`AT @ ((G @ g) * (BT @ d))`, and the 2-D tile is `AT @ ((G g G^T) * (BT d BT^T)) @ AT^T`.

Derivation: Toom-Cook linear convolution s = g * h evaluates g and h at a points (a - 1 finite ones and
infinity, whose row picks the leading coefficient), multiplies pointwise and interpolates with C = E_a^-1
(E_k: the a x k evaluation matrix). Correlation is the transpose of convolution in h, so
y = E_m^T [(E_r g) * (C^T d)]: AT = E_m^T, G = E_r, BT = C^T. Row j of BT is rescaled by N_j =
prod_{l != j}(p_j - p_l) and row j of G by 1 / N_j (exact: the product is unchanged), which makes BT
integral for integer points (Lavin & Gray's matrices up to row signs/order).
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

# Interpolation points (besides infinity): small magnitudes keep the fp32 rounding error low.
POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2), Fraction(-1, 2),
          Fraction(3), Fraction(-3))


@lru_cache(maxsize=None)
def _exact(m, r):
    a = m + r - 1
    if m < 1 or r < 1 or a - 1 > len(POINTS):
        raise ValueError(f"winograd_matrices: unsupported F({m}, {r})")
    pts = POINTS[:a - 1]

    def evaluation(k):   # a x k: finite points, then infinity (the leading coefficient)
        return [[p ** i for i in range(k)] for p in pts] + [[Fraction(int(i == k - 1)) for i in range(k)]]

    C = _inverse(evaluation(a))                       # a x a, exact
    scale = []
    for j, p in enumerate(pts):
        n = Fraction(1)
        for l, q in enumerate(pts):
            if l != j:
                n *= p - q
        scale.append(n)
    scale.append(Fraction(1))
    BT = [[C[i][j] * scale[j] for i in range(a)] for j in range(a)]   # C^T, row j scaled by N_j
    G = [[v / scale[j] for v in row] for j, row in enumerate(evaluation(r))]
    AT = [list(col) for col in zip(*evaluation(m))]
    return AT, G, BT


def _inverse(M):
    """Gauss-Jordan inverse over the rationals."""
    n = len(M)
    A = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(M)]
    for c in range(n):
        piv = next(i for i in range(c, n) if A[i][c] != 0)
        A[c], A[piv] = A[piv], A[c]
        A[c] = [v / A[c][c] for v in A[c]]
        for i in range(n):
            if i != c and A[i][c] != 0:
                f = A[i][c]
                A[i] = [v - f * w for v, w in zip(A[i], A[c])]
    return [row[n:] for row in A]


def winograd_matrices(m, r):
    """(AT [m, a], G [a, r], BT [a, a]) of Winograd F(m, r) as numpy float64 (a = m + r - 1)."""
    return tuple(np.array([[float(v) for v in row] for row in M], np.float64) for M in _exact(m, r))


# Maps too small to fill the tiles (e.g. 2x2 or 1x1 outputs) waste most of a tile's multiplies:
# Winograd is kept only while it does at most this share of the direct conv's (every measured
# winning shape is at <= 0.58; a 1x1 output map with F(2x2, 3x3) is at 1.78).
MAX_MULTIPLY_RATIO = 0.75


def multiply_ratio(m, out_h, out_w, r=3):
    """Multiplies of Winograd F(m x m, r x r) over an out_h x out_w map / the direct conv's."""
    tiles = -(-out_h // m) * -(-out_w // m)
    return tiles * (m + r - 1) ** 2 / (r * r * out_h * out_w)
