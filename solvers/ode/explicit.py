"""Explicit Runge-Kutta methods: tableau modules handed to the compiled loop of
:mod:`jitsolve.kernels.cpu.erk`.

A method is a tableau module in :mod:`.tableaus` (data only); this module turns it
into the array tuple the kernel takes, chooses the controller's order and runs one
trajectory (:func:`solve_erk`) or a batch (:func:`solve_erk_ensemble`).

References
----------
Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), II.1-II.6.
"""
import importlib

import numpy as np

from ...kernels.cpu import erk as _erk
from ...kernels.cpu.fastcall import call
from ...kernels.cpu.rhs import zero_f
from .. import workspace
from ..tolerance import tolerance_array

__all__ = ["tableau", "tableau_arrays", "solve_erk", "solve_erk_ensemble", "make_stops",
           "RETCODES"]

#: kernel return code -> ReturnCode name
RETCODES = ("Success", "Terminated", "MaxIters", "DtLessThanMin", "Unstable", "InitialFailure")

_TABS = {}


def tableau(name):
    """The tableau module ``jitsolve.solvers.ode.tableaus.<name>``."""
    return importlib.import_module(f"{__package__}.tableaus.{name}")


def tableau_arrays(name):
    """``(C, A, B, BERR, fsal, BTH, CX, AX, q)`` for the kernel (cached)."""
    if name not in _TABS:
        T = tableau(name)
        s = int(T.STAGES)
        BERR = np.asarray(getattr(T, "BERR", np.zeros(s)), dtype=np.float64)
        emb = getattr(T, "EMBEDDED_ORDER", None)
        q = float(min(T.ORDER, emb) + 1 if emb else T.ORDER)
        CX = np.asarray(getattr(T, "C_EXTRA", np.zeros(0)), dtype=np.float64)
        AX = np.asarray(getattr(T, "A_EXTRA", np.zeros((0, s))), dtype=np.float64)
        if AX.size == 0:
            AX = np.zeros((0, s))
        _TABS[name] = (np.ascontiguousarray(T.C, dtype=np.float64),
                       np.ascontiguousarray(T.A, dtype=np.float64),
                       np.ascontiguousarray(T.B, dtype=np.float64), BERR,
                       bool(T.FSAL), np.ascontiguousarray(T.BTHETA, dtype=np.float64),
                       CX, np.ascontiguousarray(AX), q)
    return _TABS[name]


def _stops_short(t0, t1, tdir, savet):
    """:func:`make_stops` of a short ``savet`` already strictly monotone in the direction
    of integration (as ``solve`` checks it), on Python floats (the same array as the
    general path's sort; ~1 us instead of ~10); None when ``savet`` is not so."""
    v = np.asarray(savet, dtype=np.float64).tolist()
    if not all((b - a) * tdir > 0 for a, b in zip(v, v[1:])):
        return None
    st = [x for x in v if (x - t0) * tdir > 0 and (x - t1) * tdir <= 0]
    if (t1 - t0) * tdir > 0 and (not st or st[-1] != t1):
        st.append(t1)
    return np.array(st, dtype=np.float64)


def make_stops(t0, t1, tstops=None, savet=None):
    """Times the steps must land on: ``tstops`` and ``saveat`` beyond ``t0``, then ``t1``."""
    tdir = 1.0 if t1 >= t0 else -1.0
    if (tstops is None or not len(tstops)) and (savet is None or not len(savet)):
        # only t1 (a gradient's forward, a plain solve): no sort of the parts
        return np.array([t1], dtype=np.float64) if (t1 - t0) * tdir > 0 else np.zeros(0)
    if (tstops is None or not len(tstops)) and len(savet) <= 16:
        st = _stops_short(t0, t1, tdir, savet)
        if st is not None:
            return st
    return _stops_sorted(t0, t1, tdir, tstops, savet)


def _stops_sorted(t0, t1, tdir, tstops, savet):
    """:func:`make_stops` in general: sort the union, keep ``(t0, t1]``."""
    parts = [np.array([t1], dtype=np.float64)]
    for a in (tstops, savet):
        if a is not None and len(a):
            parts.append(np.asarray(a, dtype=np.float64))
    st = np.unique(np.concatenate(parts))
    st = st[(st - t0) * tdir > 0]
    st = st[(st - t1) * tdir <= 0]
    return np.ascontiguousarray(st if tdir > 0 else st[::-1])


def _no_callbacks(p):
    """The kernels' callback tuple without callbacks: None in the function slots and for
    ``has_c`` (not placeholders and False), so the loops compile without the event code
    (:func:`jitsolve.kernels.cpu.erk.event_step`) and calls unbox no function values."""
    return (None, None, None, False, 0, False, None, None, False, p)


def _controller(tab, rtol, atol, adaptive, dt, dtmin, dtmax, maxiters, n):
    q = tab[8]
    # fresh writeable copies: a read-only view would make Numba compile a second version
    rt = tolerance_array(rtol, n)
    at = tolerance_array(atol, n)
    return (rt, at, bool(adaptive), float(dt or 0.0), float(dtmin), float(dtmax), int(maxiters),
            0.7 / q, 0.4 / q, 0.9, 0.2, 10.0)


def solve_erk(name, f, p, u0, t0, t1, *, lin=None, plin=None, rtol=1e-3, atol=1e-6,
              adaptive=True, dt=None, dtmin=0.0, dtmax=np.inf, maxiters=100_000, tstops=None,
              saveat=None, dense=False, callbacks=None, hasf=True, interpolate=False,
              cap=None, pooled=False):
    """Integrate ``du/dt = f(u, p, t) [+ lin(u, plin, t)]`` with the tableau ``name``.

    ``f`` and ``lin`` are cfuncs of the fixed right-hand-side signature; ``saveat``
    None saves every step; ``interpolate`` True: the ``saveat`` times are not stops,
    those inside a step are saved from the method's interpolant (else the steps land on
    them); ``callbacks`` is the kernel's callback tuple (or None);
    ``hasf`` False says that ``f`` is the zero placeholder (a purely linear problem);
    ``cap`` the expected number of steps when every step is saved (the buffers' first
    size; they double past it: None starts at 64).
    Returns a dict of plain arrays (see :func:`jitsolve.kernels.cpu.erk.erk_solve`).

    Fixed steps on a large state (at least ``erk.PARALLEL_N`` entries) without callbacks
    or dense output run in :func:`jitsolve.kernels.cpu.erk_large.erk_fixed` (threaded,
    fused passes; the same states bit for bit).  There, with ``pooled``, the buffer of
    saved states comes from :mod:`~jitsolve.solvers.workspace` and is returned as
    ``"pool"`` (1-D; ``"u"`` is a view of it) for a caller whose states never leave it
    (a store-all gradient) to give back: a buffer of every state is the largest array of
    such a solve, and its first touch cost a 256^2 x 1,000-step gradient ~50 ms of ~200
    (page faults; RESULTS.md, issue 6, thirty-eighth session).
    """
    tab = tableau_arrays(name)
    u0 = np.ascontiguousarray(u0, dtype=np.float64).ravel()
    n = u0.size
    p = np.ascontiguousarray(p if p is not None else np.zeros(0), dtype=np.float64)
    haslin = lin is not None
    rhs = (f, p, lin if haslin else zero_f,
           np.ascontiguousarray(plin if plin is not None else np.zeros(0), dtype=np.float64),
           haslin, np.empty(n))
    every = saveat is None
    savet = np.zeros(0) if every else np.ascontiguousarray(saveat, dtype=np.float64)
    stops = make_stops(float(t0), float(t1), tstops, None if interpolate else savet)
    ctrl = _controller(tab, rtol, atol, adaptive, dt, dtmin, dtmax, maxiters, n)
    cb = callbacks if callbacks is not None else _no_callbacks(p)
    if (not adaptive and not dense and n >= _erk.PARALLEL_N and not cb[2] and not cb[8]
            and (hasf or haslin)):
        from ...kernels.cpu import erk_large
        from ...kernels.cpu.rhs_grid import is_packed_stencil
        rows = (call(erk_large.count_fixed_steps, float(t0), stops, float(dt), int(maxiters)) + 1
                if every else savet.size + 1)
        pool = workspace.take(rows * n) if pooled and every else None
        res = call(erk_large.erk_fixed, rhs, bool(hasf), u0, float(t0), tab, stops, float(dt),
                   every, savet, int(maxiters),
                   np.empty((rows, n)) if pool is None else pool.reshape(rows, n),
                   is_packed_stencil(lin))
    else:
        pool = None
        # every step saved: the buffers start at ``cap`` rows (a hint, e.g. the step count
        # of an earlier solve of the problem) and double past it
        cap = max(64, int(cap or 0)) if every else savet.size + 1
        res = call(_erk.erk_solve, rhs, u0, float(t0), tab, ctrl, stops,
                   (every, savet, bool(dense)), cb, cap)
    (ts, us, nsave, st, sh, nsteps, dus, dks, evt, evu, nev, stats, rc, t, u) = res
    # views, not copies: for a store-all adjoint ``u`` holds every state of a large grid
    return dict(t=ts[:nsave], u=us[:nsave], steps_t=st[:nsteps], steps_h=sh[:nsteps], dense_u=dus[:nsteps] if dense else None,
                dense_k=dks[:nsteps].reshape(nsteps, dks.shape[1] // n, n) if dense else None,
                event_t=evt[:nev].copy(),
                event_u=evu[:nev].copy(), stats=stats, retcode=RETCODES[rc], t_end=t,
                u_end=u, pool=pool)


#: ensembles from this many trajectories run in lockstep (kernels.cpu.erk_lockstep) where
#: they can: without callbacks, ``tstops`` or a linear part, on small states
LOCKSTEP_MIN = 64
#: largest state the lockstep kernel takes (its work arrays are stages x lanes x n)
LOCKSTEP_MAX_N = 32
#: trajectories from which a lockstep ensemble compiles the batch form of ``f`` (about
#: 0.3-0.5 s per user function and process, once) to save ~8 ns per stage and trajectory
#: (Lorenz-63: about 0.9 ns per lane and stage in SIMD loops; the row form was 1.65 ns)
BATCH_MIN_TRAJ = 4096


def _use_lockstep(N, n, lin, tstops, cb, stops, batch):
    """Whether an ensemble runs in :func:`jitsolve.kernels.cpu.erk_lockstep.erk_lockstep`."""
    return (batch is not None and N >= LOCKSTEP_MIN and n <= LOCKSTEP_MAX_N and lin is None
            and stops.size > 0 and (tstops is None or len(tstops) == 0) and not cb[2]
            and not cb[8])


def solve_erk_ensemble(name, f, u0s, ps, t0, t1, savet, *, lin=None, plin=None, rtol=1e-3,
                       atol=1e-6, adaptive=True, dt=None, dtmin=0.0, dtmax=np.inf,
                       maxiters=100_000, tstops=None, callbacks=None, batch=None,
                       interpolate=False):
    """``N`` trajectories (rows of ``u0s`` and ``ps``) in one parallel kernel, each with its
    own step sizes, saved at the common times ``savet``.  Returns ``(u (N, nt, n),
    retcodes (N,) of names, stats (N, 5))``.

    ``interpolate`` as in :func:`solve_erk`: True, the ``savet`` times are not stops and
    those inside a trajectory's step are saved from its interpolant, so each trajectory
    is bit for bit ``solve_erk(..., saveat=savet, interpolate=True)`` of its own
    ``u0``/``p``; False, every trajectory steps onto them.

    Large ensembles without callbacks, ``tstops`` or a linear part run in lockstep
    (:mod:`jitsolve.kernels.cpu.erk_lockstep`: the same results bit for bit, many
    trajectories per thread); ``batch = (make, placeholder)`` supplies the batch form of
    ``f`` for it (``make()`` compiles it, called only from ``BATCH_MIN_TRAJ``
    trajectories, None where ``f`` has none; otherwise the lockstep kernel calls ``f``
    once per lane and stage); without ``batch`` every ensemble runs in ``erk_ensemble``.
    """
    tab = tableau_arrays(name)
    # writeable C copies where needed: a read-only row (a broadcast p, a frozen user
    # array) does not match the cfunc signature of the user's function
    u0s = np.require(u0s, dtype=np.float64, requirements=("C", "W"))
    ps = np.require(ps, dtype=np.float64, requirements=("C", "W"))
    N, n = u0s.shape
    savet = np.ascontiguousarray(savet, dtype=np.float64)
    stops = make_stops(float(t0), float(t1), tstops, None if interpolate else savet)
    ctrl = _controller(tab, rtol, atol, adaptive, dt, dtmin, dtmax, maxiters, n)
    cb = callbacks if callbacks is not None else _no_callbacks(np.zeros(0))
    haslin = lin is not None
    out = np.empty((N, savet.size, n))
    rcs = np.zeros(N, np.int64)
    stats = np.zeros((N, 5), np.int64)
    if _use_lockstep(N, n, lin, tstops, cb, stops, batch):
        from ...kernels.cpu import erk_lockstep as _els
        make, placeholder = batch
        fb = make() if N >= BATCH_MIN_TRAJ else None
        batched = fb is not None
        fb = fb if batched else placeholder
        call(_els.erk_lockstep, f, fb, batched, u0s, ps, float(t0), tab, ctrl, stops, savet,
             _els.LANES, out, rcs, stats)
        return out, np.asarray(RETCODES)[rcs], stats
    call(_erk.erk_ensemble, f, lin if haslin else zero_f,
                      np.ascontiguousarray(plin if plin is not None else np.zeros(0)), haslin,
                      u0s, ps, float(t0), tab, ctrl, stops, savet, cb, out, rcs, stats)
    return out, np.asarray(RETCODES)[rcs], stats
