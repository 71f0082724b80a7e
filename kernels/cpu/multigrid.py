"""Geometric multigrid kernels for cell-centred grids (CPU, Numba).

Same conventions as :mod:`jitsolve.kernels.cpu.stencil`: every array is a C-contiguous
three-dimensional view ``(n0, n1, n2)`` of the grid (padded axes have one cell and scale
``c[a] = 0``); ``per[a]`` marks periodic axes and ``sgn[a, side]`` is the ghost sign of
a non-periodic side (Dirichlet -1, Neumann +1).  The operator on a level is
``scale * L`` (constant coefficients, ``c_a = 1/h_a^2``) or ``scale * D(k)``
(``div(k grad u)`` with harmonic face averages), exactly as the stencil kernels apply it.

Kernels
-------
A Laplacian level's ``c`` may carry a fourth entry, a shift of the diagonal
(``sigma / scale`` for the operator ``sigma I + scale L``).

``rbgs_laplacian`` / ``rbgs_diffusion``
    one colour of a red-black Gauss-Seidel sweep (red: ``(i0 + i1 + i2)`` even).  With
    ``first=True`` the sweep assumes a zero initial guess and writes every cell (the
    other colour to zero), which saves the pass that would clear ``u``.
``gs_sweep_laplacian`` / ``gs_sweep_diffusion``
    a full red-black sweep (both colours) in one pass over the rows, the second colour
    lagging one row (one plane in 3-D); bit-for-bit the two half-sweeps.  Three
    half-sweeps (red-black-red, the symmetric sweep) the same way, the third lagging two.
    For ``D(k)`` from the face weights and diagonal of ``diffusion_faces`` (computed once
    per level: no harmonic means in the sweep, and rows that vectorise).
``residual_laplacian`` / ``residual_diffusion``
    ``r = f - scale * A u`` in one pass (``residual_laplacian_fast``: the same with
    vectorised unsigned-index rows; used by the cycle).
``restrict_residual_laplacian``
    ``restrict_fw`` of the residual without a residual array: the residual rows under
    each coarse row formed in a ring of row buffers (bit-for-bit the two passes).
``restrict_planes``
    a 3-D level's restriction plane by plane (each fine plane restricted along axes 1
    and 2 once, the coarse planes combining their axis-0 taps), of a given field or of
    the Laplacian residual formed inside; ``restrict_fw``'s sums in another order.
``*_serial``
    the same source compiled without ``parallel`` (small levels, where a parallel region
    costs more than the work).
``prolong_add``
    ``fine += weight * P coarse`` with cell-centred (bi/tri)linear interpolation: a fine cell takes
    3/4 of its parent and 1/4 of the parent's neighbour on its side along every coarsened
    axis; a boundary ghost parent is ``sgn * parent`` (homogeneous boundary data, as for a
    correction).
``restrict_fw``
    ``coarse = P^T fine / 2^d``: the exact (scaled) transpose of ``prolong_add``, i.e.
    cell-centred full weighting.  Because restriction and prolongation are transposes and
    the smoother is applied in reverse colour order after the coarse correction, the
    V- and W-cycles are symmetric operators (positive definite for SPD levels), so they
    can precondition CG.

``csr_gauss_seidel``
    one Gauss-Seidel sweep on a CSR matrix (rows forward or backward), the smoother of
    Galerkin coarse levels, whose wide stencils (up to 125 points in 3-D) have no red-black
    colouring.
``interpolation_taps``
    the one-axis taps of ``prolong_add`` (the Galerkin setup builds ``P`` from them).
``coarse_solve``
    the coarsest level's solve: ``x = A^{-1} b`` from LAPACK's ``getrf`` factors (row
    interchanges, unit lower and upper triangles), or ``x = A^+ b`` from a
    pseudo-inverse.  Serial and in-process: LAPACK's ``getrs`` on these tiny systems cost
    more in waking its thread pool (~0.2 ms a call inside a solve) than the solve itself.

``act[a]`` is 1 for axes that are coarsened (n -> n/2; an odd, non-periodic n -> (n - 1)/2,
the last fine cell then interpolated from the last coarse cell and its ghost, whose
sign places the far boundary where the fine grid has it) and 0 for padded axes.  Rows are
distributed over threads and every output row is written by one thread, so results are
independent of the schedule.

References
----------
Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), sec. 2.9 (symmetric cycles),
4.3 (red-black Gauss-Seidel), 5.7 (cell-centred transfer operators); Wesseling,
*An Introduction to Multigrid Methods* (1992), ch. 5.
"""
import types

import numpy as np
from numba import njit, prange

# the row helpers with loops are LLVM-inlined, error_model="numpy" (as the stencils':
# see the docstring of .stencil; a cold compile of this module's kernels ~2/3 of the time)
from .inlining import llvm_always_inline
from .stencil import _chunk, _harm, _hi, _lo
from .redblack_blocks import (RB_WIDTH, data_address, gs_block_dif2, gs_block_dif3,
                              gs_block_lap2, gs_block_lap3, has_vector_blocks, load_real)

__all__ = ["rbgs_laplacian", "rbgs_diffusion", "residual_laplacian", "residual_diffusion",
           "prolong_add", "restrict_fw", "rsub", "gs_sweep_laplacian", "gs_sweep_laplacian_serial",
           "gs_sweep_diffusion", "gs_sweep_diffusion_serial", "diffusion_faces",
           "residual_laplacian_fast", "residual_laplacian_serial", "restrict_fw_serial",
           "prolong_add_serial", "interpolation_taps", "csr_gauss_seidel", "coarse_solve",
           "restrict_residual_laplacian", "restrict_residual_laplacian_serial",
           "restrict_planes", "row_dots_total"]


@njit(parallel=True, cache=True)
def rsub(f, r):
    """``r = f - r`` on flat arrays (turns ``A u`` from a stencil kernel into a residual)."""
    for i in prange(r.size):
        r[i] = f[i] - r[i]


# ------------------------------------------------------------------ Laplacian level
@njit(inline="always", cache=True)
def _lap_row(q, n0, n1, n2, c0, c1, c2, per, sgn, dsh):
    """Flat offsets and weights of the four neighbouring rows of row ``q`` and the row's
    diagonal (interior of the contiguous axis; ``dsh``: a shift of the diagonal, the
    ``sigma / scale`` of ``sigma I + scale L``).  A boundary ghost row gets weight 0 and
    adds ``c * s`` to the diagonal, so the interior loop has no branches."""
    i0 = q // n1
    i1 = q - i0 * n1
    base = q * n2
    dg = -2.0 * (c0 + c1 + c2) + dsh
    a0, s0, g0 = _lo(i0, n0, per[0], sgn[0, 0])
    b0, t0, h0 = _hi(i0, n0, per[0], sgn[0, 1])
    a1, s1, g1 = _lo(i1, n1, per[1], sgn[1, 0])
    b1, t1, h1 = _hi(i1, n1, per[1], sgn[1, 1])
    wm0 = c0
    wp0 = c0
    wm1 = c1
    wp1 = c1
    if g0:
        wm0 = 0.0
        dg += c0 * s0
    if h0:
        wp0 = 0.0
        dg += c0 * t0
    if g1:
        wm1 = 0.0
        dg += c1 * s1
    if h1:
        wp1 = 0.0
        dg += c1 * t1
    return (base, (a0 * n1 + i1) * n2, wm0, (b0 * n1 + i1) * n2, wp0,
            (i0 * n1 + a1) * n2, wm1, (i0 * n1 + b1) * n2, wp1, dg)


@njit(inline="always", cache=True)
def _lap_off(uf, row, j):
    base, m0, wm0, p0, wp0, m1, wm1, p1, wp1, dg = row
    return wm0 * uf[m0 + j] + wp0 * uf[p0 + j] + wm1 * uf[m1 + j] + wp1 * uf[p1 + j]


@njit(inline="always", cache=True)
def _lap_end(uf, row, j, n2, c2, per2, slo, shi):
    """Off-diagonal sum and diagonal at an end cell ``j`` of the contiguous axis."""
    base = row[0]
    dg = row[9]
    off = _lap_off(uf, row, j)
    a, s, g = _lo(j, n2, per2, slo)
    b, t, h = _hi(j, n2, per2, shi)
    if g:
        dg += c2 * s
    else:
        off += c2 * uf[base + a]
    if h:
        dg += c2 * t
    else:
        off += c2 * uf[base + b]
    return off, dg


@njit(parallel=True, cache=True)
def rbgs_laplacian(u, f, c, per, sgn, scale, color, first):
    """One colour of red-black Gauss-Seidel for ``scale * L u = f`` (in place in ``u``)."""
    n0, n1, n2 = u.shape
    uf = u.reshape(u.size)
    ff = f.reshape(f.size)
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    dsh = c[3] if c.shape[0] > 3 else 0.0
    inv = 1.0 / scale
    per2 = per[2]
    slo = sgn[2, 0]
    shi = sgn[2, 1]
    for qq in prange(n0 * n1):
        q = np.int64(qq)
        row = _lap_row(q, n0, n1, n2, c0, c1, c2, per, sgn, dsh)
        base = row[0]
        idg = 1.0 / row[9]
        i0 = q // n1
        i1 = q - i0 * n1
        start = (color + i0 + i1) & 1
        if first:
            ub = np.uint64(base)
            for j in range(np.uint64(1 - start), np.uint64(n2), np.uint64(2)):
                uf[ub + j] = 0.0
        for j in (0, n2 - 1):
            if (j & 1) == start and (j == 0 or j == n2 - 1):
                if first:
                    off = 0.0
                    _o, dg = _lap_end(uf, row, j, n2, c2, per2, slo, shi)
                else:
                    off, dg = _lap_end(uf, row, j, n2, c2, per2, slo, shi)
                uf[base + j] = (ff[base + j] * inv - off) / dg
            if n2 == 1:
                break
        js = start if start >= 1 else start + 2
        if first:
            ub = np.uint64(base)
            sc = inv * idg
            for j in range(np.uint64(js), np.uint64(n2 - 1), np.uint64(2)):
                uf[ub + j] = ff[ub + j] * sc
        else:
            one = np.uint64(1)
            ub = np.uint64(base)
            um0 = np.uint64(row[1])
            up0 = np.uint64(row[3])
            um1 = np.uint64(row[5])
            up1 = np.uint64(row[7])
            wm0 = row[2]
            wp0 = row[4]
            wm1 = row[6]
            wp1 = row[8]
            for j in range(np.uint64(js), np.uint64(n2 - 1), np.uint64(2)):
                k = ub + j
                off = (wm0 * uf[um0 + j] + wp0 * uf[up0 + j] + wm1 * uf[um1 + j] + wp1 * uf[up1 + j]
                       + c2 * (uf[k - one] + uf[k + one]))
                uf[k] = (ff[k] * inv - off) * idg


@njit(parallel=True, cache=True)
def residual_laplacian(u, f, r, c, per, sgn, scale):
    """``r = f - scale * L u``."""
    n0, n1, n2 = u.shape
    uf = u.reshape(u.size)
    ff = f.reshape(f.size)
    rf = r.reshape(r.size)
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    dsh = c[3] if c.shape[0] > 3 else 0.0
    per2 = per[2]
    slo = sgn[2, 0]
    shi = sgn[2, 1]
    for qq in prange(n0 * n1):
        q = np.int64(qq)
        row = _lap_row(q, n0, n1, n2, c0, c1, c2, per, sgn, dsh)
        base = row[0]
        dg = row[9]
        for j in range(1, n2 - 1):
            rf[base + j] = ff[base + j] - scale * (_lap_off(uf, row, j) + c2 * (uf[base + j - 1] + uf[base + j + 1])
                                                   + dg * uf[base + j])
        for j in (0, n2 - 1):
            off, d = _lap_end(uf, row, j, n2, c2, per2, slo, shi)
            rf[base + j] = ff[base + j] - scale * (off + d * uf[base + j])
            if n2 == 1:
                break


# ------------------------------------------------------------------ Diffusion level
@njit(inline="always", cache=True)
def _dif_parts(u, k, i0, i1, j, n0, n1, n2, c0, c1, c2, per, sgn):
    """Off-diagonal sum and diagonal of ``D(k)`` at cell (i0, i1, j)."""
    a0, s0, g0 = _lo(i0, n0, per[0], sgn[0, 0])
    b0, t0, h0 = _hi(i0, n0, per[0], sgn[0, 1])
    a1, s1, g1 = _lo(i1, n1, per[1], sgn[1, 0])
    b1, t1, h1 = _hi(i1, n1, per[1], sgn[1, 1])
    a2, s2, g2 = _lo(j, n2, per[2], sgn[2, 0])
    b2, t2, h2 = _hi(j, n2, per[2], sgn[2, 1])
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
    if I == nc:
        # the extra last cell of an odd axis: beyond the last parent's children, between
        # it and its ghost (1.5 and 0.5 fine cells away)
        return I - 1, 0.25 + 0.75 * ghi, I - 1, 0.0
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


@njit(cache=True)
def interpolation_taps(nc, nf, act, per, glo, ghi):
    """The taps of :func:`prolong_add` along one axis from ``nc`` coarse to ``nf`` fine
    cells, as arrays ``(I, wI, N, wN)`` (``nf = 2 nc``, or ``2 nc + 1`` for an odd axis;
    ``nf = nc`` and unit weights when the axis is not coarsened): ``P`` is the Kronecker
    product of these."""
    I = np.empty(nf, dtype=np.int64)
    N = np.empty(nf, dtype=np.int64)
    wI = np.empty(nf)
    wN = np.empty(nf)
    for j in range(nf):
        I[j], wI[j], N[j], wN[j] = _ptaps(j, nc, act, per, glo, ghi)
    return I, wI, N, wN


#: chunks of rows of :func:`prolong_add` and :func:`restrict_fw` (one row buffer each)
RESTRICT_CHUNKS = 64


@njit(parallel=True, cache=True)
def prolong_add(coarse, fine, act, per, sgn, weight=1.0):
    """``fine += weight * P coarse`` (cell-centred linear interpolation along coarsened
    axes; ``weight``: an over-correction factor, folded into the combination weights, so
    ``weight = 1`` gives the unweighted sums bit for bit).

    Per fine row, the coarse rows it interpolates from (up to 2 along each coarsened outer
    axis) are first combined with their weights into a contiguous row buffer, which is
    then interpolated along the contiguous axis once (the stride-2 writes; added as it
    is when semi-coarsening leaves that axis), as :func:`restrict_fw` does in reverse;
    the sums are those of the operator up to their order."""
    m0, m1, m2 = coarse.shape
    n0, n1, n2 = fine.shape
    cf = coarse.reshape(coarse.size)
    ff = fine.reshape(fine.size)
    per2 = per[2]
    glo = sgn[2, 0]
    ghi = sgn[2, 1]
    nch = min(n0 * n1, RESTRICT_CHUNKS)
    for ch in prange(nch):
        lo, hi = _chunk(np.int64(ch), nch, n0 * n1)
        t = np.empty(m2, coarse.dtype)     # the coarse rows combined
        for q in range(lo, hi):
            j0 = q // n1
            j1 = q - j0 * n1
            A0, wa0, B0, wb0 = _ptaps(j0, m0, act[0], per[0], sgn[0, 0], sgn[0, 1])
            A1, wa1, B1, wb1 = _ptaps(j1, m1, act[1], per[1], sgn[1, 0], sgn[1, 1])
            w = weight * wa0 * wa1
            ca = cf[(A0 * m1 + A1) * m2:(A0 * m1 + A1 + 1) * m2]
            for I in range(m2):
                t[I] = w * ca[I]
            if wb1 != 0.0:
                w = weight * wa0 * wb1
                cb = cf[(A0 * m1 + B1) * m2:(A0 * m1 + B1 + 1) * m2]
                for I in range(m2):
                    t[I] += w * cb[I]
            if wb0 != 0.0:
                w = weight * wb0 * wa1
                cc = cf[(B0 * m1 + A1) * m2:(B0 * m1 + A1 + 1) * m2]
                for I in range(m2):
                    t[I] += w * cc[I]
                if wb1 != 0.0:
                    w = weight * wb0 * wb1
                    cd = cf[(B0 * m1 + B1) * m2:(B0 * m1 + B1 + 1) * m2]
                    for I in range(m2):
                        t[I] += w * cd[I]
            fr = ff[q * n2:(q + 1) * n2]
            if not act[2]:
                for I in range(m2):
                    fr[I] += t[I]
                continue
            for I in range(1, m2 - 1):
                v = 0.75 * t[I]
                fr[2 * I] += v + 0.25 * t[I - 1]
                fr[2 * I + 1] += v + 0.25 * t[I + 1]
            # the ends: fine cells 0, 1 and 2 m2 - 2, 2 m2 - 1, and 2 m2 when n2 is odd
            for e in range(5):
                j = e if e < 2 else 2 * m2 - 4 + e
                if j >= n2 or (e >= 2 and e < 4 and m2 == 1):
                    continue
                I, wI, N, wN = _ptaps(j, m2, 1, per2, glo, ghi)
                fr[j] += wI * t[I] + wN * t[N]


@njit(inline="always", cache=True)
def _rtaps(I, nf, act, per, glo, ghi):
    """Transpose taps of coarse index ``I``: fine indices j0..j3 and weights (0: absent).
    An odd ``nf`` coarsens to ``(nf - 1) / 2`` cells: the last coarse cell also takes
    the extra fine cell (``j + 2``) with its interpolation weight."""
    if not act:
        return I, 1.0, I, 0.0, I, 0.0, I, 0.0
    j = 2 * I
    if j + 3 == nf and not per:
        if j > 0:
            jm, wm, w0 = j - 1, 0.25, 0.75
        else:
            jm, wm, w0 = j, 0.0, 0.75 + 0.25 * glo
        return jm, wm, j, w0, j + 1, 0.75 + 0.25 * ghi, j + 2, 0.25 + 0.75 * ghi
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


@njit(inline="always", cache=True)
def _tap(t, k):
    """Entry ``k`` (index, weight) of a tap tuple from :func:`_rtaps`."""
    if k == 0:
        return t[0], t[1]
    if k == 1:
        return t[2], t[3]
    if k == 2:
        return t[4], t[5]
    return t[6], t[7]


@njit(cache=True, error_model="numpy")
def _add_row(t, w, fr, first, n2):
    """``t = w fr`` (``first``) or ``t += w fr``: one fine row into the row buffer."""
    llvm_always_inline()
    if first:
        for j in range(n2):
            t[j] = w * fr[j]
    else:
        for j in range(n2):
            t[j] += w * fr[j]


@njit(cache=True, error_model="numpy")
def _add4(t, src, o0, o1, o2, o3, w0, w1, w2, w3, first, n):
    """``t (+)= w0 src[o0:] + w1 src[o1:] + w2 src[o2:] + w3 src[o3:]`` over ``n`` entries,
    the terms added in that order (the sums of four :func:`_add_row` calls, bit for bit)
    in one loop with unsigned indices, which vectorises."""
    llvm_always_inline()
    u0 = np.uint64(o0)
    u1 = np.uint64(o1)
    u2 = np.uint64(o2)
    u3 = np.uint64(o3)
    if first:
        for j in range(np.uint64(n)):
            t[j] = w0 * src[u0 + j] + w1 * src[u1 + j] + w2 * src[u2 + j] + w3 * src[u3 + j]
    else:
        for j in range(np.uint64(n)):
            t[j] = t[j] + w0 * src[u0 + j] + w1 * src[u1 + j] + w2 * src[u2 + j] + w3 * src[u3 + j]


@njit(cache=True, error_model="numpy")
def _restrict_row(t, c, m2, n2, per2, glo, ghi, act2):
    """``c`` = the combined fine rows ``t`` restricted along the contiguous axis (copied
    when that axis is not coarsened, ``act2 = 0``)."""
    llvm_always_inline()
    if not act2:
        for I in range(m2):
            c[I] = t[I]
        return
    for I in range(1, m2 - 1):
        k = 2 * I
        c[I] = 0.25 * (t[k - 1] + t[k + 2]) + 0.75 * (t[k] + t[k + 1])
    for I in (0, m2 - 1):
        jm, wm, j0, w0, j1, w1, jp, wp = _rtaps(I, n2, 1, per2, glo, ghi)
        c[I] = wm * t[jm] + w0 * t[j0] + w1 * t[j1] + wp * t[jp]
        if m2 == 1:
            break


@njit(parallel=True, cache=True)
def restrict_fw(fine, coarse, act, per, sgn):
    """``coarse = P^T fine / 2^d``: cell-centred full weighting, the transpose of ``prolong_add``.

    Per coarse row, the fine rows under it (up to 4 along each coarsened outer axis) are
    first combined with their weights into a contiguous row buffer (a loop that
    vectorises), then the buffer is restricted along the contiguous axis once (the
    stride-2 taps).  Measured 2.4x faster at 1024^2 (0.33 against 0.79 ms) and 2.3x at
    128^3 than restricting every fine row along the contiguous axis first; the sums are
    the same up to their order (rounding)."""
    m0, m1, m2 = coarse.shape
    n0, n1, n2 = fine.shape
    cf = coarse.reshape(coarse.size)
    ff = fine.reshape(fine.size)
    d = act[0] + act[1] + act[2]
    scale = 1.0 / (1 << d)
    per2 = per[2]
    glo = sgn[2, 0]
    ghi = sgn[2, 1]
    nch = min(m0 * m1, RESTRICT_CHUNKS)
    for ch in prange(nch):
        lo, hi = _chunk(np.int64(ch), nch, m0 * m1)
        t = np.empty(n2, fine.dtype)       # the fine rows combined
        off = np.empty(4, np.int64)
        wt = np.empty(4)
        for q in range(lo, hi):
            I0 = q // m1
            I1 = q - I0 * m1
            t0 = _rtaps(I0, n0, act[0], per[0], sgn[0, 0], sgn[0, 1])
            t1 = _rtaps(I1, n1, act[1], per[1], sgn[1, 0], sgn[1, 1])
            first = True
            for a in range(4):
                ja, wa = _tap(t0, a)
                if wa == 0.0:
                    continue
                nb = 0
                for b in range(4):
                    jb, wb = _tap(t1, b)
                    if wb != 0.0:
                        off[nb] = (ja * n1 + jb) * n2
                        wt[nb] = scale * wa * wb
                        nb += 1
                _add_taps(t, ff, off, wt, nb, first, n2)
                first = False
            _restrict_row(t, cf[q * m2:(q + 1) * m2], m2, n2, per2, glo, ghi, act[2])


# ------------------------------------------------------------------ fused smoother sweeps
# One full red-black sweep in one pass over the grid: the first colour is updated on row
# q and the second colour on row q - L in the same pass (L = 1 row in 2-D, one plane of
# n1 rows when axis 0 is active).  Every neighbour of a cell has the other colour, so the
# second colour on row q - L sees all of its first-colour neighbours (rows q - 2L .. q)
# already updated, and the first colour on row q sees its second-colour neighbours still
# old: the result is exactly that of the two half-sweeps.  Rows are split into a fixed
# number of contiguous chunks (independent of the thread count); the second colour on the
# first and last L rows of a chunk, whose first-colour neighbours belong to another chunk,
# is done in a second parallel pass.

@njit(cache=True, error_model="numpy")
def _gs_lap_rowc(uf, ff, row, n2, c2, per2, slo, shi, inv, st, zero):
    """Update the cells ``j`` with ``j & 1 == st`` of one row (flat offsets in ``row``);
    ``zero``: every other-colour value is zero (first sweep from a zero guess; the other
    colour's cells of this row are then left with scratch values, which its own update,
    reading only this colour, overwrites)."""
    llvm_always_inline()
    base = row[0]
    for e in range(2):
        j = 0 if e == 0 else n2 - 1
        if e == 1 and n2 == 1:
            break
        if (j & 1) == st:
            off, dg = _lap_end(uf, row, j, n2, c2, per2, slo, shi)
            if zero:
                off = 0.0
            uf[base + j] = (ff[base + j] * inv - off) / dg
        elif zero:
            uf[base + j] = 0.0   # read (with weight 0) as a padded-axis neighbour
    idg = 1.0 / row[9]
    ub = np.uint64(base)
    if zero:
        sc = inv * idg
        for j in range(np.uint64(1), np.uint64(n2 - 1)):
            uf[ub + j] = ff[ub + j] * sc
        return
    wm0 = row[2]
    wp0 = row[4]
    wm1 = row[6]
    wp1 = row[8]
    js = st if st >= 1 else 2
    # vector blocks first (redblack_blocks: contiguous loads, the other colour kept by a
    # lane mask; the same bits), then a stride-2 loop for the cells left (flat unsigned
    # indices: no row views, whose reference counting costs more than these few cells)
    j0 = js
    nb = (n2 - js) // RB_WIDTH if has_vector_blocks(uf, ff) else 0
    if nb > 0:
        ua = data_address(uf)
        fa = data_address(ff)
        cr = load_real(ua, uf.dtype, base + js - 1)
        if wm0 == 0.0 and wp0 == 0.0:
            for b in range(nb):
                cr = gs_block_lap2(ua, fa, uf.dtype, base, js + b * RB_WIDTH, row[1], row[3],
                                   row[5], row[7], wm0, wp0, wm1, wp1, c2, inv, idg, cr)
        else:
            for b in range(nb):
                cr = gs_block_lap3(ua, fa, uf.dtype, base, js + b * RB_WIDTH, row[1], row[3],
                                   row[5], row[7], wm0, wp0, wm1, wp1, c2, inv, idg, cr)
        j0 = js + nb * RB_WIDTH
    one = np.uint64(1)
    um0 = np.uint64(row[1])
    up0 = np.uint64(row[3])
    um1 = np.uint64(row[5])
    up1 = np.uint64(row[7])
    if wm0 == 0.0 and wp0 == 0.0:
        # no neighbours along axis 0 (a 2-D grid): the same sum without its two zero terms
        # (0 + 0 + a = a), two loads fewer a cell
        for j in range(np.uint64(j0), np.uint64(n2 - 1), np.uint64(2)):
            k = ub + j
            off = wm1 * uf[um1 + j] + wp1 * uf[up1 + j] + c2 * (uf[k - one] + uf[k + one])
            uf[k] = (ff[k] * inv - off) * idg
    else:
        for j in range(np.uint64(j0), np.uint64(n2 - 1), np.uint64(2)):
            k = ub + j
            off = (wm0 * uf[um0 + j] + wp0 * uf[up0 + j] + wm1 * uf[um1 + j]
                   + wp1 * uf[up1 + j] + c2 * (uf[k - one] + uf[k + one]))
            uf[k] = (ff[k] * inv - off) * idg


@njit(inline="always", cache=True)
def _sweep_chunks(nrows, L):
    """Chunks of a fused sweep over ``nrows`` rows lagging ``L`` rows a half-sweep: at most
    64, each of at least 4 rows (2-D) or 16 planes (3-D: a chunk's first and last ``(nh -
    1) L`` rows go to the second pass; with the vector blocks, sweeps in 16-plane chunks
    took 0.74-0.80x the time of the scalar kernel at 64^3 to 128^3, in 4-plane chunks
    0.80-0.97x: thirty-fifth session)."""
    return max(1, min(64, nrows // ((16 if L > 1 else 4) * L)))


@njit(cache=True, error_model="numpy")
def _gs_dif_rowc(uf, ff, w, dgf, q, n0, n1, n2, c0, per, sgn, inv, st, zero):
    """The cells ``j`` with ``j & 1 == st`` of row ``q`` for ``scale * D(k)`` with the face
    weights ``w`` and diagonal ``dgf`` of :func:`diffusion_faces` (``zero``: as in
    :func:`_gs_lap_rowc`).  The off-diagonal terms are summed in the order of
    :func:`_dif_parts` (axis 0 below, above, axis 1, axis 2; a boundary face has weight
    0: the zero row at the end of ``w``), so the values are those of
    :func:`rbgs_diffusion`."""
    llvm_always_inline()
    N = n0 * n1 * n2
    i0 = q // n1
    i1 = q - i0 * n1
    base = q * n2
    a0, s0, g0 = _lo(i0, n0, per[0], sgn[0, 0])
    b0, t0, h0 = _hi(i0, n0, per[0], sgn[0, 1])
    a1, s1, g1 = _lo(i1, n1, per[1], sgn[1, 0])
    b1, t1, h1 = _hi(i1, n1, per[1], sgn[1, 1])
    m0 = (a0 * n1 + i1) * n2
    p0 = (b0 * n1 + i1) * n2
    m1 = (i0 * n1 + a1) * n2
    p1 = (i0 * n1 + b1) * n2
    l0 = N if g0 else m0            # the face below along axis 0 belongs to the row below
    u0 = N if h0 else base
    l1 = N if g1 else m1
    u1 = N if h1 else base
    # flat indices, no row views (their reference counting costs more than short rows)
    ax0 = c0 != 0.0
    per2 = per[2]
    for e in range(2):
        j = 0 if e == 0 else n2 - 1
        if e == 1 and n2 == 1:
            break
        if (j & 1) == st:
            if zero:
                uf[base + j] = ff[base + j] * inv / dgf[base + j]
            else:
                off = 0.0
                if ax0:
                    off += w[0, l0 + j] * uf[m0 + j] + w[0, u0 + j] * uf[p0 + j]
                off += w[1, l1 + j] * uf[m1 + j]
                off += w[1, u1 + j] * uf[p1 + j]
                a2, s2, g2 = _lo(j, n2, per2, sgn[2, 0])
                b2, t2, h2 = _hi(j, n2, per2, sgn[2, 1])
                if not g2:
                    off += w[2, base + a2] * uf[base + a2]
                if not h2:
                    off += w[2, base + j] * uf[base + b2]
                uf[base + j] = (ff[base + j] * inv - off) / dgf[base + j]
        elif zero:
            uf[base + j] = 0.0
    js = st if st >= 1 else 2
    ub = np.uint64(base)
    if zero:
        for j in range(np.uint64(js), np.uint64(n2 - 1), np.uint64(2)):
            uf[ub + j] = ff[ub + j] * inv / dgf[ub + j]
        for j in range(np.uint64(1 + st), np.uint64(n2 - 1), np.uint64(2)):
            uf[ub + j] = 0.0                            # the other colour's interior cells
        return
    # vector blocks (redblack_blocks), then a stride-2 loop for the cells left
    j0 = js
    nb = (n2 - js) // RB_WIDTH if has_vector_blocks(uf, ff) else 0
    if nb > 0:
        ua = data_address(uf)
        fa = data_address(ff)
        wa = data_address(w)
        da = data_address(dgf)
        ws = w.shape[1]
        cr = load_real(ua, uf.dtype, base + js - 1)
        if ax0:
            for b in range(nb):
                cr = gs_block_dif3(ua, fa, wa, da, uf.dtype, ws, base, js + b * RB_WIDTH, m0,
                                   p0, m1, p1, l0, u0, l1, u1, inv, cr)
        else:
            for b in range(nb):
                cr = gs_block_dif2(ua, fa, wa, da, uf.dtype, ws, base, js + b * RB_WIDTH, m0,
                                   p0, m1, p1, l0, u0, l1, u1, inv, cr)
        j0 = js + nb * RB_WIDTH
    one = np.uint64(1)
    um0, up0, um1, up1 = np.uint64(m0), np.uint64(p0), np.uint64(m1), np.uint64(p1)
    ul0, uu0, ul1, uu1 = np.uint64(l0), np.uint64(u0), np.uint64(l1), np.uint64(u1)
    for j in range(np.uint64(j0), np.uint64(n2 - 1), np.uint64(2)):
        k = ub + j
        # the terms summed left to right, as rbgs_diffusion sums them
        if ax0:
            off = (w[0, ul0 + j] * uf[um0 + j] + w[0, uu0 + j] * uf[up0 + j]
                   + w[1, ul1 + j] * uf[um1 + j] + w[1, uu1 + j] * uf[up1 + j])
        else:
            off = w[1, ul1 + j] * uf[um1 + j] + w[1, uu1 + j] * uf[up1 + j]
        off = off + w[2, k - one] * uf[k - one] + w[2, k] * uf[k + one]
        uf[k] = (ff[k] * inv - off) / dgf[k]


@njit(cache=True, error_model="numpy")
def _row_dot(uf, ff, rowdot, p, n2):
    """``rowdot[p] = f_row . u_row`` of row ``p`` (in float64, four interleaved sums in a
    fixed order) when ``rowdot`` is not empty: a sweep's last half-sweep calls it on each
    row it finishes, while the row is in cache (``r^T z`` of a preconditioned CG).  Real
    rows only: a complex sweep compiles it (on the real parts) but must pass an empty
    ``rowdot``."""
    llvm_always_inline()
    if rowdot.size == 0:
        return
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    ub = np.uint64(p * n2)
    j = np.uint64(0)
    m = np.uint64(n2)
    while j + np.uint64(3) < m:
        k = ub + j
        s0 += np.float64(ff[k].real) * np.float64(uf[k].real)
        s1 += np.float64(ff[k + np.uint64(1)].real) * np.float64(uf[k + np.uint64(1)].real)
        s2 += np.float64(ff[k + np.uint64(2)].real) * np.float64(uf[k + np.uint64(2)].real)
        s3 += np.float64(ff[k + np.uint64(3)].real) * np.float64(uf[k + np.uint64(3)].real)
        j += np.uint64(4)
    while j < m:
        s0 += np.float64(ff[ub + j].real) * np.float64(uf[ub + j].real)
        j += np.uint64(1)
    rowdot[p] = (s0 + s1) + (s2 + s3)


@njit(cache=True)
def row_dots_total(rowdot):
    """The sum of the row dots of a sweep, in row order (so independent of its chunks and
    threads)."""
    t = 0.0
    for i in range(rowdot.size):
        t += rowdot[i]
    return t


@njit(cache=True, error_model="numpy")
def _odd_periodic(shape, c, per):
    """Whether an active axis (``c[a] != 0``) is periodic with an odd number of cells
    (more than one): it has no red-black ordering -- the colours meet across the wrap,
    and a threaded sweep's chunks race there (two results in 200 identical sweeps)."""
    llvm_always_inline()
    for a in range(3):
        if c[a] != 0.0 and per[a] and shape[a] > 1 and shape[a] % 2 == 1:
            return True
    return False


def _gs_sweep_laplacian_py(u, f, c, per, sgn, scale, color, first, nh, rowdot):
    if _odd_periodic(u.shape, c, per):
        raise ValueError("gs_sweep: a periodic axis of odd length has no red-black ordering")
    n0, n1, n2 = u.shape
    uf = u.reshape(u.size)
    ff = f.reshape(f.size)
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    dsh = c[3] if c.shape[0] > 3 else 0.0
    inv = 1.0 / scale
    per2 = per[2]
    slo = sgn[2, 0]
    shi = sgn[2, 1]
    nrows = n0 * n1
    L = n1 if (c0 != 0.0 and n0 > 1) else 1
    nch = _sweep_chunks(nrows, L)
    # half-sweep k (colour color + k) runs k rows (planes) behind the first; inside a
    # chunk it takes the rows whose neighbours' half-sweep k - 1 the chunk has done
    for ch in prange(nch):
        lo = ch * nrows // nch
        hi = (ch + 1) * nrows // nch
        for q in range(lo, hi):
            for k in range(nh):
                p = q - k * L
                if k == 0 or (p >= lo + k * L and p < hi - k * L):
                    row = _lap_row(np.int64(p), n0, n1, n2, c0, c1, c2, per, sgn, dsh)
                    p0 = p // n1
                    p1 = p - p0 * n1
                    _gs_lap_rowc(uf, ff, row, n2, c2, per2, slo, shi, inv,
                                 (color + k + p0 + p1) & 1, first and k == 0)
                    if k == nh - 1:
                        _row_dot(uf, ff, rowdot, p, n2)
    # the rows left at the chunks' ends, one half-sweep at a time
    for k in range(1, nh):
        for ch in prange(nch):
            lo = ch * nrows // nch
            hi = (ch + 1) * nrows // nch
            for p in range(lo, hi):
                if p < lo + k * L or p >= hi - k * L:
                    rowp = _lap_row(np.int64(p), n0, n1, n2, c0, c1, c2, per, sgn, dsh)
                    p0 = p // n1
                    p1 = p - p0 * n1
                    _gs_lap_rowc(uf, ff, rowp, n2, c2, per2, slo, shi, inv,
                                 (color + k + p0 + p1) & 1, False)
                    if k == nh - 1:
                        _row_dot(uf, ff, rowdot, p, n2)


def _gs_sweep_diffusion_py(u, f, w, dg, c, per, sgn, scale, color, first, nh, rowdot):
    # the lag structure of _gs_sweep_laplacian_py with the face-weight rows (one skeleton
    # for both row kinds, chosen per row, ran the Laplacian sweep 1.5-2x slower)
    if _odd_periodic(u.shape, c, per):
        raise ValueError("gs_sweep: a periodic axis of odd length has no red-black ordering")
    n0, n1, n2 = u.shape
    uf = u.reshape(u.size)
    ff = f.reshape(f.size)
    c0 = c[0]
    inv = 1.0 / scale
    nrows = n0 * n1
    L = n1 if (c0 != 0.0 and n0 > 1) else 1
    nch = _sweep_chunks(nrows, L)
    for ch in prange(nch):
        lo = ch * nrows // nch
        hi = (ch + 1) * nrows // nch
        for q in range(lo, hi):
            for k in range(nh):
                p = q - k * L
                if k == 0 or (p >= lo + k * L and p < hi - k * L):
                    p0 = p // n1
                    _gs_dif_rowc(uf, ff, w, dg, p, n0, n1, n2, c0, per, sgn, inv,
                                 (color + k + p0 + p - p0 * n1) & 1, first and k == 0)
                    if k == nh - 1:
                        _row_dot(uf, ff, rowdot, p, n2)
    for k in range(1, nh):
        for ch in prange(nch):
            lo = ch * nrows // nch
            hi = (ch + 1) * nrows // nch
            for p in range(lo, hi):
                if p < lo + k * L or p >= hi - k * L:
                    p0 = p // n1
                    _gs_dif_rowc(uf, ff, w, dg, p, n0, n1, n2, c0, per, sgn, inv,
                                 (color + k + p0 + p - p0 * n1) & 1, False)
                    if k == nh - 1:
                        _row_dot(uf, ff, rowdot, p, n2)


@njit(parallel=True, cache=True)
def diffusion_faces(k, c, per, sgn, w, dg):
    """Face weights and diagonal of ``D(k)`` (scales ``c``) for :func:`gs_sweep`:
    ``w[a, i]`` the weight ``c_a * harm(k_i, k_j)`` of the face between cell ``i`` (flat
    index) and its upper neighbour ``j`` along axis ``a`` (the wrap-around face on a
    periodic axis; 0 at a non-periodic boundary and on an inactive axis), ``w[a, N:]``
    zero (``N`` cells); ``dg`` the diagonal exactly as :func:`_dif_parts` forms it."""
    n0, n1, n2 = k.shape
    N = n0 * n1 * n2
    for q in prange(n0 * n1):
        i0 = q // n1
        i1 = q - i0 * n1
        b0, t0, h0 = _hi(i0, n0, per[0], sgn[0, 1])
        b1, t1, h1 = _hi(i1, n1, per[1], sgn[1, 1])
        for j in range(n2):
            b2, t2, h2 = _hi(j, n2, per[2], sgn[2, 1])
            kx = k[i0, i1, j]
            i = q * n2 + j
            w[0, i] = 0.0 if (c[0] == 0.0 or h0) else c[0] * _harm(kx, k[b0, i1, j])
            w[1, i] = 0.0 if (c[1] == 0.0 or h1) else c[1] * _harm(kx, k[i0, b1, j])
            w[2, i] = 0.0 if (c[2] == 0.0 or h2) else c[2] * _harm(kx, k[i0, i1, b2])
            _, dg[i] = _dif_parts(k, k, i0, i1, j, n0, n1, n2, c[0], c[1], c[2], per, sgn)
    for a in range(3):
        for i in range(N, w.shape[1]):
            w[a, i] = 0.0


def _named(fn, name):
    """A copy of ``fn`` under its own name, so that a serial and a parallel compilation of
    the same source get separate on-disk cache entries."""
    g = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    g.__qualname__ = name
    g.__module__ = fn.__module__
    return g


gs_sweep_laplacian = njit(parallel=True, cache=True)(_named(_gs_sweep_laplacian_py, "gs_sweep_laplacian"))
gs_sweep_laplacian.__doc__ = """``nh`` red-black Gauss-Seidel half-sweeps for ``scale * L u = f`` in one
pass: colour ``color``, then the other one, then (``nh = 3``) ``color`` again, fused
row-wise (see above); ``first``: zero initial guess.  ``nh = 2`` is one full sweep;
``nh = 3`` the symmetric sweep (red-black-red).  ``rowdot``: empty, or one float64 per
row (``n0 * n1``) to receive ``f_row . u_row`` of the swept ``u`` (:func:`_row_dot`;
:func:`row_dots_total` adds them).  A periodic axis of odd length raises ``ValueError``
(:func:`_odd_periodic`; multigrid never smooths one)."""
gs_sweep_laplacian_serial = njit(cache=True)(_named(_gs_sweep_laplacian_py, "gs_sweep_laplacian_serial"))
gs_sweep_diffusion = njit(parallel=True, cache=True)(_named(_gs_sweep_diffusion_py, "gs_sweep_diffusion"))
gs_sweep_diffusion.__doc__ = """:func:`gs_sweep_laplacian` for ``scale * D(k) u = f``, from the face weights
``w`` and diagonal ``dg`` of :func:`diffusion_faces`: the values of :func:`rbgs_diffusion`
one colour at a time, bit for bit (an axis of odd length that is periodic has no
red-black ordering: ``ValueError``; multigrid never smooths one)."""
gs_sweep_diffusion_serial = njit(cache=True)(_named(_gs_sweep_diffusion_py, "gs_sweep_diffusion_serial"))


@njit(cache=True, error_model="numpy")
def _res_lap_row(uf, ff, rf, ro, row, n2, c2, per2, slo, shi, scale):
    """``rf[ro:ro + n2] = f - scale * L u`` on the row described by ``row``
    (:func:`_lap_row`): the interior with unsigned indices (a loop that vectorises), then
    the two end cells."""
    llvm_always_inline()
    base = row[0]
    one = np.uint64(1)
    ub = np.uint64(base)
    ob = np.uint64(ro)
    um0 = np.uint64(row[1])
    up0 = np.uint64(row[3])
    um1 = np.uint64(row[5])
    up1 = np.uint64(row[7])
    wm0 = row[2]
    wp0 = row[4]
    wm1 = row[6]
    wp1 = row[8]
    dg = row[9]
    if wm0 == 0.0 and wp0 == 0.0:
        # a 2-D grid: the sum without its two zero terms (as in _gs_lap_rowc)
        for j in range(one, np.uint64(n2 - 1)):
            k = ub + j
            rf[ob + j] = ff[k] - scale * (wm1 * uf[um1 + j] + wp1 * uf[up1 + j]
                                          + c2 * (uf[k - one] + uf[k + one]) + dg * uf[k])
    else:
        for j in range(one, np.uint64(n2 - 1)):
            k = ub + j
            rf[ob + j] = ff[k] - scale * (wm0 * uf[um0 + j] + wp0 * uf[up0 + j] + wm1 * uf[um1 + j]
                                          + wp1 * uf[up1 + j] + c2 * (uf[k - one] + uf[k + one])
                                          + dg * uf[k])
    for e in range(2):
        j = 0 if e == 0 else n2 - 1
        if e == 1 and n2 == 1:
            break
        off, d = _lap_end(uf, row, j, n2, c2, per2, slo, shi)
        rf[ro + j] = ff[base + j] - scale * (off + d * uf[base + j])


def _residual_lap_py(u, f, r, c, per, sgn, scale):
    n0, n1, n2 = u.shape
    uf = u.reshape(u.size)
    ff = f.reshape(f.size)
    rf = r.reshape(r.size)
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    dsh = c[3] if c.shape[0] > 3 else 0.0
    per2 = per[2]
    slo = sgn[2, 0]
    shi = sgn[2, 1]
    for qq in prange(n0 * n1):
        q = np.int64(qq)
        row = _lap_row(q, n0, n1, n2, c0, c1, c2, per, sgn, dsh)
        _res_lap_row(uf, ff, rf, row[0], row, n2, c2, per2, slo, shi, scale)


@njit(inline="always", cache=True)
def _restrict_consts(u, f, coarse, c, per, sgn, csgn, act):
    """The flat views and scalars the residual restrictions share: ``(cf, uf, ff, c0, c1,
    c2, dsh, sc, per2, glo, ghi, slo, shi)``."""
    dsh = c[3] if c.shape[0] > 3 else 0.0
    sc = 1.0 / (1 << (act[0] + act[1] + act[2]))
    return (coarse.reshape(coarse.size), u.reshape(u.size), f.reshape(f.size), c[0], c[1],
            c[2], dsh, sc, per[2], csgn[2, 0], csgn[2, 1], sgn[2, 0], sgn[2, 1])


@njit(inline="always", cache=True)
def _residual_in_slot(uf, ff, ring, tag, slot, fine, n0, n1, n2, c0, c1, c2, per, sgn, dsh,
                      slo, shi, scale):
    """The residual row ``fine`` (flat row index) into ``ring``'s slot ``slot`` of ``n2``
    entries, unless the slot holds it already (``tag``)."""
    if tag[slot] != fine:
        row = _lap_row(np.int64(fine), n0, n1, n2, c0, c1, c2, per, sgn, dsh)
        _res_lap_row(uf, ff, ring, slot * n2, row, n2, c2, per[2], slo, shi, scale)
        tag[slot] = fine


@njit(cache=True, error_model="numpy")
def _add_taps(t, src, off, wt, nb, first, n):
    """``t (+)= sum_e wt[e] src[off[e]:off[e] + n]`` over the ``nb`` taps, in order: one
    four-row loop (:func:`_add4`) when there are four."""
    llvm_always_inline()
    if nb == 4:
        _add4(t, src, off[0], off[1], off[2], off[3], wt[0], wt[1], wt[2], wt[3], first, n)
    else:
        for e in range(nb):
            _add_row(t, wt[e], src[off[e]:off[e] + n], first and e == 0, n)


def _restrict_residual_py(u, f, coarse, c, per, sgn, csgn, scale, act, nch):
    """``coarse = P^T (f - scale * L u) / 2^d`` without the fine residual array: the
    residual rows under each coarse row are formed in a ring of row buffers (a fine row
    shared by consecutive coarse rows of a chunk is formed once; in 3-D the rows under
    two coarse planes are formed for each), then restricted as :func:`restrict_fw`
    does, the same sums in the same order.  ``sgn``: the fine level's ghost signs (the
    residual), ``csgn``: the coarse level's (the restriction's boundary taps).  ``nch``:
    the number of chunks of coarse rows (any number gives the same result; a chunk forms
    the rows under its first coarse row afresh, so a few per thread)."""
    m0, m1, m2 = coarse.shape
    n0, n1, n2 = u.shape
    cf, uf, ff, c0, c1, c2, dsh, sc, per2, glo, ghi, slo, shi = \
        _restrict_consts(u, f, coarse, c, per, sgn, csgn, act)
    nch = min(m0 * m1, nch)
    for ch in prange(nch):
        lo, hi = _chunk(np.int64(ch), nch, m0 * m1)
        t = np.empty(n2, u.dtype)          # the fine residual rows combined
        ring = np.empty(16 * n2, u.dtype)  # residual rows: slot 4 a + (2 I1 - 1 + b) % 4
        tag = np.full(16, -1, np.int64)    # the fine row each slot holds
        off = np.empty(4, np.int64)
        wt = np.empty(4)
        for q in range(lo, hi):
            I0 = q // m1
            I1 = q - I0 * m1
            t0 = _rtaps(I0, n0, act[0], per[0], csgn[0, 0], csgn[0, 1])
            t1 = _rtaps(I1, n1, act[1], per[1], csgn[1, 0], csgn[1, 1])
            first = True
            for a in range(4):
                ja, wa = _tap(t0, a)
                if wa == 0.0:
                    continue
                nb = 0
                for b in range(4):
                    jb, wb = _tap(t1, b)
                    if wb == 0.0:
                        continue
                    slot = 4 * a + (2 * I1 + 3 + b) % 4
                    _residual_in_slot(uf, ff, ring, tag, slot, ja * n1 + jb, n0, n1, n2, c0,
                                      c1, c2, per, sgn, dsh, slo, shi, scale)
                    off[nb] = slot * n2
                    wt[nb] = sc * wa * wb
                    nb += 1
                _add_taps(t, ring, off, wt, nb, first, n2)
                first = False
            _restrict_row(t, cf[q * m2:(q + 1) * m2], m2, n2, per2, glo, ghi, act[2])


@njit(parallel=True, cache=True)
def restrict_planes(u, f, coarse, c, per, sgn, csgn, scale, act, nch, resid):
    """``coarse = P^T r / 2^d`` on a 3-D grid, separably, plane by plane: every fine plane
    under a chunk of coarse planes is restricted along axes 1 and 2 once, into a ring of
    four half-restricted planes, and each coarse plane combines the (up to four) planes
    of its taps along axis 0.  With ``resid`` the fine field is the residual ``r = f -
    scale * L u``, its rows formed in a ring of four row buffers (each once per plane);
    otherwise ``r = u`` (``f``, ``c``, ``sgn`` and ``scale`` unused).  Each fine row is
    read once per chunk (the planes under a chunk's first coarse plane twice at a chunk
    edge), where :func:`restrict_fw` reads it four times and the row-ring kernel forms it
    twice.  The same weights as :func:`restrict_fw`, summed in another order (axis 1,
    then 2, then 0): equal to rounding.  ``nch``: chunks of coarse planes (any number
    gives the same result)."""
    m0, m1, m2 = coarse.shape
    n0, n1, n2 = u.shape
    cf, uf, ff, c0, c1, c2, dsh, sc, per2, glo, ghi, slo, shi = \
        _restrict_consts(u, f, coarse, c, per, sgn, csgn, act)
    mp = m1 * m2
    nch = min(m0, nch)
    for ch in prange(nch):
        lo, hi = _chunk(np.int64(ch), nch, m0)
        t = np.empty(n2, u.dtype)               # fine rows combined along axis 1
        ring = np.empty(4 * n2, u.dtype)        # residual rows of the current fine plane
        rtag = np.full(4, -1, np.int64)
        hp = np.empty(4 * mp, u.dtype)          # fine planes restricted along axes 1, 2
        ptag = np.full(4, -1, np.int64)
        off = np.empty(4, np.int64)
        wt = np.empty(4)
        for I0 in range(lo, hi):
            t0 = _rtaps(I0, n0, act[0], per[0], csgn[0, 0], csgn[0, 1])
            for a in range(4):
                ja, wa = _tap(t0, a)
                if wa == 0.0:
                    continue
                ps = (2 * I0 + 3 + a) % 4
                if ptag[ps] != ja:
                    src = ring if resid else uf
                    for I1 in range(m1):
                        t1 = _rtaps(I1, n1, act[1], per[1], csgn[1, 0], csgn[1, 1])
                        nb = 0
                        for b in range(4):
                            jb, wb = _tap(t1, b)
                            if wb == 0.0:
                                continue
                            fine = ja * n1 + jb
                            if resid:
                                rs = (2 * I1 + 3 + b) % 4
                                _residual_in_slot(uf, ff, ring, rtag, rs, fine, n0, n1, n2,
                                                  c0, c1, c2, per, sgn, dsh, slo, shi, scale)
                                off[nb] = rs * n2
                            else:
                                off[nb] = fine * n2
                            wt[nb] = wb
                            nb += 1
                        _add_taps(t, src, off, wt, nb, True, n2)
                        o = ps * mp + I1 * m2
                        _restrict_row(t, hp[o:o + m2], m2, n2, per2, glo, ghi, act[2])
                    ptag[ps] = ja
            # the coarse plane: its taps along axis 0, in order
            nb = 0
            for a in range(4):
                ja, wa = _tap(t0, a)
                if wa != 0.0:
                    off[nb] = ((2 * I0 + 3 + a) % 4) * mp
                    wt[nb] = sc * wa
                    nb += 1
            _add_taps(cf[I0 * mp:(I0 + 1) * mp], hp, off, wt, nb, True, mp)


residual_laplacian_fast = njit(parallel=True, cache=True)(_named(_residual_lap_py, "residual_laplacian_fast"))
residual_laplacian_serial = njit(cache=True)(_named(_residual_lap_py, "residual_laplacian_serial"))
restrict_fw_serial = njit(cache=True)(_named(restrict_fw.py_func, "restrict_fw_serial"))
restrict_residual_laplacian = njit(parallel=True, cache=True)(
    _named(_restrict_residual_py, "restrict_residual_laplacian"))
restrict_residual_laplacian.__doc__ = _restrict_residual_py.__doc__
restrict_residual_laplacian_serial = njit(cache=True)(
    _named(_restrict_residual_py, "restrict_residual_laplacian_serial"))
prolong_add_serial = njit(cache=True)(_named(prolong_add.py_func, "prolong_add_serial"))


@njit(cache=True)
def csr_gauss_seidel(indptr, indices, data, x, b, forward):
    """One Gauss-Seidel sweep for ``A x = b`` in place, ``A`` in CSR form: rows in order
    (``forward``) or in reverse.  A forward sweep before the coarse correction and a
    backward one after it keep a multigrid cycle symmetric (Saad 2003, sec. 4.1; Trottenberg
    et al. 2001, sec. 2.9)."""
    n = x.size
    for ii in range(n):
        i = ii if forward else n - 1 - ii
        s = b[i]
        d = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            if j == i:
                d += data[k]
            else:
                s -= data[k] * x[j]
        x[i] = s / d


@njit(cache=True)
def coarse_solve(lu, piv, pinv, b, x):
    """``x = A^{-1} b`` from ``(lu, piv)`` as :func:`scipy.linalg.lu_factor` returns them
    (LAPACK ``getrf``: ``piv[i]`` the row swapped with row ``i``, in order), or
    ``x = pinv b`` when ``pinv`` has rows (then ``lu`` and ``piv`` are ignored).
    ``b`` and ``x`` are float64 vectors; ``x`` may be ``b``.  The forward and back
    substitutions of LAPACK's ``getrs`` (Golub & Van Loan, *Matrix Computations*, 4th ed.,
    sec. 3.1 and 3.4)."""
    n = b.size
    if pinv.shape[0] > 0:
        y = np.empty(n)
        for i in range(n):
            s = 0.0
            for j in range(n):
                s += pinv[i, j] * b[j]
            y[i] = s
        x[:] = y
        return
    if x is not b:
        x[:] = b
    for i in range(n):              # row interchanges, in LAPACK's order
        k = piv[i]
        if k != i:
            t = x[i]
            x[i] = x[k]
            x[k] = t
    for i in range(n):              # L y = P b, L unit lower triangular
        s = x[i]
        for j in range(i):
            s -= lu[i, j] * x[j]
        x[i] = s
    for i in range(n - 1, -1, -1):  # U x = y
        s = x[i]
        for j in range(i + 1, n):
            s -= lu[i, j] * x[j]
        x[i] = s / lu[i, i]
