"""Fused Krylov kernels (CPU, Numba): the CG update and ``p^T A p`` for real vectors,
and the two-pass CG iteration for grid operators.

Same reproducible reduction order as :mod:`jitsolve.kernels.cpu.blas` (fixed blocks of
``BLOCK`` entries summed in order, so results do not depend on the thread count), but
indexed with unsigned integers so that Numba drops its negative-index wraparound checks
and LLVM vectorises the block loops.  Real float32/float64 only; complex vectors use
the ``blas`` kernels.

Grid-operator CG (:func:`grid_cg_direction`, :func:`grid_cg_update`): for a Laplacian
or a Diffusion operator (:mod:`jitsolve.kernels.cpu.stencil`, any scale, 2-D or 3-D, all
boundary conditions of the stencils) one unpreconditioned CG iteration is two passes:

1. ``p <- r + beta p`` fused with the stencil apply and ``p^T A p``.  ``p`` is updated in
   place one slab (a row in 2-D, a plane in 3-D) ahead of the stencil, so each stencil
   row sees the updated values of its neighbours; the slabs just outside a chunk of
   slabs are updated into a small halo copy first, so chunks never read each other's
   rows while they are being overwritten.  Reads ``r, p`` (and ``kappa``), writes ``p``
   (and ``A p`` when asked to store it).  With ``lag``, each row first takes the previous
   iteration's ``x += alpha p`` (the old ``p``, read here anyway).
2. ``r -= alpha A p`` and ``r^T r`` (and ``x += alpha p`` when not deferred to the next
   pass 1), with ``A p`` either read back or recomputed row by row from ``p`` (the
   stencil's neighbours come from cache).

With ``A p`` stored and ``x`` deferred (the solver's loop), a Laplacian iteration moves
9 vectors (``r, p, x`` read, ``p, A p, x`` written; ``A p, r`` read, ``r`` written); with
``A p`` recomputed, 8 -- against the 13 of the textbook loop (matvec 2, ``p^T A p`` 2,
update 6, ``p = r + beta p`` 3).  Every row of ``A p`` is computed by the
same row helpers as :func:`~jitsolve.kernels.cpu.stencil.laplacian_apply` and
:func:`~jitsolve.kernels.cpu.stencil.diffusion_apply` (same bits), ``p`` and the updates by
the same expressions as :func:`~jitsolve.kernels.cpu.blas.xpay` and
:func:`cg_update_real`; only the order of the two reductions differs.  Their fixed order:
groups of ``GROUP`` consecutive rows along axis 1 (within one plane) are summed per
column, rows in order (one lane per column, so the loops vectorise without reordering
anything), then over the columns with four interleaved accumulators; the group sums are
added in order.  Chunks of work hold whole groups, so the sums depend neither on the
thread count nor on the chunking.

References
----------
Hestenes & Stiefel, "Methods of conjugate gradients for solving linear systems",
J. Res. NBS 49 (1952); Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed.
(2003), Alg. 6.18; Chronopoulos & Gear, "s-step iterative methods for symmetric linear
systems", J. Comput. Appl. Math. 25 (1989) (fusing CG's vector operations and
reductions into fewer passes; here the recurrences stay the Hestenes-Stiefel ones).
"""
import numpy as np
from numba import njit, prange

from .blas import BLOCK
from .stencil import (_chunk, _neighbours, diff_apply_row, diff_apply_row_shared2,
                      diff_apply_row_shared3, lap_apply_row)

__all__ = ["cg_update_real", "dot_real", "grid_cg_direction",
           "grid_cg_update", "grid_residual", "grid_cg_units", "LAPLACIAN", "DIFFUSION", "GROUP"]

#: operator kinds of the grid CG kernels
LAPLACIAN = 0
DIFFUSION = 1
#: rows (along axis 1, within a plane) per reduction group of the grid CG kernels
GROUP = 8


@njit(parallel=True, cache=True)
def cg_update_real(alpha, p, ap, x, r):
    """``x += alpha p``, ``r -= alpha Ap`` and return ``r^T r`` (float64), in one pass."""
    n = x.size
    nb = (n + BLOCK - 1) // BLOCK
    part = np.zeros(nb)
    for b in prange(nb):
        lo = np.uint64(b * BLOCK)
        hi = np.uint64(min(n, (b + 1) * BLOCK))
        s0 = 0.0
        s1 = 0.0
        i = lo
        while i + np.uint64(1) < hi:
            x[i] += alpha * p[i]
            r0 = r[i] - alpha * ap[i]
            r[i] = r0
            i1 = i + np.uint64(1)
            x[i1] += alpha * p[i1]
            r1 = r[i1] - alpha * ap[i1]
            r[i1] = r1
            s0 += np.float64(r0) * np.float64(r0)
            s1 += np.float64(r1) * np.float64(r1)
            i += np.uint64(2)
        if i < hi:
            x[i] += alpha * p[i]
            r0 = r[i] - alpha * ap[i]
            r[i] = r0
            s0 += np.float64(r0) * np.float64(r0)
        part[b] = s0 + s1
    total = 0.0
    for b in range(nb):
        total += part[b]
    return total


@njit(parallel=True, cache=True)
def dot_real(x, y):
    """``x^T y`` in float64 for real vectors, reproducibly blocked."""
    n = x.size
    nb = (n + BLOCK - 1) // BLOCK
    part = np.zeros(nb)
    for b in prange(nb):
        lo = np.uint64(b * BLOCK)
        hi = np.uint64(min(n, (b + 1) * BLOCK))
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        i = lo
        while i + np.uint64(3) < hi:
            s0 += np.float64(x[i]) * np.float64(y[i])
            s1 += np.float64(x[i + np.uint64(1)]) * np.float64(y[i + np.uint64(1)])
            s2 += np.float64(x[i + np.uint64(2)]) * np.float64(y[i + np.uint64(2)])
            s3 += np.float64(x[i + np.uint64(3)]) * np.float64(y[i + np.uint64(3)])
            i += np.uint64(4)
        while i < hi:
            s0 += np.float64(x[i]) * np.float64(y[i])
            i += np.uint64(1)
        part[b] = (s0 + s1) + (s2 + s3)
    total = 0.0
    for b in range(nb):
        total += part[b]
    return total


# --------------------------------------------------------------------------- grid CG
@njit(inline="always", cache=True)
def _op_row(kind, ur, um0, up0, um1, up1, k, i0, i1, a0, b0, a1, b1, o, n2,
            s0, t0, s1, t1, c, per, sgn):
    """``o = (A u)[i0, i1]`` from the row ``ur`` and its neighbouring rows."""
    if kind == DIFFUSION:
        diff_apply_row(ur, k[i0, i1], um0, up0, k[a0, i1], k[b0, i1], um1, up1, k[i0, a1],
                       k[i0, b1], o, n2, s0, t0, s1, t1, per, sgn, c)
    else:
        lap_apply_row(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per, sgn, c)


@njit(inline="always", cache=True)
def _xpay_row(x, a, y, out, n):
    """``out = x + a y`` over one row (``out`` may be ``y``): the expression of ``blas.xpay``."""
    for j in range(n):
        out[j] = x[j] + a * y[j]


@njit(inline="always", cache=True)
def _dot_lanes(acc, x, y, first, n):
    """``acc[j] = x[j] y[j]`` (first row of a group) or ``acc[j] += x[j] y[j]``: one lane
    per column, so the loop vectorises without reordering any sum."""
    if first:
        for j in range(n):
            acc[j] = x[j] * y[j]
    else:
        for j in range(n):
            acc[j] += x[j] * y[j]


@njit(inline="always", cache=True)
def _r_lanes(acc, alpha, ap, r, first, n):
    """``r -= alpha Ap`` over one row (the expression of :func:`cg_update_real`), with
    ``r_j^2`` into lane ``acc[j]`` as :func:`_dot_lanes`."""
    if first:
        for j in range(n):
            rj = r[j] - alpha * ap[j]
            r[j] = rj
            acc[j] = rj * rj
    else:
        for j in range(n):
            rj = r[j] - alpha * ap[j]
            r[j] = rj
            acc[j] += rj * rj


@njit(inline="always", cache=True)
def _update_lanes(acc, alpha, p, ap, x, r, first, n):
    """``x += alpha p`` and :func:`_r_lanes` over one row.  Two loops over the row (it is
    in L1): with at most three arrays each, LLVM's runtime alias checks stay few enough
    for it to vectorise them."""
    for j in range(n):
        x[j] += alpha * p[j]
    _r_lanes(acc, alpha, ap, r, first, n)


@njit(inline="always", cache=True)
def _lane_sum(acc, n):
    """The lanes of a finished group, four interleaved accumulators (fixed order)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    j = 0
    while j + 3 < n:
        s0 += acc[j]
        s1 += acc[j + 1]
        s2 += acc[j + 2]
        s3 += acc[j + 3]
        j += 4
    while j < n:
        s0 += acc[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


@njit(inline="always", cache=True)
def _slabs(ch, nch, ns, unit):
    """Slabs ``[lo, hi)`` of chunk ``ch``: whole units of ``unit`` slabs, so that a reduction
    group (``GROUP`` rows along axis 1) never straddles two chunks."""
    lo, hi = _chunk(ch, nch, (ns + unit - 1) // unit)
    return lo * unit, min(hi * unit, ns)


@njit(inline="always", cache=True)
def _slab_layout(n0, n1):
    """``(three, ns, sr, unit, ngr)`` of a padded grid: 3-D or not, the number of slabs
    (planes in 3-D, rows in 2-D), rows per slab, slabs per chunking unit (a 2-D chunk
    holds whole ``GROUP``-row reduction groups) and the number of reduction groups per
    plane."""
    three = n0 > 1
    ns = n0 if three else n1
    sr = n1 if three else 1
    unit = 1 if three else GROUP
    return three, ns, sr, unit, (n1 + GROUP - 1) // GROUP


@njit(inline="always", cache=True)
def _slab_row(s, q, three):
    """Index ``(i0, i1)`` of row ``q`` of slab ``s`` (3-D: plane ``s``; 2-D: row ``s``)."""
    if three:
        return s, q
    return 0, s


@njit(inline="always", cache=True)
def _xpay_slab(r, beta, p, out, s, sr, three, n2):
    for q in range(sr):
        j0, j1 = _slab_row(s, q, three)
        _xpay_row(r[j0, j1], beta, p[j0, j1], out[q], n2)


@njit(inline="always", cache=True)
def _dir_row(p, hal, j0, j1, three, lo, top, slo):
    """Row ``(j0, j1)`` of the updated direction: ``p``'s own row when its slab lies in
    ``[lo, top]`` (already updated in place by this chunk), else the halo copy."""
    s = j0 if three else j1
    if s >= lo and s <= top:
        return p[j0, j1]
    q = j1 if three else 0
    if s == slo:
        return hal[0, q]
    return hal[1, q]


@njit(inline="always", cache=True)
def _groups_total(part):
    total = 0.0
    for g in range(part.size):
        total += part[g]
    return total


@njit(inline="always", cache=True)
def _lag_xpay_row(x, alpha_x, lag, r, beta, p, n):
    """Row of the direction update: with ``lag`` first ``x += alpha_x p`` (the previous
    iteration's update of ``x``, the expression of :func:`_update_lanes`), then ``p = r +
    beta p`` in place.  Two loops over the row (in L1): one loop over the three arrays
    measured slower (0.97-1.02 against 0.91-0.93 of the unlagged iteration at 1024^2)."""
    if lag:
        for j in range(n):
            x[j] += alpha_x * p[j]
    _xpay_row(r, beta, p, p, n)


@njit(parallel=True, cache=True)
def grid_cg_direction(beta, r, p, kind, k, ap, store, c, per, sgn, halo, part, x, alpha_x,
                      lag):
    """``p <- r + beta p`` and return ``p^T A p`` for a grid operator, in one pass over ``p``;
    with ``lag`` also ``x += alpha_x p`` first (the previous iteration's update of ``x``,
    deferred to this pass, which reads ``p`` anyway).

    Parameters
    ----------
    beta : float
        ``0`` with ``p = r`` already (first iteration) gives ``p = r``.
    r, p : float64 arrays ``(n0, n1, n2)`` (the stencil kernels' padded view)
    kind : int
        :data:`LAPLACIAN` or :data:`DIFFUSION`.
    k : float64 array ``(n0, n1, n2)``
        The Diffusion coefficient field (any array of that shape for a Laplacian).
    ap : float64 array ``(n0, n1, n2)``
        Receives ``A p`` when ``store``; otherwise untouched.
    c, per, sgn
        Scales (the operator's scale folded in) and boundary arrays, as in
        :func:`~jitsolve.kernels.cpu.stencil.laplacian_apply`.
    halo : float64 array ``(nch, 2, sr, n2)``
        Workspace; ``nch`` is the number of chunks (from 1 to :func:`grid_cg_units`; the
        results do not depend on it), ``sr = n1`` in 3-D (``n0 > 1``: slabs are planes)
        and 1 in 2-D (slabs are rows along axis 1).
    part : float64 array ``(n0 * ceil(n1 / GROUP),)``
        Workspace: one partial sum per reduction group.
    x, alpha_x, lag : float64 array ``(n0, n1, n2)``, float, bool
        With ``lag``, ``x += alpha_x p`` (the old ``p``) before ``p`` is updated: the
        same bits as :func:`grid_cg_update` with ``with_x`` in the previous iteration.

    Returns
    -------
    float
        ``p^T A p`` of the updated ``p``.  Reduction order: each group of ``GROUP``
        consecutive rows along axis 1 (within one plane) is summed per column, rows in
        order, then over its columns (:func:`_lane_sum`); the groups are added in order.
    """
    n0, n1, n2 = p.shape
    three, ns, sr, unit, ngr = _slab_layout(n0, n1)
    pers = per[0] != 0 if three else per[1] != 0
    nch = halo.shape[0]
    # the slabs next to each chunk, updated out of place before any chunk overwrites p
    for ch in prange(nch):
        lo, hi = _slabs(ch, nch, ns, unit)
        if lo > 0 or pers:
            _xpay_slab(r, beta, p, halo[ch, 0], lo - 1 if lo > 0 else ns - 1, sr, three, n2)
        if hi < ns or pers:
            _xpay_slab(r, beta, p, halo[ch, 1], hi if hi < ns else 0, sr, three, n2)
    for ch in prange(nch):
        lo, hi = _slabs(ch, nch, ns, unit)
        slo = lo - 1 if lo > 0 else (ns - 1 if pers else -1)   # the lower halo's slab
        hal = halo[ch]
        buf = np.empty(n2)
        acc = np.empty(n2)
        # Diffusion: each face's harmonic mean once (the stencil module's shared rows: the
        # lower faces carried from the row before in the plane / the plane before)
        hx = np.empty(n2)
        hy = np.empty(n2)
        hz = np.empty((sr if kind == DIFFUSION and c[0] != 0.0 else 0, n2))
        for q in range(sr):     # slab lo in place (its rows are then read by row q's neighbours)
            j0, j1 = _slab_row(lo, q, three)
            _lag_xpay_row(x[j0, j1], alpha_x, lag, r[j0, j1], beta, p[j0, j1], n2)
        for s in range(lo, hi):
            if s + 1 < hi:      # one slab ahead of the stencil
                for q in range(sr):
                    j0, j1 = _slab_row(s + 1, q, three)
                    _lag_xpay_row(x[j0, j1], alpha_x, lag, r[j0, j1], beta, p[j0, j1], n2)
            top = min(s + 1, hi - 1)
            for q in range(sr):
                j0, j1 = _slab_row(s, q, three)
                row = j0 * n1 + j1
                i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
                    _neighbours(row, n0, n1, per, sgn)
                o = ap[i0, i1] if store else buf
                ur = p[i0, i1]
                um0 = _dir_row(p, hal, a0, i1, three, lo, top, slo)
                up0 = _dir_row(p, hal, b0, i1, three, lo, top, slo)
                um1 = _dir_row(p, hal, i0, a1, three, lo, top, slo)
                up1 = _dir_row(p, hal, i0, b1, three, lo, top, slo)
                if kind == DIFFUSION:
                    fresh_y = i1 == 0 or (s == lo and not three)
                    if c[0] != 0.0:
                        diff_apply_row_shared3(ur, k[i0, i1], um0, up0, k[a0, i1], k[b0, i1],
                                               um1, up1, k[i0, a1], k[i0, b1], o, n2, s0, t0,
                                               s1, t1, per[2], sgn[2, 0], sgn[2, 1], c[0],
                                               c[1], c[2], hx, hy, hz[q], fresh_y,
                                               s == lo or i0 == 0)
                    else:
                        diff_apply_row_shared2(ur, k[i0, i1], um0, up0, k[a0, i1], k[b0, i1],
                                               um1, up1, k[i0, a1], k[i0, b1], o, n2, s0, t0,
                                               s1, t1, per[2], sgn[2, 0], sgn[2, 1], c[0],
                                               c[1], c[2], hx, hy, fresh_y)
                else:
                    _op_row(kind, ur, um0, up0, um1, up1, k, i0, i1, a0, b0, a1, b1, o, n2,
                            s0, t0, s1, t1, c, per, sgn)
                _dot_lanes(acc, ur, o, i1 % GROUP == 0, n2)
                if i1 % GROUP == GROUP - 1 or i1 == n1 - 1:
                    part[i0 * ngr + i1 // GROUP] = _lane_sum(acc, n2)
    return _groups_total(part)


@njit(parallel=True, cache=True)
def grid_cg_update(alpha, p, kind, k, ap, stored, x, r, c, per, sgn, nch, part, with_x):
    """``x += alpha p`` (with ``with_x``), ``r -= alpha A p`` and return ``r^T r``, in one
    pass.

    ``A p`` is read from ``ap`` when ``stored`` (written by :func:`grid_cg_direction`),
    otherwise recomputed row by row from ``p`` with the stencil's row helpers (bit for
    bit the same values).  Without ``with_x`` the update of ``x`` is left to the next
    direction pass (its ``lag``) or to the caller: the pass then reads ``A p`` and ``r``
    only (three vector transfers instead of six with ``A p`` stored).  Arguments and
    reduction order as in :func:`grid_cg_direction`; ``nch`` chunks (from 1 to
    :func:`grid_cg_units`).
    """
    n0, n1, n2 = p.shape
    three, ns, sr, unit, ngr = _slab_layout(n0, n1)
    for ch in prange(nch):
        lo, hi = _slabs(ch, nch, ns, unit)
        buf = np.empty(n2)
        acc = np.empty(n2)
        for s in range(lo, hi):
            for q in range(sr):
                j0, j1 = _slab_row(s, q, three)
                row = j0 * n1 + j1
                i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
                    _neighbours(row, n0, n1, per, sgn)
                if stored:
                    o = ap[i0, i1]
                else:
                    o = buf
                    _op_row(kind, p[i0, i1], p[a0, i1], p[b0, i1], p[i0, a1], p[i0, b1], k,
                            i0, i1, a0, b0, a1, b1, o, n2, s0, t0, s1, t1, c, per, sgn)
                if with_x:
                    _update_lanes(acc, alpha, p[i0, i1], o, x[i0, i1], r[i0, i1],
                                  i1 % GROUP == 0, n2)
                else:
                    _r_lanes(acc, alpha, o, r[i0, i1], i1 % GROUP == 0, n2)
                if i1 % GROUP == GROUP - 1 or i1 == n1 - 1:
                    part[i0 * ngr + i1 // GROUP] = _lane_sum(acc, n2)
    return _groups_total(part)


@njit(inline="always", cache=True)
def _residual_lanes(acc, b, o, r, first, n):
    """``r = b - o`` over one row (``np.subtract``'s expression), with ``r_j^2`` into lane
    ``acc[j]`` as :func:`_dot_lanes`."""
    if first:
        for j in range(n):
            rj = b[j] - o[j]
            r[j] = rj
            acc[j] = rj * rj
    else:
        for j in range(n):
            rj = b[j] - o[j]
            r[j] = rj
            acc[j] += rj * rj


@njit(parallel=True, cache=True)
def grid_residual(b, x, r, kind, k, c, per, sgn, nch, part):
    """``r = b - A x`` and return ``r^T r``, in one pass (the true residual of a grid CG
    solve; three vector transfers against seven for the apply, the subtraction and the
    norm as separate passes).

    Each row of ``A x`` is formed by the stencil's row helpers into a row buffer (the bits
    of :func:`~jitsolve.kernels.cpu.stencil.laplacian_apply` and
    :func:`~jitsolve.kernels.cpu.stencil.diffusion_apply` with the same scales); arguments
    and reduction order as in :func:`grid_cg_update` (``nch`` chunks, from 1 to
    :func:`grid_cg_units`: the sum does not depend on it).
    """
    n0, n1, n2 = x.shape
    three, ns, sr, unit, ngr = _slab_layout(n0, n1)
    for ch in prange(nch):
        lo, hi = _slabs(ch, nch, ns, unit)
        buf = np.empty(n2)
        acc = np.empty(n2)
        for s in range(lo, hi):
            for q in range(sr):
                j0, j1 = _slab_row(s, q, three)
                row = j0 * n1 + j1
                i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
                    _neighbours(row, n0, n1, per, sgn)
                _op_row(kind, x[i0, i1], x[a0, i1], x[b0, i1], x[i0, a1], x[i0, b1], k,
                        i0, i1, a0, b0, a1, b1, buf, n2, s0, t0, s1, t1, c, per, sgn)
                _residual_lanes(acc, b[i0, i1], buf, r[i0, i1], i1 % GROUP == 0, n2)
                if i1 % GROUP == GROUP - 1 or i1 == n1 - 1:
                    part[i0 * ngr + i1 // GROUP] = _lane_sum(acc, n2)
    return _groups_total(part)


def grid_cg_units(shape3):
    """``(units, halo_rows, groups)`` for the padded shape ``(n0, n1, n2)``: the most chunks
    the grid CG kernels take, the ``sr`` of their halo workspace and the size of ``part``."""
    n0, n1, n2 = shape3
    if n0 > 1:
        return n0, n1, n0 * ((n1 + GROUP - 1) // GROUP)
    return (n1 + GROUP - 1) // GROUP, 1, (n1 + GROUP - 1) // GROUP
