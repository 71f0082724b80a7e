"""Discrete adjoint of the Rosenbrock methods (Rosenbrock23, Rodas5P), CPU, Numba: the
exact reverse-mode derivative of the linearly implicit scheme that
:func:`jitsolve.kernels.cpu.stiff.stiff_solve` ran, for the recorded (accepted) steps.

A Rosenbrock step from ``(t, u)`` solves, with one LU of ``W`` (``J = df/du(t, u)``),
``W k_i = r_i`` for every stage.  By the implicit function theorem on ``W k = r``::

    rbar = W^{-T} kbar,      Wbar = -rbar k^T,

and since ``W = a I - c J(u, p)`` the matrix adjoint becomes ``Jbar = c rbar k^T``, whose
contribution to the adjoints of ``u`` and ``p`` is a second derivative of ``f``::

    ubar += c d/ds [J(u + s k, p)^T rbar]_{s=0},   pbar += c d/ds [J_p(u + s k, p)^T rbar]_{s=0}.

Second derivatives (documented choice).  The inner products ``J^T v``, ``J_p^T v`` are
the exact (to rounding) complex-step VJPs of :func:`.erk_adjoint.vjp_apply`; the outer
directional derivative along the stage vector ``k`` is a Richardson-extrapolated central
difference of those VJPs (four of them, steps ``s`` and ``s/2`` with
``s max|k| = HESS_REL max|u|``).  Its truncation error is ``O(s^4)`` times the fifth
derivative of ``f`` and vanishes identically for right-hand sides that are polynomials of
degree <= 5 in ``u`` (mass action kinetics, Van der Pol, Robertson, Lotka-Volterra: the
result is then exact to rounding); otherwise it is ~1e-12 relative with
``HESS_REL = 2e-3`` (rounding ~``1e-16 / HESS_REL``).  Nested complex steps would need
multicomplex arithmetic in the user's ``f``, which is compiled for complex128 only.

The time derivative ``T`` (non-autonomous problems) is the forward loop's forward
difference ``T = (f(u, t + dtt) - f(u, t)) / dtt``, differentiated as written (the
increment ``dtt`` is recomputed from the accepted step; for fixed steps it equals the one
the forward pass used; with adaptive steps the forward pass took it from the first
*attempted* step, see :mod:`jitsolve.adjoint.stiff`).  For an autonomous ``f`` the two
VJPs of that difference are bitwise equal and cancel exactly.

Work: per step one Jacobian + LU (as the forward pass), ``s`` transposed solves, and per
stage one VJP plus four for the ``J`` derivative (``(n_colours + n_p)`` complex
evaluations of ``f`` each).

References
----------
Sandu, Daescu, Carmichael, *Direct and adjoint sensitivity analysis of chemical kinetic
systems with KPP: Part I - theory and software tools*, Atmos. Environ. 37 (2003)
(discrete Rosenbrock adjoints); Zhang, Sandu, *FATODE*, SIAM J. Sci. Comput. 36 (2014);
Hairer, Wanner, *Solving ODEs II* (1996), IV.7.
"""
import numpy as np
from numba import njit

from .erk import get_row, put_row
from .erk_adjoint import vjp_apply
from .rhs import eval_rhs
from .rosenbrock import KIND_ROS23, ros_step
from .stiffjac import build_w, jacobian, jacobian_zero, linear_matrix, lu_factor, lu_solve

__all__ = ["lu_solve_transpose", "ros_work", "ros_advance", "ros_step_adjoint", "ros_reverse",
           "HESS_REL"]

#: relative size of the difference step along a stage vector (see the module docstring)
HESS_REL = 2e-3
#: the forward loop's relative increment for df/dt
_DT_REL = 1.4901161193847656e-08


@njit(cache=True)
def lu_solve_transpose(W, piv, b):
    """Solve ``W^T x = b`` in place with the factors of :func:`.stiffjac.lu_factor`
    (``P W = L U``, so ``W^T = U^T L^T P``)."""
    n = W.shape[0]
    for i in range(n):                       # U^T y = b
        acc = b[i]
        for j in range(i):
            acc -= W[j, i] * b[j]
        b[i] = acc / W[i, i]
    for i in range(n - 1, -1, -1):           # L^T z = y (unit diagonal)
        acc = b[i]
        for j in range(i + 1, n):
            acc -= W[j, i] * b[j]
        b[i] = acc
    for k in range(n - 1, -1, -1):           # x = P^T z
        m = piv[k]
        if m != k:
            tmp = b[k]
            b[k] = b[m]
            b[m] = tmp


@njit(cache=True)
def ros_work(n, s, np_grad, nk=0):
    """Work arrays of one reverse/advance step (a tuple, allocated once per sweep); the
    last, ``wk[22]`` (``nk`` entries), accumulates the gradient wrt a grid operator's
    coefficient field (``kappa``) when the VJP source asks for it."""
    s3 = max(s, 3)
    return (np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n)), np.zeros(n, np.int64),
            np.zeros(n), np.zeros(n), np.zeros((s3, n)), np.zeros((s3, n)), np.zeros((s3, n)),
            np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n),
            np.zeros(n), np.zeros(n), np.zeros(n, np.complex128), np.zeros(n, np.complex128),
            np.zeros(max(np_grad, 1)), np.zeros(n), np.zeros(n), np.zeros(max(nk, 1)))


@njit(cache=False)
def _tf0(kind, steps_t, steps_h, i):
    """Time at which the forward loop evaluated ``f0`` of step ``i``: Rosenbrock23 reuses
    the FSAL value ``f(u, t_prev + h_prev)``, the others evaluate at ``steps_t[i]``."""
    if kind == KIND_ROS23 and i > 0:
        return steps_t[i - 1] + steps_h[i - 1]
    return steps_t[i]


@njit(cache=True)
def _prepare(rhs, jd, tab, u, t, h, tf0, wk):
    """``f0``, ``J``, ``T`` of a step exactly as the forward loop computed them."""
    f, p, lin, plin, haslin, tmp = rhs
    jac, hasjac, fc, pc, cptr, ccols, colptr, rowidx, hascolor, fjac_on, autonomous = jd
    J, JL, W, piv, f0, T = wk[0], wk[1], wk[2], wk[3], wk[4], wk[5]
    uc, duc = wk[17], wk[18]
    n = u.size
    eval_rhs(f, p, lin, plin, haslin, tmp, f0, u, tf0)
    if haslin:
        linear_matrix(lin, plin, n, t, JL)     # constant matrix (the forward takes t0)
    if fjac_on:
        jacobian(jac, hasjac, fc, pc, cptr, ccols, colptr, rowidx, hascolor, p, u, t, JL,
                 haslin, J, uc, duc)
    elif haslin:
        for i in range(n):
            for j in range(n):
                J[i, j] = JL[i, j]
    else:
        jacobian_zero(J)
    for i in range(n):
        T[i] = 0.0
    if not autonomous:
        dtt = _DT_REL * max(abs(t), abs(h), 1e-3)
        eval_rhs(f, p, lin, plin, haslin, tmp, T, u, t + dtt)
        for i in range(n):
            T[i] = (T[i] - f0[i]) / dtt


@njit(cache=True)
def ros_advance(rhs, jd, tab, u, steps_t, steps_h, i0, i1, states, store, wk):
    """Redo the recorded steps ``i0 .. i1-1`` from ``u`` (in place) with the forward
    loop's own step kernels (bitwise the forward states); with ``store`` the state before
    step ``i`` goes to ``states[i - i0]``."""
    f, p, lin, plin, haslin, tmp = rhs
    kind = tab[0]
    J, W, piv, f0, T = wk[0], wk[2], wk[3], wk[4], wk[5]
    K, kd = wk[6], wk[8]
    unew, ytmp, err, fsal = wk[9], wk[10], wk[11], wk[12]
    for i in range(i0, i1):
        if store:
            put_row(states, i - i0, u)
        t = steps_t[i]
        h = steps_h[i]
        _prepare(rhs, jd, tab, u, t, h, _tf0(kind, steps_t, steps_h, i), wk)
        ros_step(f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, T, J, W, piv, K, kd, unew, ytmp,
                 err, fsal)
        for x in range(u.size):
            u[x] = unew[x]


@njit(cache=False)
def _jdir(vj, v, u, d, p, t, c, out_u, out_p, wk):
    """``out_u += c d/ds [J(u + s d)^T v]``, ``out_p += c d/ds [J_p(u + s d)^T v]`` at
    ``s = 0``: Richardson-extrapolated central differences of exact complex-step VJPs."""
    n = u.size
    dmax = 0.0
    umax = 0.0
    vmax = 0.0
    for x in range(n):
        dmax = max(dmax, abs(d[x]))
        umax = max(umax, abs(u[x]))
        vmax = max(vmax, abs(v[x]))
    if dmax == 0.0 or vmax == 0.0 or c == 0.0:
        return
    s = HESS_REL * max(umax, 1e-8) / dmax
    npg = vj[7]
    Y = wk[13]
    o = wk[14]
    work = wk[15]
    pt = wk[19]
    kdummy = wk[20]
    cu, cd = wk[17], wk[18]
    # R = [8 (V(s/2) - V(-s/2)) - (V(s) - V(-s))] / (6 s)
    for m in range(4):
        if m == 0:
            sig, w = 0.5 * s, 8.0
        elif m == 1:
            sig, w = -0.5 * s, -8.0
        elif m == 2:
            sig, w = s, -1.0
        else:
            sig, w = -s, 1.0
        for x in range(n):
            Y[x] = u[x] + sig * d[x]
        for j in range(npg):
            pt[j] = 0.0
        kap = vj[12]
        if kap:
            for x in range(kdummy.size):
                kdummy[x] = 0.0
        vjp_apply(vj, v, Y, p, t, o, pt, kdummy, work, cu, cd)
        a = c * w / (6.0 * s)
        for x in range(n):
            out_u[x] += a * o[x]
        for j in range(npg):
            out_p[j] += a * pt[j]
        if kap:
            kbar = wk[22]
            for x in range(kbar.size):
                kbar[x] += a * kdummy[x]


@njit(cache=False)
def _vjp_add(vj, v, Y, p, t, c, out_u, out_p, wk):
    """``out_u += c J(Y)^T v``; ``out_p += c J_p(Y)^T v`` (and ``wk[22] += c d<v,
    f(Y)>/dkappa`` when ``vj`` asks for the coefficient field's gradient)."""
    n = Y.size
    npg = vj[7]
    o = wk[14]
    pt = wk[19]
    kd = wk[20]
    for j in range(npg):
        pt[j] = 0.0
    kap = vj[12]
    if kap:
        for x in range(kd.size):
            kd[x] = 0.0
    vjp_apply(vj, v, Y, p, t, o, pt, kd, wk[15], wk[17], wk[18])
    for x in range(n):
        out_u[x] += c * o[x]
    for j in range(npg):
        out_p[j] += c * pt[j]
    if kap:
        kbar = wk[22]
        for x in range(kbar.size):
            kbar[x] += c * kd[x]


@njit(cache=False)
def ros_step_adjoint(rhs, jd, vj, tab, u, t, h, tf0, lam, pbar, wk):
    """Reverse one Rosenbrock step from ``(t, u)`` of size ``h``: ``lam`` (the adjoint of
    the step's output) becomes the adjoint of its input; ``pbar`` accumulates."""
    f, p, lin, plin, haslin, tmp = rhs
    autonomous = jd[10]
    kind = tab[0]
    GAMMA, A, Cm, C, D, B = tab[1], tab[2], tab[3], tab[4], tab[5], tab[6]
    n = u.size
    J, W, piv, f0, T = wk[0], wk[2], wk[3], wk[4], wk[5]
    K, R, Kb = wk[6], wk[7], wk[8]
    ytmp, fb, Tb, lam_in = wk[10], wk[11], wk[12], wk[16]
    _prepare(rhs, jd, tab, u, t, h, tf0, wk)
    for x in range(n):
        lam_in[x] = lam[x]
        Tb[x] = 0.0
    if kind == KIND_ROS23:
        gam = h * GAMMA
        build_w(W, J, 1.0, gam)
        lu_factor(W, piv)
        # forward: k1 = W^-1 (f0 + gam T); y1 = u + h/2 k1; z2 = W^-1 (f(y1) - k1);
        #          k2 = z2 + k1; u1 = u + h k2.   K[0] = k1, K[1] = z2, K[2] = y1
        k1 = K[0]
        z2 = K[1]
        y1 = K[2]
        for x in range(n):
            k1[x] = f0[x] + gam * T[x]
        lu_solve(W, piv, k1)
        for x in range(n):
            y1[x] = u[x] + 0.5 * h * k1[x]
        eval_rhs(f, p, lin, plin, haslin, tmp, z2, y1, t + 0.5 * h)
        for x in range(n):
            z2[x] = z2[x] - k1[x]
        lu_solve(W, piv, z2)
        # reverse
        r2 = R[1]
        r1 = R[0]
        for x in range(n):
            r2[x] = h * lam_in[x]          # zbar2 = kbar2 = h lam
        lu_solve_transpose(W, piv, r2)     # r2bar
        _jdir(vj, r2, u, z2, p, t, gam, lam, pbar, wk)
        # f1bar = r2bar -> y1bar
        for x in range(n):
            fb[x] = 0.0
        _vjp_add(vj, r2, y1, p, t + 0.5 * h, 1.0, fb, pbar, wk)
        for x in range(n):
            lam[x] += fb[x]
            # k1bar = kbar2 - r2bar + h/2 y1bar
            r1[x] = h * lam_in[x] - r2[x] + 0.5 * h * fb[x]
        lu_solve_transpose(W, piv, r1)     # r1bar
        _jdir(vj, r1, u, k1, p, t, gam, lam, pbar, wk)
        for x in range(n):
            Tb[x] = gam * r1[x]
        _vjp_add(vj, r1, u, p, tf0, 1.0, lam, pbar, wk)
    else:
        s = B.size
        build_w(W, J, 1.0 / (h * GAMMA), 1.0)
        lu_factor(W, piv)
        # stage increments exactly as the forward step
        for st in range(s):
            if st == 0:
                for x in range(n):
                    fb[x] = f0[x]
            else:
                for x in range(n):
                    acc = u[x]
                    for j in range(st):
                        acc += A[st, j] * K[j, x]
                    ytmp[x] = acc
                eval_rhs(f, p, lin, plin, haslin, tmp, fb, ytmp, t + C[st] * h)
            hd = h * D[st]
            for x in range(n):
                acc = fb[x] + hd * T[x]
                for j in range(st):
                    acc += (Cm[st, j] / h) * K[j, x]
                K[st, x] = acc
            lu_solve(W, piv, K[st])
        # reverse: Kb[i] = kbar_i
        for st in range(s):
            for x in range(n):
                Kb[st, x] = B[st] * lam_in[x]
        for st in range(s - 1, -1, -1):
            rb = Kb[st]
            lu_solve_transpose(W, piv, rb)          # rbar_i (in place of kbar_i)
            _jdir(vj, rb, u, K[st], p, t, 1.0, lam, pbar, wk)
            hd = h * D[st]
            for x in range(n):
                Tb[x] += hd * rb[x]
            for j in range(st):
                c = Cm[st, j] / h
                if c != 0.0:
                    for x in range(n):
                        Kb[j, x] += c * rb[x]
            if st == 0:
                _vjp_add(vj, rb, u, p, tf0, 1.0, lam, pbar, wk)
            else:
                for x in range(n):
                    acc = u[x]
                    for j in range(st):
                        acc += A[st, j] * K[j, x]
                    ytmp[x] = acc
                for x in range(n):
                    fb[x] = 0.0
                _vjp_add(vj, rb, ytmp, p, t + C[st] * h, 1.0, fb, pbar, wk)
                for x in range(n):
                    lam[x] += fb[x]
                for j in range(st):
                    a = A[st, j]
                    if a != 0.0:
                        for x in range(n):
                            Kb[j, x] += a * fb[x]
    if not autonomous:
        # T = (f(u, t + dtt) - f(u, tf0)) / dtt
        dtt = _DT_REL * max(abs(t), abs(h), 1e-3)
        for x in range(n):
            fb[x] = 0.0
        _vjp_add(vj, Tb, u, p, t + dtt, 1.0 / dtt, fb, pbar, wk)
        _vjp_add(vj, Tb, u, p, tf0, -1.0 / dtt, fb, pbar, wk)
        for x in range(n):
            lam[x] += fb[x]


@njit(cache=True)
def ros_reverse(rhs, jd, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after, lam,
                pbar, wk):
    """Reverse steps ``i1-1 .. i0`` with the state before step ``i`` in
    ``states[i - i0]``; ``save_after[i]`` the row of ``gsave`` of a loss term on the state
    after step ``i`` (or -1), added to ``lam`` before that step is reversed."""
    n = lam.size
    kind = tab[0]
    for i in range(i1 - 1, i0 - 1, -1):
        g = save_after[i]
        if g >= 0:
            for x in range(n):
                lam[x] += gsave[g, x]
        ros_step_adjoint(rhs, jd, vj, tab, states[i - i0], steps_t[i], steps_h[i],
                         _tf0(kind, steps_t, steps_h, i), lam, pbar, wk)


@njit(cache=True)
def ros_schedule(rhs, jd, vj, tab, u0, steps_t, steps_h, ops, C, gsave, save_after, lam, pbar,
                 wk):
    """Run a recorded checkpointing schedule in one compiled call: ``ops`` rows
    ``(0, i0, i1)`` advance, ``(1, i, _)`` reverse step ``i``, ``(2, i, _)`` take a snapshot,
    ``(3, i, _)`` restore snapshot ``i`` (dropping those above); at most ``C`` snapshots
    are held, the initial state among them (``C`` from
    ``jitsolve.adjoint.checkpoint.snapshot_slots``; two spare rows)."""
    n = u0.size
    snaps = np.empty((C + 2, n))
    keys = np.empty(C + 2, np.int64)
    top = -1
    cur = u0.copy()
    buf = np.empty((1, n))
    for q in range(ops.shape[0]):
        op = ops[q, 0]
        a = ops[q, 1]
        if op == 0:
            ros_advance(rhs, jd, tab, cur, steps_t, steps_h, a, ops[q, 2], buf, False, wk)
        elif op == 1:
            put_row(buf, 0, cur)
            ros_reverse(rhs, jd, vj, tab, buf, steps_t, steps_h, a, a + 1, gsave, save_after,
                        lam, pbar, wk)
        elif op == 2:
            top += 1
            keys[top] = a
            put_row(snaps, top, cur)
        else:
            while top > 0 and keys[top] > a:
                top -= 1
            get_row(cur, snaps, top)
