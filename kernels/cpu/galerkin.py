"""Kernels of the assembled (CSR) levels of a multigrid hierarchy.

A Galerkin coarse operator ``R A P`` of a cell-centred grid operator has up to 25 (2-D)
or 125 (3-D) points per row and is kept as a CSR matrix.  Its level is smoothed by
multicolour Gauss-Seidel -- the rows split into independent sets by a greedy colouring of
the matrix graph, each set updated in one threaded pass, the colours in order before the
coarse correction and in reverse after, so the cycle stays symmetric -- and its residual
is one threaded pass.  The finest operator's matrix, which the triple products start
from, is assembled here from the coefficient field in one threaded pass.

References: Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed. (2003),
sec. 3.3.3 (multicolouring) and 12.4 (multicolour SOR); Trottenberg, Oosterlee,
Schüller, *Multigrid* (2001), sec. 2.9 (symmetric cycles), A.3.4 (Galerkin operators).
"""
import numpy as np
from numba import njit, prange


@njit(inline="always", cache=True)
def _down(i, n, per):
    """Lower neighbour of index ``i`` of ``n`` along an axis; -1 for a ghost."""
    if i > 0:
        return i - 1
    return n - 1 if per else -1


@njit(inline="always", cache=True)
def _up(i, n, per):
    """Upper neighbour of index ``i`` of ``n`` along an axis; -1 for a ghost."""
    if i + 1 < n:
        return i + 1
    return 0 if per else -1


@njit(parallel=True, cache=True)
def assemble_csr(k, c, per, sgn, scale, indptr, indices, data):
    """Fill the CSR arrays of ``scale * D(k)`` on a padded 3-D grid (``k`` all ones: the
    Laplacian; ``c`` the couplings ``1 / h_a^2``, 0 on padded axes; ``per`` periodic
    flags; ``sgn`` ghost signs), ``indptr`` given (one entry per real neighbour and the
    diagonal).  Face weights ``c_a * 2 k_i k_j / (k_i + k_j)``, a ghost's share of the
    diagonal ``c_a k_i (s - 1)``: the values of the reference assembly bit for bit.  Each
    row holds its lower neighbours (axes 0, 1, 2), the diagonal, its upper neighbours
    (axes 2, 1, 0): sorted columns unless a periodic axis wraps.  Every periodic axis
    must have at least three cells (no neighbour twice)."""
    n0, n1, n2 = k.shape
    for q in prange(n0 * n1):
        i0 = q // n1
        i1 = q - i0 * n1
        for j in range(n2):
            i = q * n2 + j
            kx = k[i0, i1, j]
            lo = (_down(i0, n0, per[0]), _down(i1, n1, per[1]), _down(j, n2, per[2]))
            hi = (_up(i0, n0, per[0]), _up(i1, n1, per[1]), _up(j, n2, per[2]))
            diag = 0.0
            p = indptr[i]
            # the diagonal's slot: after the real lower neighbours
            pd = p
            for a in range(3):
                if c[a] != 0.0 and lo[a] >= 0:
                    pd += 1
            for a in range(3):
                if c[a] == 0.0:
                    continue
                for side in range(2):
                    b = lo[a] if side == 0 else hi[a]
                    if b < 0:
                        diag += c[a] * kx * (sgn[a, side] - 1.0)
                        continue
                    if a == 0:
                        kn = k[b, i1, j]
                        col = (b * n1 + i1) * n2 + j
                    elif a == 1:
                        kn = k[i0, b, j]
                        col = (i0 * n1 + b) * n2 + j
                    else:
                        kn = k[i0, i1, b]
                        col = q * n2 + b
                    w = c[a] * 2.0 * kx * kn / (kx + kn)
                    diag += -w
                    # lower neighbours in axis order before the diagonal, upper ones after
                    # it in reverse axis order
                    if side == 0:
                        t = p
                        for a2 in range(a):
                            if c[a2] != 0.0 and lo[a2] >= 0:
                                t += 1
                    else:
                        t = pd + 1
                        for a2 in range(a + 1, 3):
                            if c[a2] != 0.0 and hi[a2] >= 0:
                                t += 1
                    indices[t] = col
                    data[t] = w * scale
            indices[pd] = i
            data[pd] = diag * scale


@njit(parallel=True, cache=True)
def prolongation_csr(c0, w0, c1, w1, c2, w2, m1, m2, indices, data):
    """Fill the CSR arrays (``T0 T1 T2`` slots a row) of the Kronecker product of three
    one-axis interpolations: ``c_a[f, t]``, ``w_a[f, t]`` the coarse index and weight of
    tap ``t`` of fine index ``f`` along axis ``a`` (``T_a`` taps); fine cell
    ``(f0, f1, f2)`` takes coarse cell ``(c0 m1 + c1) m2 + c2`` with weight
    ``(w0 w1) w2`` for every combination of taps, axis 0's outermost."""
    n0, t0 = c0.shape
    n1, t1 = c1.shape
    n2, t2 = c2.shape
    slots = t0 * t1 * t2
    for q in prange(n0 * n1):
        f0 = q // n1
        f1 = q - f0 * n1
        for f2 in range(n2):
            p = (q * n2 + f2) * slots
            for a in range(t0):
                for b in range(t1):
                    cab = c0[f0, a] * m1 + c1[f1, b]
                    wab = w0[f0, a] * w1[f1, b]
                    for e in range(t2):
                        indices[p] = cab * m2 + c2[f2, e]
                        data[p] = wab * w2[f2, e]
                        p += 1


@njit(cache=True)
def greedy_colouring(indptr, indices):
    """Colours of the rows of a matrix with a symmetric pattern such that no two rows of
    one colour are coupled: each row in turn takes the smallest colour none of its
    coloured neighbours has (Saad 2003, sec. 3.3.3).  Returns ``(colour, ncolours)``."""
    n = indptr.size - 1
    deg = 0
    for i in range(n):
        deg = max(deg, indptr[i + 1] - indptr[i])
    colour = np.full(n, -1, np.int64)
    seen = np.full(deg + 2, -1, np.int64)
    nc = 0
    for i in range(n):
        for t in range(indptr[i], indptr[i + 1]):
            cj = colour[indices[t]]
            if cj >= 0:
                seen[cj] = i
        ci = 0
        while seen[ci] == i:
            ci += 1
        colour[i] = ci
        nc = max(nc, ci + 1)
    return colour, nc


#: the floating-point liberties of the coloured-row kernels: a row's products summed in
#: any order (the reduction vectorises; 4.6 against 7.9 ms a sweep at 512^2, 21 points
#: a row), deterministic from run to run
_ROW_MATH = {"reassoc", "contract"}


@njit(parallel=True, fastmath=_ROW_MATH, cache=True)
def csr_gauss_seidel_colours(indptr, indices, data, dinv, x, b, order, cptr, forward):
    """One multicolour Gauss-Seidel sweep for ``A x = b`` in place.  ``A``'s rows are
    stored by colour (row ``t`` of the CSR arrays is grid row ``order[t]``; ``dinv[t]``
    its inverse diagonal), colour ``c`` the rows ``cptr[c]:cptr[c + 1]``, mutually
    uncoupled: each colour is one threaded pass ``x_i += (b_i - A_i x) / a_ii`` that
    streams its rows, colours in order (``forward``) or in reverse.  A forward sweep
    before the coarse correction and a backward one after it keep the cycle symmetric."""
    nc = cptr.size - 1
    for cc in range(nc):
        c = cc if forward else nc - 1 - cc
        for t in prange(cptr[c], cptr[c + 1]):
            i = order[t]
            s = 0.0 * x[i]
            for p in range(indptr[t], indptr[t + 1]):
                s += data[p] * x[indices[p]]
            x[i] += (b[i] - s) * dinv[t]


@njit(parallel=True, fastmath=_ROW_MATH, cache=True)
def csr_residual_rows(indptr, indices, data, x, b, r, order):
    """``r = b - A x`` with ``A``'s rows stored by colour (row ``t`` is grid row
    ``order[t]``), one threaded pass over the stored rows."""
    for t in prange(indptr.size - 1):
        i = order[t]
        s = 0.0 * x[i]
        for p in range(indptr[t], indptr[t + 1]):
            s += data[p] * x[indices[p]]
        r[i] = b[i] - s


def _csr_residual_py(indptr, indices, data, x, b, r):
    """``r = b - A x``, ``A`` in CSR form, one pass over the rows (a serial level's)."""
    for i in range(indptr.size - 1):
        s = b[i]
        for p in range(indptr[i], indptr[i + 1]):
            s -= data[p] * x[indices[p]]
        r[i] = s


csr_residual_serial = njit(cache=True)(_csr_residual_py)
