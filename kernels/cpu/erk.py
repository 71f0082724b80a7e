"""Explicit Runge-Kutta integration loops driven by tableau arrays (CPU, Numba).

One compiled function runs the whole integration (every step, step-size control,
saving, events); the method is data (``C, A, B, BERR`` and the dense-output weights),
the right-hand side a tuple of first-class functions (:mod:`.rhs`).  So one compiled
loop, cached on disk, serves every explicit method and every user function.

Arguments are packed in tuples:

``tab = (C, A, B, BERR, fsal, BTH, CX, AX, q)``
    Butcher tableau; ``BERR = B - Bhat``; ``BTH[i, j]`` the coefficient of
    ``theta^(j+1)`` in the dense-output weight ``b_i(theta)``; ``CX, AX`` the extra
    stages some interpolants need (Verner), computed only for dense output and events;
    ``q`` the order the controller uses (lowest order of the pair + 1).
``ctrl = (rtol, atol, adaptive, dt, dtmin, dtmax, maxiters, beta1, beta2, safety, qmin, qmax)``
``stops``
    times the steps land on exactly, in the direction of integration, ending at ``t1``
    (``tstops``, ``saveat`` times, and ``t1``).
``save = (every, savet, dense)``
    ``every``: save the initial point and every step; else save exactly at ``savet``:
    a time that is a step's end saves that state, one strictly inside an accepted step
    saves the method's interpolant there (:func:`dense_eval` with that step's stages,
    the extra ones included: Hairer-Nørsett-Wanner I, II.6).  Which of them are stops is
    the caller's choice (all of them: no interpolated value).  ``dense``: keep each
    step's stages for interpolation.
``cb = (ccond, caffect, has_c, c_terminate, c_direction, has_caffect, dcond, daffect, has_d, cbp)``
    one continuous callback (event located by root finding on the dense output, then the
    step is redone to land on it exactly) and one discrete callback (checked after each
    step); ``cbp`` the parameters handed to them.  Absent functions are None, and so is
    ``has_c`` without a continuous callback: the event code then compiles to nothing
    (:func:`event_step`, :func:`event_search`, :func:`cond_value`, :func:`apply_affect`).

Return codes: 0 Success, 1 Terminated, 2 MaxIters, 3 DtLessThanMin, 4 Unstable,
5 InitialFailure.

References
----------
Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), II.4 (step control, initial step),
II.6 (dense output); Hairer, Wanner, *Solving ODEs II* (1996), IV.2 (PI control);
Shampine, Thompson, *Event location for ODEs* (2000) for the Illinois root finder.
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .alloc import empty1, empty2, empty_rows, zeros1, zeros1_int, zeros2
from .borrow import borrow, keep_alive
from .rhs import eval_rhs
from .stepcontrol import accepted_step, error_norm, initial_dt, pi_factor, reject_factor

__all__ = ["erk_solve", "erk_ensemble", "rk_step", "borrow_tab", "find_event", "event_landing",
           "root_state", "land_past_root", "event_step", "event_search", "cond_value",
           "apply_affect", "dense_eval", "dense_weights", "LAND_RTOL", "RC_SUCCESS",
           "RC_TERMINATED", "RC_MAXITERS", "RC_DTMIN", "RC_UNSTABLE", "RC_INITIAL"]

RC_SUCCESS, RC_TERMINATED, RC_MAXITERS, RC_DTMIN, RC_UNSTABLE, RC_INITIAL = 0, 1, 2, 3, 4, 5

# states at least this large get their vector updates split across threads
PARALLEL_N = 32768
#: a step lands on the next stop when it is at most this much (relative) short of it: ``t``
#: is a rounded sum of the steps, 3.3e-10 of ``dt`` off after 4,000 steps of 0.001 (a
#: tolerance of 1e-10 left a last step of 3.3e-13, one state saved twice at "4.0"); the
#: sum's error grows at most as ``N^2 eps / 2`` of ``dt``: 1e-7 covers 20,000 steps at the
#: worst and far more in practice
LAND_RTOL = 1e-7
# interpolant samples per step when looking for a sign change of an event condition
# (SciML's ``interp_points`` default, 10: with 4, two of six roots of sin(20 t) inside
# one long step were missed)
NSAMPLE = 10


@njit(inline="always", cache=False)
def borrow_tab(tab):
    """``tab`` with its arrays borrowed (:mod:`.borrow`)."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    return (borrow(C), borrow(A), borrow(B), borrow(BERR), fsal, borrow(BTH), borrow(CX),
            borrow(AX), q)


@njit(parallel=True, cache=False)
def _combine_par(out, u, ks, coef, nst, h):
    n = u.size
    for i in prange(n):
        acc = 0.0
        for j in range(nst):
            acc += coef[j] * ks[j, i]
        out[i] = u[i] + h * acc


@njit(inline="always", cache=False)
def combine_serial(out, u, ks, coef, nst, h):
    """``out = u + h * sum_{j < nst} coef[j] * ks[j]``, one thread (small states)."""
    n = u.size
    for i in range(n):
        acc = 0.0
        for j in range(nst):
            acc += coef[j] * ks[j, i]
        out[i] = u[i] + h * acc


@njit(cache=False)
def combine(out, u, ks, coef, nst, h):
    """``out = u + h * sum_{j < nst} coef[j] * ks[j]``; threads share large states."""
    if u.size >= PARALLEL_N:
        _combine_par(out, u, ks, coef, nst, h)
    else:
        combine_serial(out, u, ks, coef, nst, h)


@njit(inline="always", cache=False)
def rk_step(f, p, lin, plin, haslin, tmp, tab, u, t, h, ks, unew, ytmp, k0_valid):
    """One explicit RK step of signed size ``h`` from ``(t, u)`` into ``unew``.

    ``f .. tmp`` are the members of the right-hand-side tuple (:mod:`.rhs`).
    ``ks[0]`` holds ``f(u, t)`` when ``k0_valid``; on return ``ks[:s]`` hold the stages
    (for an FSAL method ``ks[s-1] = f(unew, t + h)``).  Returns the number of ``f`` calls.
    """
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    s = B.size
    nf = 0
    if not k0_valid:
        eval_rhs(f, p, lin, plin, haslin, tmp, ks[0], u, t)
        nf += 1
    last = s - 1 if fsal else s
    # serial vector updates: a (never taken) call into a parallel kernel here costs small
    # systems ~100 ns per step (measured), more than threads gain on large ones, whose
    # right-hand sides (stencils) are parallel themselves
    for i in range(1, last):
        combine_serial(ytmp, u, ks, A[i], i, h)
        eval_rhs(f, p, lin, plin, haslin, tmp, ks[i], ytmp, t + C[i] * h)
        nf += 1
    combine_serial(unew, u, ks, B, last, h)
    if fsal:
        eval_rhs(f, p, lin, plin, haslin, tmp, ks[s - 1], unew, t + h)
        nf += 1
    return nf


@njit(inline="always", cache=False)
def extra_stages(f, p, lin, plin, haslin, tmp, tab, u, t, h, ks, ytmp):
    """Stages ``s .. s+e-1`` of an interpolant that needs more than the step's stages."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    s = B.size
    for r in range(CX.size):
        combine_serial(ytmp, u, ks, AX[r], s + r, h)
        eval_rhs(f, p, lin, plin, haslin, tmp, ks[s + r], ytmp, t + CX[r] * h)
    return CX.size


#: called (not inlined) where they are off the hot path (the event redo, interpolants with
#: extra stages): each inlined copy adds to the integration loop's compile time
rk_step_call = njit(cache=False)(rk_step.py_func)
extra_stages_call = njit(cache=False)(extra_stages.py_func)


@njit(inline="always", cache=False)
def dense_weights(w, BTH, theta):
    """``w[i] = b_i(theta) = sum_j BTH[i, j] theta^(j+1)``, the dense-output weights."""
    sd, d = BTH.shape
    for i in range(sd):
        acc = 0.0
        th = theta
        for j in range(d):
            acc += BTH[i, j] * th
            th *= theta
        w[i] = acc


# cached although only compiled code calls it: plain arrays, no functions, so a loop
# compiled in a later process loads it (tests/test_kernel_cache.py, PLAIN_CACHED_CALLEES)
@njit(cache=True)
def dense_eval(out, u, ks, BTH, theta, h):
    """``out = u + h * sum_i b_i(theta) ks[i]`` with ``b_i(theta) = sum_j BTH[i, j] theta^(j+1)``."""
    sd = BTH.shape[0]
    w = zeros1(sd)
    dense_weights(w, BTH, theta)
    combine_serial(out, u, ks, w, sd, h)


# The copies below are explicit loops over flat views, not ``b[:n] = a``: a slice
# assignment compiles Numba's shape-mismatch error path (string formatting of the
# shapes), which cost about 4.5 s of every cold compile of the ODE loops.

# cached although only compiled code calls it: plain arrays, no functions, so a loop
# compiled in a later process loads it (tests/test_kernel_cache.py, PLAIN_CACHED_CALLEES)
@njit(cache=True)
def _grow_rows(a, need):
    """2-D ``a`` with at least ``need`` rows (capacity doubled), the rows so far copied.
    The loops' growing buffers are all 1-D or 2-D (the dense-output slopes of a step are
    one flat row), so each loop compiles this once; no reshapes."""
    if need <= a.shape[0]:
        return a
    cap = 2 * a.shape[0]
    if need > cap:
        cap = need
    m = a.shape[1]
    b = empty_rows(a, cap)
    for i in range(a.shape[0]):
        for j in range(m):
            b[i, j] = a[i, j]
    return b


@njit(cache=True)
def _grow(a, need):
    """1-D ``a`` with at least ``need`` entries (capacity doubled), the entries copied."""
    if need <= a.size:
        return a
    cap = 2 * a.size
    if need > cap:
        cap = need
    b = empty_rows(a, cap)
    for i in range(a.size):
        b[i] = a[i]
    return b


@njit(inline="always", cache=False)
def put_row(dst, k, src):
    """``dst[k] = src`` for a 1-D ``src``, as a loop (see :func:`_grow_rows`)."""
    for i in range(src.size):
        dst[k, i] = src[i]


@njit(inline="always", cache=False)
def get_row(dst, src, k):
    """``dst[:] = src[k]`` for a 1-D ``dst``, as a loop (see :func:`_grow_rows`)."""
    for i in range(dst.size):
        dst[i] = src[k, i]


@njit(inline="always", cache=False)
def put_rows(dst, k, src, m):
    """``dst[k] = src[:m].ravel()``: the first ``m`` rows of a 2-D ``src`` into one flat row
    of ``dst``, as loops (see :func:`_grow_rows`)."""
    n = src.shape[1]
    for j in range(m):
        for i in range(n):
            dst[k, j * n + i] = src[j, i]


@njit(cache=False)
def _crossed(g0, g1, direction):
    if direction >= 0 and g0 < 0.0 and g1 >= 0.0:
        return True
    if direction <= 0 and g0 > 0.0 and g1 <= 0.0:
        return True
    return False


@njit(cache=False)
def _locate(cond, cbp, u, t, h, ks, BTH, a, b, ga, gb, work):
    """Root of ``cond`` in ``theta in [a, b]`` on the step's interpolant, by the Illinois
    method (modified regula falsi); returns the end of the final bracket past the root.
    A zero at ``b`` (a root exactly on the step's end: ``t1``, a ``tstops`` time, a fixed
    step's grid) is the root, as in SciML and SUNDIALS."""
    if gb == 0.0:
        return b
    side = 0
    tol = 4.0 * 2.220446049250313e-16 * max(abs(t), abs(t + h), 1.0) / max(abs(h), 1e-300)
    x = 1.0
    for _ in range(200):
        x = (a * gb - b * ga) / (gb - ga)
        if not (x > a and x < b):
            x = 0.5 * (a + b)
        dense_eval(work, u, ks, BTH, x, h)
        gx = cond(work, t + x * h, cbp)
        if gx == 0.0:
            return x
        if (gx > 0.0) == (gb > 0.0):
            b, gb = x, gx
            if side == -1:
                ga *= 0.5
            side = -1
        else:
            a, ga = x, gx
            if side == 1:
                gb *= 0.5
            side = 1
        if b - a <= tol:
            break
    return b


def _inline_unless_none(expr, caller_info, callee_info):
    """Inline a callback slot's call where it holds a function; an empty slot (None) is a
    plain call of a constant function (compiled once; LLVM removes it): inlining the empty
    slots' calls cost the explicit loop's cold compile ~0.6 s (Numba's overload inlining
    pass, which types every inlined body again)."""
    return not isinstance(caller_info.typemap[expr.args[0].name], types.NoneType)


def cond_value(fn, u, t, cbp):
    """``fn(u, t, cbp)``, or 0.0 where the callback slot is empty (``fn`` None: the kernels'
    callback tuple carries None for absent functions, so that a solve without callbacks
    neither unboxes placeholder functions (~4 us each per call) nor compiles calls)."""


@overload(cond_value, jit_options={"cache": False}, inline=_inline_unless_none)
def _cond_value_impl(fn, u, t, cbp):
    if isinstance(fn, types.NoneType):
        def none(fn, u, t, cbp):
            return 0.0
        return none

    def impl(fn, u, t, cbp):
        return fn(u, t, cbp)
    return impl


def apply_affect(fn, u, t, cbp):
    """``fn(u, t, cbp)``, nothing where the slot is empty (see :func:`cond_value`)."""


@overload(apply_affect, jit_options={"cache": False}, inline=_inline_unless_none)
def _apply_affect_impl(fn, u, t, cbp):
    if isinstance(fn, types.NoneType):
        def none(fn, u, t, cbp):
            pass
        return none

    def impl(fn, u, t, cbp):
        fn(u, t, cbp)
    return impl


def event_search(ccond, cbp, c_dir, u, t, h, ks, BTH, g_prev, g_new, just_fired, work, ytmp):
    """:func:`find_event`, or ``(False, 1.0)`` without a continuous callback (``ccond``
    None: nothing compiled)."""


@overload(event_search, jit_options={"cache": False})
def _event_search_impl(ccond, cbp, c_dir, u, t, h, ks, BTH, g_prev, g_new, just_fired, work,
                       ytmp):
    if isinstance(ccond, types.NoneType):
        def none(ccond, cbp, c_dir, u, t, h, ks, BTH, g_prev, g_new, just_fired, work, ytmp):
            return False, 1.0
        return none

    def impl(ccond, cbp, c_dir, u, t, h, ks, BTH, g_prev, g_new, just_fired, work, ytmp):
        return find_event(ccond, cbp, c_dir, u, t, h, ks, BTH, g_prev, g_new, just_fired,
                          work, ytmp)
    return impl


@njit(cache=False)
def find_event(ccond, cbp, c_dir, u, t, h, ks, BTH, g_prev, g_new, just_fired, work, ytmp):
    """The first crossing of the event condition inside the step ``(t, u) -> t + h`` with
    stages ``ks``: the condition sampled at ``NSAMPLE`` points of the interpolant (a step
    can hold two crossings; right after an event the start of the step is the old root,
    so it is skipped), the bracketing interval refined by :func:`_locate`.  Returns
    ``(found, theta)``; ``work`` receives the interpolated state at the root."""
    ta = 0.0
    ga = g_prev
    if just_fired:
        ta = 1e-6
        dense_eval(ytmp, u, ks, BTH, ta, h)
        ga = ccond(ytmp, t + ta * h, cbp)
    for m in range(1, NSAMPLE + 1):
        tb = m / NSAMPLE
        if tb <= ta:
            continue
        if m == NSAMPLE:
            gb = g_new
        else:
            dense_eval(ytmp, u, ks, BTH, tb, h)
            gb = ccond(ytmp, t + tb * h, cbp)
        if _crossed(ga, gb, c_dir):
            return True, _locate(ccond, cbp, u, t, h, ks, BTH, ta, tb, ga, gb, work)
        ta = tb
        ga = gb
    return False, 1.0


@njit(cache=False)
def root_state(u, ks, BTH, theta, h):
    """The interpolated state at ``theta`` of the step (the located root), in a new array:
    taken before the step is redone to end there (see :func:`land_past_root`)."""
    uroot = empty1(u.size)
    dense_eval(uroot, u, ks, BTH, theta, h)
    return uroot


def land_past_root(ccond, cbp, unew, uroot, tnew):
    """:func:`_land_past_root`, or False without a continuous callback (``ccond`` None:
    the stiff loops reach this call under a run-time ``has_c``, so it must type with an
    empty slot; nothing is compiled for it)."""


@overload(land_past_root, jit_options={"cache": False})
def _land_past_root_impl(ccond, cbp, unew, uroot, tnew):
    if isinstance(ccond, types.NoneType):
        def none(ccond, cbp, unew, uroot, tnew):
            return False
        return none

    def impl(ccond, cbp, unew, uroot, tnew):
        return _land_past_root(ccond, cbp, unew, uroot, tnew)
    return impl


@njit(cache=False)
def _land_past_root(ccond, cbp, unew, uroot, tnew):
    """End an event step on the crossed side of the root.

    The step redone to end at the root ``tnew`` is a new Runge-Kutta (or Rosenbrock,
    SDIRK) step: its end differs from the interpolant's root state ``uroot`` by about the
    local error and can lie short of the root, where the condition still has its old
    sign; the next step would then find the same crossing again (two or three events for
    one).  Where the condition at the redone end keeps a sign other than at ``uroot``,
    the end becomes ``uroot``, as SciML and SUNDIALS set the state at a root from the
    interpolant.  Returns True when the end was replaced (derivatives at the end, FSAL,
    must then be recomputed)."""
    g_end = ccond(unew, tnew, cbp)
    g_root = ccond(uroot, tnew, cbp)
    if g_end == 0.0 or ((g_end > 0.0) == (g_root > 0.0) and (g_end < 0.0) == (g_root < 0.0)):
        return False
    for i in range(unew.size):
        unew[i] = uroot[i]
    return True


@njit(inline="always", cache=False)
def event_landing(theta, t, h, tnew, hit_stop):
    """``(h, tnew, hit_stop)`` of the step redone to end on an event at ``theta`` of it."""
    if theta < 1.0:
        return theta * h, t + theta * h, False
    return h, tnew, hit_stop


def event_step(has_c, ccond, cbp, c_dir, f, p, lin, plin, haslin, tmp, tab, u, t, h, ks,
               unew, ytmp, tnew, hit_stop, g_prev, just_fired):
    """The continuous callback's part of an accepted step of :func:`erk_solve`: find the
    first crossing on the step's interpolant (:func:`find_event`) and redo the step to land
    on it (on its crossed side: :func:`land_past_root`).  Returns ``(fired, h, tnew,
    hit_stop, g_prev, just_fired, nf, moved)``, ``moved`` True when the step's end was
    set to the interpolated root state (its slopes then no longer end the step).

    ``has_c`` None (no continuous callback, the usual case) compiles to nothing: the
    sampling, root finding and step redo cost the loop's cold compile ~1.3 s."""


@overload(event_step, jit_options={"cache": False})
def _event_step_impl(has_c, ccond, cbp, c_dir, f, p, lin, plin, haslin, tmp, tab, u, t, h,
                     ks, unew, ytmp, tnew, hit_stop, g_prev, just_fired):
    if isinstance(has_c, types.NoneType):
        def none(has_c, ccond, cbp, c_dir, f, p, lin, plin, haslin, tmp, tab, u, t, h, ks,
                 unew, ytmp, tnew, hit_stop, g_prev, just_fired):
            return False, h, tnew, hit_stop, g_prev, just_fired, 0, False
        return none

    def impl(has_c, ccond, cbp, c_dir, f, p, lin, plin, haslin, tmp, tab, u, t, h, ks, unew,
             ytmp, tnew, hit_stop, g_prev, just_fired):
        fired = False
        moved = False
        nf = 0
        if not has_c:
            return fired, h, tnew, hit_stop, g_prev, just_fired, nf, moved
        BTH = tab[5]
        CX = tab[6]
        g_new = ccond(unew, tnew, cbp)
        if CX.size > 0:
            nf += extra_stages_call(f, p, lin, plin, haslin, tmp, tab, u, t, h, ks, ytmp)
        found, theta = find_event(ccond, cbp, c_dir, u, t, h, ks, BTH, g_prev, g_new,
                                  just_fired, unew, ytmp)
        just_fired = False
        if found:
            uroot = root_state(u, ks, BTH, theta, h)
            h, tnew, hit_stop = event_landing(theta, t, h, tnew, hit_stop)
            nf += rk_step_call(f, p, lin, plin, haslin, tmp, tab, u, t, h, ks, unew, ytmp, True)
            moved = land_past_root(ccond, cbp, unew, uroot, tnew)
            fired = True
        else:
            g_prev = g_new
        return fired, h, tnew, hit_stop, g_prev, just_fired, nf, moved
    return impl


@njit(cache=True)
def erk_solve(rhs, u0, t0, tab, ctrl, stops, save, cb, cap):
    """Integrate from ``(t0, u0)`` to ``stops[-1]``; see the module docstring.

    Returns ``(ts, us, nsave, steps_t, steps_h, nsteps, dus, dks, ev_t, ev_u, nev,
    stats, retcode, t, u)`` where ``steps_t/steps_h`` are the accepted steps (their
    start times and signed sizes), ``dus/dks`` the dense-output data per step (empty
    unless ``save[2]``; row ``i`` of ``dks`` holds step ``i``'s slopes flat, ``(sd, n)``), ``stats = [nf, njac, nsolve, naccept, nreject]``.
    """
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    rtol, atol, adaptive, dt, dtmin, dtmax, maxiters, beta1, beta2, safety, qmin, qmax = ctrl
    every, savet, dense = save
    ccond, caffect, has_c, c_term, c_dir, has_caffect, dcond, daffect, has_d, cbp = cb
    f, p, lin, plin, haslin, tmp = rhs
    n = u0.size
    s = B.size
    ns = s + CX.size
    t1 = stops[-1]
    tdir = 1.0 if t1 >= t0 else -1.0

    u_own = u0.copy()
    unew_own = empty1(n)
    ytmp_own = empty1(n)
    ks_own = zeros2(ns, n)
    stats = zeros1_int(5)
    # the loop works on borrowed references (no reference counting per use: .borrow);
    # the owners stay live to the end (returned, or keep_alive below)
    u, unew, ytmp, ks = borrow(u_own), borrow(unew_own), borrow(ytmp_own), borrow(ks_own)
    p, plin, tmp, rtol, atol = borrow(p), borrow(plin), borrow(tmp), borrow(rtol), borrow(atol)
    tab = borrow_tab(tab)
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab

    cap = max(cap, 2)
    ts = empty1(cap)
    us = empty2(cap, n)
    nsave = 0
    steps_t = empty1(cap)
    steps_h = empty1(cap)
    nsteps = 0
    dcap = cap if dense else 0
    dus = empty2(dcap, n)
    dks = empty2(dcap, BTH.shape[0] * n)    # a step's slopes as one flat row
    ev_t = empty1(4)
    ev_u = empty2(4, n)
    nev = 0

    t = t0
    isave = 0
    if every:
        ts[0] = t0
        put_row(us, 0, u)
        nsave = 1
    elif savet.size > 0 and savet[0] == t0:
        ts[0] = t0
        put_row(us, 0, u)
        nsave = 1
        isave = 1

    eval_rhs(f, p, lin, plin, haslin, tmp, ks[0], u, t)
    stats[0] += 1
    for i in range(n):
        if not np.isfinite(ks[0, i]):
            return (ts, us, nsave, steps_t, steps_h, nsteps, dus, dks, ev_t, ev_u, nev,
                    stats, RC_INITIAL, t, u_own)
    k0_valid = True

    istop = 0
    while istop < stops.size and stops[istop] * tdir <= t0 * tdir:
        istop += 1
    if adaptive:
        if dt > 0.0:
            habs = dt
        else:
            # not below dtmin (OrdinaryDiffEq's rule for the automatic first step)
            habs = max(initial_dt(rhs, u, ks[0], t, tdir, q - 1, atol, rtol, dtmax, unew, ytmp),
                       dtmin)
            stats[0] += 1
    else:
        habs = dt
    habs = min(habs, dtmax)
    err_prev = 1e-4
    after_reject = False
    nonfinite = False
    g_prev = 0.0
    if has_c:
        g_prev = cond_value(ccond, u, t, cbp)
    just_fired = False
    rc = RC_SUCCESS
    niter = 0

    # Arrays grow outside the stepping loop: reassigning them inside it costs reference
    # counting on every step (measured: ~2x the step cost for small systems).
    while True:
        grow = False
        while istop < stops.size:
            if niter >= maxiters:
                rc = RC_MAXITERS
                break
            niter += 1
            if ((every and nsave + 3 > ts.size) or nsteps + 1 > steps_t.size
                    or nev + 2 > ev_t.size or (dense and nsteps + 1 > dus.shape[0])):
                niter -= 1
                grow = True
                break
            stop = stops[istop]
            dist = abs(stop - t)
            land = habs * (1.0 + LAND_RTOL) >= dist   # no sliver steps from rounded sums of dt
            hstep = dist if land else habs
            h = tdir * hstep
            stats[0] += rk_step(f, p, lin, plin, haslin, tmp, tab, u, t, h, ks, unew, ytmp, k0_valid)
            k0_valid = True

            if adaptive:
                for i in range(n):
                    acc = 0.0
                    for j in range(s):
                        acc += BERR[j] * ks[j, i]
                    ytmp[i] = h * acc
                err = error_norm(ytmp, u, unew, atol, rtol)
                if not (err <= 1.0):
                    # rejected (or NaN/Inf: shrink hard)
                    stats[4] += 1
                    nonfinite = not (err < np.inf)
                    habs = hstep * reject_factor(err, beta1, safety, qmin)
                    after_reject = True
                    if habs < dtmin:
                        rc = RC_UNSTABLE if nonfinite else RC_DTMIN
                        break
                    continue
                fac = pi_factor(err, err_prev, beta1, beta2, safety, qmin, 1.0 if after_reject else qmax)
                err_prev = max(err, 1e-4)
                after_reject = False
            else:
                finite = True
                for i in range(n):
                    if not np.isfinite(unew[i]):
                        finite = False
                        break
                if not finite:
                    rc = RC_UNSTABLE
                    break
                fac = 1.0

            tnew = stop if land else t + h
            hit_stop = land

            # ---- continuous callback: locate the event, redo the step to land on it
            fired, h, tnew, hit_stop, g_prev, just_fired, nfe, moved = event_step(
                has_c, ccond, cbp, c_dir, f, p, lin, plin, haslin, tmp, tab, u, t, h, ks, unew,
                ytmp, tnew, hit_stop, g_prev, just_fired)
            stats[0] += nfe

            # ---- accept
            if dense:
                if CX.size > 0:
                    stats[0] += extra_stages_call(f, p, lin, plin, haslin, tmp, tab, u, t, h, ks, ytmp)
                put_row(dus, nsteps, u)
                put_rows(dks, nsteps, ks, BTH.shape[0])
            # save times strictly inside the step (those that are not stops): interpolant
            if not every and isave < savet.size and (tnew - savet[isave]) * tdir > 0.0:
                if CX.size > 0 and not dense:
                    stats[0] += extra_stages_call(f, p, lin, plin, haslin, tmp, tab, u, t, h, ks, ytmp)
                while isave < savet.size and (tnew - savet[isave]) * tdir > 0.0:
                    dense_eval(ytmp, u, ks, BTH, (savet[isave] - t) / h, h)
                    ts[nsave] = savet[isave]
                    put_row(us, nsave, ytmp)
                    nsave += 1
                    isave += 1
            steps_t[nsteps] = t
            steps_h[nsteps] = h
            nsteps += 1
            stats[3] += 1
            for i in range(n):
                u[i] = unew[i]
            t = tnew
            if hit_stop:
                istop += 1
            if fsal:
                for i in range(n):
                    ks[0, i] = ks[s - 1, i]
            else:
                k0_valid = False

            if every:
                ts[nsave] = t
                for i in range(n):
                    us[nsave, i] = u[i]
                nsave += 1
            elif isave < savet.size and t == savet[isave]:
                ts[nsave] = t
                put_row(us, nsave, u)
                nsave += 1
                isave += 1

            if fired:
                ev_t[nev] = t
                put_row(ev_u, nev, u)
                nev += 1
                if moved:
                    k0_valid = False
                if has_caffect:
                    apply_affect(caffect, u, t, cbp)
                    k0_valid = False
                    if every:
                        ts[nsave] = t
                        put_row(us, nsave, u)
                        nsave += 1
                g_prev = cond_value(ccond, u, t, cbp)
                just_fired = True   # a root at the start of the next step is this one
                if c_term:
                    rc = RC_TERMINATED
                    break
            if has_d and cond_value(dcond, u, t, cbp) != 0.0:
                ev_t[nev] = t
                put_row(ev_u, nev, u)
                nev += 1
                apply_affect(daffect, u, t, cbp)
                k0_valid = False
                if every:
                    ts[nsave] = t
                    put_row(us, nsave, u)
                    nsave += 1
                if has_c:
                    g_prev = cond_value(ccond, u, t, cbp)

            if adaptive:
                habs, small = accepted_step(hstep, fac, habs, land, hit_stop, dtmin, dtmax)
                if small and istop < stops.size:
                    rc = RC_DTMIN     # the controller shrinks the steps below dtmin
                    break
            else:
                habs = dt
        if not grow:
            break
        if every and nsave + 3 > ts.size:
            us = _grow_rows(us, 2 * ts.size)
            ts = _grow(ts, 2 * ts.size)
        if nsteps + 1 > steps_t.size:
            steps_h = _grow(steps_h, 2 * steps_t.size)
            steps_t = _grow(steps_t, 2 * steps_t.size)
        if nev + 2 > ev_t.size:
            ev_u = _grow_rows(ev_u, 2 * ev_t.size)
            ev_t = _grow(ev_t, 2 * ev_t.size)
        if dense and nsteps + 1 > dus.shape[0]:
            dus = _grow_rows(dus, 2 * dus.shape[0])
            dks = _grow_rows(dks, 2 * dks.shape[0])
    keep_alive(unew_own)
    keep_alive(ytmp_own)
    keep_alive(ks_own)
    return (ts, us, nsave, steps_t, steps_h, nsteps, dus, dks, ev_t, ev_u, nev, stats, rc, t,
            u_own)


@njit(cache=False)
def put_trajectory(out, i, us, nsave):
    """``out[i, :nsave] = us[:nsave]`` and NaN after: trajectory ``i``'s saves in an
    ensemble's (N, nsave, n) output (a failed trajectory keeps its prefix)."""
    n = out.shape[2]
    for k in range(nsave):
        for j in range(n):
            out[i, k, j] = us[k, j]
    for k in range(nsave, out.shape[1]):
        for j in range(n):
            out[i, k, j] = np.nan


@njit(parallel=True, cache=True)
def erk_ensemble(f, lin, plin, haslin, u0s, ps, t0, tab, ctrl, stops, savet, cb, out, retcodes,
                 stats):
    """Trajectory ``i`` of ``u0s`` (N, n) with parameters ``ps[i]``, one per thread, each
    with its own adaptive steps; states saved at the common times ``savet`` into
    ``out[i]`` (N, nsave, n).  ``stats`` (N, 5), ``retcodes`` (N,)."""
    N = u0s.shape[0]
    n = u0s.shape[1]
    nsv = savet.size
    for i in prange(N):
        rhs = (f, ps[i], lin, plin, haslin, empty1(n))
        cbi = (cb[0], cb[1], cb[2], cb[3], cb[4], cb[5], cb[6], cb[7], cb[8], ps[i])
        # run-time flags, not literals: a literal tuple compiled the loop again beside
        # erk_ensemble_gradient's copy (RESULTS.md, fortieth session)
        res = erk_solve_inner(rhs, u0s[i], t0, tab, ctrl, stops,
                              (np.bool_(False), savet, np.bool_(False)), cbi, nsv)
        put_trajectory(out, i, res[1], res[2])
        retcodes[i] = res[12]
        # put_row: ``stats[i] = res[11]`` would compile NumPy's shape-mismatch message
        # (~1.8 s of a cold compile)
        put_row(stats, i, res[11])


# Uncached twins for compiled callers: a cached function compiled while a callee taking
# first-class functions came from the disk cache is stored broken (tests/test_kernel_cache.py)
erk_solve_inner = njit(cache=False)(erk_solve.py_func)
