"""Discrete adjoint of explicit Runge-Kutta solves with checkpointing.

The gradient is the exact derivative of the discrete solution that ``solve`` computed:
the accepted step sizes of an adaptive forward solve are recorded and **held fixed** in
the reverse pass (their dependence on the parameters through the error controller is
not differentiated, as in every discrete-adjoint code of this kind).  Checkpointing:

* ``"all"``: every state of the forward pass is kept; one compiled reverse sweep.
* ``C`` (int): binomial (Revolve) schedule with ``C`` snapshots, recorded in Python and
  run in one compiled call.  Memory: ``C`` states + O(1).
* ``store``: snapshots kept in an HDF5 file instead of memory (the schedule is then
  driven from Python, one compiled call per action).

The gradient is bit-for-bit independent of the checkpointing choice (the same compiled
step and stage code runs in every schedule).

Loss times strictly inside steps (``solve(saveat=...)`` interpolates there with the
method's dense output; ``dsave``) are differentiated through that interpolant, the
accepted steps still held fixed: see :mod:`jitsolve.kernels.cpu.erk_adjoint`.  The
store-all schedule then replays the recorded steps once to get the states before each
step (the forward solve saved only the loss times), with the same compiled code as the
other schedules.

A discrete callback's changes of the state between steps (jumps) split the sweep into
segments, reversed last first with the adjoint pulled back across each jump
(:func:`erk_adjoint_jumps`).

References
----------
Griewank, Walther, *Evaluating Derivatives* (2008), ch. 12; Sandu, *On the properties
of Runge-Kutta discrete adjoints* (2006); Hager, *Runge-Kutta methods in optimal
control and the transformed adjoint system* (2000).
"""
import numpy as np

from ..kernels.cpu import erk_adjoint as K
from ..kernels.cpu.erk import PARALLEL_N
from ..kernels.cpu.fastcall import call
from .checkpoint import binomial_reverse, record_schedule, snapshot_slots

__all__ = ["erk_adjoint", "erk_adjoint_jumps", "jump_segments", "segment_dsave", "MemoryStore"]


class MemoryStore:
    """Snapshots in memory (a dict of step index -> state copy)."""

    def __init__(self):
        self._d = {}

    def put(self, i, u):
        self._d[i] = u.copy()

    def get(self, i):
        return self._d[i]

    def drop_above(self, i):
        for k in [k for k in self._d if k > i]:
            del self._d[k]

    def close(self):
        self._d.clear()


def erk_adjoint(rhs, vj, tab, steps_t, steps_h, *, states=None, u0=None, gsave, save_after,
                g_initial=None, checkpoints="all", store=None, np_grad=0, diag=False,
                dsave=None, lam=None, jumps=None):
    """Reverse sweep of an explicit RK solve.

    States of at least ``PARALLEL_N`` entries (grids) are reversed by the threaded
    kernels of :mod:`jitsolve.kernels.cpu.erk_large`, every schedule alike (so the
    gradient stays bit-for-bit independent of the checkpointing there too).

    Parameters
    ----------
    rhs : tuple ``(f, p, lin, plin, haslin, tmp)``
    vj : VJP source tuple (:func:`jitsolve.adjoint.vjp.make_vjp_source`)
    tab : tableau tuple
    steps_t, steps_h : accepted steps of the forward solve
    states : (N + 1, n) array of every state (``checkpoints="all"``), else ``u0``; with
        ``dsave`` given, ``u0`` always (the store-all schedule replays the steps)
    gsave : (m, n) loss gradients at the saved states; ``save_after[i]`` the row for the
        state after step ``i`` (or -1); ``g_initial`` a loss gradient at ``t0`` or None.
    dsave : ``(dptr, dtheta, drow)`` or None
        Loss times strictly inside steps, on the method's interpolant
        (:func:`jitsolve.kernels.cpu.erk_adjoint.reverse_steps`); small states only.
    diag : bool
        The Jacobian of ``f`` is diagonal (its declared sparsity is the identity); the
        large-state kernels then take its VJP in threaded passes.
    lam : (n,) array or None
        The adjoint arriving at the solve's end (zero when None).
    jumps : list or None
        Jumps of the state between steps (a discrete callback's ``affect``), in step
        order: objects with ``step`` (the state jumps after that step), ``after`` (the
        state after the jump) and ``vjp(lam) -> (lam_before, dp)``; see
        :func:`erk_adjoint_jumps` (also with none: the forward then kept no states).

    Returns ``(lam0, pbar, kbar, nrecompute)``.
    """
    if jumps is not None:
        return erk_adjoint_jumps(rhs, vj, tab, steps_t, steps_h, jumps, u0=u0, gsave=gsave,
                                 save_after=save_after, g_initial=g_initial,
                                 checkpoints=checkpoints, store=store, np_grad=np_grad,
                                 diag=diag, dsave=dsave, lam=lam)
    N = steps_t.size
    n = (states[0] if states is not None else u0).size
    lam = np.zeros(n) if lam is None else np.array(lam, dtype=np.float64)
    pbar = np.zeros(max(np_grad, 0))
    kbar = np.zeros(n)
    nre = 0
    replay = dsave is not None and N > 0 and checkpoints == "all"
    if replay:
        # the forward saved the loss times only: the reverse kernel first replays the
        # recorded steps from u0 for the states (one compiled call for both)
        states = np.empty((N, n))
        states[0] = u0
    if dsave is None:
        dsave = K.NO_DENSE_SAVES
    elif n >= PARALLEL_N:
        raise ValueError("dsave: saves inside steps are reversed for small states only")
    if n >= PARALLEL_N and N > 0:
        nre = _erk_adjoint_large(rhs, vj, tab, steps_t, steps_h, states, u0, gsave, save_after,
                                 checkpoints, store, lam, pbar, kbar, bool(diag))
    elif N == 0:
        pass
    elif checkpoints == "all":
        # through the compiled entry point: Numba's typing of the rhs/vj tuples of
        # first-class functions costs ~0.13 ms per call (measured), more than short sweeps
        call(K.erk_reverse_dense, rhs, vj, tab, states, steps_t, steps_h, 0, N, gsave, save_after,
             dsave, lam, pbar, kbar, replay)
    elif store is None:
        # the schedule is recorded once and run in one compiled call
        C = snapshot_slots(N, checkpoints)
        ops, nre = record_schedule(N, C)
        call(K.erk_schedule, rhs, vj, tab, np.ascontiguousarray(u0, dtype=np.float64), steps_t,
             steps_h, ops, C, gsave, save_after, dsave, lam, pbar, kbar)
    else:
        snaps = store
        cur = np.ascontiguousarray(u0, dtype=np.float64).copy()
        buf = np.zeros((1, n))

        def advance(i0, i1):
            if i1 > i0:
                K.erk_advance(rhs, tab, cur, steps_t, steps_h, i0, i1, buf, False)

        def reverse_step(i):
            buf[0] = cur
            K.erk_reverse_dense(rhs, vj, tab, buf, steps_t, steps_h, i, i + 1, gsave, save_after,
                                dsave, lam, pbar, kbar, False)

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
    return lam, pbar, kbar, nre


def erk_adjoint_jumps(rhs, vj, tab, steps_t, steps_h, jumps, *, u0, gsave, save_after,
                      g_initial=None, checkpoints="all", store=None, np_grad=0, diag=False,
                      dsave=None, lam=None):
    """:func:`erk_adjoint` of a solve whose state jumps between some steps (a discrete
    callback's ``affect``: ``u <- A(u, p, t)`` after step ``i``).

    The steps between jumps are reversed segment by segment, last first, each by
    :func:`erk_adjoint` from the state that starts it (``u0``, then each jump's
    ``after``) with the adjoint arriving at its end; across a jump the adjoint is
    pulled back by the jump's ``vjp``: ``lam <- A_u^T lam``, ``pbar += A_p^T lam``
    (Griewank, Walther, *Evaluating Derivatives* (2008), ch. 3: the reverse of a
    composition).  Whether a step ends with a jump (the callback's condition) is held
    fixed, as the step sizes are.  The forward saved no state between the loss times, so
    with ``checkpoints="all"`` each segment's steps are recomputed once, every state kept
    (a schedule with a snapshot per step); checkpointed segments run their own schedule.

    Returns ``(lam0, pbar, kbar, nrecompute)``.
    """
    N = steps_t.size
    n = u0.size
    lam = np.zeros(n) if lam is None else np.array(lam, dtype=np.float64)
    pbar = np.zeros(max(np_grad, 0))
    kbar = np.zeros(n)
    nre = 0
    segments = jump_segments(jumps, N)
    starts = [np.ascontiguousarray(u0, dtype=np.float64)] + [j.after for j in jumps]
    for s in range(len(segments) - 1, -1, -1):
        a, b = segments[s]
        if s < len(jumps):
            lam, dp = jumps[s].vjp(lam)
            if pbar.size:
                pbar += dp
        seg_dsave = segment_dsave(dsave, a, b)
        g_init = g_initial if s == 0 else None
        if b == a:
            if g_init is not None:
                lam = lam + g_init
            continue
        st = np.ascontiguousarray(steps_t[a:b])
        sh = np.ascontiguousarray(steps_h[a:b])
        sa = np.ascontiguousarray(save_after[a:b])
        ck = checkpoints
        if ck == "all" and seg_dsave is None:
            # every state of the segment from one recomputing sweep (a schedule with a
            # snapshot per step: the checkpointed schedules' code, so their bits)
            ck = b - a
        lam, pb, kb, r = erk_adjoint(rhs, vj, tab, st, sh, u0=starts[s], gsave=gsave,
                                     save_after=sa, g_initial=g_init, checkpoints=ck,
                                     store=store if ck == checkpoints else None,
                                     np_grad=np_grad, diag=diag, dsave=seg_dsave, lam=lam)
        if pbar.size:
            pbar += pb
        kbar += kb
        nre += r
    return lam, pbar, kbar, nre


def jump_segments(jumps, N):
    """The step ranges ``[(a, b), ...]`` between the jumps (after steps ``j.step``) of a
    solve of ``N`` steps: the first starts at step 0, each next one after a jump."""
    bounds = [0] + [j.step + 1 for j in jumps] + [N]
    return list(zip(bounds[:-1], bounds[1:]))


def segment_dsave(dsave, a, b):
    """The saves inside steps ``a .. b-1`` of ``dsave = (dptr, dtheta, drow)`` (CSR over
    steps), renumbered from step ``a``; None when there are none at all."""
    if dsave is None or dsave[0].size == 0:
        return None
    dptr, dtheta, drow = dsave
    return (np.ascontiguousarray(dptr[a:b + 1] - dptr[a]),
            np.ascontiguousarray(dtheta[dptr[a]:dptr[b]]),
            np.ascontiguousarray(drow[dptr[a]:dptr[b]]))


def _erk_adjoint_large(rhs, vj, tab, steps_t, steps_h, states, u0, gsave, save_after,
                       checkpoints, store, lam, pbar, kbar, diag):
    """:func:`erk_adjoint` for large states (threaded kernels); returns the recompute count."""
    from ..kernels.cpu import erk_large as KL
    from ..kernels.cpu.rhs_grid import is_packed_stencil
    N = steps_t.size
    # the linear part a packed Laplacian or Diffusion: the recomputed steps and stage
    # states fold its stencil into their stage combinations (as the forward did; the
    # kernels fuse only where there is an f)
    fuse_lin = is_packed_stencil(rhs[2])
    if checkpoints == "all":
        call(KL.erk_reverse_large, rhs, vj, diag, tab, states, steps_t, steps_h, 0, N, gsave,
             save_after, lam, pbar, kbar, fuse_lin)
        return 0
    u0 = np.ascontiguousarray(u0, dtype=np.float64)
    if store is None:
        C = snapshot_slots(N, checkpoints)
        ops, nre = record_schedule(N, C)
        call(KL.erk_schedule_large, rhs, vj, diag, tab, u0, steps_t, steps_h, ops,
             C, gsave, save_after, lam, pbar, kbar, fuse_lin)
        return nre
    n = u0.size
    s = tab[2].size
    cur = u0.copy()
    buf = np.zeros((1, n))
    ks = np.empty((s, n))
    Ys = np.empty((max(s, 2), n))

    def advance(i0, i1):
        if i1 > i0:
            KL.erk_advance_large(rhs, vj[2], tab, cur, steps_t, steps_h, i0, i1, ks, Ys,
                                 fuse_lin)

    def reverse_step(i):
        buf[0] = cur
        KL.erk_reverse_large(rhs, vj, diag, tab, buf, steps_t, steps_h, i, i + 1, gsave,
                             save_after, lam, pbar, kbar, fuse_lin)

    def restore(i):
        store.drop_above(i)
        cur[:] = store.get(i)

    try:
        return binomial_reverse(N, checkpoints, advance, reverse_step,
                                lambda i: store.put(i, cur), restore)
    finally:
        store.close()
