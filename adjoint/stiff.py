"""Discrete adjoint of the Rosenbrock solves (Rosenbrock23, Rodas5P) with checkpointing.

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
Sci. Comput. 36 (2014); Griewank, Walther, *Evaluating Derivatives* (2008), ch. 12.
"""
import numpy as np

from ..kernels.cpu import esdirk_adjoint as KS
from ..kernels.cpu import rosenbrock_adjoint as K
from .checkpoint import binomial_reverse, record_schedule
from .discrete import MemoryStore

__all__ = ["rosenbrock_adjoint", "esdirk_adjoint", "record_schedule"]


def rosenbrock_adjoint(rhs, jd, vj, tab, steps_t, steps_h, *, states=None, u0, gsave,
                       save_after, g_initial=None, checkpoints="all", store=None, np_grad=0,
                       recompute=False):
    """Reverse sweep of a Rosenbrock solve over its recorded steps.

    Parameters
    ----------
    rhs : ``(f, p, lin, plin, haslin, tmp)``;  jd : the forward's Jacobian data tuple
    vj : VJP source tuple (:func:`jitsolve.adjoint.vjp.make_vjp_source`)
    tab : stiff tableau tuple (:func:`jitsolve.solvers.ode.rosenbrock.stiff_tableau`)
    states : (N + 1, n) states of the forward pass (``checkpoints="all"``), or None to
        recompute them from ``u0`` (also with ``recompute``)
    gsave, save_after, g_initial : loss gradients as in :func:`.discrete.erk_adjoint`

    Returns ``(lam0, pbar, nrecompute)``.
    """
    N = steps_t.size
    u0 = np.ascontiguousarray(u0, dtype=np.float64)
    n = u0.size
    s = tab[6].size
    lam = np.zeros(n)
    pbar = np.zeros(max(np_grad, 0))
    wk = K.ros_work(n, s, np_grad)
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
        ops, nre = record_schedule(N, int(checkpoints))
        K.ros_schedule(rhs, jd, vj, tab, u0, steps_t, steps_h, ops, int(checkpoints), gsave,
                       save_after, lam, pbar, wk)
    else:
        C = int(checkpoints)
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
            nre = binomial_reverse(N, C, advance, reverse_step, take, restore)
        finally:
            snaps.close()
    if g_initial is not None:
        lam += g_initial
    return lam, pbar, nre


def esdirk_adjoint(rhs, jd, vj, tab, steps_t, steps_h, *, u0, gsave, save_after, g_initial=None,
                   checkpoints="all", store=None, np_grad=0):
    """Reverse sweep of an ImplicitEuler / (E)SDIRK solve by the implicit function theorem
    at each stage (:mod:`jitsolve.kernels.cpu.esdirk_adjoint`).  The states are always
    recomputed from ``u0`` with every stage solved to rounding (the forward pass's Newton
    iterates are not reproducible), so every checkpointing mode gives the same bits.

    Returns ``(lam0, pbar, nrecompute, ok)``; ``ok`` is False if a re-solved stage did not
    converge."""
    N = steps_t.size
    u0 = np.ascontiguousarray(u0, dtype=np.float64)
    n = u0.size
    s = tab[6].size
    lam = np.zeros(n)
    pbar = np.zeros(max(np_grad, 0))
    wk = KS.sd_work(n, s, np_grad)
    nre = 0
    ok = [True]
    if N == 0:
        pass
    elif checkpoints == "all":
        states = np.empty((N + 1, n))
        cur = u0.copy()
        ok[0] = KS.sd_advance(rhs, jd, tab, cur, steps_t, steps_h, 0, N, states, True, wk)
        states[N] = cur
        nre = N
        KS.sd_reverse(rhs, jd, vj, tab, states, steps_t, steps_h, 0, N, gsave, save_after, lam,
                      pbar, wk)
    elif store is None:
        ops, nre = record_schedule(N, int(checkpoints))
        ok[0] = bool(KS.sd_schedule(rhs, jd, vj, tab, u0, steps_t, steps_h, ops,
                                    int(checkpoints), gsave, save_after, lam, pbar, wk))
    else:
        C = int(checkpoints)
        snaps = store if store is not None else MemoryStore()
        cur = u0.copy()
        buf = np.zeros((1, n))

        def advance(i0, i1):
            if i1 > i0:
                ok[0] &= bool(KS.sd_advance(rhs, jd, tab, cur, steps_t, steps_h, i0, i1, buf,
                                            False, wk))

        def reverse_step(i):
            buf[0] = cur
            KS.sd_reverse(rhs, jd, vj, tab, buf, steps_t, steps_h, i, i + 1, gsave, save_after,
                          lam, pbar, wk)

        def take(i):
            snaps.put(i, cur)

        def restore(i):
            snaps.drop_above(i)
            cur[:] = snaps.get(i)

        try:
            nre = binomial_reverse(N, C, advance, reverse_step, take, restore)
        finally:
            snaps.close()
    if g_initial is not None:
        lam += g_initial
    return lam, pbar, nre, ok[0]
