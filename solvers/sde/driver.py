"""Drivers: turn validated solve options into the packed arguments of the compiled loops
in ``kernels.cpu.sde`` (step grid, save times, tree depth, step control) and run them.

Inputs here are plain: flat float64 state ``u0``, parameter vector ``p``, first-class
user functions ``f``, ``gv`` (vector g), ``gm`` (matrix g), ``gc`` (complex g for the
Milstein complex step), all cfuncs; unused ones are dummies of the right signature.
"""
import math

import numpy as np

from ...kernels.cpu import sde as K
from ...kernels.cpu import sde_lockstep as KL
from ..tolerance import tolerance_array
from .brownian import DEFAULT_MAXDEPTH, fixed_grid

__all__ = ["Schedule", "schedule", "geometry", "solve_path", "solve_ensemble", "ensemble_times",
           "ensemble_moments", "STEP_CONTROL"]

#: step control of the adaptive methods: safety, qmin, qmax, beta1, beta2 (I control)
STEP_CONTROL = (0.9, 0.2, 5.0, 0.45, 0.0)
_NOISE = {"diagonal": K.DIAGONAL, "scalar": K.SCALAR, "general": K.GENERAL}
#: fixed steps on a dyadic grid draw the Brownian tree in blocks of 2^BLOCK_LEVELS steps
BLOCK_LEVELS = 6


class Schedule:
    """Step grid, save times and tree depth of one solve (shared by an ensemble)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def schedule(tspan, dt, adaptive, saveat):
    """Work out the grid and the Brownian tree it reads.

    Fixed steps: N steps, the grid points ``x_k = k xstep`` (k < N) and ``x_N = xend``
    in the tree's normalised time x = (t - t0) / (tree end - t0), ``xstep = 2^-M`` with
    2^M >= N: the tree spans 2^M steps (:func:`.brownian.fixed_grid`).  Adaptive steps:
    the tree spans [t0, t1].  Also the normalised save times ``xs`` (snapped onto the
    grid) and the tree's leaf depth."""
    t0, t1 = tspan
    span = t1 - t0
    T = abs(span)
    sgn = 1.0 if span >= 0 else -1.0
    S, xend, mdy = T, 1.0, None
    maxdepth = DEFAULT_MAXDEPTH
    if adaptive:
        N, xstep, h0 = 0, 0.0, (dt if dt is not None else T / 100.0)
    else:
        h0 = dt
        N, mdy, S, xend = fixed_grid(T, dt)
        if mdy > K.LEVELS - 2:
            from ...errors import InvalidProblemError
            raise InvalidProblemError(
                f"dt: {dt!r} cuts the span {T!r} into 2^{mdy} steps; the Brownian tree "
                f"resolves at most 2^{K.LEVELS - 2} (a step of at least "
                f"{T * 2.0 ** -(K.LEVELS - 2):.3g})")
        xstep = 2.0 ** -mdy
        maxdepth = max(mdy, DEFAULT_MAXDEPTH)
    span_tree = sgn * S
    on = None
    if saveat is None:
        ts = None
        xs = np.empty(0)
    else:
        if np.ndim(saveat) == 0:
            d = float(saveat)
            k = np.arange(int(math.floor(T / d * (1 + 1e-12))) + 1)
            ts = t0 + np.sign(span) * d * k
            if abs(ts[-1] - t1) > 1e-12 * max(1.0, T):
                ts = np.append(ts, t1)
            else:
                ts[-1] = t1
        else:
            ts = np.asarray(saveat, dtype=np.float64)
        xs = (ts - t0) / span_tree
        at_end = np.abs(ts - t1) <= 1e-14 * max(1.0, abs(t1))
        xs[at_end] = xend
        xs = np.clip(xs, 0.0, xend)
        if not adaptive:
            kk = np.rint(xs / xstep)
            on = ((np.abs(xs - kk * xstep) <= 1e-9 * xstep) & (kk <= N)) | (xs >= xend)
            xs = np.where(on, np.where((kk >= N) | (xs >= xend), xend, kk * xstep), xs)
    # fixed steps with every save time on the grid (the lockstep kernels' domain), and
    # then the fast path of the fixed-step loop
    ongrid = (not adaptive) and (on is None or bool(on.all()))
    mlog = mdy if ongrid else -1
    return Schedule(t0=float(t0), t1=float(t1), T=T, N=N, xstep=xstep, h0=h0, mlog=mlog,
                    ongrid=ongrid, span_tree=float(span_tree), xend=float(xend),
                    maxdepth=int(min(maxdepth, K.LEVELS - 2)), ts=ts,
                    xs=np.ascontiguousarray(xs, dtype=np.float64))


def geometry(sch):
    """``geo = (t0, tree span, xstep, xend)`` of the fixed-step adjoint kernels."""
    return np.array([sch.t0, sch.span_tree, sch.xstep, sch.xend], dtype=np.float64)


def _pack(mod, sch, noise, m, adaptive, atol, rtol, dtmin, maxiters, save_every, strat,
          has_cs, save_noise):
    safety, qmin, qmax, beta1, beta2 = STEP_CONTROL
    fpar = np.array([sch.t0, sch.t0 + sch.span_tree, sch.h0, dtmin or 0.0, sch.xstep, safety,
                     qmin, qmax, beta1, beta2, getattr(mod, "DELTA", 1.0 / 6.0),
                     getattr(mod, "EPS_CS", 1e-30), sch.xend], dtype=np.float64)
    ipar = np.array([mod.METHOD, _NOISE[noise], m, getattr(mod, "ERROR_TERMS", 0),
                     int(adaptive), maxiters, sch.N, sch.maxdepth, int(save_every),
                     int(strat), int(has_cs), int(save_noise), sch.mlog,
                     min(BLOCK_LEVELS, sch.mlog) if sch.mlog > 0 else 0], dtype=np.int64)
    tab = mod.TABLEAU if mod.TABLEAU is not None else np.zeros((1, 11))
    return tab, fpar, ipar


def _lockstep(mod, sch, noise, maxiters):
    """Whether the lockstep EM kernels apply: EM, fixed steps (at most 2^MAX_LEVELS) with
    every save on the grid, diagonal or scalar noise, and enough ``maxiters`` for the
    whole grid."""
    return (mod.METHOD == K.EM and sch.ongrid and 1 <= sch.N <= (1 << KL.MAX_LEVELS)
            and noise in ("diagonal", "scalar") and maxiters >= sch.N)


#: path-steps (paths x steps) from which a lockstep ensemble compiles batch forms of the
#: user functions (about 0.2-0.3 s each per process) to save ~15 ns per path-step
BATCH_MIN_WORK = 1 << 22


def _batch_funcs(batch, work):
    """(fb, gb, batched) for the lockstep kernels: the caller's batch cfuncs when the
    work is large enough, else its placeholders."""
    make, dummies = batch
    if work >= BATCH_MIN_WORK:
        fb, gb = make()
        return fb, gb, True
    return dummies[0], dummies[1], False


def _grid_indices(sch):
    """Grid index of every save time (all on the grid: the lockstep condition); every
    grid point when there are no save times (save every step)."""
    if sch.xs.size == 0:
        return np.arange(sch.N + 1, dtype=np.int64)
    k = np.rint(sch.xs / sch.xstep).astype(np.int64)
    k[sch.xs >= sch.xend] = sch.N
    return np.ascontiguousarray(np.minimum(k, sch.N))


def solve_path(mod, funcs, u0, p, *, tspan, dt, adaptive, rtol, atol, dtmin, maxiters, seed,
               trajectory=0, saveat=None, save_noise=False, noise="diagonal", m=1,
               strat=False, has_cs=False):
    """One path.  Returns (t, u (nt, n), W (nt, m) or None, retcode int, stats dict)."""
    f, gv, gm, gc = funcs
    n = u0.size
    adaptive = bool(adaptive and mod.ADAPTIVE)
    sch = schedule(tspan, dt, adaptive, saveat)
    save_every = saveat is None
    tab, fpar, ipar = _pack(mod, sch, noise, m, adaptive, atol, rtol, dtmin, maxiters,
                            save_every, strat, has_cs, save_noise)
    if save_every:
        # never more rows than maxiters steps can fill (a fixed step's grid of 10^10
        # points asked for 75 GiB before the loop stopped at maxiters)
        cap = (min(sch.N, maxiters) if not adaptive else min(maxiters, 1 << 14)) + 1
    else:
        cap = sch.xs.size + 1       # the last row for the state a failed path stopped at
    a, r = tolerance_array(atol, n), tolerance_array(rtol, n)
    u0 = np.ascontiguousarray(u0, dtype=np.float64)
    p = np.ascontiguousarray(p, dtype=np.float64)
    while True:
        out_t = np.empty(cap)
        out_t[-1] = np.nan
        out_u = np.empty((cap, n))
        out_W = np.empty((cap, m) if save_noise else (1, 1))
        st = np.zeros(6, dtype=np.int64)
        K.integrate_path(f, gv, gm, gc, tab, u0, p, a, r, sch.xs, fpar, ipar,
                         np.uint64(seed), np.uint64(trajectory), out_t, out_u, out_W, st)
        if st[1] == K.FULL and cap < maxiters + 1:
            cap = min(2 * cap, maxiters + 1)
            continue
        break
    k = int(st[0])
    t = out_t[:k].copy() if save_every else sch.ts[:k].copy()
    if save_every and not adaptive and k == sch.N + 1:
        t[-1] = sch.t1                      # t0 + (tree span) xend: t1 up to rounding
    u = out_u[:k].copy()
    W = out_W[:k].copy() if save_noise else None
    if not save_every and not np.isnan(out_t[-1]):
        # failed between save times: end with the state it stopped at (as ODE solves)
        t = np.append(t, out_t[-1])
        u = np.concatenate([u, out_u[-1:]])
        W = np.concatenate([W, out_W[-1:]]) if save_noise else None
    stats = dict(nf=int(st[2]), ng=int(st[3]), naccept=int(st[4]), nreject=int(st[5]))
    rc = int(st[1]) if st[1] != K.FULL else K.MAXITERS
    return t, u, W, rc, stats


def _save_times(sch, save_every):
    """The times an ensemble saves at: every grid point (``save_every``) or ``sch.ts``."""
    if not save_every:
        return sch.ts.copy()
    t = sch.t0 + sch.span_tree * np.minimum(np.arange(sch.N + 1) * sch.xstep, sch.xend)
    t[-1] = sch.t1
    return t


def ensemble_times(tspan, dt, adaptive, saveat):
    """The times :func:`solve_ensemble` saves at: ``saveat``, else every point of a fixed
    step grid, else (adaptive steps) ``(t0, t1)``.  A path solved with these as its
    ``saveat`` (:func:`solve_path`) takes the same steps as without them and returns
    exactly these times (a prefix when it fails)."""
    if saveat is None and adaptive:
        saveat = np.array([tspan[0], tspan[1]], dtype=np.float64)
    return _save_times(schedule(tspan, dt, adaptive, saveat), saveat is None)


def solve_ensemble(mod, funcs, u0s, ps, *, tspan, dt, adaptive, rtol, atol, dtmin, maxiters,
                   seed, trajectories, saveat=None, save_noise=False, noise="diagonal", m=1,
                   strat=False, has_cs=False, batch=None):
    """N paths in one parallel kernel (path i keyed by trajectory i).  Adaptive ensembles
    without ``saveat`` save at (t0, t1).  ``batch``: ``(make, (fb0, gb0))``, a function
    returning the batch cfuncs of f and g and placeholders of their signature, for the
    lockstep EM kernels (None: per-path calls only).  Returns (t, u (N, nt, n), W or
    None, retcodes (N,) ints, stats (N, 6))."""
    f, gv, gm, gc = funcs
    n = u0s.shape[1]
    adaptive = bool(adaptive and mod.ADAPTIVE)
    if saveat is None and adaptive:
        saveat = np.array([tspan[0], tspan[1]], dtype=np.float64)
    sch = schedule(tspan, dt, adaptive, saveat)
    save_every = saveat is None
    tab, fpar, ipar = _pack(mod, sch, noise, m, adaptive, atol, rtol, dtmin, maxiters,
                            save_every, strat, has_cs, save_noise)
    cap = sch.N + 1 if save_every else max(sch.xs.size, 1)
    N = int(trajectories)
    out_u = np.empty((N, cap, n))
    out_W = np.empty((N, cap, m) if save_noise else (N, 1, 1))
    st = np.zeros((N, 6), dtype=np.int64)
    u0s = np.require(u0s, np.float64, ("C", "W"))    # writable (a broadcast view is not)
    ps = np.require(ps, np.float64, ("C", "W"))
    if not adaptive and batch is not None and _lockstep(mod, sch, noise, maxiters):
        fb, gb, batched = _batch_funcs(batch, N * sch.N)
        KL.em_lockstep_paths(f, gv, fb, gb, batched, u0s, ps, fpar, ipar, np.uint64(seed),
                             np.uint64(0), _grid_indices(sch), bool(save_every), out_u, out_W,
                             st)
    else:
        K.ensemble_paths(f, gv, gm, gc, tab, u0s, ps, tolerance_array(atol, n),
                         tolerance_array(rtol, n), sch.xs,
                         fpar, ipar, np.uint64(seed), np.uint64(0), out_u, out_W, st)
    return _save_times(sch, save_every), out_u, (out_W if save_noise else None), st[:, 1].copy(), st


def ensemble_moments(mod, funcs, u0s, ps, *, tspan, dt, adaptive, rtol, atol, dtmin, maxiters,
                     seed, trajectories, saveat=None, noise="diagonal", m=1, strat=False,
                     has_cs=False, block=256, batch=None):
    """Streaming mean and variance over N paths at the save times (default (t0, t1)),
    without storing paths (``batch`` as in :func:`solve_ensemble`).  Returns (t, mean
    (nt, n), var (nt, n), counts dict)."""
    f, gv, gm, gc = funcs
    n = u0s.shape[1]
    adaptive = bool(adaptive and mod.ADAPTIVE)
    if saveat is None:
        saveat = np.array([tspan[0], tspan[1]], dtype=np.float64)
    sch = schedule(tspan, dt, adaptive, saveat)
    tab, fpar, ipar = _pack(mod, sch, noise, m, adaptive, atol, rtol, dtmin, maxiters,
                            False, strat, has_cs, False)
    nt = sch.xs.size
    mean = np.empty((nt, n))
    var = np.empty((nt, n))
    counts = np.zeros(5, dtype=np.int64)
    u0s = np.require(u0s, np.float64, ("C", "W"))    # writable (a broadcast view is not)
    ps = np.require(ps, np.float64, ("C", "W"))
    if not adaptive and batch is not None and _lockstep(mod, sch, noise, maxiters):
        fb, gb, batched = _batch_funcs(batch, int(trajectories) * sch.N)
        KL.em_lockstep_moments(f, gv, fb, gb, batched, u0s, ps, fpar, ipar, np.uint64(seed),
                               np.uint64(0), _grid_indices(sch), int(trajectories),
                               int(block), mean, var, counts)
    else:
        K.ensemble_moments(f, gv, gm, gc, tab, u0s, ps, tolerance_array(atol, n),
                           tolerance_array(rtol, n), sch.xs,
                           fpar, ipar, np.uint64(seed), np.uint64(0), int(trajectories),
                           int(block), mean, var, counts)
    c = dict(used=int(counts[0]), failed=int(counts[1]), nf=int(counts[2]),
             naccept=int(counts[3]), nreject=int(counts[4]))
    return sch.ts.copy(), mean, var, c
