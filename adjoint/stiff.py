"""Discrete adjoints of the stiff solves with checkpointing: Rosenbrock23, Rodas5P
(:func:`rosenbrock_adjoint`), ImplicitEuler, Kvaerno5, KenCarp4 and KenCarp4's IMEX form
on a ``SplitODEProblem`` (:func:`esdirk_adjoint`).

The gradient is the exact derivative of the discrete solution that ``solve`` computed:
each step's linear solves ``W k_i = r_i`` are differentiated by the implicit function
theorem (transposed solves with the same LU, plus the derivative of ``J(u, p)`` along the
stages; see :mod:`jitsolve.kernels.cpu.rosenbrock_adjoint`).  **With adaptive steps the
accepted step sizes are recorded and held fixed in the reverse pass** (their dependence
on ``u0``/``p`` through the error controller is not differentiated).

Checkpointing as :mod:`.discrete`: ``"all"`` (every state of the forward pass), an
integer ``C`` (binomial/Revolve schedule, ``C`` states + O(1); recorded in Python, run in
one compiled call), or an HDF5 ``store`` (Python-driven).
Recomputation uses the forward loop's own step kernels, so the gradient is bit-for-bit
independent of the checkpointing choice.

Non-autonomous problems with adaptive steps: the forward loop's ``df/dt`` increment came
from the first *attempted* step at each state, which is not recorded; the reverse pass
uses the accepted one (a ~1e-8 relative change of the ``T`` term only).  The states are
then recomputed with that increment in every checkpointing mode (``recompute=True``), so
the variants stay bitwise equal.  Pass ``autonomous=True`` to the algorithm when ``f``
does not depend on ``t``.

References
----------
Sandu, Daescu, Carmichael, Atmos. Environ. 37 (2003); Zhang, Sandu, *FATODE*, SIAM J.
Sci. Comput. 36 (2014); Griewank, Walther, *Evaluating Derivatives* (2008), ch. 12;
Kennedy, Carpenter, Appl. Numer. Math. 44 (2003) 139-181 (the ARK pair of KenCarp4).
"""
import numpy as np

from ..kernels.cpu import esdirk_adjoint as KS
from ..kernels.cpu import rosenbrock_adjoint as K
from .checkpoint import binomial_reverse, record_schedule, snapshot_slots
from .discrete import MemoryStore

__all__ = ["rosenbrock_adjoint", "esdirk_adjoint", "record_schedule"]


def rosenbrock_adjoint(rhs, jd, vj, tab, steps_t, steps_h, *, states=None, u0, gsave,
                       save_after, g_initial=None, checkpoints="all", store=None, np_grad=0,
                       recompute=False, nk=0):
    """Reverse sweep of a Rosenbrock solve over its recorded steps.

    Parameters
    ----------
    rhs : ``(f, p, lin, plin, haslin, tmp)``;  jd : the forward's Jacobian data tuple
    vj : VJP source tuple (:func:`jitsolve.adjoint.vjp.make_vjp_source`)
    tab : stiff tableau tuple (:func:`jitsolve.solvers.ode.rosenbrock.stiff_tableau`)
    states : (N + 1, n) states of the forward pass (``checkpoints="all"``), or None to
        recompute them from ``u0`` (also with ``recompute``)
    gsave, save_after, g_initial : loss gradients as in :func:`.discrete.erk_adjoint`
    nk : size of the grid operator's coefficient field when ``vj`` asks for its gradient
        (``wrt="kappa"``); the derivative of ``J = A(kappa)`` along the stages enters
        like that of ``J(u, p)``

    Returns ``(lam0, pbar, kbar, nrecompute)`` (``kbar`` empty unless ``nk``).
    """
    N = steps_t.size
    u0 = np.ascontiguousarray(u0, dtype=np.float64)
    n = u0.size
    s = tab[6].size
    lam = np.zeros(n)
    pbar = np.zeros(max(np_grad, 0))
    wk = K.ros_work(n, s, np_grad, nk)
    nre = 0
    if N == 0:
        pass
    elif checkpoints == "all":
        if states is None or recompute:
            states = np.empty((N + 1, n))
            cur = u0.copy()
            K.ros_advance(rhs, jd, tab, cur, steps_t, steps_h, 0, N, states, True, wk)
            states[N] = cur
            nre = N
        K.ros_reverse(rhs, jd, vj, tab, np.ascontiguousarray(states), steps_t, steps_h, 0, N,
                      gsave, save_after, lam, pbar, wk)
    elif store is None:
        C = snapshot_slots(N, checkpoints)
        ops, nre = record_schedule(N, C)
        K.ros_schedule(rhs, jd, vj, tab, u0, steps_t, steps_h, ops, C, gsave,
                       save_after, lam, pbar, wk)
    else:
        snaps = store if store is not None else MemoryStore()
        cur = u0.copy()
        buf = np.zeros((1, n))

        def advance(i0, i1):
            if i1 > i0:
                K.ros_advance(rhs, jd, tab, cur, steps_t, steps_h, i0, i1, buf, False, wk)

        def reverse_step(i):
            buf[0] = cur
            K.ros_reverse(rhs, jd, vj, tab, buf, steps_t, steps_h, i, i + 1, gsave, save_after,
                          lam, pbar, wk)

        def take(i):
            snaps.put(i, cur)

        def restore(i):
            snaps.drop_above(i)
            cur[:] = snaps.get(i)

        try:
            nre = binomial_reverse(N, checkpoints, advance, reverse_step, take, restore)
        finally:
            snaps.close()
    if g_initial is not None:
        lam += g_initial
    return lam, pbar, wk[22][:nk].copy(), nre


def esdirk_adjoint(rhs, jd, vj, tab, steps_t, steps_h, *, u0, gsave, save_after, g_initial=None,
                   checkpoints="all", store=None, np_grad=0, nk=0):
    """Reverse sweep of an ImplicitEuler / (E)SDIRK solve by the implicit function theorem
    at each stage (:mod:`jitsolve.kernels.cpu.esdirk_adjoint`).  The states are always
    recomputed from ``u0`` with every stage solved to rounding (the forward pass's Newton
    iterates are not reproducible), so every checkpointing mode gives the same bits.

    An IMEX tableau (``tab[12]``, KenCarp4 on a ``SplitODEProblem``: ``f`` explicit, the
    linear part implicit) runs the additive kernels ``ark_*``: transposed solves with
    ``W = I - h gamma L``, ``L^T`` from ``vj``'s transpose of the linear part, ``f``'s VJPs
    for the explicit part (Kennedy & Carpenter 2003's ARK pair differentiated in reverse
    mode, Griewank & Walther 2008).

    Parameters
    ----------
    rhs : ``(f, p, lin, plin, haslin, tmp)``;  jd : the forward's Jacobian data tuple
        (unused by the IMEX kernels: their implicit Jacobian is the exact ``L``)
    vj : VJP source tuple (:func:`jitsolve.adjoint.vjp.make_vjp_source`); for IMEX it
        must carry the transpose of the linear part
    tab : stiff tableau tuple (:func:`jitsolve.solvers.ode.rosenbrock.stiff_tableau`)
    steps_t, steps_h : the accepted steps of the forward pass (held fixed)
    u0, gsave, save_after, g_initial : as :func:`.discrete.erk_adjoint`
    checkpoints : ``"all"`` or an int ``C`` (binomial schedule; with ``store`` an HDF5
        store, Python-driven)
    nk : size of the coefficient field when ``vj`` asks for its gradient (not with IMEX)

    Returns
    -------
    lam0, pbar, kbar, nrecompute, ok
        ``ok`` is False if a re-solved stage did not converge (IMEX: ``W`` singular or a
        stage not finite).
    """
    N = steps_t.size
    u0 = np.ascontiguousarray(u0, dtype=np.float64)
    n = u0.size
    s = tab[6].size
    lam = np.zeros(n)
    pbar = np.zeros(max(np_grad, 0))
    imex = bool(tab[12])
    if imex:
        if not rhs[4] or not vj[11]:
            raise ValueError("esdirk_adjoint: the IMEX form needs a linear part and its "
                             "transpose in vj")
        if nk:
            raise ValueError("esdirk_adjoint: no coefficient-field gradient in the IMEX form")
        wk = KS.ark_work(n, s)
        if N:
            KS.ark_setup(rhs, float(steps_t[0]), wk)

        def advance(cur, i0, i1, states, keep):
            return KS.ark_advance(rhs, tab, cur, steps_t, steps_h, i0, i1, states, keep, wk)

        def reverse(states, i0, i1):
            return KS.ark_reverse(rhs, vj, tab, states, steps_t, steps_h, i0, i1, gsave,
                                  save_after, lam, pbar, wk)

        def schedule(ops, C):
            return KS.ark_schedule(rhs, vj, tab, u0, steps_t, steps_h, ops, C, gsave,
                                   save_after, lam, pbar, wk)
    else:
        wk = KS.sd_work(n, s, np_grad, nk)

        def advance(cur, i0, i1, states, keep):
            return KS.sd_advance(rhs, jd, tab, cur, steps_t, steps_h, i0, i1, states, keep, wk)

        def reverse(states, i0, i1):
            KS.sd_reverse(rhs, jd, vj, tab, states, steps_t, steps_h, i0, i1, gsave,
                          save_after, lam, pbar, wk)
            return True

        def schedule(ops, C):
            return KS.sd_schedule(rhs, jd, vj, tab, u0, steps_t, steps_h, ops, C, gsave,
                                  save_after, lam, pbar, wk)
    nre = 0
    ok = [True]
    if N == 0:
        pass
    elif checkpoints == "all":
        states = np.empty((N + 1, n))
        cur = u0.copy()
        ok[0] = bool(advance(cur, 0, N, states, True))
        states[N] = cur
        nre = N
        ok[0] &= bool(reverse(states, 0, N))
    elif store is None:
        C = snapshot_slots(N, checkpoints)
        ops, nre = record_schedule(N, C)
        ok[0] = bool(schedule(ops, C))
    else:
        snaps = store if store is not None else MemoryStore()
        cur = u0.copy()
        buf = np.zeros((1, n))

        def advance_cb(i0, i1):
            if i1 > i0:
                ok[0] &= bool(advance(cur, i0, i1, buf, False))

        def reverse_step(i):
            buf[0] = cur
            ok[0] &= bool(reverse(buf, i, i + 1))

        def take(i):
            snaps.put(i, cur)

        def restore(i):
            snaps.drop_above(i)
            cur[:] = snaps.get(i)

        try:
            nre = binomial_reverse(N, checkpoints, advance_cb, reverse_step, take, restore)
        finally:
            snaps.close()
    if g_initial is not None:
        lam += g_initial
    kbar = wk[17][:nk].copy() if nk else np.zeros(0)
    return lam, pbar, kbar, nre, ok[0]
