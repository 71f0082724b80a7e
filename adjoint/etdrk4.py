"""Discrete adjoint of ETDRK4 solves with checkpointing: the schedules of
:mod:`.discrete` (every state stored, a binomial schedule run in one compiled call, or
snapshots in an HDF5 store) around the reverse step of
:mod:`jitsolve.kernels.cpu.etdrk4_adjoint`.

The gradient is the exact derivative of the discrete solution: the steps (fixed, and
the shortened ones landing on the loss times) and the linear part's coefficients are
those of the forward solve, and every schedule redoes the steps with the forward's own
step code, so the gradient is bit-for-bit independent of the checkpointing.

References
----------
Griewank, Walther, *Evaluating Derivatives* (2008), ch. 12 (binomial checkpointing).
"""
import numpy as np

from ..kernels.cpu import etdrk4_adjoint as K
from ..kernels.cpu.fastcall import call
from .checkpoint import binomial_reverse, record_schedule, snapshot_slots

__all__ = ["etd_adjoint"]


def etd_adjoint(steps, vj, *, states=None, u0, gsave, save_after, g_initial=None,
                checkpoints="all", store=None, np_grad=0):
    """Reverse sweep of an ETDRK4 solve.

    Parameters
    ----------
    steps : :class:`jitsolve.solvers.ode.etdrk4.EtdSteps` of the forward solve
    vj : VJP source tuple (:func:`jitsolve.adjoint.vjp.make_vjp_source`, no linear part)
    states : (N + 1, n) every state (``checkpoints="all"``), else None
    u0 : the initial state
    gsave, save_after, g_initial : the loss gradients at the saved states, the row of
        the state after each step (or -1), the loss gradient at ``t0`` (or None)
    checkpoints, store : ``"all"``, or ``C`` snapshots (in memory, or in ``store``)

    Returns ``(lam0, pbar, nrecompute)``.
    """
    (f, p, nb, hasnb), (mode, cf, cm, fwd, inv, dims) = steps.kernel_args()
    cmT = np.ascontiguousarray(np.swapaxes(cm, 2, 3))
    tg, hid = steps.tg, steps.hid
    N = hid.size
    u0 = np.ascontiguousarray(u0, dtype=np.float64).ravel()
    n = u0.size
    lam = np.zeros(n)
    pbar = np.zeros(max(np_grad, 0))
    nre = 0
    head = (f, p, nb, hasnb, vj, mode, cf, cm, cmT, fwd, inv, dims)
    if N == 0:
        pass
    elif checkpoints == "all":
        call(K.etd_reverse, *head, np.ascontiguousarray(states), tg, hid, 0, N, gsave,
             save_after, lam, pbar)
    elif store is None:
        C = snapshot_slots(N, checkpoints)
        ops, nre = record_schedule(N, C)
        call(K.etd_schedule, *head, u0, tg, hid, ops, C, gsave, save_after, lam,
             pbar)
    else:
        cur = u0.copy()
        buf = np.zeros((1, n))

        def advance(i0, i1):
            if i1 > i0:
                call(K.etd_advance, f, p, nb, hasnb, mode, cf, cm, fwd, inv, dims, cur, tg, hid,
                     i0, i1)

        def reverse_step(i):
            buf[0] = cur
            call(K.etd_reverse, *head, buf, tg, hid, i, i + 1, gsave, save_after, lam, pbar)

        def restore(i):
            store.drop_above(i)
            cur[:] = store.get(i)

        try:
            nre = binomial_reverse(N, checkpoints, advance, reverse_step,
                                   lambda i: store.put(i, cur), restore)
        finally:
            store.close()
    if g_initial is not None:
        lam += g_initial
    return lam, pbar, nre
