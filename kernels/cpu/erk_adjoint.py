"""Discrete adjoint of explicit Runge-Kutta steps (CPU, Numba): the exact reverse-mode
derivative of the scheme the forward loop ran, for given (recorded) step sizes.

One step ``Y_i = u + h sum_j a_ij k_j``, ``k_i = F(Y_i, t + c_i h)``,
``u' = u + h sum_i b_i k_i`` is reversed stage by stage (Hairer, Lubich, Wanner,
*Geometric Numerical Integration* VI.4; Sandu, *On the properties of Runge-Kutta
discrete adjoints*, 2006)::

    kbar_i = h (b_i lam' + sum_{j>i} a_ji Ybar_j),   Ybar_i = J(Y_i)^T kbar_i,
    pbar  += J_p(Y_i)^T kbar_i,                      lam = lam' + sum_i Ybar_i.

An FSAL method's last stage has ``b_s = 0`` and feeds only the error estimate, so it
drops out -- unless the step holds saved times.

Saved times strictly inside a step (``solve(saveat=...)`` of a method with an interpolant
does not step onto them) are the method's dense output
``y(theta) = u + h sum_j b_j(theta) k_j`` over the step's stages: for an FSAL pair these
include ``k_s = f(u', t + h)``, and for Verner's pairs the extra stages
``k_{s+r} = f(u + h sum_j AX_rj k_j, t + CX_r h)`` (Hairer, Nørsett, Wanner, *Solving
ODEs I*, II.6).  Such a step is reversed over the extended tableau (rows ``A``, then
``B`` for the FSAL stage, then ``AX``), its stage adjoints seeded with
``h (b_j lam' + sum_k b_j(theta_k) g_k)`` and ``u`` with ``lam' + sum_k g_k``
(:func:`erk_step_adjoint_dense`; Griewank, Walther, *Evaluating Derivatives*, ch. 3-4:
each stage is one elemental operation of the recorded program).  The saves are given
per step in CSR form, ``dsave = (dptr, dtheta, drow)``: step ``i`` holds saves
``dptr[i] .. dptr[i+1]-1`` at ``theta = (t_k - t_i) / h_i`` (computed exactly as the
forward loop computes it) whose loss gradients are rows ``drow`` of ``gsave``.

Products with ``J^T`` come from a VJP source tuple

``vj = (fc, pc, has_f, colour, pat_ptr, pat_idx, ncolour, np_grad, eps,
        linT, plin, haslin, kappa_grad, bweight, kvjp)``

``fc`` the complex twin of the user's ``f`` (complex state *and* parameters): column
groups of one colour are probed by one complex-step evaluation (exact to rounding;
a dense Jacobian is ``n`` colours), parameters one by one (``np_grad`` of them);
``linT`` the transpose of the linear part (grid operator, matrix); with ``kappa_grad``
the coefficient field of a packed Diffusion operator also gets its gradient through the
cfunc ``kvjp`` (:func:`.rhs_grid.grid_kappa_vjp_cfunc`; a zero placeholder otherwise, so
that no adjoint compiles the Diffusion VJP kernel unless it is asked for).

A source built from an ``ODEFunction`` with derivatives carries seven more slots,
``vj[15:22] = (mode, uvjp, ujac, upjac, pbuf, Jbuf, Jpbuf)``, the user's own functions, which
come first (the adjoint issue's order of VJP sources): ``mode & 1`` the user's
``vjp(out_u, out_p, lam, u, p, t)`` gives both products; else ``mode & 2`` the user's
``jac`` gives ``J^T v`` (a dense ``n x n`` product) and ``mode & 4`` the user's
``paramjac`` gives ``J_p^T v``; what they do not give comes from the complex step
(:func:`user_vjp`).  The buffers are work arrays (copied per thread by
:func:`thread_vj`); a source without the slots compiles the user branch to nothing.  (The
slots are not one nested tuple: a ``prange`` loop cannot take a tuple inside a tuple.)
"""
import numpy as np
from numba import njit, prange
from numba.extending import overload

from .borrow import borrow, keep_alive
from .erk import borrow_tab, combine_serial, dense_weights, erk_solve_inner, get_row, put_row
from .rhs import borrow_rhs, eval_rhs

__all__ = ["vjp_apply", "borrow_vj", "kappa_vjp", "user_vjp", "user_mode", "thread_vj", "erk_stages", "stage_coefficients", "erk_stages_dense", "erk_step_adjoint",
           "erk_step_adjoint_dense", "erk_advance", "erk_reverse", "erk_reverse_dense",
           "reverse_steps", "save_map", "save_map_entry", "erk_ensemble_gradient", "erk_schedule", "NO_DENSE_SAVES",
           "l2_at_steps"]


def kappa_vjp(vj, out, u, lam, plin):
    """``out = d<lam, A(kappa) u>/dkappa`` through the VJP source's ``kvjp`` cfunc
    (``vj[14]``); a source without that slot (the SDE adjoints') compiles to nothing."""


@overload(kappa_vjp, jit_options={"cache": False})
def _kappa_vjp_impl(vj, out, u, lam, plin):
    if len(vj.types) > 14:
        def impl(vj, out, u, lam, plin):
            vj[14](out, u, lam, plin)
    else:
        def impl(vj, out, u, lam, plin):
            pass
    return impl


def user_vjp(vj, v, Y, p, t, out_u, out_p, np_grad):
    """The products the user's functions give (``vj[15:22]``): ``out_u = J(Y)^T v`` (bit 1
    of the result when done) and ``out_p[:np_grad] += J_p(Y)^T v`` (bit 2); ``0`` for a
    source without the user slot."""


@overload(user_vjp, inline="always", jit_options={"cache": False})
def _user_vjp_impl(vj, v, Y, p, t, out_u, out_p, np_grad):
    if len(vj.types) <= 15:
        def impl(vj, v, Y, p, t, out_u, out_p, np_grad):
            return 0
        return impl

    def impl(vj, v, Y, p, t, out_u, out_p, np_grad):
        # inlined into the stage loops: one return, no augmented assignments (Numba's
        # inliner mis-scopes the versions of a variable assigned on several paths)
        mode, uvjp, ujac, upjac, pbuf, Jbuf, Jpbuf = vj[15:22]
        n = Y.size
        # the user's outputs cleared before each call: a function that accumulates
        # (``op[0] += ...``) or writes only the nonzeros is read right
        if mode & 1:
            for k in range(n):
                out_u[k] = 0.0
            for j in range(pbuf.size):
                pbuf[j] = 0.0
            uvjp(out_u, pbuf, v, Y, p, t)
            for j in range(np_grad):
                out_p[j] += pbuf[j]
        if (mode & 3) == 2:
            for i in range(Jbuf.shape[0]):
                for k in range(Jbuf.shape[1]):
                    Jbuf[i, k] = 0.0
            ujac(Jbuf, Y, p, t)
            for k in range(n):
                out_u[k] = 0.0
            for i in range(n):
                vi = v[i]
                if vi != 0.0:
                    for k in range(n):
                        out_u[k] += Jbuf[i, k] * vi
        if (mode & 5) == 4:
            if np_grad > 0:
                for i in range(Jpbuf.shape[0]):
                    for j in range(Jpbuf.shape[1]):
                        Jpbuf[i, j] = 0.0
                upjac(Jpbuf, Y, p, t)
                for i in range(n):
                    vi = v[i]
                    if vi != 0.0:
                        for j in range(np_grad):
                            out_p[j] += Jpbuf[i, j] * vi
        # vjp: both products (3); else bit 1 from jac (mode 2), bit 2 from paramjac (4)
        return 3 * (mode & 1) + ((mode >> 1) & 3) * (1 - (mode & 1))
    return impl


def user_mode(vj):
    """``vj[15]``: which of the user's derivatives the source uses (0 without them)."""


@overload(user_mode, inline="always", jit_options={"cache": False})
def _user_mode_impl(vj):
    if len(vj.types) <= 15:
        return lambda vj: 0
    return lambda vj: vj[15]


def thread_vj(vjt):
    """``vjt`` with fresh work arrays (the complex parameters, the user slot's buffers),
    for one thread of an ensemble."""


@overload(thread_vj, jit_options={"cache": False})
def _thread_vj_impl(vjt):
    if len(vjt.types) <= 15:
        def impl(vjt):
            return (vjt[0], np.zeros(vjt[1].size, np.complex128)) + vjt[2:]
        return impl

    def impl(vjt):
        mode, uvjp, ujac, upjac, pbuf, Jbuf, Jpbuf = vjt[15:22]
        return ((vjt[0], np.zeros(vjt[1].size, np.complex128)) + vjt[2:15]
                + (mode, uvjp, ujac, upjac, np.zeros(pbuf.size), np.zeros(Jbuf.shape),
                   np.zeros(Jpbuf.shape)))
    return impl


def _borrow_tail(vj):
    """``vj[14:]`` with the user slots' work arrays borrowed."""


@overload(_borrow_tail, inline="always", jit_options={"cache": False})
def _borrow_tail_impl(vj):
    if len(vj.types) <= 15:
        return lambda vj: vj[14:]

    def impl(vj):
        return (vj[14], vj[15], vj[16], vj[17], vj[18], borrow(vj[19]), borrow(vj[20]),
                borrow(vj[21]))
    return impl


@njit(inline="always", cache=False)
def borrow_vj(vj):
    """``vj`` with its arrays borrowed (:mod:`.borrow`)."""
    (fc, pc, has_f, colour, pat_ptr, pat_idx, ncolour, np_grad, eps,
     linT, plin, haslin, kappa_grad, bweight) = vj[:14]
    return (fc, borrow(pc), has_f, borrow(colour), borrow(pat_ptr), borrow(pat_idx), ncolour,
            np_grad, eps, linT, borrow(plin), haslin, kappa_grad, borrow(bweight)) + _borrow_tail(vj)


@njit(cache=False)
def vjp_apply(vj, v, Y, p, t, out_u, out_p, out_k, work, cwork_u, cwork_d):
    """``out_u = J(Y)^T v``; ``out_p += J_p(Y)^T v``; ``out_k += d<v, F>/dkappa``."""
    (fc, pc, has_f, colour, pat_ptr, pat_idx, ncolour, np_grad, eps,
     linT, plin, haslin, kappa_grad, bweight) = vj[:14]
    n = Y.size
    for i in range(n):
        out_u[i] = 0.0
    done = user_vjp(vj, v, Y, p, t, out_u, out_p, np_grad) if has_f else 0
    if has_f:
        for j in range(pc.size):
            pc[j] = p[j]
        for c in range(0 if done & 1 else ncolour):
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
        if np_grad > 0 and not done & 2:
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
            kappa_vjp(vj, work, Y, v, plin)
            for i in range(n):
                out_k[i] += work[i] + bweight[i] * v[i]


#: :func:`vjp_apply` inlined (the explicit adjoint's stage loops): a call passes its ~15
#: arrays through reference-count calls at entry and exit, ~25% of a small system's step
vjp_apply_inline = njit(inline="always", cache=False)(vjp_apply.py_func)


@njit(inline="always", cache=False)
def erk_stages(f, p, lin, plin, haslin, tmp, tab, u, t, h, Ys, ks):
    """Recompute a step's stage states ``Ys[i]`` and slopes ``ks[i]`` (i < s_used)."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    s = B.size
    su = s - 1 if fsal else s
    for i in range(su):
        combine_serial(Ys[i], u, ks, A[i], i, h)
        eval_rhs(f, p, lin, plin, haslin, tmp, ks[i], Ys[i], t + C[i] * h)
    return su


@njit(inline="always", cache=False)
def stage_coefficients(tab, i):
    """``(a_i, c_i)`` of stage ``i`` in the tableau extended for the interpolant: ``A[i]``,
    then ``B`` for an FSAL pair's last stage (``f(u', t + h)``; ``C[s-1] = 1``), then the
    extra stages ``AX[i - s], CX[i - s]`` -- as the forward loop forms them
    (``erk.rk_step``, ``erk.extra_stages``); ``Y_i = u + h sum_{j<i} a_i[j] k_j``."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    s = B.size
    if i >= s:
        return AX[i - s], CX[i - s]
    if fsal and i == s - 1:
        return B, C[i]
    return A[i], C[i]


@njit(inline="always", cache=False)
def erk_stages_dense(f, p, lin, plin, haslin, tmp, tab, u, t, h, Ys, ks, nst):
    """Stages ``0 .. nst-1`` of a step for its interpolant: those of :func:`erk_stages`,
    then those :func:`stage_coefficients` adds (FSAL stage, extra stages)."""
    su = erk_stages(f, p, lin, plin, haslin, tmp, tab, u, t, h, Ys, ks)
    for i in range(su, nst):
        a, c = stage_coefficients(tab, i)
        combine_serial(Ys[i], u, ks, a, i, h)
        eval_rhs(f, p, lin, plin, haslin, tmp, ks[i], Ys[i], t + c * h)


@njit(cache=True)
def erk_advance(rhs, tab, u, steps_t, steps_h, i0, i1, states, store):
    """Redo the recorded steps ``i0 .. i1-1`` from ``u`` (in place); with ``store`` the
    state before step ``i`` goes to ``states[i - i0]``."""
    f, p, lin, plin, haslin, tmp = borrow_rhs(rhs)
    tab = borrow_tab(tab)
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    n = u.size
    s = B.size
    ks_own = np.zeros((s, n))
    Ys_own = np.zeros((s, n))
    ks, Ys, ub = borrow(ks_own), borrow(Ys_own), borrow(u)
    for i in range(i0, i1):
        if store:
            put_row(states, i - i0, ub)
        su = erk_stages(f, p, lin, plin, haslin, tmp, tab, ub, steps_t[i], steps_h[i], Ys, ks)
        combine_serial(Ys[0], ub, ks, B, su, steps_h[i])
        for x in range(n):
            ub[x] = Ys[0, x]
    keep_alive(ks_own)
    keep_alive(Ys_own)


@njit(inline="always", cache=False)
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
        vjp_apply_inline(vj, kb, Ys[i], p, t + C[i] * h, Ybar[i], pbar, kbar_acc, work, cu, cd)
    for i in range(su):
        for x in range(n):
            lam[x] += Ybar[i, x]


@njit(inline="always", cache=False)
def erk_step_adjoint_dense(rhs, vj, tab, u, t, h, lam, pbar, kbar_acc, Ys, ks, Ybar, kb, work,
                           cu, cd, gsave, dtheta, drow, k0, k1, D, w):
    """:func:`erk_step_adjoint` for a step holding the saves ``k0 .. k1-1`` at
    ``dtheta[k]`` (loss gradients ``gsave[drow[k]]``) on its interpolant: the exact
    derivative of ``(u', y(theta_k))`` with respect to ``u`` (and ``p``), reversed over
    the stages the interpolant uses (FSAL and extra stages included); see the module
    docstring.  ``D`` (stages x n) and ``w`` (interpolant weights) are work arrays."""
    f, p, lin, plin, haslin, tmp = rhs
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    n = u.size
    s = B.size
    su = s - 1 if fsal else s
    sd = BTH.shape[0]
    nst = max(su, sd)
    if vj[2] or vj[12]:
        erk_stages_dense(f, p, lin, plin, haslin, tmp, tab, u, t, h, Ys, ks, nst)
    # direct seeds of the stage adjoints (before the factor h): b_j lam' + sum_k b_j(theta_k) g_k
    for j in range(nst):
        bj = B[j] if j < su else 0.0
        for x in range(n):
            D[j, x] = bj * lam[x]
    for k in range(k0, k1):
        dense_weights(w, BTH, dtheta[k])
        r = drow[k]
        for j in range(sd):
            wj = w[j]
            if wj != 0.0:
                for x in range(n):
                    D[j, x] += wj * gsave[r, x]
        for x in range(n):
            lam[x] += gsave[r, x]
    for i in range(nst - 1, -1, -1):
        for x in range(n):
            kb[x] = D[i, x]
        for l in range(i + 1, nst):
            a = stage_coefficients(tab, l)[0][i]       # dY_l / d(h k_i)
            if a != 0.0:
                for x in range(n):
                    kb[x] += a * Ybar[l, x]
        for x in range(n):
            kb[x] *= h
        vjp_apply_inline(vj, kb, Ys[i], p, t + stage_coefficients(tab, i)[1] * h, Ybar[i],
                         pbar, kbar_acc, work, cu, cd)
    for i in range(nst):
        for x in range(n):
            lam[x] += Ybar[i, x]


@njit(cache=True)
def reverse_steps(rhs, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after, dsave, lam,
                  pbar, kbar):
    """Reverse steps ``i1-1 .. i0`` with the states before each step in ``states[i - i0]``.
    ``save_after[i]`` is the index into ``gsave`` of a loss term on the state after step
    ``i`` (or -1); it is added to ``lam`` before that step is reversed.  ``dsave`` the
    saves inside steps (module docstring; empty arrays: none); a step holding some is
    reversed by :func:`erk_step_adjoint_dense`, every other by :func:`erk_step_adjoint`."""
    dptr, dtheta, drow = borrow(dsave[0]), borrow(dsave[1]), borrow(dsave[2])
    n = lam.size
    rhs, vj, tab = borrow_rhs(rhs), borrow_vj(vj), borrow_tab(tab)
    states, steps_t, steps_h = borrow(states), borrow(steps_t), borrow(steps_h)
    gsave, save_after = borrow(gsave), borrow(save_after)
    lam, pbar, kbar = borrow(lam), borrow(pbar), borrow(kbar)
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    # the interpolant's stages and seeds only when some step holds saves
    ns = max(B.size + CX.size, BTH.shape[0]) if dptr.size > 0 else B.size
    Ys_own = np.zeros((ns, n))
    ks_own = np.zeros((ns, n))
    Ybar_own = np.zeros((ns, n))
    D_own = np.zeros((ns if dptr.size > 0 else 0, n))
    w_own = np.zeros(BTH.shape[0])
    kb_own = np.zeros(n)
    work_own = np.zeros(n)
    cu_own = np.zeros(n, np.complex128)
    cd_own = np.zeros(n, np.complex128)
    owners = (Ys_own, ks_own, Ybar_own, D_own, w_own, kb_own, work_own, cu_own, cd_own)
    Ys, ks, Ybar, D = borrow(Ys_own), borrow(ks_own), borrow(Ybar_own), borrow(D_own)
    w, kb, work, cu, cd = (borrow(w_own), borrow(kb_own), borrow(work_own), borrow(cu_own),
                           borrow(cd_own))
    for i in range(i1 - 1, i0 - 1, -1):
        g = save_after[i]
        if g >= 0:
            for x in range(n):
                lam[x] += gsave[g, x]
        if dptr.size > i + 1 and dptr[i + 1] > dptr[i]:
            erk_step_adjoint_dense(rhs, vj, tab, states[i - i0], steps_t[i], steps_h[i], lam,
                                   pbar, kbar, Ys, ks, Ybar, kb, work, cu, cd, gsave, dtheta,
                                   drow, dptr[i], dptr[i + 1], D, w)
        else:
            erk_step_adjoint(rhs, vj, tab, states[i - i0], steps_t[i], steps_h[i], lam, pbar,
                             kbar, Ys, ks, Ybar, kb, work, cu, cd)
    keep_alive(owners)


#: ``dsave`` with no saves inside steps (every loss time is a step's end)
NO_DENSE_SAVES = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))


@njit(cache=True)
def erk_reverse(rhs, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after, lam, pbar,
                kbar):
    """:func:`reverse_steps` with every loss time a step's end (no ``dsave``)."""
    reverse_steps(rhs, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after,
                  (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)), lam, pbar, kbar)


@njit(cache=True)
def erk_reverse_dense(rhs, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after, dsave,
                      lam, pbar, kbar, replay):
    """:func:`reverse_steps` from Python (saves inside steps given by ``dsave``).  With
    ``replay``, ``states[0]`` holds the state before step ``i0`` and the other rows are
    filled first by redoing the recorded steps (:func:`erk_advance`), in the same call."""
    if replay:
        u = np.empty(states.shape[1])
        get_row(u, states, 0)
        erk_advance(rhs, tab, u, steps_t, steps_h, i0, i1, states, True)
    reverse_steps(rhs, vj, tab, states, steps_t, steps_h, i0, i1, gsave, save_after, dsave, lam,
                  pbar, kbar)


@njit(cache=False)
def save_map(t_data, steps_t, steps_h, nsteps, t0, t_end, tdir, save_after, dptr, dtheta, drow):
    """Where ``erk_solve`` put each save ``t_data[j]`` of a solve that did not step onto
    them, replaying its saving loop over the accepted steps: ``save_after[i] = j`` when
    ``t_data[j]`` is the end of step ``i``, the saves strictly inside step ``i`` into
    ``dsave = (dptr, dtheta, drow)`` (module docstring; ``theta`` computed as the forward
    loop computes it).  Returns ``(number of saves inside steps, row at t0 or -1)``."""
    m = t_data.size
    j = 0
    g0 = -1
    if m > 0 and t_data[0] == t0:
        g0 = 0
        j = 1
    nd = 0
    for i in range(nsteps):
        dptr[i] = nd
        tnew = steps_t[i + 1] if i + 1 < nsteps else t_end
        while j < m and (tnew - t_data[j]) * tdir > 0.0:
            dtheta[nd] = (t_data[j] - steps_t[i]) / steps_h[i]
            drow[nd] = j
            nd += 1
            j += 1
        if j < m and t_data[j] == tnew:
            save_after[i] = j
            j += 1
    dptr[nsteps] = nd
    return nd, g0


#: :func:`save_map` called from Python (a gradient's set-up): the disk-cached entry point
save_map_entry = njit(cache=True)(save_map.py_func)


@njit(cache=False)
def l2_at_steps(ts, us, nsave, t_data, dk, wk, gsave, save_after, lam):
    """The L2 loss ``0.5 sum_j w_j (u(t_j) - d_j)^2`` on a forward pass that saved every
    step (``ts[:nsave]``, ``us``: row 0 the initial state, row ``i + 1`` the state after
    step ``i``) and landed on every loss time ``t_data``.  Fills ``gsave[j] = w_j (u(t_j)
    - d_j)`` and ``save_after[i] = j`` for a term after step ``i``; a term at the initial
    time goes straight into ``lam``.  Returns the value."""
    n = us.shape[1]
    val = 0.0
    i = 0
    for j in range(t_data.size):
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
    return val


@njit(parallel=True, cache=True)
def erk_ensemble_gradient(f, lin, plin, haslin, u0s, ps, t0, tab, ctrl, stops, cb, vjt, t_data,
                          data, weights, interpolate, values, g_u0, g_p, retcodes):
    """Per-trajectory value and gradients of ``0.5 sum_j w (u(t_j) - d_j)^2`` for an
    ensemble, one trajectory per thread: forward solve storing every state, then the
    reverse sweep, both inside the same ``prange`` iteration.

    ``interpolate``: the loss times are not ``stops`` and are saved as ``erk_solve``
    saves them (from the interpolant inside a step), exactly the values of the ensemble
    solve; the reverse sweep differentiates them through the interpolant
    (:func:`save_map`, :func:`reverse_steps`).  Else ``stops`` hold the loss times and
    every loss term is a step's end.  ``vjt`` is a VJP-source tuple whose complex
    parameter work array is replaced per thread; ``data``/``weights`` are (N or 1, m, n);
    outputs ``values`` (N,), ``g_u0`` (N, n), ``g_p`` (N, np_grad), ``retcodes`` (N,).
    """
    N = u0s.shape[0]
    n = u0s.shape[1]
    m = t_data.size
    npg = g_p.shape[1]
    empty = np.zeros(0)
    tdir = 1.0 if stops[-1] >= t0 else -1.0
    for k in prange(N):
        p = ps[k]
        rhs = (f, p, lin, plin, haslin, np.empty(n))
        cbk = (cb[0], cb[1], cb[2], cb[3], cb[4], cb[5], cb[6], cb[7], cb[8], p)
        # interpolate: save at t_data, dense=True keeps the state before each step (the
        # saves are unchanged); else every step.  One call with run-time flags: literal
        # ones compiled the loop twice (~4 s of a cold compile)
        save = (not interpolate, t_data if interpolate else empty, interpolate)
        res = erk_solve_inner(rhs, u0s[k], t0, tab, ctrl, stops, save, cbk,
                              m + 1 if interpolate else 64)
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
        dptr = np.zeros(0, np.int64)
        dtheta = np.zeros(0)
        drow = np.zeros(0, np.int64)
        if interpolate:
            states = res[6]
            dptr = np.zeros(nsteps + 1, np.int64)
            dtheta = np.zeros(m)
            drow = np.zeros(m, np.int64)
            nd, g0 = save_map(t_data, steps_t, steps_h, nsteps, t0, res[13], tdir, save_after,
                              dptr, dtheta, drow)
            if nd == 0:
                dptr = np.zeros(0, np.int64)
            for j in range(nsave):
                for x in range(n):
                    r = us[j, x] - dk[j, x]
                    val += 0.5 * wk[j, x] * r * r
                    gsave[j, x] = wk[j, x] * r
            if g0 >= 0:
                for x in range(n):
                    lam[x] += gsave[g0, x]
        else:
            states = us
            val = l2_at_steps(ts, us, nsave, t_data, dk, wk, gsave, save_after, lam)
        values[k] = val
        vj = thread_vj(vjt)
        pbar = np.zeros(npg)
        kbar = np.zeros(n)
        lam_end = np.zeros(n)
        # np.int64(0): a literal 0 compiled (and cached) a second reverse loop
        reverse_steps(rhs, vj, tab, states, steps_t, steps_h, np.int64(0), nsteps, gsave,
                      save_after, (dptr, dtheta, drow), lam_end, pbar, kbar)
        for x in range(n):
            g_u0[k, x] = lam_end[x] + lam[x]
        for j in range(npg):
            g_p[k, j] = pbar[j]


@njit(cache=True)
def erk_schedule(rhs, vj, tab, u0, steps_t, steps_h, ops, C, gsave, save_after, dsave, lam, pbar,
                 kbar):
    """Run a recorded checkpointing schedule (``jitsolve.adjoint.checkpoint.record_schedule``)
    in one compiled call: rows ``(0, i0, i1)`` advance, ``(1, i, _)`` reverse step ``i``,
    ``(2, i, _)`` snapshot, ``(3, i, _)`` restore snapshot ``i`` (dropping those above);
    ``dsave`` as in :func:`reverse_steps`.
    At most ``C`` snapshots are held, the initial state among them (``C`` from
    ``jitsolve.adjoint.checkpoint.snapshot_slots``; two spare rows), plus the current
    state."""
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
            erk_advance(rhs, tab, cur, steps_t, steps_h, a, ops[q, 2], buf, False)
        elif op == 1:
            put_row(buf, 0, cur)
            reverse_steps(rhs, vj, tab, buf, steps_t, steps_h, a, a + 1, gsave, save_after, dsave,
                          lam, pbar, kbar)
        elif op == 2:
            top += 1
            keys[top] = a
            put_row(snaps, top, cur)
        else:
            while top > 0 and keys[top] > a:
                top -= 1
            get_row(cur, snaps, top)
