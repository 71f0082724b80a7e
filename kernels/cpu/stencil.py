"""Finite-volume stencil kernels on a cell-centred grid (CPU, Numba).

Every kernel works on a three-dimensional C-contiguous view ``(n0, n1, n2)`` of the
grid: a 1-D grid of ``n`` cells is viewed as ``(1, 1, n)`` and a 2-D grid as
``(1, n0, n1)``.  A padded axis has scale ``c[a] = 0``, so it contributes nothing.

Boundary conditions enter through two small arrays:

``per[a]``
    1 when axis ``a`` is periodic (the neighbour of the first cell is the last).
``sgn[a, side]``
    for a non-periodic side, the factor ``s`` of the ghost value ``u_ghost = s * u_i``
    of the *linear* part of the operator (Dirichlet -1, Neumann +1; first-order
    upwind Dirichlet inflow 0).  Non-zero boundary data are not seen here: they go
    to the operator's boundary term, so every kernel is linear in ``u``.

Parallel loops run over grid rows (``prange`` over ``n0 * n1``); each row is written
by one thread, so results do not depend on the schedule.  The contiguous axis has
its end cells peeled so that the interior loop is branch-free and vectorises.

References
----------
LeVeque, *Finite Volume Methods for Hyperbolic Problems* (2002), ch. 4 (upwind and
central fluxes); Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), sec. 5.7
(cell-centred discretisation with harmonic face coefficients).
"""
from numba import njit, prange

__all__ = [
    "laplacian_apply",
    "diffusion_apply",
    "diffusion_param_vjp",
    "advection_apply",
    "advection_transpose",
    "advection_param_vjp",
]


@njit(inline="always", cache=True)
def _lo(i, n, per, s):
    """Lower neighbour of index ``i``: (index, ghost sign, is-boundary-ghost)."""
    if i > 0:
        return i - 1, 1.0, False
    if per:
        return n - 1, 1.0, False
    return i, s, True


@njit(inline="always", cache=True)
def _hi(i, n, per, s):
    """Upper neighbour of index ``i``: (index, ghost sign, is-boundary-ghost)."""
    if i < n - 1:
        return i + 1, 1.0, False
    if per:
        return 0, 1.0, False
    return i, s, True


@njit(inline="always", cache=True)
def _neighbours(r, n0, n1, per, sgn):
    """Row ``r = i0 * n1 + i1`` and its neighbouring rows along axes 0 and 1:
    ``(i0, i1, a0, s0, g0, b0, t0, h0, a1, s1, g1, b1, t1, h1)`` (see :func:`_lo`)."""
    i0 = r // n1
    i1 = r - i0 * n1
    a0, s0, g0 = _lo(i0, n0, per[0], sgn[0, 0])
    b0, t0, h0 = _hi(i0, n0, per[0], sgn[0, 1])
    a1, s1, g1 = _lo(i1, n1, per[1], sgn[1, 0])
    b1, t1, h1 = _hi(i1, n1, per[1], sgn[1, 1])
    return i0, i1, a0, s0, g0, b0, t0, h0, a1, s1, g1, b1, t1, h1


@njit(inline="always", cache=True)
def _harm(a, b):
    """Harmonic mean of two positive face coefficients."""
    return 2.0 * a * b / (a + b)


@njit(inline="always", cache=True)
def _chunk(ch, nch, nrows):
    """Rows ``[lo, hi)`` of chunk ``ch``: contiguous, so a chunk walks rows in order."""
    return ch * nrows // nch, (ch + 1) * nrows // nch


# --------------------------------------------------------------------------- Laplacian
@njit(inline="always", cache=True)
def _lap_ends(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per2, sl, sh, c0, c1, c2):
    """The two end cells of a row (the contiguous axis's boundary or wrap-around)."""
    for j in (0, n2 - 1):
        a2, s2, _g = _lo(j, n2, per2, sl)
        b2, t2, _h = _hi(j, n2, per2, sh)
        x = ur[j]
        o[j] = (c0 * (s0 * um0[j] + t0 * up0[j] - 2.0 * x)
                + c1 * (s1 * um1[j] + t1 * up1[j] - 2.0 * x)
                + c2 * (s2 * ur[a2] + t2 * ur[b2] - 2.0 * x))


@njit(inline="always", cache=True)
def _lap_row(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per2, sl, sh, c0, c1, c2, use0):
    for j in range(1, n2 - 1):
        x = ur[j]
        acc = c2 * (ur[j - 1] + ur[j + 1] - 2.0 * x) + c1 * (s1 * um1[j] + t1 * up1[j] - 2.0 * x)
        if use0:
            acc += c0 * (s0 * um0[j] + t0 * up0[j] - 2.0 * x)
        o[j] = acc
    _lap_ends(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per2, sl, sh, c0, c1, c2)


@njit(inline="always", cache=True)
def _lap_pair_2d(ua, ub, um1, up1, oa, ob, n2, s1, t1, c1, c2):
    """Interiors of two neighbouring rows ``a = i1``, ``b = i1 + 1`` of a 2-D grid
    (``c0 = 0``), each row the other's neighbour: :func:`_lap_row`'s expressions with
    the neighbour's sign ``1.0``, so the same bits.  Four rows read for two written
    instead of six."""
    for j in range(1, n2 - 1):
        x = ua[j]
        y = ub[j]
        oa[j] = c2 * (ua[j - 1] + ua[j + 1] - 2.0 * x) + c1 * (s1 * um1[j] + 1.0 * y - 2.0 * x)
        ob[j] = c2 * (ub[j - 1] + ub[j + 1] - 2.0 * y) + c1 * (1.0 * x + t1 * up1[j] - 2.0 * y)


@njit(inline="always", cache=True)
def lap_apply_row(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per, sgn, c):
    """One row ``o = (L u)[i0, i1]`` from the row ``ur`` and its four neighbouring rows
    (``um0, up0`` along axis 0, ``um1, up1`` along axis 1, ghost signs ``s*, t*`` as
    returned by :func:`_neighbours`).  Shared by :func:`laplacian_apply` and the fused
    Krylov kernels, so both give the same bits."""
    if c[0] != 0.0:
        _lap_row(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per[2], sgn[2, 0], sgn[2, 1],
                 c[0], c[1], c[2], True)
    else:
        _lap_row(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per[2], sgn[2, 0], sgn[2, 1],
                 c[0], c[1], c[2], False)


@njit(inline="always", cache=True)
def _lap_pairs_pay(n0, n1, n2, c0):
    """Whether :func:`laplacian_apply` takes the rows in pairs: on 2-D grids, except in
    cache with rows of a multiple of 512 entries (4 KiB in float64), where the pairs'
    six streams share L1 sets: 1.10-1.22x the time of single rows at 512^2 and
    1.01-1.05x at 1024^2 (one and two threads), against 0.89-0.95 at 384^2 and 724^2
    and 0.84-0.96 at 2048^2 and 4096^2."""
    if n0 != 1 or c0 != 0.0 or n1 < 2:
        return False
    return n2 % 512 != 0 or n1 * n2 > (1 << 20)


@njit(parallel=True, cache=True)
def laplacian_apply(u, out, c, per, sgn):
    """``out = L u`` for the constant-coefficient Laplacian (symmetric: it is its own transpose).

    ``(L u)_i = sum_a c_a (u_{i-e_a} - 2 u_i + u_{i+e_a})`` with ghost values ``s u_i``
    at non-periodic boundaries; ``c_a = 1/h_a^2``.  On 2-D grids the rows are taken in
    pairs (:func:`_lap_pair_2d`, where :func:`_lap_pairs_pay`); in 3-D the pairs' ten
    streams measured slower than single rows (1.4-1.8x at 256^3).
    """
    n0, n1, n2 = u.shape
    if _lap_pairs_pay(n0, n1, n2, c[0]):
        for q in prange((n1 + 1) // 2):
            i1 = 2 * q
            _i0, _i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
                _neighbours(i1, n0, n1, per, sgn)
            if i1 + 1 == n1:
                lap_apply_row(u[0, i1], u[a0, i1], u[b0, i1], u[0, a1], u[0, b1], out[0, i1], n2,
                              s0, t0, s1, t1, per, sgn, c)
                continue
            _j0, _j1, _a0, _s0, _, _b0, _t0, _, _a1, _s1, _, b1b, t1b, _ = \
                _neighbours(i1 + 1, n0, n1, per, sgn)
            ua = u[0, i1]
            ub = u[0, i1 + 1]
            _lap_pair_2d(ua, ub, u[0, a1], u[0, b1b], out[0, i1], out[0, i1 + 1], n2,
                         s1, t1b, c[1], c[2])
            _lap_ends(ua, u[a0, i1], u[b0, i1], u[0, a1], ub, out[0, i1], n2, s0, t0, s1, t1,
                      per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2])
            _lap_ends(ub, u[a0, i1 + 1], u[b0, i1 + 1], ua, u[0, b1b], out[0, i1 + 1], n2, s0, t0,
                      _s1, t1b, per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2])
        return
    for r in prange(n0 * n1):
        i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
            _neighbours(r, n0, n1, per, sgn)
        lap_apply_row(u[i0, i1], u[a0, i1], u[b0, i1], u[i0, a1], u[i0, b1], out[i0, i1], n2,
                      s0, t0, s1, t1, per, sgn, c)


# --------------------------------------------------------------------------- Diffusion
# One pass per row, no face buffers: every cell evaluates the harmonic means of its own
# faces.  On this machine's cores the divisions hide under the memory traffic, while
# face buffers (a row pass writing them, another reading them back from L2) cost about
# 40% more time in 2-D (37 -> 26 ms per 4096^2 apply on one thread).  ``_harm`` is
# symmetric bit for bit (``2 a`` is exact), so both cells of a face see the same value
# and the matrix stays exactly symmetric.

@njit(inline="always", cache=True)
def _diff_ends(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
               per2, sl, sh, c0, c1, c2):
    """The two end cells of a row (the contiguous axis's boundary or wrap-around)."""
    for j in (0, n2 - 1):
        a2, s2, _g = _lo(j, n2, per2, sl)
        b2, t2, _h = _hi(j, n2, per2, sh)
        x = ur[j]
        kx = kr[j]
        o[j] = (c0 * (_harm(kx, km0[j]) * (s0 * um0[j] - x) + _harm(kx, kp0[j]) * (t0 * up0[j] - x))
                + c1 * (_harm(kx, km1[j]) * (s1 * um1[j] - x) + _harm(kx, kp1[j]) * (t1 * up1[j] - x))
                + c2 * (_harm(kx, kr[a2]) * (s2 * ur[a2] - x) + _harm(kx, kr[b2]) * (t2 * ur[b2] - x)))


@njit(inline="always", cache=True)
def _diff_row(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
              per2, sl, sh, c0, c1, c2, use0):
    for j in range(1, n2 - 1):
        x = ur[j]
        kx = kr[j]
        acc = (c2 * (_harm(kx, kr[j - 1]) * (ur[j - 1] - x) + _harm(kx, kr[j + 1]) * (ur[j + 1] - x))
               + c1 * (_harm(kx, km1[j]) * (s1 * um1[j] - x) + _harm(kx, kp1[j]) * (t1 * up1[j] - x)))
        if use0:
            acc += c0 * (_harm(kx, km0[j]) * (s0 * um0[j] - x) + _harm(kx, kp0[j]) * (t0 * up0[j] - x))
        o[j] = acc
    _diff_ends(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
               per2, sl, sh, c0, c1, c2)


@njit(inline="always", cache=True)
def _diff_pair_2d(ua, ub, ka, kb, um1, up1, km1, kp1, oa, ob, n2, s1, t1, c1, c2):
    """Interiors of two neighbouring rows ``a = i1``, ``b = i1 + 1`` of a 2-D grid
    (``c0 = 0``): :func:`_diff_row`'s expressions with the neighbour's sign ``1.0``,
    so the same bits; the harmonic mean of the face between the two rows is evaluated
    once for both (:func:`_harm` is symmetric bit for bit)."""
    for j in range(1, n2 - 1):
        x = ua[j]
        y = ub[j]
        kx = ka[j]
        ky = kb[j]
        h = _harm(kx, ky)
        oa[j] = (c2 * (_harm(kx, ka[j - 1]) * (ua[j - 1] - x) + _harm(kx, ka[j + 1]) * (ua[j + 1] - x))
                 + c1 * (_harm(kx, km1[j]) * (s1 * um1[j] - x) + h * (1.0 * y - x)))
        ob[j] = (c2 * (_harm(ky, kb[j - 1]) * (ub[j - 1] - y) + _harm(ky, kb[j + 1]) * (ub[j + 1] - y))
                 + c1 * (h * (1.0 * x - y) + _harm(ky, kp1[j]) * (t1 * up1[j] - y)))


@njit(inline="always", cache=True)
def diff_apply_row(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
                   per, sgn, c):
    """One row ``o = (D(k) u)[i0, i1]`` from the rows of ``u`` and ``k`` at the cell and its
    four neighbouring rows (``*m0, *p0`` along axis 0, ``*m1, *p1`` along axis 1; ghost
    signs as returned by :func:`_neighbours`).  Shared by :func:`diffusion_apply` and
    the fused Krylov kernels, so both give the same bits."""
    if c[0] != 0.0:
        _diff_row(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
                  per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2], True)
    else:
        _diff_row(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
                  per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2], False)


@njit(parallel=True, cache=True)
def diffusion_apply(u, k, out, c, per, sgn):
    """``out = D(k) u`` for ``div(k grad u)`` with harmonic face averages of ``k``.

    ``(D u)_i = sum_faces c_a k_f (s u_nb - u_i)``, ``k_f = 2 k_i k_nb / (k_i + k_nb)``;
    at a non-periodic boundary the ghost cell has ``k_nb = k_i`` and value ``s u_i``.
    The matrix is symmetric, so this kernel is also the transpose.  On a 2-D grid the
    rows are taken in pairs (:func:`_diff_pair_2d`): 0.83-0.98 of the time of single
    rows from 256^2 to 4096^2 (A/B medians, two threads).  In 3-D single rows (the
    pairs' streams were slower, as for :func:`laplacian_apply`).
    """
    n0, n1, n2 = u.shape
    if n0 == 1 and c[0] == 0.0:
        for q in prange((n1 + 1) // 2):
            i1 = 2 * q
            _i0, _i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
                _neighbours(i1, n0, n1, per, sgn)
            if i1 + 1 == n1:
                diff_apply_row(u[0, i1], k[0, i1], u[a0, i1], u[b0, i1], k[a0, i1], k[b0, i1],
                               u[0, a1], u[0, b1], k[0, a1], k[0, b1], out[0, i1], n2,
                               s0, t0, s1, t1, per, sgn, c)
                continue
            _j0, _j1, _a0, _s0, _, _b0, _t0, _, _a1, _s1, _, b1b, t1b, _ = \
                _neighbours(i1 + 1, n0, n1, per, sgn)
            j1 = i1 + 1
            ua = u[0, i1]
            ub = u[0, j1]
            ka = k[0, i1]
            kb = k[0, j1]
            _diff_pair_2d(ua, ub, ka, kb, u[0, a1], u[0, b1b], k[0, a1], k[0, b1b], out[0, i1],
                          out[0, j1], n2, s1, t1b, c[1], c[2])
            _diff_ends(ua, ka, u[a0, i1], u[b0, i1], k[a0, i1], k[b0, i1], u[0, a1], ub,
                       k[0, a1], kb, out[0, i1], n2, s0, t0, s1, t1,
                       per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2])
            _diff_ends(ub, kb, u[a0, j1], u[b0, j1], k[a0, j1], k[b0, j1], ua, u[0, b1b],
                       ka, k[0, b1b], out[0, j1], n2, s0, t0, _s1, t1b,
                       per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2])
        return
    for r in prange(n0 * n1):
        i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
            _neighbours(r, n0, n1, per, sgn)
        diff_apply_row(u[i0, i1], k[i0, i1], u[a0, i1], u[b0, i1], k[a0, i1], k[b0, i1],
                       u[i0, a1], u[i0, b1], k[i0, a1], k[i0, b1], out[i0, i1], n2,
                       s0, t0, s1, t1, per, sgn, c)


@njit(inline="always", cache=True)
def _dface(kx, kn, x, xn, lx, ln, s, ghost):
    """Contribution of one face to ``d/dk_i <lam, D(k) u>`` (linear part)."""
    if ghost:
        # the ghost cell shares k_i: k_f = k_i, d k_f / d k_i = 1
        return (s * x - x) * lx
    t = kx + kn
    return 2.0 * kn * kn / (t * t) * (xn - x) * (lx - ln)


@njit(inline="always", cache=True)
def _dvjp_row(ur, lr, kr, um0, up0, lm0, lp0, km0, kp0, um1, up1, lm1, lp1, km1, kp1, o, n2,
              gd, per2, sl, sh, c0, c1, c2, use0):
    s0, t0, g0, h0, s1, t1, g1, h1 = gd
    for j in range(1, n2 - 1):
        x = ur[j]
        lx = lr[j]
        kx = kr[j]
        acc = (c2 * (_dface(kx, kr[j - 1], x, ur[j - 1], lx, lr[j - 1], 1.0, False)
                     + _dface(kx, kr[j + 1], x, ur[j + 1], lx, lr[j + 1], 1.0, False))
               + c1 * (_dface(kx, km1[j], x, um1[j], lx, lm1[j], s1, g1)
                       + _dface(kx, kp1[j], x, up1[j], lx, lp1[j], t1, h1)))
        if use0:
            acc += c0 * (_dface(kx, km0[j], x, um0[j], lx, lm0[j], s0, g0)
                         + _dface(kx, kp0[j], x, up0[j], lx, lp0[j], t0, h0))
        o[j] = acc
    for j in (0, n2 - 1):
        a2, s2, g2 = _lo(j, n2, per2, sl)
        b2, t2, h2 = _hi(j, n2, per2, sh)
        x = ur[j]
        lx = lr[j]
        kx = kr[j]
        o[j] = (c0 * (_dface(kx, km0[j], x, um0[j], lx, lm0[j], s0, g0)
                      + _dface(kx, kp0[j], x, up0[j], lx, lp0[j], t0, h0))
                + c1 * (_dface(kx, km1[j], x, um1[j], lx, lm1[j], s1, g1)
                        + _dface(kx, kp1[j], x, up1[j], lx, lp1[j], t1, h1))
                + c2 * (_dface(kx, kr[a2], x, ur[a2], lx, lr[a2], s2, g2)
                        + _dface(kx, kr[b2], x, ur[b2], lx, lr[b2], t2, h2)))


@njit(parallel=True, cache=True)
def diffusion_param_vjp(u, lam, k, out, c, per, sgn):
    """``out = (d (D(k) u) / d k)^T lam``: the coefficient-field gradient of ``<lam, D(k) u>``.

    Each interior face between cells ``i`` and ``m`` contributes
    ``c_a dk_f/dk_i (u_m - u_i)(lam_i - lam_m)`` to cell ``i``, with
    ``dk_f/dk_i = 2 k_m^2 / (k_i + k_m)^2``; a boundary ghost face contributes
    ``c_a (s - 1) u_i lam_i``.  One pass per row, each cell evaluating its own faces (as
    :func:`diffusion_apply`).  Single rows in 2-D too: the pairs of
    :func:`diffusion_apply` (four rows of ``u``, ``lam`` and ``k`` read for two written)
    measured 1.01-1.16x slower here, 256^2 to 4096^2.
    """
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    for r in prange(n0 * n1):
        i0, i1, a0, s0, g0, b0, t0, h0, a1, s1, g1, b1, t1, h1 = \
            _neighbours(r, n0, n1, per, sgn)
        gd = (s0, t0, g0, h0, s1, t1, g1, h1)
        if c0 != 0.0:
            _dvjp_row(u[i0, i1], lam[i0, i1], k[i0, i1], u[a0, i1], u[b0, i1], lam[a0, i1],
                      lam[b0, i1], k[a0, i1], k[b0, i1], u[i0, a1], u[i0, b1], lam[i0, a1],
                      lam[i0, b1], k[i0, a1], k[i0, b1], out[i0, i1], n2, gd, per[2],
                      sgn[2, 0], sgn[2, 1], c0, c1, c2, True)
        else:
            _dvjp_row(u[i0, i1], lam[i0, i1], k[i0, i1], u[a0, i1], u[b0, i1], lam[a0, i1],
                      lam[b0, i1], k[a0, i1], k[b0, i1], u[i0, a1], u[i0, b1], lam[i0, a1],
                      lam[i0, b1], k[i0, a1], k[i0, b1], out[i0, i1], n2, gd, per[2],
                      sgn[2, 0], sgn[2, 1], c0, c1, c2, False)


# --------------------------------------------------------------------------- Advection
# Flux through a face with normal velocity v between a lower value uL and an upper uR:
#   upwind  F = max(v, 0) uL + min(v, 0) uR         central  F = v (uL + uR) / 2
# and (A u)_i = sum_a c_a (F_{i-1/2} - F_{i+1/2}), i.e. A u ~ -div(v u), c_a = 1/h_a.

@njit(inline="always", cache=True)
def _wl(v, central):
    """Weight of the lower value in the face flux."""
    if central:
        return 0.5 * v
    return v if v > 0.0 else 0.0


@njit(inline="always", cache=True)
def _wr(v, central):
    """Weight of the upper value in the face flux."""
    if central:
        return 0.5 * v
    return v if v < 0.0 else 0.0


@njit(inline="always", cache=True)
def _dwl(v, central):
    if central:
        return 0.5
    return 1.0 if v > 0.0 else 0.0


@njit(inline="always", cache=True)
def _dwr(v, central):
    if central:
        return 0.5
    return 1.0 if v < 0.0 else 0.0


@njit(inline="always", cache=True)
def _adv_cell(x, vx, um, vm, sm, up, vp, sp, central):
    """``F_lo - F_hi`` for one cell along one axis (ghost values already signed)."""
    fl = 0.5 * (vx + vm)
    fh = 0.5 * (vx + vp)
    return (_wl(fl, central) * sm * um + _wr(fl, central) * x
            - _wl(fh, central) * x - _wr(fh, central) * sp * up)


@njit(inline="always", cache=True)
def _adv_row(ur, um0, up0, um1, up1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, s0, t0, s1, t1,
             per2, sl, sh, c0, c1, c2, use0, central):
    for j in (0, n2 - 1):
        a2, s2, _b = _lo(j, n2, per2, sl)
        b2, t2, _b = _hi(j, n2, per2, sh)
        x = ur[j]
        o[j] = (c0 * _adv_cell(x, vr0[j], um0[j], vm0[j], s0, up0[j], vp0[j], t0, central)
                + c1 * _adv_cell(x, vr1[j], um1[j], vm1[j], s1, up1[j], vp1[j], t1, central)
                + c2 * _adv_cell(x, vr2[j], ur[a2], vr2[a2], s2, ur[b2], vr2[b2], t2, central))
    for j in range(1, n2 - 1):
        x = ur[j]
        acc = c1 * _adv_cell(x, vr1[j], um1[j], vm1[j], s1, up1[j], vp1[j], t1, central)
        if use0:   # same order of sums as the edge cells: (c0 term + c1 term) + c2 term
            acc = c0 * _adv_cell(x, vr0[j], um0[j], vm0[j], s0, up0[j], vp0[j], t0, central) + acc
        o[j] = acc + c2 * _adv_cell(x, vr2[j], ur[j - 1], vr2[j - 1], 1.0, ur[j + 1], vr2[j + 1],
                                    1.0, central)


@njit(parallel=True, cache=True)
def advection_apply(u, v0, v1, v2, out, c, per, sgn, central):
    """``out = A(v) u``, the flux-form discretisation of ``-div(v u)``.

    ``v0, v1, v2`` are the velocity components along the three (padded) axes at cell
    centres; face velocities are the mean of the two cells.  ``central`` selects the
    central flux, otherwise first-order upwind.  A padded axis (``c_a = 0``) may be
    given any array of the grid's shape; its terms are skipped in the interior loop
    (each of the four (padded axis, scheme) cases is its own branch-free loop).
    """
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    use0 = c0 != 0.0
    for r in prange(n0 * n1):
        i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
            _neighbours(r, n0, n1, per, sgn)
        ur = u[i0, i1]
        um0 = u[a0, i1]
        up0 = u[b0, i1]
        um1 = u[i0, a1]
        up1 = u[i0, b1]
        vr0 = v0[i0, i1]
        vm0 = v0[a0, i1]
        vp0 = v0[b0, i1]
        vr1 = v1[i0, i1]
        vm1 = v1[i0, a1]
        vp1 = v1[i0, b1]
        vr2 = v2[i0, i1]
        o = out[i0, i1]
        if use0:
            if central:
                _adv_row(ur, um0, up0, um1, up1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, s0, t0,
                         s1, t1, per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, True, True)
            else:
                _adv_row(ur, um0, up0, um1, up1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, s0, t0,
                         s1, t1, per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, True, False)
        elif central:
            _adv_row(ur, um0, up0, um1, up1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, s0, t0,
                     s1, t1, per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, False, True)
        else:
            _adv_row(ur, um0, up0, um1, up1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, s0, t0,
                     s1, t1, per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, False, False)


@njit(inline="always", cache=True)
def _advT_cell(lx, vx, lm, vm, sm, gm, lp, vp, sp, gp, central):
    """Transpose contribution of the two faces of one cell along one axis."""
    fl = 0.5 * (vx + vm)
    fh = 0.5 * (vx + vp)
    if gm:
        lo = (_wl(fl, central) * sm + _wr(fl, central)) * lx
    else:
        lo = _wr(fl, central) * (lx - lm)
    if gp:
        hi = -(_wl(fh, central) + _wr(fh, central) * sp) * lx
    else:
        hi = _wl(fh, central) * (lp - lx)
    return lo + hi


@njit(inline="always", cache=True)
def _advT_row(lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, gd, per2, sl,
              sh, c0, c1, c2, use0, central):
    s0, t0, g0, h0, s1, t1, g1, h1 = gd
    for j in (0, n2 - 1):
        a2, s2, g2 = _lo(j, n2, per2, sl)
        b2, t2, h2 = _hi(j, n2, per2, sh)
        x = lr[j]
        o[j] = (c0 * _advT_cell(x, vr0[j], lm0[j], vm0[j], s0, g0, lp0[j], vp0[j], t0, h0, central)
                + c1 * _advT_cell(x, vr1[j], lm1[j], vm1[j], s1, g1, lp1[j], vp1[j], t1, h1, central)
                + c2 * _advT_cell(x, vr2[j], lr[a2], vr2[a2], s2, g2, lr[b2], vr2[b2], t2, h2, central))
    for j in range(1, n2 - 1):
        x = lr[j]
        acc = c1 * _advT_cell(x, vr1[j], lm1[j], vm1[j], s1, g1, lp1[j], vp1[j], t1, h1, central)
        if use0:   # same order of sums as the edge cells
            acc = c0 * _advT_cell(x, vr0[j], lm0[j], vm0[j], s0, g0, lp0[j], vp0[j], t0, h0,
                                  central) + acc
        o[j] = acc + c2 * _advT_cell(x, vr2[j], lr[j - 1], vr2[j - 1], 1.0, False,
                                     lr[j + 1], vr2[j + 1], 1.0, False, central)


@njit(parallel=True, cache=True)
def advection_transpose(lam, v0, v1, v2, out, c, per, sgn, central):
    """``out = A(v)^T lam``: the exact transpose of :func:`advection_apply`, matrix-free.

    An interior face with flux ``F = wL uL + wR uR`` adds ``c wL (lam_R - lam_L)`` to the
    lower cell and ``c wR (lam_R - lam_L)`` to the upper one; a boundary ghost face adds
    its diagonal term.  Loops specialised as in :func:`advection_apply`.
    """
    n0, n1, n2 = lam.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    use0 = c0 != 0.0
    for r in prange(n0 * n1):
        i0, i1, a0, s0, g0, b0, t0, h0, a1, s1, g1, b1, t1, h1 = \
            _neighbours(r, n0, n1, per, sgn)
        gd = (s0, t0, g0, h0, s1, t1, g1, h1)
        lr = lam[i0, i1]
        lm0 = lam[a0, i1]
        lp0 = lam[b0, i1]
        lm1 = lam[i0, a1]
        lp1 = lam[i0, b1]
        vr0 = v0[i0, i1]
        vm0 = v0[a0, i1]
        vp0 = v0[b0, i1]
        vr1 = v1[i0, i1]
        vm1 = v1[i0, a1]
        vp1 = v1[i0, b1]
        vr2 = v2[i0, i1]
        o = out[i0, i1]
        if use0:
            if central:
                _advT_row(lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, gd,
                          per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, True, True)
            else:
                _advT_row(lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, gd,
                          per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, True, False)
        elif central:
            _advT_row(lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, gd,
                      per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, False, True)
        else:
            _advT_row(lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, gd,
                      per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, False, False)


@njit(inline="always", cache=True)
def _advV_cell(x, lx, vx, um, lm, vm, sm, gm, up, lp, vp, sp, gp, central):
    """``d/dv_i <lam, A(v) u>`` from the two faces of one cell along one axis."""
    fl = 0.5 * (vx + vm)
    fh = 0.5 * (vx + vp)
    if gm:   # ghost face: v_f = v_i, only this cell's equation sees it
        lo = (_dwl(fl, central) * sm * x + _dwr(fl, central) * x) * lx
    else:    # interior face shared with the lower cell: d v_f / d v_i = 1/2
        lo = 0.5 * (_dwl(fl, central) * um + _dwr(fl, central) * x) * (lx - lm)
    if gp:
        hi = -(_dwl(fh, central) * x + _dwr(fh, central) * sp * x) * lx
    else:
        hi = 0.5 * (_dwl(fh, central) * x + _dwr(fh, central) * up) * (lp - lx)
    return lo + hi


@njit(parallel=True, cache=True)
def advection_param_vjp(u, lam, v0, v1, v2, g0, g1, g2, nact, c, per, sgn, central):
    """Velocity gradient of ``<lam, A(v) u>``, one output field per active axis.

    ``g0, g1, g2`` receive the components along the padded axes; only the last
    ``nact`` axes are written (for a 2-D grid ``g0`` is never touched and may be any
    array).  The upwind weights are differentiated as ``d max(v, 0)/dv = [v > 0]``.
    """
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    w0 = nact >= 3
    w1 = nact >= 2
    for r in prange(n0 * n1):
        i0, i1, a0, s0, e0, b0, t0, f0, a1, s1, e1, b1, t1, f1 = \
            _neighbours(r, n0, n1, per, sgn)
        ur = u[i0, i1]
        um0 = u[a0, i1]
        up0 = u[b0, i1]
        um1 = u[i0, a1]
        up1 = u[i0, b1]
        lr = lam[i0, i1]
        lm0 = lam[a0, i1]
        lp0 = lam[b0, i1]
        lm1 = lam[i0, a1]
        lp1 = lam[i0, b1]
        vr0 = v0[i0, i1]
        vm0 = v0[a0, i1]
        vp0 = v0[b0, i1]
        vr1 = v1[i0, i1]
        vm1 = v1[i0, a1]
        vp1 = v1[i0, b1]
        vr2 = v2[i0, i1]
        o0 = g0[i0, i1]
        o1 = g1[i0, i1]
        o2 = g2[i0, i1]
        for j in (0, n2 - 1):
            a2, s2, e2 = _lo(j, n2, per[2], sgn[2, 0])
            b2, t2, f2 = _hi(j, n2, per[2], sgn[2, 1])
            x = ur[j]
            lx = lr[j]
            if w0:
                o0[j] = c0 * _advV_cell(x, lx, vr0[j], um0[j], lm0[j], vm0[j], s0, e0,
                                        up0[j], lp0[j], vp0[j], t0, f0, central)
            if w1:
                o1[j] = c1 * _advV_cell(x, lx, vr1[j], um1[j], lm1[j], vm1[j], s1, e1,
                                        up1[j], lp1[j], vp1[j], t1, f1, central)
            o2[j] = c2 * _advV_cell(x, lx, vr2[j], ur[a2], lr[a2], vr2[a2], s2, e2,
                                    ur[b2], lr[b2], vr2[b2], t2, f2, central)
        # one pass per component: each loop is branch-free and vectorises (rows re-read from cache)
        for j in range(1, n2 - 1):
            o2[j] = c2 * _advV_cell(ur[j], lr[j], vr2[j], ur[j - 1], lr[j - 1], vr2[j - 1], 1.0, False,
                                    ur[j + 1], lr[j + 1], vr2[j + 1], 1.0, False, central)
        if w1:
            for j in range(1, n2 - 1):
                o1[j] = c1 * _advV_cell(ur[j], lr[j], vr1[j], um1[j], lm1[j], vm1[j], s1, e1,
                                        up1[j], lp1[j], vp1[j], t1, f1, central)
        if w0:
            for j in range(1, n2 - 1):
                o0[j] = c0 * _advV_cell(ur[j], lr[j], vr0[j], um0[j], lm0[j], vm0[j], s0, e0,
                                        up0[j], lp0[j], vp0[j], t0, f0, central)
