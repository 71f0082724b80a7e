"""Discrete adjoint of explicit Runge-Kutta steps (CPU, Numba): the exact reverse-mode
derivative of the scheme the forward loop ran, for given (recorded) step sizes.

One step ``Y_i = u + h sum_j a_ij k_j``, ``k_i = F(Y_i, t + c_i h)``,
``u' = u + h sum_i b_i k_i`` is reversed stage by stage (Hairer, Lubich, Wanner,
*Geometric Numerical Integration* VI.4; Sandu, *On the properties of Runge-Kutta
discrete adjoints*, 2006)::

    kbar_i = h (b_i lam' + sum_{j>i} a_ji Ybar_j),   Ybar_i = J(Y_i)^T kbar_i,
    pbar  += J_p(Y_i)^T kbar_i,                      lam = lam' + sum_i Ybar_i.

An FSAL method's last stage has ``b_s = 0`` and feeds only the error estimate, so it
drops out.  Products with ``J^T`` come from a VJP source tuple

``vj = (fc, pc, has_f, colour, pat_ptr, pat_idx, ncolour, np_grad, eps,
        linT, plin, haslin, kappa_grad, bweight)``

``fc`` the complex twin of the user's ``f`` (complex state *and* parameters): column
groups of one colour are probed by one complex-step evaluation (exact to rounding;
a dense Jacobian is ``n`` colours), parameters one by one (``np_grad`` of them);
``linT`` the transpose of the linear part (grid operator, matrix); with ``kappa_grad``
the coefficient field of a packed Diffusion operator also gets its gradient.
"""
import numpy as np
from numba import njit, prange

from .erk import combine, erk_solve, erk_solve_inner
from .rhs import eval_rhs
from .rhs_grid import grid_param_vjp

__all__ = ["vjp_apply", "erk_stages", "erk_step_adjoint", "erk_advance", "erk_reverse",
           "erk_ensemble_gradient", "erk_schedule"]


@njit(cache=False)
def vjp_apply(vj, v, Y, p, t, out_u, out_p, out_k, work, cwork_u, cwork_d):
    """``out_u = J(Y)^T v``; ``out_p += J_p(Y)^T v``; ``out_k += d<v, F>/dkappa``."""
    (fc, pc, has_f, colour, pat_ptr, pat_idx, ncolour, np_grad, eps,
     linT, plin, haslin, kappa_grad, bweight) = vj
    n = Y.size
    for i in range(n):
        out_u[i] = 0.0
    if has_f:
        for j in range(pc.size):
            pc[j] = p[j]
        for c in range(ncolour):
            for k in range(n):
                cwork_u[k] = complex(Y[k], eps if colour[k] == c else 0.0)
            fc(cwork_d, cwork_u, pc, t)
            for i in range(n):
                d = cwork_d[i].imag / eps
                if d != 0.0:
                    for q in range(pat_ptr[i], pat_ptr[i + 1]):
                        k = pat_idx[q]
                        if colour[k] == c:
                            out_u[k] += d * v[i]
        if np_grad > 0:
            for k in range(n):
                cwork_u[k] = Y[k]
            for j in range(np_grad):
                pc[j] = complex(p[j], eps)
                fc(cwork_d, cwork_u, pc, t)
                acc = 0.0
                for i in range(n):
                    acc += cwork_d[i].imag / eps * v[i]
                out_p[j] += acc
                pc[j] = p[j]
    if haslin:
        linT(work, v, plin, t)
        for i in range(n):
            out_u[i] += work[i]
        if kappa_grad:
            grid_param_vjp(work, Y, v, plin)
            for i in range(n):
                out_k[i] += work[i] + bweight[i] * v[i]


@njit(cache=False)
def erk_stages(f, p, lin, plin, haslin, tmp, tab, u, t, h, Ys, ks):
    """Recompute a step's stage states ``Ys[i]`` and slopes ``ks[i]`` (i < s_used)."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    s = B.size
    su = s - 1 if fsal else s
    for i in range(su):
        combine(Ys[i], u, ks, A[i], i, h)
        eval_rhs(f, p, lin, plin, haslin, tmp, ks[i], Ys[i], t + C[i] * h)
    return su


@njit(cache=True)
def erk_advance(rhs, tab, u, steps_t, steps_h, i0, i1, states, store):
    """Redo the recorded steps ``i0 .. i1-1`` from ``u`` (in place); with ``store`` the
    state before step ``i`` goes to ``states[i - i0]``."""
    f, p, lin, plin, haslin, tmp = rhs
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    n = u.size
    s = B.size
    ks = np.zeros((s, n))
    Ys = np.zeros((s, n))
    for i in range(i0, i1):
        if store:
            states[i - i0] = u
        su = erk_stages(f, p, lin, plin, haslin, tmp, tab, u, steps_t[i], steps_h[i], Ys, ks)
        combine(Ys[0], u, ks, B, su, steps_h[i])
        u[:] = Ys[0]


@njit(cache=False)
def erk_step_adjoint(rhs, vj, tab, u, t, h, lam, pbar, kbar_acc, Ys, ks, Ybar, kb, work,
                     cu, cd):
    """Reverse one step from ``(t, u)`` of size ``h``: ``lam`` (the adjoint of the step's
    output) becomes the adjoint of its input; parameter adjoints accumulate."""
    f, p, lin, plin, haslin, tmp = rhs
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    n = u.size
    if vj[2] or vj[12]:
        # the Jacobian depends on the stage states: recompute them
        su = erk_stages(f, p, lin, plin, haslin, tmp, tab, u, t, h, Ys, ks)
    else:
        # a linear right-hand side: J is constant, the stage states are not needed
        su = B.size - 1 if fsal else B.size
    for i in range(su - 1, -1, -1):
        for x in range(n):
            kb[x] = B[i] * lam[x]
        for j in range(i + 1, su):
            a = A[j, i]
            if a != 0.0:
                for x in range(n):
                    kb[x] += a * Ybar[j, x]
        for x in range(n):
            kb[x] *= h
        vjp_apply(vj, kb, Ys[i], p, t + C[i] * h, Ybar[i], pbar, kbar_acc, work, cu, cd)
    for i in range(su):
        for x in range(n):
            lam[x] += Ybar[i, x]


@njit(cache=True)
def erk_reverse(rhs, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after, lam, pbar,
                kbar):
    """Reverse steps ``i1-1 .. i0`` with the states before each step in ``states[i - i0]``.
    ``save_after[i]`` is the index into ``gsave`` of a loss term on the state after step
    ``i`` (or -1); it is added to ``lam`` before that step is reversed."""
    n = lam.size
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    s = B.size
    Ys = np.zeros((s, n))
    ks = np.zeros((s, n))
    Ybar = np.zeros((s, n))
    kb = np.zeros(n)
    work = np.zeros(n)
    cu = np.zeros(n, np.complex128)
    cd = np.zeros(n, np.complex128)
    for i in range(i1 - 1, i0 - 1, -1):
        g = save_after[i]
        if g >= 0:
            for x in range(n):
                lam[x] += gsave[g, x]
        erk_step_adjoint(rhs, vj, tab, states[i - i0], steps_t[i], steps_h[i], lam, pbar, kbar,
                         Ys, ks, Ybar, kb, work, cu, cd)


@njit(parallel=True, cache=True)
def erk_ensemble_gradient(f, lin, plin, haslin, u0s, ps, t0, tab, ctrl, stops, cb, vjt, t_data,
                          data, weights, values, g_u0, g_p, retcodes):
    """Per-trajectory value and gradients of ``0.5 sum_j w (u(t_j) - d_j)^2`` for an
    ensemble, one trajectory per thread: forward solve storing every state, then the
    reverse sweep, both inside the same ``prange`` iteration.

    ``vjt`` is a VJP-source tuple whose complex parameter work array is replaced per
    thread; ``data``/``weights`` are (N or 1, m, n); outputs ``values`` (N,), ``g_u0``
    (N, n), ``g_p`` (N, np_grad), ``retcodes`` (N,).
    """
    N = u0s.shape[0]
    n = u0s.shape[1]
    m = t_data.size
    npg = g_p.shape[1]
    empty = np.zeros(0)
    for k in prange(N):
        p = ps[k]
        rhs = (f, p, lin, plin, haslin, np.empty(n))
        cbk = (cb[0], cb[1], cb[2], cb[3], cb[4], cb[5], cb[6], cb[7], cb[8], p)
        res = erk_solve_inner(rhs, u0s[k], t0, tab, ctrl, stops, (True, empty, False), cbk, 64)
        ts = res[0]
        us = res[1]
        nsave = res[2]
        steps_t = res[3]
        steps_h = res[4]
        nsteps = res[5]
        retcodes[k] = res[12]
        if res[12] != 0:
            values[k] = np.nan
            for x in range(n):
                g_u0[k, x] = np.nan
            for j in range(npg):
                g_p[k, j] = np.nan
            continue
        dk = data[k] if data.shape[0] > 1 else data[0]
        wk = weights[k] if weights.shape[0] > 1 else weights[0]
        gsave = np.zeros((m, n))
        save_after = -np.ones(max(nsteps, 1), np.int64)
        val = 0.0
        lam = np.zeros(n)
        i = 0
        for j in range(m):
            while i < nsave and ts[i] != t_data[j]:
                i += 1
            if i >= nsave:
                break
            for x in range(n):
                r = us[i, x] - dk[j, x]
                val += 0.5 * wk[j, x] * r * r
                gsave[j, x] = wk[j, x] * r
            if i == 0:
                for x in range(n):
                    lam[x] += gsave[j, x]
            else:
                save_after[i - 1] = j
        values[k] = val
        vj = (vjt[0], np.zeros(vjt[1].size, np.complex128), vjt[2], vjt[3], vjt[4], vjt[5],
              vjt[6], vjt[7], vjt[8], vjt[9], vjt[10], vjt[11], vjt[12], vjt[13])
        pbar = np.zeros(npg)
        kbar = np.zeros(n)
        lam_end = np.zeros(n)
        erk_reverse_inner(rhs, vj, tab, us, steps_t, steps_h, 0, nsteps, gsave, save_after, lam_end,
                    pbar, kbar)
        for x in range(n):
            g_u0[k, x] = lam_end[x] + lam[x]
        for j in range(npg):
            g_p[k, j] = pbar[j]


@njit(cache=True)
def erk_schedule(rhs, vj, tab, u0, steps_t, steps_h, ops, C, gsave, save_after, lam, pbar, kbar):
    """Run a recorded checkpointing schedule (``jitsolve.adjoint.checkpoint.record_schedule``)
    in one compiled call: rows ``(0, i0, i1)`` advance, ``(1, i, _)`` reverse step ``i``,
    ``(2, i, _)`` snapshot, ``(3, i, _)`` restore snapshot ``i`` (dropping those above).
    At most ``C + 1`` states are held (the initial one and ``C``), plus the current one."""
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
            erk_advance_inner(rhs, tab, cur, steps_t, steps_h, a, ops[q, 2], buf, False)
        elif op == 1:
            buf[0] = cur
            erk_reverse_inner(rhs, vj, tab, buf, steps_t, steps_h, a, a + 1, gsave, save_after, lam,
                        pbar, kbar)
        elif op == 2:
            top += 1
            keys[top] = a
            snaps[top] = cur
        else:
            while top > 0 and keys[top] > a:
                top -= 1
            cur[:] = snaps[top]


# Uncached twins for compiled callers: a cached function compiled while a callee taking
# first-class functions came from the disk cache is stored broken (tests/test_kernel_cache.py)
erk_reverse_inner = njit(cache=False)(erk_reverse.py_func)
erk_advance_inner = njit(cache=False)(erk_advance.py_func)
