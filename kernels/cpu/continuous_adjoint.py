"""Continuous adjoints of ODE solves (CPU, Numba): the adjoint ODE

    lam' = -J(u(t))^T lam,   mu' = -J_p(u(t))^T lam,

integrated backwards from ``t1`` to ``t0`` with an adaptive explicit RK method (the
forward method's tableau), ``lam`` jumping by the loss gradient at each observation
time.  ``dL/du0 = lam(t0)``, ``dL/dp = mu(t0)``.  Modes:

0. interpolating: ``u(t)`` from the forward solve's dense output;
1. backsolve: ``u`` integrated backwards together with ``lam, mu`` (cheap in memory,
   unstable on stiff or dissipative problems: the backward ``u`` equation blows up);
2. quadrature: as 0, but ``mu`` is left out of the error control (it is a quadrature of
   ``J_p^T lam`` at the stage points).

Accurate to the tolerance of the adjoint solve (unlike the discrete adjoint, which is
exact for the computed solution).

References
----------
Cao, Li, Petzold, Serban, *Adjoint sensitivity analysis for differential-algebraic
equations*, SIAM J. Sci. Comput. 24 (2003); Rackauckas et al., *Universal differential
equations* (2020), sec. on sensealg choices; Chen et al., *Neural ODEs* (2018) (backsolve).
"""
import numpy as np
from numba import njit

from .erk import LAND_RTOL, dense_eval
from .erk_adjoint import vjp_apply
from .rhs import eval_rhs
from .stepcontrol import error_norm, pi_factor, reject_factor

__all__ = ["continuous_adjoint"]


@njit(cache=False)
def _forward_state(out, t, dense, BTH):
    steps_t, steps_h, dus, dks = dense
    N = steps_t.size
    fwd = steps_h[0] > 0.0
    lo, hi = 0, N - 1
    while lo < hi:                       # last step whose start is before t
        mid = (lo + hi + 1) // 2
        if (steps_t[mid] <= t) if fwd else (steps_t[mid] >= t):
            lo = mid
        else:
            hi = mid - 1
    h = steps_h[lo]
    dense_eval(out, dus[lo], dks[lo], BTH, (t - steps_t[lo]) / h, h)


@njit(cache=False)
def _adj_rhs(rhs, vj, mode, dense, BTH, n, npg, z, t, dz, u, ou, op, work, cu, cd):
    f, p, lin, plin, haslin, tmp = rhs
    if mode == 1:
        for i in range(n):
            u[i] = z[i]
        eval_rhs(f, p, lin, plin, haslin, tmp, dz[:n], u, t)
        lam = z[n:2 * n]
        off = n
    else:
        _forward_state(u, t, dense, BTH)
        lam = z[:n]
        off = 0
    for j in range(npg):
        op[j] = 0.0
    kdummy = np.zeros(0)
    vjp_apply(vj, lam, u, p, t, ou, op, kdummy, work, cu, cd)
    for i in range(n):
        dz[off + i] = -ou[i]
    for j in range(npg):
        dz[off + n + j] = -op[j]


@njit(cache=True)
def continuous_adjoint(rhs, vj, tab, mode, dense, u_end, t1, t0, t_jump, g_jump, ctrl, npg):
    """Integrate the adjoint ODE from ``t1`` to ``t0``; ``t_jump`` (descending, inside
    ``(t0, t1]``) and ``g_jump`` the loss gradients added to ``lam`` there.  ``ctrl =
    (rtol, atol, dt0, maxiters, dtmin)``: the solve fails (``ok`` False) when the
    controller proposes a step below ``dtmin`` (or below ``1e-14 max(|t|, 1)``) or after
    ``maxiters`` attempts.  Returns ``(lam0, mu0, nsteps, nreject, ok)``."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    rtol, atol, dt0, maxiters, dtmin = ctrl
    n = u_end.size
    s = B.size
    off = n if mode == 1 else 0
    nz = off + n + npg
    z = np.zeros(nz)
    if mode == 1:
        for i in range(n):
            z[i] = u_end[i]
    znew = np.zeros(nz)
    ytmp = np.zeros(nz)
    ks = np.zeros((s, nz))
    err = np.zeros(nz)
    u = np.zeros(n)
    ou = np.zeros(n)
    op = np.zeros(max(npg, 1))
    work = np.zeros(n)
    cu = np.zeros(n, np.complex128)
    cd = np.zeros(n, np.complex128)
    # error control over lam (and u, mu unless quadrature) with per-entry tolerances
    nerr = nz if mode != 2 else off + n
    rt = np.full(nerr, rtol)
    at = np.full(nerr, atol)
    beta1 = 0.7 / q
    beta2 = 0.4 / q
    t = t1
    tdir = -1.0 if t0 < t1 else 1.0
    jj = 0
    habs = dt0
    errp = 1e-4
    after = False
    nsteps = 0
    nrej = 0
    it = 0
    while True:
        while jj < t_jump.size and t_jump[jj] == t:
            for i in range(n):
                z[off + i] += g_jump[jj, i]
            jj += 1
        if t == t0:
            break
        stop = t_jump[jj] if jj < t_jump.size else t0
        it += 1
        if it > maxiters:
            return z[off:off + n].copy(), z[off + n:].copy(), nsteps, nrej, False
        dist = abs(stop - t)
        land = habs * (1.0 + LAND_RTOL) >= dist
        hs = dist if land else habs
        h = tdir * hs
        for i in range(s):
            for x in range(nz):
                acc = 0.0
                for j in range(i):
                    acc += A[i, j] * ks[j, x]
                ytmp[x] = z[x] + h * acc
            _adj_rhs(rhs, vj, mode, dense, BTH, n, npg, ytmp, t + C[i] * h, ks[i], u, ou, op,
                     work, cu, cd)
        for x in range(nz):
            acc = 0.0
            ea = 0.0
            for j in range(s):
                acc += B[j] * ks[j, x]
                ea += BERR[j] * ks[j, x]
            znew[x] = z[x] + h * acc
            err[x] = h * ea
        e = error_norm(err[:nerr], z[:nerr], znew[:nerr], at, rt)
        if not (e <= 1.0):
            nrej += 1
            habs = hs * reject_factor(e, beta1, 0.9, 0.2)
            after = True
            if habs < 1e-14 * max(abs(t), 1.0) or habs < dtmin:
                return z[off:off + n].copy(), z[off + n:].copy(), nsteps, nrej, False
            continue
        fac = pi_factor(e, errp, beta1, beta2, 0.9, 0.2, 1.0 if after else 10.0)
        errp = max(e, 1e-4)
        after = False
        for i in range(nz):
            z[i] = znew[i]
        t = stop if land else t + h
        nsteps += 1
        habs = hs * fac
        if land and habs < hs:
            habs = hs
        if habs < dtmin and t != t0:
            return z[off:off + n].copy(), z[off + n:].copy(), nsteps, nrej, False
    return z[off:off + n].copy(), z[off + n:].copy(), nsteps, nrej, True
