"""The compiled loop of ETDRK4, the exponential time-differencing Runge-Kutta method of
Cox and Matthews, for ``du/dt = L u + N(u, t)`` with a constant linear part ``L``, CPU.

The steps are given (``tg``: the step endpoints; ``hid[k]``: which coefficient set
step ``k`` uses); the linear part enters only through precomputed functions of ``h L``
(``e^{hL/2}``, ``e^{hL}`` and the four phi-function combinations of
:func:`jitsolve.solvers.ode.etdrk4.etd_coefficients`), in one of three forms:

``MODE_DIAG``
    ``L`` diagonal: ``cf[j]`` holds the six coefficient vectors (``e2, q, e, f1, f2,
    f3``) of set ``j``; every product is entrywise.
``MODE_EIG``
    ``L = Q diag(lam) Q^T`` with ``Q = Q0 (x) Q1 (x) Q2`` orthogonal (a separable grid
    operator, or a symmetric matrix with one factor): each step takes its state and
    every nonlinear evaluation into the eigenbasis (``Q^T``: matrix products along the
    axes of the ``(n0, n1, n2)`` state) and each stage back (``Q``), nine transforms;
    the coefficients are vectors as for ``MODE_DIAG``.
``MODE_DENSE``
    ``cm[j]`` holds the six coefficient matrices (a general small matrix); the
    transforms are copies.

Every step starts from the physical state (``uh = Q^T u`` is recomputed, not carried),
so a step redone from a stored state in a reverse sweep (:mod:`.etdrk4_adjoint`) is the
forward's step bit for bit.

``N(u, t) = f(u, p, t) + nb`` (``nb`` the linear part's boundary term, or zeros): ``f``
is a first-class function of the fixed right-hand-side signature
(:mod:`.rhs`), so the loop is compiled once for every user function.

References
----------
Cox, Matthews, *Exponential time differencing for stiff systems*, J. Comput. Phys. 176
(2002), eq. (26)-(29); Kassam, Trefethen, *Fourth-order time-stepping for stiff PDEs*,
SIAM J. Sci. Comput. 26 (2005).
"""
import numpy as np
from numba import njit

__all__ = ["etd_solve", "etd_step", "transform", "coef_apply", "work_rows", "MODE_DIAG",
           "MODE_EIG", "MODE_DENSE", "NWORK"]

MODE_DIAG, MODE_EIG, MODE_DENSE = 0, 1, 2
RC_SUCCESS, RC_MAXITERS, RC_UNSTABLE, RC_INITIAL = 0, 2, 4, 5


@njit(cache=False)
def _kron3(x, out, M0, R1, M2, n0, n1, n2, w):
    """``out = (M0 (x) R1 (x) M2^T) x`` with ``x`` seen as a C-ordered ``(n0, n1, n2)``
    array: axis 2 by ``X @ M2``, axis 1 by ``R1 @ X[i]``, axis 0 by ``M0 @ X`` (BLAS
    products); an axis of one cell is skipped.  ``w`` is a work vector of ``x.size``
    entries; the passes alternate between ``w`` and ``out`` so that the last lands in
    ``out``."""
    m = (1 if n0 > 1 else 0) + (1 if n1 > 1 else 0) + (1 if n2 > 1 else 0)
    if m == 0:
        out[:] = x
        return
    src = x
    to_out = m % 2 == 1          # the first pass writes out when the count is odd
    if n2 > 1:
        dst = out if to_out else w
        np.dot(src.reshape((n0 * n1, n2)), M2, dst.reshape((n0 * n1, n2)))
        src = dst
        to_out = not to_out
    if n1 > 1:
        dst = out if to_out else w
        s3 = src.reshape((n0, n1, n2))
        d3 = dst.reshape((n0, n1, n2))
        for i in range(n0):
            np.dot(R1, s3[i], d3[i])
        src = dst
        to_out = not to_out
    if n0 > 1:
        dst = out if to_out else w
        np.dot(M0, src.reshape((n0, n1 * n2)), dst.reshape((n0, n1 * n2)))


@njit(cache=False)
def _nonlinear(f, p, nb, hasnb, out, u, t):
    """``out = f(u, p, t) + nb``."""
    f(out, u, p, t)
    if hasnb:
        for i in range(out.size):
            out[i] += nb[i]


@njit(cache=False)
def _all_finite(x):
    for i in range(x.size):
        if not np.isfinite(x[i]):
            return False
    return True


@njit(cache=False)
def transform(mode, x, out, M, dims, w):
    """``out = Q^T x`` (``M`` the ``fwd`` factors) or ``out = Q x`` (``inv``) in
    ``MODE_EIG``; a copy in the other modes."""
    if mode == MODE_EIG:
        _kron3(x, out, M[0], M[1], M[2], dims[0], dims[1], dims[2], w)
    else:
        out[:] = x


@njit(cache=False)
def coef_apply(mode, cf, cm, j, k, x, out, scale, acc):
    """``out = [out +] scale * C_k x`` with coefficient ``k`` of set ``j``: entrywise
    (``cf``) in the diagonal modes, a matrix product (``cm``) in ``MODE_DENSE``."""
    n = x.size
    if mode == MODE_DENSE:
        y = np.dot(cm[j, k], x)
        if acc:
            for i in range(n):
                out[i] += scale * y[i]
        else:
            for i in range(n):
                out[i] = scale * y[i]
    else:
        c = cf[j, k]
        if acc:
            for i in range(n):
                out[i] += scale * c[i] * x[i]
        else:
            for i in range(n):
                out[i] = scale * c[i] * x[i]


#: rows of the step's work array (:func:`work_rows`)
(UH, NU, NUH, AH, A, NA, NAH, BH, B, NB, NBH, CH, C, NC, NCH, W, UNH, UNEW, W2) = range(19)
NWORK = 19


@njit(cache=False)
def work_rows(n):
    """The work array of :func:`etd_step` (``NWORK`` rows of ``n``)."""
    return np.empty((NWORK, n))


@njit(cache=False)
def etd_step(f, p, nb, hasnb, mode, cf, cm, j, fwd, inv, dims, u, t, h, S):
    """One ETDRK4 step of size ``h`` from ``(t, u)`` with coefficient set ``j``; the new
    state lands in ``S[UNEW]``, the stage states ``a, b, c`` in ``S[A], S[B], S[C]``
    (and their eigenbasis forms, the nonlinear values) stay in ``S`` for the reverse
    sweep.  ``cm`` holds the coefficient matrices (``MODE_DENSE``)."""
    w2 = S[W2]
    transform(mode, u, S[UH], fwd, dims, w2)
    _nonlinear(f, p, nb, hasnb, S[NU], u, t)
    transform(mode, S[NU], S[NUH], fwd, dims, w2)
    coef_apply(mode, cf, cm, j, 0, S[UH], S[AH], 1.0, False)
    coef_apply(mode, cf, cm, j, 1, S[NUH], S[AH], 1.0, True)
    transform(mode, S[AH], S[A], inv, dims, w2)
    _nonlinear(f, p, nb, hasnb, S[NA], S[A], t + 0.5 * h)
    transform(mode, S[NA], S[NAH], fwd, dims, w2)
    coef_apply(mode, cf, cm, j, 0, S[UH], S[BH], 1.0, False)
    coef_apply(mode, cf, cm, j, 1, S[NAH], S[BH], 1.0, True)
    transform(mode, S[BH], S[B], inv, dims, w2)
    _nonlinear(f, p, nb, hasnb, S[NB], S[B], t + 0.5 * h)
    transform(mode, S[NB], S[NBH], fwd, dims, w2)
    wv = S[W]
    nbh = S[NBH]
    nuh = S[NUH]
    for i in range(wv.size):
        wv[i] = 2.0 * nbh[i] - nuh[i]
    coef_apply(mode, cf, cm, j, 0, S[AH], S[CH], 1.0, False)
    coef_apply(mode, cf, cm, j, 1, wv, S[CH], 1.0, True)
    transform(mode, S[CH], S[C], inv, dims, w2)
    _nonlinear(f, p, nb, hasnb, S[NC], S[C], t + h)
    transform(mode, S[NC], S[NCH], fwd, dims, w2)
    nah = S[NAH]
    for i in range(wv.size):
        wv[i] = nah[i] + nbh[i]
    coef_apply(mode, cf, cm, j, 2, S[UH], S[UNH], 1.0, False)
    coef_apply(mode, cf, cm, j, 3, nuh, S[UNH], 1.0, True)
    coef_apply(mode, cf, cm, j, 4, wv, S[UNH], 2.0, True)
    coef_apply(mode, cf, cm, j, 5, S[NCH], S[UNH], 1.0, True)
    transform(mode, S[UNH], S[UNEW], inv, dims, w2)


@njit(cache=True)
def etd_solve(f, p, nb, hasnb, u0, tg, hid, save, mode, cf, cm, fwd, inv, dims, maxiters):
    """Integrate over the step grid ``tg`` with ETDRK4.

    Parameters
    ----------
    f, p : the nonlinear part's cfunc and its parameters; ``nb`` (with ``hasnb``) a
        constant vector added to ``f``.
    u0 : float64[::1]
    tg : float64[::1], the ``K + 1`` step endpoints; ``hid`` int64[::1] (``K``), the
        coefficient set of each step; ``save`` bool[::1] (``K + 1``), which endpoints
        are saved.
    mode : ``MODE_DIAG``, ``MODE_EIG`` or ``MODE_DENSE``; ``cf`` (sets, 6, n) the
        coefficient vectors (diagonal modes), ``cm`` (sets, 6, n, n) the coefficient
        matrices (dense mode); the other is empty.
    fwd, inv : tuples ``(M0, R1, M2)`` of :func:`_kron3` for ``Q^T`` and ``Q``
        (``MODE_EIG``); ``dims = (n0, n1, n2)``.
    maxiters : the most steps taken.

    Returns
    -------
    ``(ts, us, nsave, stats, rc, t, u)``: saved times and states, ``stats = [nf, 0, 0,
    naccept, 0]``, the return code (0 Success, 2 MaxIters, 4 Unstable, 5
    InitialFailure), the last time reached and its state.  A step whose result is not
    finite is not taken: ``t, u`` are the last finite step's.
    """
    n = u0.size
    K = hid.size
    nrows = 0
    for k in range(K + 1):
        if save[k]:
            nrows += 1
    ts = np.empty(nrows)
    us = np.empty((nrows, n))
    stats = np.zeros(5, np.int64)
    u = u0.copy()
    S = work_rows(n)
    nsave = 0
    if save[0]:
        ts[0] = tg[0]
        us[0, :] = u
        nsave = 1
    rc = RC_SUCCESS
    t = tg[0]
    if not _all_finite(u):
        rc = RC_INITIAL
        K = 0
    for k in range(K):
        if k >= maxiters:
            rc = RC_MAXITERS
            break
        etd_step(f, p, nb, hasnb, mode, cf, cm, hid[k], fwd, inv, dims, u, t, tg[k + 1] - tg[k],
                 S)
        stats[0] += 4
        if not _all_finite(S[UNEW]):
            rc = RC_UNSTABLE
            break
        u[:] = S[UNEW]
        t = tg[k + 1]
        stats[3] += 1
        if save[k + 1]:
            ts[nsave] = t
            us[nsave, :] = u
            nsave += 1
    return ts, us, nsave, stats, rc, t, u
