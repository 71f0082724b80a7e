"""Discrete adjoint of ETDRK4 steps (CPU, Numba): the exact reverse-mode derivative of
the steps :func:`jitsolve.kernels.cpu.etdrk4.etd_step` took.

A step is a short straight-line program of linear maps (the coefficients ``C_k``, the
transforms ``Q^T``/``Q`` of ``MODE_EIG``) and four evaluations of ``N``.  Reversed
statement by statement (Griewank, Walther, *Evaluating Derivatives*, ch. 3), with
``T = Q^T`` (``T^T = Q``: the eigenbasis is orthogonal; identity in the other modes)
and ``C_k^T`` (entrywise coefficients are their own transposes; the dense mode passes
the transposed matrices ``cmT``)::

    ubar_nh = T lam'
    uh_bar = C2^T ubar_nh;  Nuh_bar = C3^T ubar_nh;  Nah_bar = Nbh_bar = 2 C4^T ubar_nh;
    Nch_bar = C5^T ubar_nh
    cbar = J(c)^T Q Nch_bar;           ah_bar = C0^T T cbar;  w = C1^T T cbar;
                                       Nbh_bar += 2 w;  Nuh_bar -= w
    bbar = J(b)^T Q Nbh_bar;           uh_bar += C0^T T bbar; Nah_bar += C1^T T bbar
    abar = J(a)^T Q Nah_bar;           ah_bar += T abar
                                       uh_bar += C0^T ah_bar; Nuh_bar += C1^T ah_bar
    lam = Q uh_bar + J(u)^T Q Nuh_bar

with ``pbar += J_p(Y)^T v`` at each of the four products.  The stage states are
recomputed from the stored (or checkpointed) state by the forward's own step code.
Products with ``J^T`` come from the VJP source tuple of
:func:`jitsolve.kernels.cpu.erk_adjoint.vjp_apply` (the user's derivatives, else exact
complex steps, coloured by ``jac_sparsity``).

References
----------
Griewank, Walther, *Evaluating Derivatives* (2008), ch. 3 and 12; Cox, Matthews, J.
Comput. Phys. 176 (2002) (the step).
"""
import numpy as np
from numba import njit

from .erk_adjoint import vjp_apply
from .etdrk4 import A, B, C, UNEW, coef_apply, etd_step, transform, work_rows

__all__ = ["etd_step_adjoint", "etd_reverse", "etd_advance", "etd_schedule"]

# rows of the reverse's own work array
(R_UNH, R_UH, R_NUH, R_NAH, R_NBH, R_NCH, R_V, R_Y, R_YH, R_AH, R_W, R_WORK) = range(12)
NREV = 12


@njit(cache=False)
def etd_step_adjoint(f, p, nb, hasnb, vj, mode, cf, cm, cmT, j, fwd, inv, dims, u, t, h, lam,
                     pbar, S, R, kdummy, cu, cd):
    """Reverse one step from ``(t, u)`` of size ``h``: ``lam`` (the adjoint of the step's
    output) becomes the adjoint of its input; parameter adjoints accumulate in ``pbar``.
    ``S`` the forward step's work array, ``R`` the reverse's (``NREV`` rows)."""
    etd_step(f, p, nb, hasnb, mode, cf, cm, j, fwd, inv, dims, u, t, h, S)
    w2 = R[R_WORK]
    unh, uh, nuh, nah, nbh, nch = R[R_UNH], R[R_UH], R[R_NUH], R[R_NAH], R[R_NBH], R[R_NCH]
    v, y, yh, ah, wv = R[R_V], R[R_Y], R[R_YH], R[R_AH], R[R_W]
    transform(mode, lam, unh, fwd, dims, w2)
    coef_apply(mode, cf, cmT, j, 2, unh, uh, 1.0, False)
    coef_apply(mode, cf, cmT, j, 3, unh, nuh, 1.0, False)
    coef_apply(mode, cf, cmT, j, 4, unh, nah, 2.0, False)
    nbh[:] = nah
    coef_apply(mode, cf, cmT, j, 5, unh, nch, 1.0, False)
    # stage c
    transform(mode, nch, v, inv, dims, w2)
    vjp_apply(vj, v, S[C], p, t + h, y, pbar, kdummy, w2, cu, cd)
    transform(mode, y, yh, fwd, dims, w2)
    coef_apply(mode, cf, cmT, j, 0, yh, ah, 1.0, False)
    coef_apply(mode, cf, cmT, j, 1, yh, wv, 1.0, False)
    for i in range(wv.size):
        nbh[i] += 2.0 * wv[i]
        nuh[i] -= wv[i]
    # stage b
    transform(mode, nbh, v, inv, dims, w2)
    vjp_apply(vj, v, S[B], p, t + 0.5 * h, y, pbar, kdummy, w2, cu, cd)
    transform(mode, y, yh, fwd, dims, w2)
    coef_apply(mode, cf, cmT, j, 0, yh, uh, 1.0, True)
    coef_apply(mode, cf, cmT, j, 1, yh, nah, 1.0, True)
    # stage a
    transform(mode, nah, v, inv, dims, w2)
    vjp_apply(vj, v, S[A], p, t + 0.5 * h, y, pbar, kdummy, w2, cu, cd)
    transform(mode, y, yh, fwd, dims, w2)
    for i in range(ah.size):
        ah[i] += yh[i]
    coef_apply(mode, cf, cmT, j, 0, ah, uh, 1.0, True)
    coef_apply(mode, cf, cmT, j, 1, ah, nuh, 1.0, True)
    # the step's input
    transform(mode, nuh, v, inv, dims, w2)
    vjp_apply(vj, v, u, p, t, y, pbar, kdummy, w2, cu, cd)
    transform(mode, uh, lam, inv, dims, w2)
    for i in range(lam.size):
        lam[i] += y[i]


@njit(cache=False)
def _reverse_range(f, p, nb, hasnb, vj, mode, cf, cm, cmT, fwd, inv, dims, states, tg, hid, i0,
                   i1, gsave, save_after, lam, pbar, S, R, kdummy, cu, cd):
    n = lam.size
    for i in range(i1 - 1, i0 - 1, -1):
        g = save_after[i]
        if g >= 0:
            for x in range(n):
                lam[x] += gsave[g, x]
        etd_step_adjoint(f, p, nb, hasnb, vj, mode, cf, cm, cmT, hid[i], fwd, inv, dims,
                         states[i - i0], tg[i], tg[i + 1] - tg[i], lam, pbar, S, R, kdummy, cu,
                         cd)


@njit(cache=True)
def etd_reverse(f, p, nb, hasnb, vj, mode, cf, cm, cmT, fwd, inv, dims, states, tg, hid, i0,
                i1, gsave, save_after, lam, pbar):
    """Reverse steps ``i1-1 .. i0`` with the state before step ``i`` in
    ``states[i - i0]``; ``save_after[i]`` the row of ``gsave`` (a loss gradient) on the
    state after step ``i`` (or -1), added to ``lam`` before that step is reversed."""
    n = lam.size
    _reverse_range(f, p, nb, hasnb, vj, mode, cf, cm, cmT, fwd, inv, dims, states, tg, hid, i0,
                   i1, gsave, save_after, lam, pbar, work_rows(n), np.empty((NREV, n)),
                   np.zeros(n), np.empty(n, np.complex128), np.empty(n, np.complex128))


@njit(cache=False)
def _redo_steps(f, p, nb, hasnb, mode, cf, cm, fwd, inv, dims, u, tg, hid, i0, i1, S):
    for i in range(i0, i1):
        etd_step(f, p, nb, hasnb, mode, cf, cm, hid[i], fwd, inv, dims, u, tg[i],
                 tg[i + 1] - tg[i], S)
        u[:] = S[UNEW]


@njit(cache=True)
def etd_advance(f, p, nb, hasnb, mode, cf, cm, fwd, inv, dims, u, tg, hid, i0, i1):
    """Redo steps ``i0 .. i1-1`` from ``u`` in place (the forward's step code)."""
    _redo_steps(f, p, nb, hasnb, mode, cf, cm, fwd, inv, dims, u, tg, hid, i0, i1,
             work_rows(u.size))


@njit(cache=True)
def etd_schedule(f, p, nb, hasnb, vj, mode, cf, cm, cmT, fwd, inv, dims, u0, tg, hid, ops, Cn,
                 gsave, save_after, lam, pbar):
    """Run a recorded binomial checkpointing schedule
    (:func:`jitsolve.adjoint.checkpoint.record_schedule`) in one call: rows
    ``(0, i0, i1)`` advance, ``(1, i, _)`` reverse step ``i``, ``(2, i, _)`` snapshot,
    ``(3, i, _)`` restore snapshot ``i``.  At most ``Cn + 2`` states are held."""
    n = u0.size
    snaps = np.empty((Cn + 2, n))
    keys = np.empty(Cn + 2, np.int64)
    top = -1
    cur = u0.copy()
    buf = np.empty((1, n))
    S = work_rows(n)
    R = np.empty((NREV, n))
    kd = np.zeros(n)
    cu = np.empty(n, np.complex128)
    cd = np.empty(n, np.complex128)
    for q in range(ops.shape[0]):
        op = ops[q, 0]
        a = ops[q, 1]
        if op == 0:
            _redo_steps(f, p, nb, hasnb, mode, cf, cm, fwd, inv, dims, cur, tg, hid, a, ops[q, 2], S)
        elif op == 1:
            buf[0, :] = cur
            _reverse_range(f, p, nb, hasnb, vj, mode, cf, cm, cmT, fwd, inv, dims, buf, tg, hid,
                           a, a + 1, gsave, save_after, lam, pbar, S, R, kd, cu, cd)
        elif op == 2:
            top += 1
            keys[top] = a
            snaps[top, :] = cur
        else:
            while top > 0 and keys[top] > a:
                top -= 1
            cur[:] = snaps[top]
