"""Discrete adjoint of the (E)SDIRK methods and ImplicitEuler (CPU, Numba) by the implicit
function theorem at each stage.

A stage solves ``Z_i = base_i + h gamma f(Z_i)`` with ``base_i = u + h sum_{j<i} a_ij F_j``,
``F_i = f(Z_i)``; the step is ``u' = u + h sum_i b_i F_i`` (an explicit first stage has
``F_0 = f(u)``).  Differentiating the *solved* stage equation (not the Newton iterations)::

    mu_i = (I - h gamma J(Z_i))^{-T} J(Z_i)^T Fbar_i,
    ubar += mu_i,  Fbar_j += h a_ij mu_i (j < i),
    pbar += J_p(Z_i)^T Fbar_i + h gamma J_p(Z_i)^T mu_i.

The forward loop stops Newton at its tolerance and reuses old Jacobians, so its stages
are not reproducible from a checkpoint.  The reverse pass therefore re-solves every stage
to rounding (:func:`sd_stages`: Newton with ``W = I - h gamma J(u)`` of the step start,
iterated until the correction stagnates at rounding level) from states advanced the same
way (:func:`sd_advance`), in every checkpointing mode: the gradient is the exact
derivative of the exactly solved scheme along the recorded steps, at states that differ
from the forward pass's by its Newton tolerance, and bit-for-bit independent of the
checkpointing.  ``J(Z_i)`` for the transposed solve is the forward pass's Jacobian source
(user ``jac`` or complex step), products ``J^T v`` and ``J_p^T v`` the complex-step VJPs
of :func:`.erk_adjoint.vjp_apply`.  IMEX tableaus are not covered.

References
----------
Hairer, Wanner, *Solving ODEs II* (1996), IV.6-8; Zhang, Sandu, *FATODE*, SIAM J. Sci.
Comput. 36 (2014) (SDIRK adjoints).
"""
import numpy as np
from numba import njit

from .erk_adjoint import vjp_apply
from .rhs import eval_rhs
from .rosenbrock_adjoint import lu_solve_transpose
from .stiffjac import build_w, jacobian, jacobian_zero, linear_matrix, lu_factor, lu_solve

__all__ = ["sd_work", "sd_stages", "sd_advance", "sd_reverse", "NEWTON_MAX"]

#: Newton iterations allowed to re-solve a stage to rounding
NEWTON_MAX = 100


@njit(cache=True)
def sd_work(n, s, np_grad):
    return (np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n)), np.zeros(n, np.int64),
            np.zeros((s, n)), np.zeros((s, n)), np.zeros((s, n)), np.zeros(n), np.zeros(n),
            np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.complex128),
            np.zeros(n, np.complex128), np.zeros(max(np_grad, 1)), np.zeros(n), np.zeros(n))


@njit(cache=False)
def _jac(rhs, jd, u, t, wk, Jout):
    f, p, lin, plin, haslin, tmp = rhs
    jac, hasjac, fc, pc, cptr, ccols, colptr, rowidx, hascolor, fjac_on, autonomous = jd
    JL = wk[1]
    n = u.size
    if haslin:
        linear_matrix(lin, plin, n, t, JL)
    if fjac_on:
        jacobian(jac, hasjac, fc, pc, cptr, ccols, colptr, rowidx, hascolor, p, u, t, JL,
                 haslin, Jout, wk[12], wk[13])
    elif haslin:
        for i in range(n):
            for j in range(n):
                Jout[i, j] = JL[i, j]
    else:
        jacobian_zero(Jout)


@njit(cache=False)
def sd_stages(rhs, jd, tab, u, t, h, wk):
    """Stages ``Z`` (wk[4]) and slopes ``F = f(Z)`` (wk[5]) of the step from ``(t, u)``,
    each stage equation solved to rounding.  Returns False if Newton diverged."""
    f, p, lin, plin, haslin, tmp = rhs
    GAMMA, AI, C, B = tab[1], tab[2], tab[4], tab[6]
    J, W, piv = wk[0], wk[2], wk[3]
    Z, F = wk[4], wk[5]
    base, r = wk[7], wk[8]
    n = u.size
    s = B.size
    hg = h * GAMMA
    _jac(rhs, jd, u, t, wk, J)
    build_w(W, J, 1.0, hg)
    if not lu_factor(W, piv):
        return False
    ok = True
    for st in range(s):
        ts = t + C[st] * h
        if AI[st, st] == 0.0:
            for x in range(n):
                Z[st, x] = u[x]
            eval_rhs(f, p, lin, plin, haslin, tmp, F[st], u, ts)
            continue
        for x in range(n):
            acc = 0.0
            for j in range(st):
                acc += AI[st, j] * F[j, x]
            base[x] = u[x] + h * acc
            Z[st, x] = base[x] + hg * (F[st - 1, x] if st > 0 else 0.0)
        if st == 0:
            eval_rhs(f, p, lin, plin, haslin, tmp, r, u, t)
            for x in range(n):
                Z[st, x] = base[x] + hg * r[x]
        dn_prev = np.inf
        dn = np.inf
        for k in range(NEWTON_MAX):
            eval_rhs(f, p, lin, plin, haslin, tmp, r, Z[st], ts)
            for x in range(n):
                r[x] = base[x] + hg * r[x] - Z[st, x]
            lu_solve(W, piv, r)
            dn = 0.0
            for x in range(n):
                Z[st, x] += r[x]
                w = abs(Z[st, x]) + abs(u[x]) + 1e-300
                dn = max(dn, abs(r[x]) / w)
            if not (dn < np.inf):
                return False
            if dn <= 1e-16 or (k >= 2 and dn < 1e-9 and dn >= 0.5 * dn_prev):
                break
            dn_prev = dn
        if not (dn < 1e-9):
            ok = False
        eval_rhs(f, p, lin, plin, haslin, tmp, F[st], Z[st], ts)
    return ok


@njit(cache=True)
def sd_advance(rhs, jd, tab, u, steps_t, steps_h, i0, i1, states, store, wk):
    """Redo steps ``i0 .. i1-1`` from ``u`` (in place) with stages solved to rounding;
    with ``store`` the state before step ``i`` goes to ``states[i - i0]``.  Returns False
    if a stage failed to converge."""
    B = tab[6]
    F = wk[5]
    s = B.size
    ok = True
    for i in range(i0, i1):
        if store:
            states[i - i0] = u
        h = steps_h[i]
        if not sd_stages(rhs, jd, tab, u, steps_t[i], h, wk):
            ok = False
        for x in range(u.size):
            acc = 0.0
            for j in range(s):
                acc += B[j] * F[j, x]
            u[x] += h * acc
    return ok


@njit(cache=False)
def _vjp(vj, v, Y, p, t, c_u, out_u, c_p, out_p, wk):
    """``out_u += c_u J(Y)^T v``; ``out_p += c_p J_p(Y)^T v``."""
    n = Y.size
    o = wk[9]
    pt = wk[14]
    npg = vj[7]
    for j in range(npg):
        pt[j] = 0.0
    vjp_apply(vj, v, Y, p, t, o, pt, wk[15], wk[10], wk[12], wk[13])
    for x in range(n):
        out_u[x] += c_u * o[x]
    for j in range(npg):
        out_p[j] += c_p * pt[j]


@njit(cache=True)
def sd_reverse(rhs, jd, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after, lam,
               pbar, wk):
    """Reverse steps ``i1-1 .. i0`` (states before each step in ``states[i - i0]``, as
    :func:`sd_advance` makes them); conventions of :func:`.erk_adjoint.erk_reverse`."""
    f, p, lin, plin, haslin, tmp = rhs
    GAMMA, AI, C, B = tab[1], tab[2], tab[4], tab[6]
    J, W, piv = wk[0], wk[2], wk[3]
    Z, Fb = wk[4], wk[6]
    mu = wk[11]
    n = lam.size
    s = B.size
    for i in range(i1 - 1, i0 - 1, -1):
        g = save_after[i]
        if g >= 0:
            for x in range(n):
                lam[x] += gsave[g, x]
        u = states[i - i0]
        t = steps_t[i]
        h = steps_h[i]
        hg = h * GAMMA
        sd_stages(rhs, jd, tab, u, t, h, wk)
        for st in range(s):
            for x in range(n):
                Fb[st, x] = h * B[st] * lam[x]
        for st in range(s - 1, -1, -1):
            ts = t + C[st] * h
            if AI[st, st] == 0.0:
                _vjp(vj, Fb[st], u, p, ts, 1.0, lam, 1.0, pbar, wk)
                continue
            for x in range(n):
                mu[x] = 0.0
            _vjp(vj, Fb[st], Z[st], p, ts, 1.0, mu, 1.0, pbar, wk)
            _jac(rhs, jd, Z[st], ts, wk, J)
            build_w(W, J, 1.0, hg)
            lu_factor(W, piv)
            lu_solve_transpose(W, piv, mu)
            for x in range(n):
                lam[x] += mu[x]
            if vj[7] > 0:
                _vjp(vj, mu, Z[st], p, ts, 0.0, wk[16], hg, pbar, wk)
            for j in range(st):
                a = h * AI[st, j]
                if a != 0.0:
                    for x in range(n):
                        Fb[j, x] += a * mu[x]


@njit(cache=True)
def sd_schedule(rhs, jd, vj, tab, u0, steps_t, steps_h, ops, C, gsave, save_after, lam, pbar,
                wk):
    """:func:`.rosenbrock_adjoint.ros_schedule` for the (E)SDIRK reverse; returns False if
    a re-solved stage did not converge."""
    n = u0.size
    snaps = np.empty((C + 2, n))
    keys = np.empty(C + 2, np.int64)
    top = -1
    cur = u0.copy()
    buf = np.empty((1, n))
    ok = True
    for q in range(ops.shape[0]):
        op = ops[q, 0]
        a = ops[q, 1]
        if op == 0:
            if not sd_advance(rhs, jd, tab, cur, steps_t, steps_h, a, ops[q, 2], buf, False, wk):
                ok = False
        elif op == 1:
            buf[0] = cur
            sd_reverse(rhs, jd, vj, tab, buf, steps_t, steps_h, a, a + 1, gsave, save_after,
                       lam, pbar, wk)
        elif op == 2:
            top += 1
            keys[top] = a
            snaps[top] = cur
        else:
            while top > 0 and keys[top] > a:
                top -= 1
            cur[:] = snaps[top]
    return ok
