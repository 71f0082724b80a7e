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
of :func:`.erk_adjoint.vjp_apply`.

IMEX additive form (KenCarp4 on a ``SplitODEProblem``, the ``ark_*`` kernels): ``u' =
fE(u) + L u + b`` with ``fE`` the user's ``f`` (explicit tableau ``AE``) and the affine
linear part ``lin(u) = L u + b`` implicit (ESDIRK tableau ``AI``), as
:func:`.esdirk.sdirk_step` computes it::

    base_i = u + h sum_{j<i} (AE[i, j] FE_j + AI[i, j] FI_j),
    Z_i = base_i + h gamma lin(Z_i)   i.e.  W Z_i = base_i + h gamma b,  W = I - h gamma L,
    FE_i = fE(Z_i),  FI_i = (Z_i - base_i) / (h gamma) = lin(Z_i),
    u' = u + h sum_i B_i (FE_i + FI_i)          (stage 0 explicit: Z_0 = u, FI_0 = lin(u)).

``W`` depends only on ``h`` (``L`` constant), so the stage solve is linear and its
derivative is the implicit function theorem with the same matrix; with
``FEbar_i = FIbar_i = h B_i lam'`` to start, for ``i = s-1 .. 0``::

    mu_i = W^{-T} (J_E(Z_i)^T FEbar_i + L^T FIbar_i)     (no W^{-T} for stage 0),
    lam += mu_i,  FEbar_j += h AE[i, j] mu_i,  FIbar_j += h AI[i, j] mu_i  (j < i),
    pbar += J_p(Z_i)^T FEbar_i                              (L does not depend on p).

``L^T`` products come from the VJP source's transpose of the linear part (grid
operators' transpose stencils, ``A^T`` of a dense or CSR matrix), ``J_E^T`` and
``J_p^T`` from its complex-step products with ``f``.  The states are recomputed from
the recorded step sizes with the forward step's own arithmetic (:func:`ark_stages`:
one Newton iteration with the exact ``W`` solves each affine stage equation), in every
checkpointing mode, so the gradient is bit-for-bit independent of the checkpointing.

References
----------
Hairer, Wanner, *Solving ODEs II* (1996), IV.6-8; Zhang, Sandu, *FATODE*, SIAM J. Sci.
Comput. 36 (2014) (SDIRK adjoints); Kennedy, Carpenter, *Additive Runge-Kutta schemes
for convection-diffusion-reaction equations*, Appl. Numer. Math. 44 (2003) 139-181
(the ARK4(3)6L[2]SA pair); Griewank, Walther, *Evaluating Derivatives* (2008), ch. 3
and 12 (reverse mode, checkpointing).
"""
import numpy as np
from numba import njit

from .erk import get_row, put_row
from .erk_adjoint import vjp_apply
from .rhs import eval_rhs
from .rosenbrock_adjoint import lu_solve_transpose
from .stiffjac import build_w, jacobian, jacobian_zero, linear_matrix, lu_factor, lu_solve

__all__ = ["sd_work", "sd_stages", "sd_advance", "sd_reverse", "sd_schedule", "ark_work",
           "ark_setup", "ark_stages", "ark_advance", "ark_reverse", "ark_schedule", "NEWTON_MAX"]

#: Newton iterations allowed to re-solve a stage to rounding
NEWTON_MAX = 100


@njit(cache=True)
def sd_work(n, s, np_grad, nk=0):
    """Work arrays of the (E)SDIRK sweeps; the last, ``wk[17]`` (``nk`` entries),
    accumulates the gradient wrt a grid operator's coefficient field (``kappa``)."""
    return (np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n)), np.zeros(n, np.int64),
            np.zeros((s, n)), np.zeros((s, n)), np.zeros((s, n)), np.zeros(n), np.zeros(n),
            np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.complex128),
            np.zeros(n, np.complex128), np.zeros(max(np_grad, 1)), np.zeros(n), np.zeros(n),
            np.zeros(max(nk, 1)))


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
            put_row(states, i - i0, u)
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
    """``out_u += c_u J(Y)^T v``; ``out_p += c_p J_p(Y)^T v`` (and ``wk[17] += c_p
    d<v, f(Y)>/dkappa`` when ``vj`` asks for the coefficient field's gradient)."""
    n = Y.size
    o = wk[9]
    pt = wk[14]
    kd = wk[15]
    npg = vj[7]
    for j in range(npg):
        pt[j] = 0.0
    kap = vj[12]
    if kap:
        for x in range(kd.size):
            kd[x] = 0.0
    vjp_apply(vj, v, Y, p, t, o, pt, kd, wk[10], wk[12], wk[13])
    for x in range(n):
        out_u[x] += c_u * o[x]
    for j in range(npg):
        out_p[j] += c_p * pt[j]
    if kap:
        kbar = wk[17]
        for x in range(kbar.size):
            kbar[x] += c_p * kd[x]


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
            if vj[7] > 0 or vj[12]:
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
            if not sd_advance(rhs, jd, tab, cur, steps_t, steps_h, a, ops[q, 2], buf, False,
                              wk):
                ok = False
        elif op == 1:
            put_row(buf, 0, cur)
            sd_reverse(rhs, jd, vj, tab, buf, steps_t, steps_h, a, a + 1, gsave, save_after,
                       lam, pbar, wk)
        elif op == 2:
            top += 1
            keys[top] = a
            put_row(snaps, top, cur)
        else:
            while top > 0 and keys[top] > a:
                top -= 1
            get_row(cur, snaps, top)
    return ok


# ----------------------------------------------------------------------------- IMEX (ARK)
@njit(cache=True)
def ark_work(n, s):
    """Work arrays of the IMEX kernels: ``(JL, W, piv, Z, FE, FI, FEb, FIb, base, r, mu,
    o, work, cu, cd, kdummy, state)``; ``state = [h gamma of the LU in W, JL set]``."""
    return (np.zeros((n, n)), np.zeros((n, n)), np.zeros(n, np.int64), np.zeros((s, n)),
            np.zeros((s, n)), np.zeros((s, n)), np.zeros((s, n)), np.zeros((s, n)),
            np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n),
            np.zeros(n, np.complex128), np.zeros(n, np.complex128), np.zeros(n),
            np.full(2, np.nan))


@njit(cache=True)
def ark_setup(rhs, t0, wk):
    """The dense matrix ``L`` of the linear part at ``t0`` (as the forward loop builds it,
    :func:`.stiffjac.linear_matrix`); forgets any LU held in ``wk``."""
    f, p, lin, plin, haslin, tmp = rhs
    JL = wk[0]
    linear_matrix(lin, plin, JL.shape[0], t0, JL)
    st = wk[16]
    st[0] = np.nan
    st[1] = 1.0


@njit(cache=False)
def ark_stages(rhs, tab, u, t, h, wk):
    """IMEX stages of the step from ``(t, u)``: ``Z`` (wk[3]), ``FE`` (wk[4]) and ``FI``
    (wk[5]), computed as :func:`.esdirk.sdirk_step` computes them: predictor
    ``base_i + h gamma FI_{i-1}``, one Newton iteration with the LU of the exact
    ``W = I - h gamma L`` (refactored only when ``h gamma`` changes), which solves the
    affine stage equation to rounding, and ``FI_i = (Z_i - base_i) / (h gamma)``.  (The
    forward loop iterates again when its contraction estimate asks for it, changing a
    stage by rounding only; a fixed count keeps the recomputation deterministic.)
    Returns False if ``W`` is singular or a stage is not finite."""
    f, p, lin, plin, haslin, tmp = rhs
    GAMMA, AI, C, B, AE = tab[1], tab[2], tab[4], tab[6], tab[9]
    JL, W, piv, Z, FE, FI, base, r = wk[0], wk[1], wk[2], wk[3], wk[4], wk[5], wk[8], wk[9]
    state = wk[16]
    n = u.size
    s = B.size
    hg = h * GAMMA
    if state[0] != hg:
        build_w(W, JL, 1.0, hg)
        if not lu_factor(W, piv):
            state[0] = np.nan
            return False
        state[0] = hg
    for st in range(s):
        ts = t + C[st] * h
        if AI[st, st] == 0.0:
            for x in range(n):
                Z[st, x] = u[x]
            f(FE[st], u, p, ts)
            lin(FI[st], u, plin, ts)
            continue
        for x in range(n):
            acc = 0.0
            for j in range(st):
                acc += AE[st, j] * FE[j, x] + AI[st, j] * FI[j, x]
            base[x] = u[x] + h * acc
            Z[st, x] = base[x] + hg * FI[st - 1, x]
        lin(r, Z[st], plin, ts)
        for x in range(n):
            r[x] = base[x] + hg * r[x] - Z[st, x]
        lu_solve(W, piv, r)
        for x in range(n):
            Z[st, x] += r[x]
            FI[st, x] = (Z[st, x] - base[x]) / hg
            if not np.isfinite(Z[st, x]):
                return False
        f(FE[st], Z[st], p, ts)
    return True


@njit(cache=False)
def _ark_advance(rhs, tab, u, steps_t, steps_h, i0, i1, states, store, wk):
    B = tab[6]
    FE, FI = wk[4], wk[5]
    s = B.size
    ok = True
    for i in range(i0, i1):
        if store:
            put_row(states, i - i0, u)
        h = steps_h[i]
        if not ark_stages(rhs, tab, u, steps_t[i], h, wk):
            ok = False
        for x in range(u.size):
            acc = 0.0
            for j in range(s):
                acc += B[j] * (FE[j, x] + FI[j, x])
            u[x] = u[x] + h * acc
    return ok


@njit(cache=False)
def _ark_reverse(rhs, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after, lam, pbar,
                 wk):
    f, p, lin, plin, haslin, tmp = rhs
    GAMMA, AI, C, B, AE = tab[1], tab[2], tab[4], tab[6], tab[9]
    W, piv, Z = wk[1], wk[2], wk[3]
    FEb, FIb, mu, o = wk[6], wk[7], wk[10], wk[11]
    work, cu, cd, kd = wk[12], wk[13], wk[14], wk[15]
    # the explicit part's VJP source: f only (L^T is applied separately, to FIbar)
    vjE = (vj[0], vj[1], vj[2], vj[3], vj[4], vj[5], vj[6], vj[7], vj[8], vj[9], vj[10],
           False, False, vj[13]) + vj[14:]
    linT = vj[9]
    plinT = vj[10]
    has_lt = vj[11]
    n = lam.size
    s = B.size
    ok = True
    for i in range(i1 - 1, i0 - 1, -1):
        g = save_after[i]
        if g >= 0:
            for x in range(n):
                lam[x] += gsave[g, x]
        u = states[i - i0]
        t = steps_t[i]
        h = steps_h[i]
        if not ark_stages(rhs, tab, u, t, h, wk):
            ok = False
        for st in range(s):
            for x in range(n):
                FEb[st, x] = h * B[st] * lam[x]
                FIb[st, x] = FEb[st, x]
        for st in range(s - 1, -1, -1):
            ts = t + C[st] * h
            vjp_apply(vjE, FEb[st], Z[st], p, ts, o, pbar, kd, work, cu, cd)
            if has_lt:
                linT(work, FIb[st], plinT, ts)
                for x in range(n):
                    mu[x] = o[x] + work[x]
            else:
                for x in range(n):
                    mu[x] = o[x]
            if AI[st, st] != 0.0:
                lu_solve_transpose(W, piv, mu)
            for x in range(n):
                lam[x] += mu[x]
            for j in range(st):
                ae = h * AE[st, j]
                ai = h * AI[st, j]
                for x in range(n):
                    FEb[j, x] += ae * mu[x]
                    FIb[j, x] += ai * mu[x]
    return ok


# entry points from Python; the schedule calls the cache=False bodies above (a cached
# caller must not be compiled against a callee loaded from the cache: test_kernel_cache)
@njit(cache=True)
def ark_advance(rhs, tab, u, steps_t, steps_h, i0, i1, states, store, wk):
    """:func:`sd_advance` for the IMEX form (:func:`ark_stages`, the update summed as
    :func:`.esdirk.sdirk_step` sums it).  Call :func:`ark_setup` first."""
    return _ark_advance(rhs, tab, u, steps_t, steps_h, i0, i1, states, store, wk)


@njit(cache=True)
def ark_reverse(rhs, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after, lam, pbar,
                wk):
    """Reverse IMEX steps ``i1-1 .. i0`` (states before each step in ``states[i - i0]``);
    conventions of :func:`.erk_adjoint.erk_reverse`, formulas in the module docstring.
    Returns False if a re-solved stage did not converge.  Call :func:`ark_setup` first."""
    return _ark_reverse(rhs, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after,
                        lam, pbar, wk)


@njit(cache=True)
def ark_schedule(rhs, vj, tab, u0, steps_t, steps_h, ops, C, gsave, save_after, lam, pbar, wk):
    """:func:`sd_schedule` for the IMEX reverse; returns False if a re-solved stage did
    not converge.  Call :func:`ark_setup` first."""
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
            if not _ark_advance(rhs, tab, cur, steps_t, steps_h, a, ops[q, 2], buf, False, wk):
                ok = False
        elif op == 1:
            put_row(buf, 0, cur)
            if not _ark_reverse(rhs, vj, tab, buf, steps_t, steps_h, a, a + 1, gsave,
                                save_after, lam, pbar, wk):
                ok = False
        elif op == 2:
            top += 1
            keys[top] = a
            put_row(snaps, top, cur)
        else:
            while top > 0 and keys[top] > a:
                top -= 1
            get_row(cur, snaps, top)
    return ok
