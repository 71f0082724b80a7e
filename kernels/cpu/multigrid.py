"""Geometric multigrid kernels for cell-centred grids (CPU, Numba).

Same conventions as :mod:`jitsolve.kernels.cpu.stencil`: every array is a C-contiguous
three-dimensional view ``(n0, n1, n2)`` of the grid (padded axes have one cell and scale
``c[a] = 0``); ``per[a]`` marks periodic axes and ``sgn[a, side]`` is the ghost sign of
a non-periodic side (Dirichlet -1, Neumann +1).  The operator on a level is
``scale * L`` (constant coefficients, ``c_a = 1/h_a^2``) or ``scale * D(k)``
(``div(k grad u)`` with harmonic face averages), exactly as the stencil kernels apply it.

Kernels
-------
``rbgs_laplacian`` / ``rbgs_diffusion``
    one colour of a red-black Gauss-Seidel sweep (red: ``(i0 + i1 + i2)`` even).  With
    ``first=True`` the sweep assumes a zero initial guess and writes every cell (the
    other colour to zero), which saves the pass that would clear ``u``.
``residual_laplacian`` / ``residual_diffusion``
    ``r = f - scale * A u`` in one pass.
``prolong_add``
    ``fine += P coarse`` with cell-centred (bi/tri)linear interpolation: a fine cell takes
    3/4 of its parent and 1/4 of the parent's neighbour on its side along every coarsened
    axis; a boundary ghost parent is ``sgn * parent`` (homogeneous boundary data, as for a
    correction).
``restrict_fw``
    ``coarse = P^T fine / 2^d``: the exact (scaled) transpose of ``prolong_add``, i.e.
    cell-centred full weighting.  Because restriction and prolongation are transposes and
    the smoother is applied in reverse colour order after the coarse correction, the
    V- and W-cycles are symmetric operators (positive definite for SPD levels), so they
    can precondition CG.

``act[a]`` is 1 for axes that are coarsened (n -> n/2) and 0 for padded axes.  Rows are
distributed over threads and every output row is written by one thread, so results are
independent of the schedule.

References
----------
Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), sec. 2.9 (symmetric cycles),
4.3 (red-black Gauss-Seidel), 5.7 (cell-centred transfer operators); Wesseling,
*An Introduction to Multigrid Methods* (1992), ch. 5.
"""
import numpy as np
from numba import njit, prange

__all__ = ["rbgs_laplacian", "rbgs_diffusion", "residual_laplacian", "residual_diffusion",
           "prolong_add", "restrict_fw"]


@njit(inline="always", cache=True)
def _nb(i, n, per, s, up):
    """Neighbour of ``i`` (below, or above when ``up``): (index, ghost sign, is_ghost)."""
    if up:
        if i < n - 1:
            return i + 1, 1.0, False
        if per:
            return 0, 1.0, False
        return i, s, True
    if i > 0:
        return i - 1, 1.0, False
    if per:
        return n - 1, 1.0, False
    return i, s, True


@njit(inline="always", cache=True)
def _harm(a, b):
    return 2.0 * a * b / (a + b)


# ------------------------------------------------------------------ Laplacian level
@njit(inline="always", cache=True)
def _lap_parts(u, i0, i1, j, n0, n1, n2, c0, c1, c2, per, sgn):
    """Off-diagonal sum and diagonal of ``L`` at cell (i0, i1, j)."""
    a0, s0, g0 = _nb(i0, n0, per[0], sgn[0, 0], False)
    b0, t0, h0 = _nb(i0, n0, per[0], sgn[0, 1], True)
    a1, s1, g1 = _nb(i1, n1, per[1], sgn[1, 0], False)
    b1, t1, h1 = _nb(i1, n1, per[1], sgn[1, 1], True)
    a2, s2, g2 = _nb(j, n2, per[2], sgn[2, 0], False)
    b2, t2, h2 = _nb(j, n2, per[2], sgn[2, 1], True)
    off = 0.0 * u[i0, i1, j]
    dg = -2.0 * (c0 + c1 + c2)
    if g0:
        dg += c0 * s0
    else:
        off += c0 * u[a0, i1, j]
    if h0:
        dg += c0 * t0
    else:
        off += c0 * u[b0, i1, j]
    if g1:
        dg += c1 * s1
    else:
        off += c1 * u[i0, a1, j]
    if h1:
        dg += c1 * t1
    else:
        off += c1 * u[i0, b1, j]
    if g2:
        dg += c2 * s2
    else:
        off += c2 * u[i0, i1, a2]
    if h2:
        dg += c2 * t2
    else:
        off += c2 * u[i0, i1, b2]
    return off, dg


@njit(parallel=True, cache=True)
def rbgs_laplacian(u, f, c, per, sgn, scale, color, first):
    """One colour of red-black Gauss-Seidel for ``scale * L u = f`` (in place in ``u``)."""
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    inv = 1.0 / scale
    for r in prange(n0 * n1):
        i0 = r // n1
        i1 = r - i0 * n1
        start = (color + i0 + i1) & 1
        if first:
            for j in range(1 - start, n2, 2):
                u[i0, i1, j] = 0.0
            for j in range(start, n2, 2):
                off, dg = _lap_parts(u, i0, i1, j, n0, n1, n2, c0, c1, c2, per, sgn)
                u[i0, i1, j] = f[i0, i1, j] * inv / dg
        else:
            for j in range(start, n2, 2):
                off, dg = _lap_parts(u, i0, i1, j, n0, n1, n2, c0, c1, c2, per, sgn)
                u[i0, i1, j] = (f[i0, i1, j] * inv - off) / dg


@njit(parallel=True, cache=True)
def residual_laplacian(u, f, r, c, per, sgn, scale):
    """``r = f - scale * L u``."""
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    for q in prange(n0 * n1):
        i0 = q // n1
        i1 = q - i0 * n1
        for j in range(n2):
            off, dg = _lap_parts(u, i0, i1, j, n0, n1, n2, c0, c1, c2, per, sgn)
            r[i0, i1, j] = f[i0, i1, j] - scale * (off + dg * u[i0, i1, j])


# ------------------------------------------------------------------ Diffusion level
@njit(inline="always", cache=True)
def _dif_parts(u, k, i0, i1, j, n0, n1, n2, c0, c1, c2, per, sgn):
    """Off-diagonal sum and diagonal of ``D(k)`` at cell (i0, i1, j)."""
    a0, s0, g0 = _nb(i0, n0, per[0], sgn[0, 0], False)
    b0, t0, h0 = _nb(i0, n0, per[0], sgn[0, 1], True)
    a1, s1, g1 = _nb(i1, n1, per[1], sgn[1, 0], False)
    b1, t1, h1 = _nb(i1, n1, per[1], sgn[1, 1], True)
    a2, s2, g2 = _nb(j, n2, per[2], sgn[2, 0], False)
    b2, t2, h2 = _nb(j, n2, per[2], sgn[2, 1], True)
    kx = k[i0, i1, j]
    off = 0.0 * u[i0, i1, j]
    dg = 0.0
    if c0 != 0.0:
        if g0:
            dg += c0 * kx * (s0 - 1.0)
        else:
            w = c0 * _harm(kx, k[a0, i1, j])
            off += w * u[a0, i1, j]
            dg -= w
        if h0:
            dg += c0 * kx * (t0 - 1.0)
        else:
            w = c0 * _harm(kx, k[b0, i1, j])
            off += w * u[b0, i1, j]
            dg -= w
    if c1 != 0.0:
        if g1:
            dg += c1 * kx * (s1 - 1.0)
        else:
            w = c1 * _harm(kx, k[i0, a1, j])
            off += w * u[i0, a1, j]
            dg -= w
        if h1:
            dg += c1 * kx * (t1 - 1.0)
        else:
            w = c1 * _harm(kx, k[i0, b1, j])
            off += w * u[i0, b1, j]
            dg -= w
    if c2 != 0.0:
        if g2:
            dg += c2 * kx * (s2 - 1.0)
        else:
            w = c2 * _harm(kx, k[i0, i1, a2])
            off += w * u[i0, i1, a2]
            dg -= w
        if h2:
            dg += c2 * kx * (t2 - 1.0)
        else:
            w = c2 * _harm(kx, k[i0, i1, b2])
            off += w * u[i0, i1, b2]
            dg -= w
    return off, dg


@njit(parallel=True, cache=True)
def rbgs_diffusion(u, f, k, c, per, sgn, scale, color, first):
    """One colour of red-black Gauss-Seidel for ``scale * D(k) u = f`` (in place in ``u``)."""
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    inv = 1.0 / scale
    for r in prange(n0 * n1):
        i0 = r // n1
        i1 = r - i0 * n1
        start = (color + i0 + i1) & 1
        if first:
            for j in range(1 - start, n2, 2):
                u[i0, i1, j] = 0.0
            for j in range(start, n2, 2):
                off, dg = _dif_parts(u, k, i0, i1, j, n0, n1, n2, c0, c1, c2, per, sgn)
                u[i0, i1, j] = f[i0, i1, j] * inv / dg
        else:
            for j in range(start, n2, 2):
                off, dg = _dif_parts(u, k, i0, i1, j, n0, n1, n2, c0, c1, c2, per, sgn)
                u[i0, i1, j] = (f[i0, i1, j] * inv - off) / dg


@njit(parallel=True, cache=True)
def residual_diffusion(u, f, k, r, c, per, sgn, scale):
    """``r = f - scale * D(k) u``."""
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    for q in prange(n0 * n1):
        i0 = q // n1
        i1 = q - i0 * n1
        for j in range(n2):
            off, dg = _dif_parts(u, k, i0, i1, j, n0, n1, n2, c0, c1, c2, per, sgn)
            r[i0, i1, j] = f[i0, i1, j] - scale * (off + dg * u[i0, i1, j])


# ------------------------------------------------------------------ transfers
@njit(inline="always", cache=True)
def _ptaps(j, nc, act, per, glo, ghi):
    """Interpolation taps of fine index ``j`` along one axis: (I, wI, N, wN)."""
    if not act:
        return j, 1.0, j, 0.0
    I = j // 2
    if j - 2 * I == 0:
        if I > 0:
            return I, 0.75, I - 1, 0.25
        if per:
            return I, 0.75, nc - 1, 0.25
        return I, 0.75 + 0.25 * glo, I, 0.0
    if I < nc - 1:
        return I, 0.75, I + 1, 0.25
    if per:
        return I, 0.75, 0, 0.25
    return I, 0.75 + 0.25 * ghi, I, 0.0


@njit(parallel=True, cache=True)
def prolong_add(coarse, fine, act, per, sgn):
    """``fine += P coarse`` (cell-centred linear interpolation along coarsened axes)."""
    m0, m1, m2 = coarse.shape
    n0, n1, n2 = fine.shape
    for q in prange(n0 * n1):
        j0 = q // n1
        j1 = q - j0 * n1
        A0, wa0, B0, wb0 = _ptaps(j0, m0, act[0], per[0], sgn[0, 0], sgn[0, 1])
        A1, wa1, B1, wb1 = _ptaps(j1, m1, act[1], per[1], sgn[1, 0], sgn[1, 1])
        caa = coarse[A0, A1]
        cab = coarse[A0, B1]
        cba = coarse[B0, A1]
        cbb = coarse[B0, B1]
        waa = wa0 * wa1
        wab = wa0 * wb1
        wba = wb0 * wa1
        wbb = wb0 * wb1
        fr = fine[j0, j1]
        for j2 in range(n2):
            A2, wa2, B2, wb2 = _ptaps(j2, m2, act[2], per[2], sgn[2, 0], sgn[2, 1])
            fr[j2] += (waa * (wa2 * caa[A2] + wb2 * caa[B2]) + wab * (wa2 * cab[A2] + wb2 * cab[B2])
                       + wba * (wa2 * cba[A2] + wb2 * cba[B2]) + wbb * (wa2 * cbb[A2] + wb2 * cbb[B2]))


@njit(inline="always", cache=True)
def _rtaps(I, nf, act, per, glo, ghi):
    """Transpose taps of coarse index ``I``: fine indices j0..j3 and weights (0: absent)."""
    if not act:
        return I, 1.0, I, 0.0, I, 0.0, I, 0.0
    j = 2 * I
    if j > 0:
        jm, wm = j - 1, 0.25
        w0 = 0.75
    elif per:
        jm, wm = nf - 1, 0.25
        w0 = 0.75
    else:
        jm, wm = j, 0.0
        w0 = 0.75 + 0.25 * glo
    if j + 2 < nf:
        jp, wp = j + 2, 0.25
        w1 = 0.75
    elif per:
        jp, wp = 0, 0.25
        w1 = 0.75
    else:
        jp, wp = j, 0.0
        w1 = 0.75 + 0.25 * ghi
    return jm, wm, j, w0, j + 1, w1, jp, wp


@njit(parallel=True, cache=True)
def restrict_fw(fine, coarse, act, per, sgn):
    """``coarse = P^T fine / 2^d``: cell-centred full weighting, the transpose of ``prolong_add``."""
    m0, m1, m2 = coarse.shape
    n0, n1, n2 = fine.shape
    d = act[0] + act[1] + act[2]
    scale = 1.0 / (1 << d)
    for q in prange(m0 * m1):
        I0 = q // m1
        I1 = q - I0 * m1
        t0 = _rtaps(I0, n0, act[0], per[0], sgn[0, 0], sgn[0, 1])
        t1 = _rtaps(I1, n1, act[1], per[1], sgn[1, 0], sgn[1, 1])
        cr = coarse[I0, I1]
        for I2 in range(m2):
            t2 = _rtaps(I2, n2, act[2], per[2], sgn[2, 0], sgn[2, 1])
            s = 0.0 * fine[0, 0, 0]
            for a in range(4):
                wa = t0[1] if a == 0 else (t0[3] if a == 1 else (t0[5] if a == 2 else t0[7]))
                if wa == 0.0:
                    continue
                ja = t0[0] if a == 0 else (t0[2] if a == 1 else (t0[4] if a == 2 else t0[6]))
                for b in range(4):
                    wb = t1[1] if b == 0 else (t1[3] if b == 1 else (t1[5] if b == 2 else t1[7]))
                    if wb == 0.0:
                        continue
                    jb = t1[0] if b == 0 else (t1[2] if b == 1 else (t1[4] if b == 2 else t1[6]))
                    row = fine[ja, jb]
                    w = wa * wb
                    s += w * (t2[1] * row[t2[0]] + t2[3] * row[t2[2]]
                              + t2[5] * row[t2[4]] + t2[7] * row[t2[6]])
            cr[I2] = scale * s
