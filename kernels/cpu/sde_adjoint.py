"""Discrete adjoints of SDE solves (CPU, Numba): Euler-Maruyama (Itô), Euler-Heun
(Stratonovich), Milstein (with the user's Milstein term ``ggprime``) with fixed steps,
SRA1 and SRIW1 with fixed or recorded adaptive steps, with the Brownian increments
regenerated from the virtual Brownian tree, never stored.
Each method has an ``*_advance`` (redo steps with the forward's arithmetic, bit for
bit), an ``*_reverse`` (reverse steps from stored states) and an ``*_checkpointed``
(run a recorded binomial schedule in one compiled call) kernel.

One EM step of a fixed grid ``x_k`` (the tree's normalised time; ``x_k = k xstep``,
``x_N = xend``, 1 unless the tree spans past t1: ``solvers.sde.driver.schedule``)::

    u_{k+1} = u_k + h_k f(u_k, p, t_k) + g(u_k, p, t_k) o dW_k,
    dW_k = sqrt|S| (B(x_{k+1}) - B(x_k)),   S the tree's span,

with ``B`` the Philox-keyed virtual Brownian tree of :mod:`jitsolve.kernels.cpu.sde`
(``o`` is the componentwise product for diagonal noise; for scalar noise ``g dW_k[0]``).
``B(x)`` is a pure function of (seed, trajectory, x), so the reverse pass queries the
same tree at ``x_{k+1}`` and ``x_k`` and forms ``dW_k`` with the forward's arithmetic:
the increments are bit-identical to the forward solve's.  The step's adjoint is::

    lam_k = lam_{k+1} + J_f^T (h_k lam_{k+1}) + J_g^T (lam_{k+1} o dW_k),
    pbar += J_{f,p}^T (h_k lam_{k+1}) + J_{g,p}^T (lam_{k+1} o dW_k),

every product by complex step of the complex twins of ``f`` and ``g`` through
:func:`jitsolve.kernels.cpu.erk_adjoint.vjp_apply` (two VJP-source tuples, ``vjf`` and
``vjg``).  ``geo = (t0, S, xstep, xend)`` (``driver.geometry``); ``ip = (N, maxdepth, noise, m, strat)`` (``strat``
read by Milstein only).

Euler-Heun, Milstein, SRA1 and SRIW1 are reversed the same way (see their sections
below; the order-1.5 methods regenerate ``I_(1,0)`` from the tree with Lévy area).

Adaptive SRA1/SRIW1: :func:`sde_record_steps` runs the adaptive forward (the same step
control, rejections included, as :func:`jitsolve.kernels.cpu.sde.integrate_path`) and
records the accepted step endpoints ``xg = (x_0 = 0, x_1, ..., x_N = 1)``.  The
``sra_*``/``sri_*`` kernels take ``xg`` (after ``ip``): with ``N + 1`` entries the steps
are ``[xg[k], xg[k + 1]]``, queried on the Lévy-area tree at exactly those ``x`` with the
forward's ``maxdepth``, so every accepted step is reproduced bit for bit and reversed
with its size held fixed (the step-size controller is not differentiated); an empty
``xg`` means the fixed grid ``x_k = k xstep``.

References
----------
Kloeden, Platen (1992), sec. 9.1 (EM), 10.3 (Milstein), 11.1 (Heun); Rößler, *Runge-Kutta
methods for the strong approximation of solutions of stochastic differential equations*,
SIAM J. Numer. Anal. 48(3) (2010) 922-952 (SRI, SRA); Rößler,
*Runge-Kutta methods for Stratonovich stochastic differential equation systems with
commutative noise*, J. Comput. Appl. Math. 164 (2004) (stochastic Heun); Burrage,
Burrage, Tian, *Numerical methods for strong solutions of SDEs: an overview*, Proc. R.
Soc. A 460 (2004) (Heun for Stratonovich SDEs); Griewank, Walther, *Evaluating
Derivatives*, 2nd ed., SIAM (2008) (reverse mode, binomial checkpointing); Li, Wong,
Chen, Duvenaud, *Scalable gradients for stochastic differential equations* (2020) and
Kidger et al., *Efficient and accurate gradients for neural SDEs* (2021) (regenerating
noise from a Brownian tree in the backward pass); Giles, Glasserman, *Smoking adjoints*
(2006) (pathwise adjoints).
"""
import numpy as np
from numba import njit
from numba.extending import overload

from .erk_adjoint import vjp_apply
from .sde import (DIAGONAL, FULL, GENERAL, LEVELS, MAXITERS, SRI, SUCCESS, _geval, _gx,
                  _levy_alloc, _save, _step_heun, _step_sra, _step_sri, _tree_alloc,
                  control_step, levy_init, levy_query, propose_x, tree_init, tree_query)
from .stepcontrol import error_norm

__all__ = ["split_vjp_source", "split_sources", "em_grid_x", "em_tree", "em_advance", "em_reverse",
           "em_checkpointed",
           "sra_tree", "sra_advance", "sra_reverse", "sra_checkpointed",
           "sri_advance", "sri_reverse", "sri_checkpointed", "sde_record_steps",
           "heun_advance", "heun_reverse", "heun_checkpointed",
           "milstein_advance", "milstein_reverse", "milstein_checkpointed",
           "ADVANCE", "REVERSE", "TAKE", "RESTORE"]

#: opcodes of a recorded checkpointing schedule (rows ``(op, a, b)`` of ``actions``)
ADVANCE, REVERSE, TAKE, RESTORE = 0, 1, 2, 3


def split_vjp_source(vj):
    """``(fc, rest, user)`` of a VJP-source tuple: the kernels take the cfuncs apart from
    the arrays and scalars, so that Numba's dispatcher types ``rest`` on its fast path (a
    tuple holding a cfunc is typed in Python on every call, about 0.3 ms here).  ``user``
    is the source's tail ``vj[14:22]`` (the coefficient-field placeholder and the user's
    own derivatives, :mod:`.erk_adjoint`) when it has the user slots, else ``()``: only
    a drift given with its own ``vjp``/``jac``/``paramjac`` pays that typing."""
    return vj[0], vj[1:9] + vj[10:14], (vj[14:22] if len(vj) > 15 else ())


def split_sources(vjf, vjg):
    """``(fc, vjf_r, gc, vjg_r, uf)`` of the drift's and the noise's VJP sources
    (:func:`split_vjp_source`), ``uf = (f's user slots, g's user slots)``: the kernels'
    ``uf`` argument."""
    fc, vjf_r, uff = split_vjp_source(vjf)
    gc, vjg_r, ufg = split_vjp_source(vjg)
    return fc, vjf_r, gc, vjg_r, (uff, ufg)


def _vj(fc, r, linT, user):
    """The VJP source again: without the coefficient-field slot (no SDE gradient is taken
    wrt a grid operator's coefficients; :func:`.erk_adjoint.kappa_vjp` skips it) when
    ``user`` is ``()``, else with ``user`` as its tail (the user's derivatives come first,
    :func:`.erk_adjoint.user_vjp`)."""


@overload(_vj, jit_options={"cache": False})
def _vj_impl(fc, r, linT, user):
    if len(user.types) == 0:
        def impl(fc, r, linT, user):
            return (fc, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], linT, r[8], r[9], r[10],
                    r[11])
        return impl

    def impl(fc, r, linT, user):
        return (fc, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], linT, r[8], r[9], r[10],
                r[11]) + user
    return impl


@njit(cache=False)
def em_grid_x(k, N, xstep, xend):
    """Normalised time of grid point ``k`` exactly as the forward loop forms it."""
    if k >= N:
        return xend
    if k == 0:
        return 0.0
    return k * xstep


@njit(cache=False)
def _step_x(k, N, xstep, xend, xg):
    """Normalised time of step endpoint ``k``: the recorded endpoint ``xg[k]`` of an
    adaptive solve (:func:`sde_record_steps`), or the fixed grid's when ``xg`` is empty."""
    if xg.size > 0:
        return xg[k]
    return em_grid_x(k, N, xstep, xend)


@njit(cache=True)
def em_tree(m, seed, traj):
    """Brownian-tree state of one path (reused across calls: every value it returns is a
    pure function of (seed, trajectory, x), whatever was queried before)."""
    compid = np.empty(m, dtype=np.int64)
    for j in range(m):
        compid[j] = j
    tf, ti = _tree_alloc(compid)
    tree_init(seed, traj, m, tf, ti)
    return tf, ti


@njit(cache=False)
def _query(x, maxdepth, seed, traj, m, tf, ti, B):
    tree_query(x, maxdepth, seed, traj, m, tf, ti)
    for j in range(m):
        B[j] = tf[LEVELS + 1, j]


@njit(cache=False)
def vjp_noise_matrix(gcm, lam, dW, Y, p, t, eps, np_grad, out_u, out_p, gw):
    """VJP of the general-noise term ``u -> G(u, p, t) dW`` (G an n x m matrix):
    ``out_u = d(lam . G dW)/du``, ``out_p += d(lam . G dW)/dp``: :func:`vjp_noise_weighted`
    with the weights ``W = lam (x) dW``; ``gw`` the work of :func:`_noise_work`."""
    W = gw[3]
    for i in range(Y.size):
        for j in range(dW.size):
            W[i, j] = lam[i] * dW[j]
    vjp_noise_weighted(gcm, W, Y, p, t, eps, np_grad, out_u, out_p, gw[0], gw[1], gw[2])


@njit(cache=False)
def vjp_noise_weighted(gcm, W, Y, p, t, eps, np_grad, out_u, out_p, pc, cu, cG):
    """VJP of a general-noise matrix against weights: ``out_u = d(sum_ij W_ij G_ij(u))/du``,
    ``out_p += d(...)/dp``, by complex steps of the complex twin ``gcm`` of g (one per
    state and per parameter component, dense).  Work: ``pc`` (len p) and ``cu`` (n)
    complex, ``cG`` (n, m) complex.  EM and Euler-Heun weigh G by ``lam (x) dW``
    (:func:`vjp_noise_matrix`); SRA's ``G_s`` enters a step through several vectors
    (``G_s (beta1 dW + beta2 chi)`` and ``G_s chi`` in later stages).

    Reference: Squire & Trapp, SIAM Rev. 40 (1998) (complex step)."""
    n = Y.size
    m = W.shape[1]
    for j in range(p.size):
        pc[j] = p[j]
    for k in range(n):
        cu[k] = Y[k]
    for k in range(n):
        cu[k] = complex(Y[k], eps)
        gcm(cG, cu, pc, t)
        acc = 0.0
        for i in range(n):
            for j in range(m):
                acc += cG[i, j].imag * W[i, j]
        out_u[k] = acc / eps
        cu[k] = Y[k]
    for q in range(np_grad):
        pc[q] = complex(p[q], eps)
        gcm(cG, cu, pc, t)
        acc = 0.0
        for i in range(n):
            for j in range(m):
                acc += cG[i, j].imag * W[i, j]
        out_p[q] += acc / eps
        pc[q] = p[q]


@njit(cache=True)
def _advance(f, gv, gm, p, u, geo, ip, seed, traj, tf, ti, i0, i1, states, store, F0, G0, GM,
             Blo, Bhi, dW):
    t0, span, xstep, xend = geo[0], geo[1], geo[2], geo[3]
    N, maxdepth, noise, m = ip[0], ip[1], ip[2], ip[3]
    n = u.size
    sqT = np.sqrt(abs(span))
    if i1 > i0:
        _query(em_grid_x(i0, N, xstep, xend), maxdepth, seed, traj, m, tf, ti, Blo)
    for i in range(i0, i1):
        if store:
            for k in range(n):
                states[i - i0, k] = u[k]
        x = em_grid_x(i, N, xstep, xend)
        xt = em_grid_x(i + 1, N, xstep, xend)
        _query(xt, maxdepth, seed, traj, m, tf, ti, Bhi)
        for j in range(m):
            dW[j] = sqT * (Bhi[j] - Blo[j])
        t = t0 + span * x
        hs = span * (xt - x)
        f(F0, u, p, t)
        if noise == GENERAL:
            # the forward loop's arithmetic: u + h F + (G dW summed over j in order)
            gm(GM, u, p, t)
            for k in range(n):
                acc = 0.0
                for j in range(m):
                    acc += GM[k, j] * dW[j]
                u[k] = u[k] + hs * F0[k] + acc
        else:
            gv(G0, u, p, t)
            if noise == DIAGONAL:
                for k in range(n):
                    u[k] = u[k] + hs * F0[k] + G0[k] * dW[k]
            else:
                for k in range(n):
                    u[k] = u[k] + hs * F0[k] + G0[k] * dW[0]
        for j in range(m):
            Blo[j] = Bhi[j]


@njit(cache=True)
def em_advance(f, gv, gm, p, u, geo, ip, seed, traj, tf, ti, i0, i1, states, store):
    """Redo EM steps ``i0 .. i1-1`` from ``u`` (in place) with the forward's arithmetic
    and noise; with ``store`` the state before step ``i`` goes to ``states[i - i0]``.
    ``gv`` is g for diagonal/scalar noise, ``gm`` the matrix g of general noise."""
    n = u.size
    m = ip[3]
    _advance(f, gv, gm, p, u, geo, ip, seed, traj, tf, ti, i0, i1, states, store,
             np.zeros(n), np.zeros(n), np.zeros((n, m) if ip[2] == GENERAL else (1, 1)),
             np.zeros(m), np.zeros(m), np.zeros(m))


@njit(cache=True)
def _reverse(vjf, vjg, gcm, p, states, geo, ip, seed, traj, tf, ti, i0, i1, gsave, save_after,
             lam, pbar, rw, cw, bw, gw):
    t0, span, xstep, xend = geo[0], geo[1], geo[2], geo[3]
    N, maxdepth, noise, m = ip[0], ip[1], ip[2], ip[3]
    n = lam.size
    sqT = np.sqrt(abs(span))
    v1, v2, a, b, kdum, work = rw[0], rw[1], rw[2], rw[3], rw[4], rw[5]
    cu, cd = cw[0], cw[1]
    Blo, Bhi, dW = bw[0], bw[1], bw[2]
    if i1 > i0:
        _query(em_grid_x(i1, N, xstep, xend), maxdepth, seed, traj, m, tf, ti, Bhi)
    for i in range(i1 - 1, i0 - 1, -1):
        r = save_after[i]
        if r >= 0:
            for k in range(n):
                lam[k] += gsave[r, k]
        x = em_grid_x(i, N, xstep, xend)
        xt = em_grid_x(i + 1, N, xstep, xend)
        _query(x, maxdepth, seed, traj, m, tf, ti, Blo)
        for j in range(m):
            dW[j] = sqT * (Bhi[j] - Blo[j])
        t = t0 + span * x
        hs = span * (xt - x)
        u = states[i - i0]
        for k in range(n):
            v1[k] = hs * lam[k]
        vjp_apply(vjf, v1, u, p, t, a, pbar, kdum, work, cu, cd)
        if noise == GENERAL:
            vjp_noise_matrix(gcm, lam, dW, u, p, t, vjf[8], vjf[7], b, pbar, gw)
        else:
            for k in range(n):
                v2[k] = lam[k] * (dW[k] if noise == DIAGONAL else dW[0])
            vjp_apply(vjg, v2, u, p, t, b, pbar, kdum, work, cu, cd)
        for k in range(n):
            lam[k] += a[k] + b[k]
        for j in range(m):
            Bhi[j] = Blo[j]


@njit(cache=False)
def _noise_work(n, m, npar, general):
    """Work arrays of :func:`vjp_noise_matrix` (complex p, state and G; the real weights
    W), tiny unless general."""
    if general:
        return (np.zeros(npar, np.complex128), np.zeros(n, np.complex128),
                np.zeros((n, m), np.complex128), np.zeros((n, m)))
    return (np.zeros(0, np.complex128), np.zeros(1, np.complex128),
            np.zeros((1, 1), np.complex128), np.zeros((1, 1)))


@njit(cache=True)
def em_reverse(f, fc, gc, gcm, vjf_r, uf, vjg_r, p, states, geo, ip, seed, traj, tf, ti, i0, i1,
               gsave, save_after, lam, pbar):
    """Reverse EM steps ``i1-1 .. i0`` with the state before step ``i`` in
    ``states[i - i0]``; ``save_after[i]`` is the row of ``gsave`` of a loss term on the
    state after step ``i`` (or -1), added to ``lam`` before that step is reversed.
    ``lam`` becomes the adjoint of the state before step ``i0``; ``pbar`` accumulates.
    ``fc``/``gc`` are the complex twins of f and g, ``vjf_r``/``vjg_r`` the rest of their
    VJP sources and ``uf`` the user slots of f's and of g's (:func:`split_sources`);
    ``f`` (the real drift) fills the unused linear-part slot.  General noise (``ip[2] == GENERAL``):
    ``gcm`` is the complex twin of the matrix g, differentiated by :func:`vjp_noise_matrix`
    (``gc``/``vjg_r`` unused)."""
    n = lam.size
    vjf = _vj(fc, vjf_r, f, uf[0])
    vjg = _vj(gc, vjg_r, f, uf[1])
    _reverse(vjf, vjg, gcm, p, states, geo, ip, seed,
             traj, tf, ti, i0, i1, gsave, save_after, lam, pbar, np.zeros((6, n)),
             np.zeros((2, n), np.complex128), np.zeros((3, ip[3])),
             _noise_work(n, ip[3], p.size, ip[2] == GENERAL))


@njit(cache=True)
def em_checkpointed(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, p, u0, geo, ip, seed, traj, actions,
                    nslots, gsave, save_after, lam, pbar):
    """Run a recorded binomial checkpointing schedule in one compiled call: ``actions``
    rows ``(ADVANCE, i0, i1)``, ``(REVERSE, i, 0)``, ``(TAKE, slot, 0)``,
    ``(RESTORE, slot, 0)``; ``nslots`` state snapshots.  The same step code as the
    stored-states sweep runs, so the gradient is bit-for-bit the same."""
    n = u0.size
    m = ip[3]
    vjf = _vj(fc, vjf_r, f, uf[0])
    vjg = _vj(gc, vjg_r, f, uf[1])
    snaps = np.zeros((max(nslots, 1), n))
    cur = u0.copy()
    buf = np.zeros((1, n))
    rw = np.zeros((6, n))
    cw = np.zeros((2, n), np.complex128)
    bw = np.zeros((3, m))
    general = ip[2] == GENERAL
    GM = np.zeros((n, m) if general else (1, 1))
    gw = _noise_work(n, m, p.size, general)
    tf, ti = em_tree(m, seed, traj)
    for a in range(actions.shape[0]):
        op = actions[a, 0]
        if op == ADVANCE:
            _advance(f, gv, gm, p, cur, geo, ip, seed, traj, tf, ti, actions[a, 1],
                     actions[a, 2], buf, False, rw[0], rw[1], GM, bw[0], bw[1], bw[2])
        elif op == REVERSE:
            i = actions[a, 1]
            for k in range(n):
                buf[0, k] = cur[k]
            _reverse(vjf, vjg, gcm, p, buf, geo, ip, seed, traj, tf, ti, i, i + 1, gsave,
                     save_after, lam, pbar, rw, cw, bw, gw)
        elif op == TAKE:
            for k in range(n):
                snaps[actions[a, 1], k] = cur[k]
        else:
            for k in range(n):
                cur[k] = snaps[actions[a, 1], k]


# ------------------------------------------------------------------ SRA1 (additive noise)
# Steps of Rößler's SRA (tableau layout of kernels.cpu.sde: c0 c1 alpha beta1 beta2
# beta3 beta4 | A0 A1 B0 B1), on the tree with Lévy area.  One step, with
# chi = I_(1,0)/h regenerated from the same tree (B and its running integral I)::
#
#     H_s = u + h sum_{r<s} A0[s,r] F_r + sum_{r<s} B0[s,r] G_r o chi,
#     F_s = f(H_s, t + c0_s h),  G_s = g(H_s, t + c1_s h),
#     u' = u + h sum_s alpha_s F_s + sum_s (beta1_s G_s o dW + beta2_s G_s o chi),
#
# reversed stage by stage like an explicit RK step (g is differentiated at the stages too,
# so the adjoint is exact for the computed scheme even when g depends on u):
#
#     Fbar_s = h alpha_s lam' + h sum_{q>s} A0[q,s] Hbar_q,
#     Gbar_s = (beta1_s dW + beta2_s chi) o lam' + chi o sum_{q>s} B0[q,s] Hbar_q,
#     Hbar_s = J_f(H_s)^T Fbar_s + J_g(H_s)^T Gbar_s,    lam = lam' + sum_s Hbar_s.
SQRT3 = np.sqrt(3.0)


@njit(cache=True)
def sra_tree(m, seed, traj):
    """Lévy-area tree state of one path (the tree SRIW1/SRA1 draw from)."""
    compid = np.empty(m, dtype=np.int64)
    for j in range(m):
        compid[j] = j
    tf, ti = _levy_alloc(compid)
    levy_init(seed, traj, m, tf, ti)
    return tf, ti


@njit(cache=False)
def _lquery(x, maxdepth, seed, traj, m, tf, ti, B):
    levy_query(x, maxdepth, seed, traj, m, tf, ti)
    for j in range(2 * m):
        B[j] = tf[LEVELS + 1, j]


@njit(cache=False)
def _sra_increments(x, xt, sqT, m, Blo, Bhi, dW, chi):
    """dW and chi = I_(1,0)/h of the step, with the forward loop's arithmetic."""
    dxs = xt - x
    for j in range(m):
        dW[j] = sqT * (Bhi[j] - Blo[j])
    for j in range(m):
        c2 = sqT * (Bhi[m + j] - Blo[m + j] - dxs * Blo[j]) / dxs
        dZ = SQRT3 * (2.0 * c2 - dW[j])
        chi[j] = 0.5 * (dW[j] + dZ / SQRT3)


@njit(cache=False)
def _sra_stages(f, gv, gm, tab, noise, u, p, t, hs, chi, H, F, G, gk):
    """The stages of one SRA step with the forward's arithmetic
    (:func:`jitsolve.kernels.cpu.sde._step_sra`): ``H``, ``F``, and ``G`` (diagonal or
    scalar noise) or the matrices ``gk[st]`` (general noise)."""
    s = tab.shape[0]
    n = u.size
    oA0 = 7
    oB0 = 7 + 2 * s
    for st in range(s):
        for i in range(n):
            a0 = 0.0
            b0 = 0.0
            for r in range(st):
                a0 += tab[st, oA0 + r] * F[r, i]
                cb = tab[st, oB0 + r]
                if cb != 0.0:
                    b0 += cb * _gx(noise, G[r], gk[r], chi, i)
            H[st, i] = u[i] + hs * a0 + b0
        f(F[st], H[st], p, t + tab[st, 0] * hs)
        _geval(noise, gv, gm, G[st], gk[st], H[st], p, t + tab[st, 1] * hs)


@njit(cache=False)
def _sra_advance(f, gv, gm, tab, p, u, geo, ip, xg, seed, traj, tf, ti, i0, i1, states, store, H,
                 F, G, gk, Blo, Bhi, dW, chi):
    t0, span, xstep, xend = geo[0], geo[1], geo[2], geo[3]
    N, maxdepth, noise, m = ip[0], ip[1], ip[2], ip[3]
    n = u.size
    s = tab.shape[0]
    sqT = np.sqrt(abs(span))
    if i1 > i0:
        _lquery(_step_x(i0, N, xstep, xend, xg), maxdepth, seed, traj, m, tf, ti, Blo)
    for i in range(i0, i1):
        if store:
            for k in range(n):
                states[i - i0, k] = u[k]
        x = _step_x(i, N, xstep, xend, xg)
        xt = _step_x(i + 1, N, xstep, xend, xg)
        _lquery(xt, maxdepth, seed, traj, m, tf, ti, Bhi)
        _sra_increments(x, xt, sqT, m, Blo, Bhi, dW, chi)
        t = t0 + span * x
        hs = span * (xt - x)
        _sra_stages(f, gv, gm, tab, noise, u, p, t, hs, chi, H, F, G, gk)
        for k in range(n):
            a = 0.0
            b = 0.0
            e2 = 0.0
            for st in range(s):
                a += tab[st, 2] * F[st, k]
                if tab[st, 3] != 0.0:
                    b += tab[st, 3] * _gx(noise, G[st], gk[st], dW, k)
                if tab[st, 4] != 0.0:
                    e2 += tab[st, 4] * _gx(noise, G[st], gk[st], chi, k)
            u[k] = u[k] + hs * a + b + e2
        for j in range(2 * m):
            Blo[j] = Bhi[j]


@njit(cache=False)
def _sra_gk(s, n, m, general):
    """The stage matrices of g for general noise (``(s, n, m)``), else a placeholder."""
    return np.zeros((s, n, m) if general else (s, 1, 1))


@njit(cache=True)
def sra_advance(f, gv, gm, tab, p, u, geo, ip, xg, seed, traj, tf, ti, i0, i1, states, store):
    """Redo SRA steps ``i0 .. i1-1`` from ``u`` (in place), as :func:`em_advance`; the
    steps are ``[xg[k], xg[k + 1]]`` (recorded adaptive steps, :func:`sde_record_steps`)
    or, for an empty ``xg``, the fixed grid of ``geo``; ``gm`` is the matrix g of general
    noise."""
    n = u.size
    m = ip[3]
    s = tab.shape[0]
    _sra_advance(f, gv, gm, tab, p, u, geo, ip, xg, seed, traj, tf, ti, i0, i1, states, store,
                 np.zeros((s, n)), np.zeros((s, n)), np.zeros((s, n)),
                 _sra_gk(s, n, m, ip[2] == GENERAL), np.zeros(2 * m), np.zeros(2 * m),
                 np.zeros(m), np.zeros(m))


@njit(cache=False)
def _sra_reverse(f, gv, gm, vjf, vjg, gcm, tab, p, states, geo, ip, xg, seed, traj, tf, ti, i0, i1,
                 gsave, save_after, lam, pbar, H, F, G, gk, Hb, rw, cw, gw, Blo, Bhi, dW, chi):
    t0, span, xstep, xend = geo[0], geo[1], geo[2], geo[3]
    N, maxdepth, noise, m = ip[0], ip[1], ip[2], ip[3]
    general = noise == GENERAL
    n = lam.size
    s = tab.shape[0]
    sqT = np.sqrt(abs(span))
    Fb, Gb, a, b, kdum, work = rw[0], rw[1], rw[2], rw[3], rw[4], rw[5]
    cu, cd = cw[0], cw[1]
    oA0 = 7
    oB0 = 7 + 2 * s
    if i1 > i0:
        _lquery(_step_x(i1, N, xstep, xend, xg), maxdepth, seed, traj, m, tf, ti, Bhi)
    for i in range(i1 - 1, i0 - 1, -1):
        r = save_after[i]
        if r >= 0:
            for k in range(n):
                lam[k] += gsave[r, k]
        x = _step_x(i, N, xstep, xend, xg)
        xt = _step_x(i + 1, N, xstep, xend, xg)
        _lquery(x, maxdepth, seed, traj, m, tf, ti, Blo)
        _sra_increments(x, xt, sqT, m, Blo, Bhi, dW, chi)
        t = t0 + span * x
        hs = span * (xt - x)
        u = states[i - i0]
        _sra_stages(f, gv, gm, tab, noise, u, p, t, hs, chi, H, F, G, gk)
        for st in range(s - 1, -1, -1):
            for k in range(n):
                wd = dW[k] if noise == DIAGONAL else dW[0]
                wc = chi[k] if noise == DIAGONAL else chi[0]
                fb = tab[st, 2] * lam[k]
                gb = 0.0 if general else (tab[st, 3] * wd + tab[st, 4] * wc) * lam[k]
                for q in range(st + 1, s):
                    fb += tab[q, oA0 + st] * Hb[q, k]
                    # general noise: Gb holds sum_q B0[q,s] Hbar_q, contracted with chi below
                    gb += tab[q, oB0 + st] * Hb[q, k] * (1.0 if general else wc)
                Fb[k] = hs * fb
                Gb[k] = gb
            vjp_apply(vjf, Fb, H[st], p, t + tab[st, 0] * hs, a, pbar, kdum, work, cu, cd)
            if general:
                # G_s enters as G_s (beta1 dW + beta2 chi) and, in later stages, G_s chi
                W = gw[3]
                for k in range(n):
                    for j in range(m):
                        W[k, j] = (lam[k] * (tab[st, 3] * dW[j] + tab[st, 4] * chi[j])
                                   + Gb[k] * chi[j])
                vjp_noise_weighted(gcm, W, H[st], p, t + tab[st, 1] * hs, vjf[8], vjf[7], b,
                                   pbar, gw[0], gw[1], gw[2])
            else:
                vjp_apply(vjg, Gb, H[st], p, t + tab[st, 1] * hs, b, pbar, kdum, work, cu, cd)
            for k in range(n):
                Hb[st, k] = a[k] + b[k]
        for st in range(s):
            for k in range(n):
                lam[k] += Hb[st, k]
        for j in range(2 * m):
            Bhi[j] = Blo[j]


@njit(cache=True)
def sra_reverse(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, tab, p, states, geo, ip, xg, seed, traj,
                tf, ti, i0, i1, gsave, save_after, lam, pbar):
    """Reverse SRA steps ``i1-1 .. i0``, as :func:`em_reverse` (stages recomputed; steps
    from ``xg`` as in :func:`sra_advance`, their sizes held fixed; general noise: ``gm``
    and its complex twin ``gcm`` through :func:`vjp_noise_weighted`)."""
    n = lam.size
    m = ip[3]
    s = tab.shape[0]
    general = ip[2] == GENERAL
    vjf = _vj(fc, vjf_r, f, uf[0])
    vjg = _vj(gc, vjg_r, f, uf[1])
    _sra_reverse(f, gv, gm, vjf, vjg, gcm, tab, p, states, geo,
                 ip, xg, seed, traj, tf, ti, i0, i1, gsave, save_after, lam, pbar,
                 np.zeros((s, n)), np.zeros((s, n)), np.zeros((s, n)), _sra_gk(s, n, m, general),
                 np.zeros((s, n)), np.zeros((6, n)), np.zeros((2, n), np.complex128),
                 _noise_work(n, m, p.size, general), np.zeros(2 * m), np.zeros(2 * m),
                 np.zeros(m), np.zeros(m))


@njit(cache=True)
def sra_checkpointed(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, tab, p, u0, geo, ip, xg, seed, traj,
                     actions, nslots, gsave, save_after, lam, pbar):
    """:func:`em_checkpointed` for SRA steps (``xg`` as in :func:`sra_advance`)."""
    n = u0.size
    m = ip[3]
    s = tab.shape[0]
    general = ip[2] == GENERAL
    gk = _sra_gk(s, n, m, general)
    gw = _noise_work(n, m, p.size, general)
    vjf = _vj(fc, vjf_r, f, uf[0])
    vjg = _vj(gc, vjg_r, f, uf[1])
    snaps = np.zeros((max(nslots, 1), n))
    cur = u0.copy()
    buf = np.zeros((1, n))
    H = np.zeros((s, n))
    F = np.zeros((s, n))
    G = np.zeros((s, n))
    Hb = np.zeros((s, n))
    rw = np.zeros((6, n))
    cw = np.zeros((2, n), np.complex128)
    Blo = np.zeros(2 * m)
    Bhi = np.zeros(2 * m)
    dW = np.zeros(m)
    chi = np.zeros(m)
    tf, ti = sra_tree(m, seed, traj)
    for a in range(actions.shape[0]):
        op = actions[a, 0]
        if op == ADVANCE:
            _sra_advance(f, gv, gm, tab, p, cur, geo, ip, xg, seed, traj, tf, ti, actions[a, 1],
                         actions[a, 2], buf, False, H, F, G, gk, Blo, Bhi, dW, chi)
        elif op == REVERSE:
            i = actions[a, 1]
            for k in range(n):
                buf[0, k] = cur[k]
            _sra_reverse(f, gv, gm, vjf, vjg, gcm, tab, p, buf, geo, ip, xg, seed, traj, tf, ti, i,
                         i + 1, gsave, save_after, lam, pbar, H, F, G, gk, Hb, rw, cw, gw, Blo,
                         Bhi, dW, chi)
        elif op == TAKE:
            for k in range(n):
                snaps[actions[a, 1], k] = cur[k]
        else:
            for k in range(n):
                cur[k] = snaps[actions[a, 1], k]


# ------------------------------------------------------- SRIW1 (Itô, diagonal/scalar noise)
# Steps of Rößler's SRI (SRIW1 tableau, layout as above).  One step of
# kernels.cpu.sde._step_sri, with w = dW_i (diagonal) or dW_0 (scalar), sq = sqrt|h| and
# the iterated-integral factors it forms from w and the same tree's I_(1,0)::
#
#     c1 = I_(1,1)/sqrt|h| = (w^2 - |h|)/(2 sq),   c2 = I_(1,0)/h = (w + dZ/sqrt 3)/2,
#     c3 = I_(1,1,1)/|h| = (w^3 - 3 w |h|)/(6 |h|),
#     H0_s = u + h sum_{r<s} A0[s,r] F_r + c2 sum_{r<s} B0[s,r] G_r,
#     H1_s = u + h sum_{r<s} A1[s,r] F_r + sq sum_{r<s} B1[s,r] G_r,
#     F_s = f(H0_s, t + c0_s h),  G_s = g(H1_s, t + c1_s h),
#     u' = u + h sum_s alpha_s F_s + sum_s (beta1_s w + beta2_s c1 + beta3_s c2 + beta4_s c3) G_s,
#
# (products componentwise; the error estimate E1 is not part of u').  The forward's own
# step function recomputes the stages here (advance and reverse call _step_sri itself,
# so the recomputed states are the forward's bit for bit, and the stages the reverse
# differentiates are the ones the forward formed).  Reversed stage by stage like an
# explicit RK step (Griewank & Walther 2008, ch. 3), lam' the adjoint of u':
#
#     Fbar_s = h (alpha_s lam' + sum_{q>s} (A0[q,s] H0bar_q + A1[q,s] H1bar_q)),
#     Gbar_s = (beta1_s w + beta2_s c1 + beta3_s c2 + beta4_s c3) lam'
#              + sum_{q>s} (c2 B0[q,s] H0bar_q + sq B1[q,s] H1bar_q),
#     H0bar_s = J_f(H0_s)^T Fbar_s,   H1bar_s = J_g(H1_s)^T Gbar_s,
#     lam = lam' + sum_s (H0bar_s + H1bar_s),
#
# with the J_p^T products accumulated into pbar.  The Brownian increment and I_(1,0) are
# regenerated from the Lévy-area tree (:func:`sra_tree`), never stored.  A stage whose
# Fbar (or Gbar) is zero by the tableau's structure (SRIW1: f at stage 4) skips its VJP.


@njit(cache=False)
def _sri_increments(x, xt, sqT, m, Blo, Bhi, dW, dZ):
    """dW and dZ = sqrt(3) (2 I_(1,0)/h - dW) of the step, as the forward loop forms them."""
    dxs = xt - x
    for j in range(m):
        dW[j] = sqT * (Bhi[j] - Blo[j])
    for j in range(m):
        c2 = sqT * (Bhi[m + j] - Blo[m + j] - dxs * Blo[j]) / dxs
        dZ[j] = SQRT3 * (2.0 * c2 - dW[j])


@njit(cache=False)
def _sri_advance(f, gv, tab, p, u, geo, ip, xg, seed, traj, tf, ti, i0, i1, states, store, wk, chi,
                 unew, err, Blo, Bhi, dW, dZ):
    t0, span, xstep, xend = geo[0], geo[1], geo[2], geo[3]
    N, maxdepth, noise, m = ip[0], ip[1], ip[2], ip[3]
    n = u.size
    sqT = np.sqrt(abs(span))
    if i1 > i0:
        _lquery(_step_x(i0, N, xstep, xend, xg), maxdepth, seed, traj, m, tf, ti, Blo)
    for i in range(i0, i1):
        if store:
            for k in range(n):
                states[i - i0, k] = u[k]
        x = _step_x(i, N, xstep, xend, xg)
        xt = _step_x(i + 1, N, xstep, xend, xg)
        _lquery(xt, maxdepth, seed, traj, m, tf, ti, Bhi)
        _sri_increments(x, xt, sqT, m, Blo, Bhi, dW, dZ)
        t = t0 + span * x
        hs = span * (xt - x)
        _step_sri(f, gv, tab, 0, 0.0, noise, u, p, t, hs, dW, dZ, unew, err, wk, chi)
        for k in range(n):
            u[k] = unew[k]
        for j in range(2 * m):
            Blo[j] = Bhi[j]


@njit(cache=True)
def sri_advance(f, gv, tab, p, u, geo, ip, xg, seed, traj, tf, ti, i0, i1, states, store):
    """Redo SRIW1 steps ``i0 .. i1-1`` from ``u`` (in place) with the forward's step
    function and noise (the Lévy-area tree of :func:`sra_tree`), as :func:`em_advance`;
    the steps are ``[xg[k], xg[k + 1]]`` (recorded adaptive steps,
    :func:`sde_record_steps`) or, for an empty ``xg``, the fixed grid of ``geo``.

    References
    ----------
    Rößler, SIAM J. Numer. Anal. 48(3) (2010) 922-952 (the SRI step)."""
    n = u.size
    m = ip[3]
    s = tab.shape[0]
    _sri_advance(f, gv, tab, p, u, geo, ip, xg, seed, traj, tf, ti, i0, i1, states, store,
                 np.zeros((4 * s + 2, n)), np.zeros((3, m)), np.zeros(n), np.zeros(n),
                 np.zeros(2 * m), np.zeros(2 * m), np.zeros(m), np.zeros(m))


@njit(cache=False)
def _sri_reverse(f, gv, vjf, vjg, tab, p, states, geo, ip, xg, seed, traj, tf, ti, i0, i1, gsave,
                 save_after, lam, pbar, wk, chi, unew, err, Hb, rw, cw, Blo, Bhi, dW, dZ):
    t0, span, xstep, xend = geo[0], geo[1], geo[2], geo[3]
    N, maxdepth, noise, m = ip[0], ip[1], ip[2], ip[3]
    n = lam.size
    s = tab.shape[0]
    sqT = np.sqrt(abs(span))
    Fb, Gb, a, b, kdum, work = rw[0], rw[1], rw[2], rw[3], rw[4], rw[5]
    cu, cd = cw[0], cw[1]
    oA0 = 7
    oA1 = 7 + s
    oB0 = 7 + 2 * s
    oB1 = 7 + 3 * s
    if i1 > i0:
        _lquery(_step_x(i1, N, xstep, xend, xg), maxdepth, seed, traj, m, tf, ti, Bhi)
    for i in range(i1 - 1, i0 - 1, -1):
        r = save_after[i]
        if r >= 0:
            for k in range(n):
                lam[k] += gsave[r, k]
        x = _step_x(i, N, xstep, xend, xg)
        xt = _step_x(i + 1, N, xstep, xend, xg)
        _lquery(x, maxdepth, seed, traj, m, tf, ti, Blo)
        _sri_increments(x, xt, sqT, m, Blo, Bhi, dW, dZ)
        t = t0 + span * x
        hs = span * (xt - x)
        sq = np.sqrt(abs(hs))
        u = states[i - i0]
        # the forward's step: H0_s in wk[st], H1_s in wk[s + st], chi = (c1, c2, c3)
        _step_sri(f, gv, tab, 0, 0.0, noise, u, p, t, hs, dW, dZ, unew, err, wk, chi)
        for st in range(s - 1, -1, -1):
            fz = tab[st, 2] == 0.0
            gz = (tab[st, 3] == 0.0 and tab[st, 4] == 0.0 and tab[st, 5] == 0.0
                  and tab[st, 6] == 0.0)
            for q in range(st + 1, s):
                if tab[q, oA0 + st] != 0.0 or tab[q, oA1 + st] != 0.0:
                    fz = False
                if tab[q, oB0 + st] != 0.0 or tab[q, oB1 + st] != 0.0:
                    gz = False
            for k in range(n):
                jj = k if noise == DIAGONAL else 0
                w = dW[jj]
                c2 = chi[1, jj]
                fb = tab[st, 2] * lam[k]
                gb = (tab[st, 3] * w + tab[st, 4] * chi[0, jj] + tab[st, 5] * c2
                      + tab[st, 6] * chi[2, jj]) * lam[k]
                for q in range(st + 1, s):
                    fb += tab[q, oA0 + st] * Hb[q, k] + tab[q, oA1 + st] * Hb[s + q, k]
                    gb += c2 * tab[q, oB0 + st] * Hb[q, k] + sq * tab[q, oB1 + st] * Hb[s + q, k]
                Fb[k] = hs * fb
                Gb[k] = gb
            if fz:
                for k in range(n):
                    Hb[st, k] = 0.0
            else:
                vjp_apply(vjf, Fb, wk[st], p, t + tab[st, 0] * hs, a, pbar, kdum, work, cu, cd)
                for k in range(n):
                    Hb[st, k] = a[k]
            if gz:
                for k in range(n):
                    Hb[s + st, k] = 0.0
            else:
                vjp_apply(vjg, Gb, wk[s + st], p, t + tab[st, 1] * hs, b, pbar, kdum, work, cu,
                          cd)
                for k in range(n):
                    Hb[s + st, k] = b[k]
        for st in range(s):
            for k in range(n):
                lam[k] += Hb[st, k] + Hb[s + st, k]
        for j in range(2 * m):
            Bhi[j] = Blo[j]


@njit(cache=True)
def sri_reverse(f, gv, fc, gc, vjf_r, uf, vjg_r, tab, p, states, geo, ip, xg, seed, traj, tf, ti,
                i0, i1, gsave, save_after, lam, pbar):
    """Reverse SRIW1 steps ``i1-1 .. i0``, as :func:`em_reverse` (each step's stages
    recomputed by the forward's step function from the stored state before it; steps
    from ``xg`` as in :func:`sri_advance`, their sizes held fixed).

    References
    ----------
    Rößler, SIAM J. Numer. Anal. 48(3) (2010) 922-952; Griewank, Walther, *Evaluating
    Derivatives*, 2nd ed., SIAM (2008)."""
    n = lam.size
    m = ip[3]
    s = tab.shape[0]
    vjf = _vj(fc, vjf_r, f, uf[0])
    vjg = _vj(gc, vjg_r, f, uf[1])
    _sri_reverse(f, gv, vjf, vjg, tab, p, states, geo, ip, xg,
                 seed, traj, tf, ti, i0, i1, gsave, save_after, lam, pbar, np.zeros((4 * s + 2, n)),
                 np.zeros((3, m)), np.zeros(n), np.zeros(n), np.zeros((2 * s, n)),
                 np.zeros((6, n)), np.zeros((2, n), np.complex128), np.zeros(2 * m),
                 np.zeros(2 * m), np.zeros(m), np.zeros(m))


@njit(cache=True)
def sri_checkpointed(f, gv, fc, gc, vjf_r, uf, vjg_r, tab, p, u0, geo, ip, xg, seed, traj, actions,
                     nslots, gsave, save_after, lam, pbar):
    """:func:`em_checkpointed` for SRIW1 steps (``xg`` as in :func:`sri_advance`; the
    same step code as :func:`sri_advance` / :func:`sri_reverse`, so the gradient is
    bit-for-bit that of the stored-states sweep).

    References
    ----------
    Griewank, Walther, ACM TOMS 26 (2000) (Revolve); Rößler, SIAM J. Numer. Anal. 48(3)
    (2010)."""
    n = u0.size
    m = ip[3]
    s = tab.shape[0]
    vjf = _vj(fc, vjf_r, f, uf[0])
    vjg = _vj(gc, vjg_r, f, uf[1])
    snaps = np.zeros((max(nslots, 1), n))
    cur = u0.copy()
    buf = np.zeros((1, n))
    wk = np.zeros((4 * s + 2, n))
    chi = np.zeros((3, m))
    unew = np.zeros(n)
    err = np.zeros(n)
    Hb = np.zeros((2 * s, n))
    rw = np.zeros((6, n))
    cw = np.zeros((2, n), np.complex128)
    Blo = np.zeros(2 * m)
    Bhi = np.zeros(2 * m)
    dW = np.zeros(m)
    dZ = np.zeros(m)
    tf, ti = sra_tree(m, seed, traj)
    for a in range(actions.shape[0]):
        op = actions[a, 0]
        if op == ADVANCE:
            _sri_advance(f, gv, tab, p, cur, geo, ip, xg, seed, traj, tf, ti, actions[a, 1],
                         actions[a, 2], buf, False, wk, chi, unew, err, Blo, Bhi, dW, dZ)
        elif op == REVERSE:
            i = actions[a, 1]
            for k in range(n):
                buf[0, k] = cur[k]
            _sri_reverse(f, gv, vjf, vjg, tab, p, buf, geo, ip, xg, seed, traj, tf, ti, i, i + 1,
                         gsave, save_after, lam, pbar, wk, chi, unew, err, Hb, rw, cw, Blo, Bhi,
                         dW, dZ)
        elif op == TAKE:
            for k in range(n):
                snaps[actions[a, 1], k] = cur[k]
        else:
            for k in range(n):
                cur[k] = snaps[actions[a, 1], k]


# --------------------------------------------------- adaptive SRA1/SRIW1: the recorded steps
# The adaptive forward of kernels.cpu.sde.integrate_path for the order-1.5 methods (its
# proposal rounded down onto dyadic times and its accept/reject control through the same
# helpers, propose_x and control_step; clamping to the save times), recording what it accepts: the
# step endpoints x_k (and, with ``store``, the states).  A rejected trial queries the
# Lévy-area tree at its own end point, whose values are pure functions of the keys, so
# the accepted steps are the forward's and ``*_advance`` over ``xg`` redoes them bit for
# bit.


@njit(cache=True)
def sde_record_steps(f, gv, gm, tab, u0, p, atol, rtol, xs, fpar, ipar, seed, traj, xg, states,
                     store, out_t, out_u, stats):
    """Run the adaptive SRIW1 (``ipar[0] == SRI``) or SRA1 forward of
    :func:`jitsolve.kernels.cpu.sde.integrate_path` (packed ``fpar``/``ipar`` as there,
    save times ``xs`` that the steps are clamped to) and record the accepted steps.

    Writes the step endpoints ``xg[0 .. N]`` (``xg[0] = 0``, ``xg[N] = 1``), with
    ``store`` the state at each endpoint into ``states[0 .. N]``, the states at ``xs``
    into ``out_t``/``out_u`` (as the forward saves them) and ``stats = [nsaved, retcode,
    nf, ng, naccept = N, nreject]``; retcode ``FULL`` when ``xg`` (or ``states``) is too
    short.

    References
    ----------
    Rößler, SIAM J. Numer. Anal. 48(3) (2010) 922-952 (SRI, SRA); Rackauckas, Nie,
    DCDS-B 22 (2017) (the error estimate and rejection on one Brownian path)."""
    n = u0.size
    t0 = fpar[0]
    t1 = fpar[1]
    delta = fpar[10]
    method = ipar[0]
    noise = ipar[1]
    m = ipar[2]
    nerr = ipar[3]
    maxiters = ipar[5]
    maxdepth = ipar[7]
    span = t1 - t0
    T = abs(span)
    sqT = np.sqrt(T)
    s = tab.shape[0]
    nsave = xs.size
    cap = xg.size
    tf, ti = sra_tree(m, seed, traj)
    Bcur = np.zeros(2 * m)
    Bnew = np.zeros(2 * m)
    dW = np.zeros(m)
    dZ = np.zeros(m)
    wk = np.zeros((4 * s + 2, n))
    gk = np.zeros((s + 2, n, m) if noise == GENERAL else (s + 2, 1, 1))
    chi = np.zeros((3, m))
    u = u0.copy()
    unew = np.zeros(n)
    err = np.zeros(n)
    ow = np.zeros((1, 1))
    nsaved = 0
    ks = 0
    rc = SUCCESS
    nf = 0
    nacc = 0
    nrej = 0
    xg[0] = 0.0
    if store:
        for i in range(n):
            states[0, i] = u[i]
    while ks < nsave and xs[ks] <= 0.0:
        _save(nsaved, 0.0, t0, span, u, Bcur, m, sqT, out_t, out_u, ow, False)
        nsaved += 1
        ks += 1
    x = 0.0
    h = fpar[2]
    errprev = 1.0
    while x < 1.0:
        if nacc + nrej >= maxiters:
            rc = MAXITERS
            break
        if nacc + 1 >= cap or (store and nacc + 1 >= states.shape[0]):
            rc = FULL
            break
        xt = propose_x(x, h, T, maxdepth)
        clamped = False
        if ks < nsave and xs[ks] < xt:
            xt = xs[ks]
            clamped = True
        _lquery(xt, maxdepth, seed, traj, m, tf, ti, Bnew)
        _sri_increments(x, xt, sqT, m, Bcur, Bnew, dW, dZ)
        t = t0 + span * x
        hs = span * (xt - x)
        if method == SRI:
            nf += _step_sri(f, gv, tab, nerr, delta, noise, u, p, t, hs, dW, dZ, unew, err,
                            wk, chi)
        else:
            nf += _step_sra(f, gv, gm, tab, delta, noise, u, p, t, hs, dW, dZ, unew, err,
                            wk, gk, chi)
        finite = True
        for i in range(n):
            if not np.isfinite(unew[i]):
                finite = False
                break
        en = error_norm(err, u, unew, atol, rtol) if finite else np.inf
        acc, h, errprev, rc = control_step(en, finite, hs, h, errprev, clamped, fpar)
        if not acc:
            nrej += 1
            if rc != SUCCESS:
                break
            continue
        nacc += 1
        for i in range(n):
            u[i] = unew[i]
        for j in range(2 * m):
            Bcur[j] = Bnew[j]
        x = xt
        xg[nacc] = x
        if store:
            for i in range(n):
                states[nacc, i] = u[i]
        while ks < nsave and xs[ks] <= x:
            _save(nsaved, x, t0, span, u, Bcur, m, sqT, out_t, out_u, ow, False)
            nsaved += 1
            ks += 1
        if rc != SUCCESS:       # an accepted step below dtmin (control_step)
            if x < 1.0:
                break
            rc = SUCCESS
    stats[0] = nsaved
    stats[1] = rc
    stats[2] = nf
    stats[3] = nf
    stats[4] = nacc
    stats[5] = nrej


# ------------------------------------------------------------ Euler-Heun (Stratonovich)
# One fixed step of kernels.cpu.sde._step_heun, with w = dW (diagonal) or dW[0] (scalar):
#
#     ub = u + h F0 + G0 o w,           F0 = f(u, t),  G0 = g(u, t),
#     u' = u + h/2 (F0 + F1) + (G0 o w + G1 o w)/2,   F1 = f(ub, t + h),  G1 = g(ub, t + h),
#
# transposed (Griewank & Walther 2008, ch. 3-4), with lam' the adjoint of u':
#
#     ubbar = J_f(ub)^T (h/2 lam') + J_g(ub)^T (w/2 o lam'),
#     lam = lam' + ubbar + J_f(u)^T (h (lam'/2 + ubbar)) + J_g(u)^T (w o (lam'/2 + ubbar)),
#
# and the same products with J_p accumulate into pbar.  The step is recomputed from u
# (two evaluations of f and g are needed for ub, four VJPs per step).
@njit(cache=False)
def _heun_predict(f, gv, gm, noise, u, p, t, hs, dW, F0, G0, GM0, ub):
    """F0 = f(u), G0 = g(u) (general noise: the matrix GM0) and the predictor ``ub`` with
    the forward's arithmetic (:func:`jitsolve.kernels.cpu.sde._step_heun`)."""
    n = u.size
    f(F0, u, p, t)
    _geval(noise, gv, gm, G0, GM0, u, p, t)
    for i in range(n):
        ub[i] = u[i] + hs * F0[i] + _gx(noise, G0, GM0, dW, i)


@njit(cache=False)
def _heun_advance(f, gv, gm, p, u, geo, ip, seed, traj, tf, ti, i0, i1, states, store, rw, gk,
                  Blo, Bhi, dW):
    t0, span, xstep, xend = geo[0], geo[1], geo[2], geo[3]
    N, maxdepth, noise, m = ip[0], ip[1], ip[2], ip[3]
    n = u.size
    sqT = np.sqrt(abs(span))
    unew = rw[5]
    if i1 > i0:
        _query(em_grid_x(i0, N, xstep, xend), maxdepth, seed, traj, m, tf, ti, Blo)
    for i in range(i0, i1):
        if store:
            for k in range(n):
                states[i - i0, k] = u[k]
        x = em_grid_x(i, N, xstep, xend)
        xt = em_grid_x(i + 1, N, xstep, xend)
        _query(xt, maxdepth, seed, traj, m, tf, ti, Bhi)
        for j in range(m):
            dW[j] = sqT * (Bhi[j] - Blo[j])
        t = t0 + span * x
        hs = span * (xt - x)
        _step_heun(f, gv, gm, noise, u, p, t, hs, dW, unew, rw, gk)
        for k in range(n):
            u[k] = unew[k]
        for j in range(m):
            Blo[j] = Bhi[j]


@njit(cache=False)
def _heun_gk(n, m, general):
    """The matrix-g work of a Euler-Heun step: two n x m matrices for general noise."""
    return np.zeros((2, n, m) if general else (2, 1, 1))


@njit(cache=True)
def heun_advance(f, gv, gm, p, u, geo, ip, seed, traj, tf, ti, i0, i1, states, store):
    """Redo Euler-Heun steps ``i0 .. i1-1`` from ``u`` (in place) with the forward's step
    function (:func:`jitsolve.kernels.cpu.sde._step_heun`) and noise, as
    :func:`em_advance` (the same Brownian tree as EM); ``gm`` is the matrix g of general
    noise."""
    n = u.size
    m = ip[3]
    _heun_advance(f, gv, gm, p, u, geo, ip, seed, traj, tf, ti, i0, i1, states, store,
                  np.zeros((10, n)), _heun_gk(n, m, ip[2] == GENERAL), np.zeros(m), np.zeros(m),
                  np.zeros(m))


@njit(cache=False)
def _heun_reverse(f, gv, gm, vjf, vjg, gcm, p, states, geo, ip, seed, traj, tf, ti, i0, i1, gsave,
                  save_after, lam, pbar, rw, cw, gk, gw, Blo, Bhi, dW):
    t0, span, xstep, xend = geo[0], geo[1], geo[2], geo[3]
    N, maxdepth, noise, m = ip[0], ip[1], ip[2], ip[3]
    general = noise == GENERAL
    n = lam.size
    sqT = np.sqrt(abs(span))
    F0, G0, ub, vf, vg = rw[0], rw[1], rw[2], rw[3], rw[4]
    a, b, ubb, kdum, work = rw[5], rw[6], rw[7], rw[8], rw[9]
    cu, cd = cw[0], cw[1]
    if i1 > i0:
        _query(em_grid_x(i1, N, xstep, xend), maxdepth, seed, traj, m, tf, ti, Bhi)
    for i in range(i1 - 1, i0 - 1, -1):
        r = save_after[i]
        if r >= 0:
            for k in range(n):
                lam[k] += gsave[r, k]
        x = em_grid_x(i, N, xstep, xend)
        xt = em_grid_x(i + 1, N, xstep, xend)
        _query(x, maxdepth, seed, traj, m, tf, ti, Blo)
        for j in range(m):
            dW[j] = sqT * (Bhi[j] - Blo[j])
        t = t0 + span * x
        hs = span * (xt - x)
        u = states[i - i0]
        _heun_predict(f, gv, gm, noise, u, p, t, hs, dW, F0, G0, gk[0], ub)
        # corrector stage at the predictor (t + h)
        for k in range(n):
            vf[k] = 0.5 * hs * lam[k]
            vg[k] = 0.5 * lam[k] if general else 0.5 * (dW[k] if noise == DIAGONAL
                                                         else dW[0]) * lam[k]
        vjp_apply(vjf, vf, ub, p, t + hs, a, pbar, kdum, work, cu, cd)
        if general:
            vjp_noise_matrix(gcm, vg, dW, ub, p, t + hs, vjf[8], vjf[7], b, pbar, gw)
        else:
            vjp_apply(vjg, vg, ub, p, t + hs, b, pbar, kdum, work, cu, cd)
        for k in range(n):
            ubb[k] = a[k] + b[k]
        # the state's own evaluations, through the corrector and the predictor
        for k in range(n):
            c = 0.5 * lam[k] + ubb[k]
            vf[k] = hs * c
            vg[k] = c if general else (dW[k] if noise == DIAGONAL else dW[0]) * c
        vjp_apply(vjf, vf, u, p, t, a, pbar, kdum, work, cu, cd)
        if general:
            vjp_noise_matrix(gcm, vg, dW, u, p, t, vjf[8], vjf[7], b, pbar, gw)
        else:
            vjp_apply(vjg, vg, u, p, t, b, pbar, kdum, work, cu, cd)
        for k in range(n):
            lam[k] += ubb[k] + a[k] + b[k]
        for j in range(m):
            Bhi[j] = Blo[j]


@njit(cache=True)
def heun_reverse(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, p, states, geo, ip, seed, traj, tf, ti,
                 i0, i1, gsave, save_after, lam, pbar):
    """Reverse Euler-Heun steps ``i1-1 .. i0``, as :func:`em_reverse` (the predictor is
    recomputed from the stored state before each step; general noise: ``gm`` and its
    complex twin ``gcm`` through :func:`vjp_noise_matrix`)."""
    n = lam.size
    m = ip[3]
    general = ip[2] == GENERAL
    vjf = _vj(fc, vjf_r, f, uf[0])
    vjg = _vj(gc, vjg_r, f, uf[1])
    _heun_reverse(f, gv, gm, vjf, vjg, gcm, p, states, geo,
                  ip, seed, traj, tf, ti, i0, i1, gsave, save_after, lam, pbar, np.zeros((10, n)),
                  np.zeros((2, n), np.complex128), _heun_gk(n, m, general),
                  _noise_work(n, m, p.size, general), np.zeros(m), np.zeros(m), np.zeros(m))


@njit(cache=True)
def heun_checkpointed(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, p, u0, geo, ip, seed, traj,
                      actions, nslots, gsave, save_after, lam, pbar):
    """:func:`em_checkpointed` for Euler-Heun steps (the same step code as
    :func:`heun_advance` / :func:`heun_reverse`, so the gradient is bit-for-bit that of
    the stored-states sweep)."""
    n = u0.size
    m = ip[3]
    general = ip[2] == GENERAL
    vjf = _vj(fc, vjf_r, f, uf[0])
    vjg = _vj(gc, vjg_r, f, uf[1])
    snaps = np.zeros((max(nslots, 1), n))
    cur = u0.copy()
    buf = np.zeros((1, n))
    rw = np.zeros((10, n))
    cw = np.zeros((2, n), np.complex128)
    gk = _heun_gk(n, m, general)
    gw = _noise_work(n, m, p.size, general)
    Blo = np.zeros(m)
    Bhi = np.zeros(m)
    dW = np.zeros(m)
    tf, ti = em_tree(m, seed, traj)
    for a in range(actions.shape[0]):
        op = actions[a, 0]
        if op == ADVANCE:
            _heun_advance(f, gv, gm, p, cur, geo, ip, seed, traj, tf, ti, actions[a, 1],
                          actions[a, 2], buf, False, rw, gk, Blo, Bhi, dW)
        elif op == REVERSE:
            i = actions[a, 1]
            for k in range(n):
                buf[0, k] = cur[k]
            _heun_reverse(f, gv, gm, vjf, vjg, gcm, p, buf, geo, ip, seed, traj, tf, ti, i, i + 1,
                          gsave, save_after, lam, pbar, rw, cw, gk, gw, Blo, Bhi, dW)
        elif op == TAKE:
            for k in range(n):
                snaps[actions[a, 1], k] = cur[k]
        else:
            for k in range(n):
                cur[k] = snaps[actions[a, 1], k]


# ------------------------------------------------------------------------------ Milstein
# One fixed step of kernels.cpu.sde._step_milstein with the user's Milstein term
# phi = ggprime (diagonal noise phi_i = g_i dg_i/du_i, scalar phi = (dg/du) g; Kloeden &
# Platen 1992, sec. 10.3), w = dW (diagonal) or dW[0] (scalar), corr = w^2 - |h| (Itô) or
# w^2 (Stratonovich, ip[4] = 1):
#
#     u' = u + h f(u, t) + g(u, t) o w + phi(u, t) o corr / 2,
#     lam = lam' + J_f^T (h lam') + J_g^T (w o lam') + J_phi^T (corr/2 o lam').
#
# phi is evaluated (forward and here) through its complex twin at real arguments and
# differentiated by complex step of that twin: the adjoint needs only first derivatives
# of phi.  (When the forward forms phi by complex step of g instead, its adjoint would
# need second derivatives of g; python/sde_gradient.py refuses that case.)
@njit(cache=False)
def _milstein_terms(f, gv, phic, u, p, pcw, t, F0, G0, D, cu, cd):
    """F0, G0 and the Milstein term D = Re phic(u + 0i) as the forward step forms them."""
    n = u.size
    f(F0, u, p, t)
    gv(G0, u, p, t)
    for i in range(n):
        cu[i] = u[i]
    for j in range(p.size):
        pcw[j] = p[j]
    phic(cd, cu, pcw, t)
    for i in range(n):
        D[i] = cd[i].real


@njit(cache=False)
def _milstein_advance(f, gv, phic, p, u, geo, ip, seed, traj, tf, ti, i0, i1, states, store,
                      rw, cw, pcw, Blo, Bhi, dW):
    t0, span, xstep, xend = geo[0], geo[1], geo[2], geo[3]
    N, maxdepth, noise, m, strat = ip[0], ip[1], ip[2], ip[3], ip[4]
    n = u.size
    sqT = np.sqrt(abs(span))
    F0, G0, D = rw[0], rw[1], rw[2]
    cu, cd = cw[0], cw[1]
    if i1 > i0:
        _query(em_grid_x(i0, N, xstep, xend), maxdepth, seed, traj, m, tf, ti, Blo)
    for i in range(i0, i1):
        if store:
            for k in range(n):
                states[i - i0, k] = u[k]
        x = em_grid_x(i, N, xstep, xend)
        xt = em_grid_x(i + 1, N, xstep, xend)
        _query(xt, maxdepth, seed, traj, m, tf, ti, Bhi)
        for j in range(m):
            dW[j] = sqT * (Bhi[j] - Blo[j])
        t = t0 + span * x
        hs = span * (xt - x)
        ha = abs(hs)
        _milstein_terms(f, gv, phic, u, p, pcw, t, F0, G0, D, cu, cd)
        for k in range(n):
            w = dW[k] if noise == DIAGONAL else dW[0]
            corr = w * w if strat else w * w - ha
            u[k] = u[k] + hs * F0[k] + G0[k] * w + 0.5 * D[k] * corr
        for j in range(m):
            Blo[j] = Bhi[j]


@njit(cache=True)
def milstein_advance(f, gv, phic, p, u, geo, ip, seed, traj, tf, ti, i0, i1, states, store):
    """Redo Milstein steps ``i0 .. i1-1`` from ``u`` (in place), as :func:`em_advance`;
    ``phic`` is the complex twin of the Milstein term ``ggprime``; ``ip[4]`` is 1 for
    Stratonovich (``dW^2`` in place of ``dW^2 - h``)."""
    n = u.size
    m = ip[3]
    _milstein_advance(f, gv, phic, p, u, geo, ip, seed, traj, tf, ti, i0, i1, states, store,
                      np.zeros((3, n)), np.zeros((2, n), np.complex128),
                      np.zeros(p.size, np.complex128), np.zeros(m), np.zeros(m), np.zeros(m))


@njit(cache=False)
def _milstein_reverse(vjf, vjg, vjd, p, states, geo, ip, seed, traj, tf, ti, i0, i1, gsave,
                      save_after, lam, pbar, rw, cw, Blo, Bhi, dW):
    t0, span, xstep, xend = geo[0], geo[1], geo[2], geo[3]
    N, maxdepth, noise, m, strat = ip[0], ip[1], ip[2], ip[3], ip[4]
    n = lam.size
    sqT = np.sqrt(abs(span))
    vf, vg, vd, a, b, c, kdum, work = rw[0], rw[1], rw[2], rw[3], rw[4], rw[5], rw[6], rw[7]
    cu, cd = cw[0], cw[1]
    if i1 > i0:
        _query(em_grid_x(i1, N, xstep, xend), maxdepth, seed, traj, m, tf, ti, Bhi)
    for i in range(i1 - 1, i0 - 1, -1):
        r = save_after[i]
        if r >= 0:
            for k in range(n):
                lam[k] += gsave[r, k]
        x = em_grid_x(i, N, xstep, xend)
        xt = em_grid_x(i + 1, N, xstep, xend)
        _query(x, maxdepth, seed, traj, m, tf, ti, Blo)
        for j in range(m):
            dW[j] = sqT * (Bhi[j] - Blo[j])
        t = t0 + span * x
        hs = span * (xt - x)
        ha = abs(hs)
        for k in range(n):
            w = dW[k] if noise == DIAGONAL else dW[0]
            corr = w * w if strat else w * w - ha
            vf[k] = hs * lam[k]
            vg[k] = w * lam[k]
            vd[k] = 0.5 * corr * lam[k]
        u = states[i - i0]
        vjp_apply(vjf, vf, u, p, t, a, pbar, kdum, work, cu, cd)
        vjp_apply(vjg, vg, u, p, t, b, pbar, kdum, work, cu, cd)
        vjp_apply(vjd, vd, u, p, t, c, pbar, kdum, work, cu, cd)
        for k in range(n):
            lam[k] += a[k] + b[k] + c[k]
        for j in range(m):
            Bhi[j] = Blo[j]


@njit(cache=True)
def milstein_reverse(f, fc, gc, phic, vjf_r, uf, vjg_r, vjd_r, p, states, geo, ip, seed, traj, tf,
                     ti, i0, i1, gsave, save_after, lam, pbar):
    """Reverse Milstein steps ``i1-1 .. i0``, as :func:`em_reverse`; ``phic`` and
    ``vjd_r`` are the complex twin of ``ggprime`` and the rest of its VJP source."""
    n = lam.size
    m = ip[3]
    vjf = _vj(fc, vjf_r, f, uf[0])
    vjg = _vj(gc, vjg_r, f, uf[1])
    _milstein_reverse(vjf, vjg, _vj(phic, vjd_r, f, ()), p,
                      states, geo, ip, seed, traj, tf, ti, i0, i1, gsave, save_after, lam, pbar,
                      np.zeros((8, n)), np.zeros((2, n), np.complex128), np.zeros(m),
                      np.zeros(m), np.zeros(m))


@njit(cache=True)
def milstein_checkpointed(f, gv, fc, gc, phic, vjf_r, uf, vjg_r, vjd_r, p, u0, geo, ip, seed, traj,
                          actions, nslots, gsave, save_after, lam, pbar):
    """:func:`em_checkpointed` for Milstein steps."""
    n = u0.size
    m = ip[3]
    vjf = _vj(fc, vjf_r, f, uf[0])
    vjg = _vj(gc, vjg_r, f, uf[1])
    vjd = _vj(phic, vjd_r, f, ())
    snaps = np.zeros((max(nslots, 1), n))
    cur = u0.copy()
    buf = np.zeros((1, n))
    rw = np.zeros((8, n))
    cw = np.zeros((2, n), np.complex128)
    pcw = np.zeros(p.size, np.complex128)
    Blo = np.zeros(m)
    Bhi = np.zeros(m)
    dW = np.zeros(m)
    tf, ti = em_tree(m, seed, traj)
    for a in range(actions.shape[0]):
        op = actions[a, 0]
        if op == ADVANCE:
            _milstein_advance(f, gv, phic, p, cur, geo, ip, seed, traj, tf, ti, actions[a, 1],
                              actions[a, 2], buf, False, rw, cw, pcw, Blo, Bhi, dW)
        elif op == REVERSE:
            i = actions[a, 1]
            for k in range(n):
                buf[0, k] = cur[k]
            _milstein_reverse(vjf, vjg, vjd, p, buf, geo, ip, seed, traj, tf, ti, i, i + 1,
                              gsave, save_after, lam, pbar, rw, cw, Blo, Bhi, dW)
        elif op == TAKE:
            for k in range(n):
                snaps[actions[a, 1], k] = cur[k]
        else:
            for k in range(n):
                cur[k] = snaps[actions[a, 1], k]
