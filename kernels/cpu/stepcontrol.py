"""Step-size control shared by every adaptive integrator (ODE and SDE): the weighted
RMS error norm, the PI controller and Hairer's initial step.

References
----------
Hairer, Nørsett, Wanner, *Solving Ordinary Differential Equations I* (2nd ed., 1993),
sec. II.4 (error norm (4.11), initial step size algorithm, p. 169);
Hairer, Wanner, *Solving ODEs II* (1996), sec. IV.2 (PI control, eq. (2.43c));
Gustafsson, *Control-theoretic techniques for stepsize selection* (1991).

The controllers' powers are :mod:`.fastpow`'s (polynomials, no libm call): the factors
differ from ``x ** y`` through libm by about 1e-15 relative, so step sequences can differ
from a libm controller's after many steps, while every caller (single solves, ensembles,
lockstep batches, reverse sweeps) computes the same bits.
"""
import numpy as np
from numba import njit

from .fastpow import exp2_fast, ylog2_fast
from .inlining import llvm_always_inline
from .rhs import eval_rhs

__all__ = ["error_norm", "error_norm_at", "weighted_square", "pi_factor", "reject_factor", "initial_dt",
           "initial_dt_probe", "initial_dt_finish", "accepted_step", "rms_norm", "PI_DEFAULTS"]

#: (safety, qmin, qmax) as in Hairer's dopri5
PI_DEFAULTS = (0.9, 0.2, 10.0)


@njit(inline="always", cache=False)
def error_norm(err, u0, u1, atol, rtol):
    """``sqrt(mean((err_i / (atol_i + rtol_i * max(|u0_i|, |u1_i|)))^2))`` (Hairer (II.4.11))."""
    return error_norm_at(err, u0, u1, 0, err.size, atol, rtol)


@njit(inline="always", cache=False)
def weighted_square(d, sc):
    """``(d / sc)^2``, the error norm's term; a zero scale (``atol_i = 0`` and ``u_i = 0``)
    gives 0 for a zero error and ``inf`` (reject) otherwise, so ``atol = 0`` never divides
    by zero.  Branch-free after inlining: SIMD loops over it vectorise."""
    if sc == 0.0:
        return 0.0 if d == 0.0 else np.inf
    e = d / sc
    return e * e


@njit(inline="always", cache=False)
def error_norm_at(err, u0, u1, off, n, atol, rtol):
    """:func:`error_norm` of the ``n`` entries from ``off`` of flat arrays (one lane of a
    lockstep batch: no array view, whose reference counting would cost more than the norm).
    Zero scales: see :func:`weighted_square`."""
    acc = 0.0
    for i in range(n):
        sc = atol[i] + rtol[i] * max(abs(u0[off + i]), abs(u1[off + i]))
        acc += weighted_square(err[off + i], sc)
    return np.sqrt(acc / max(n, 1))


# cached although only compiled code calls it: plain arrays, no functions, so a loop
# compiled in a later process loads it (tests/test_kernel_cache.py, PLAIN_CACHED_CALLEES)
@njit(cache=True)
def rms_norm(x, u, atol, rtol):
    """Weighted RMS norm of ``x`` with weights ``atol + rtol * |u|`` (the initial step's
    scales); components with a zero weight (``atol_i = 0``, ``u_i = 0``) are left out."""
    n = x.size
    acc = 0.0
    for i in range(n):
        sc = atol[i] + rtol[i] * abs(u[i])
        if sc != 0.0:
            e = x[i] / sc
            acc += e * e
    return np.sqrt(acc / max(n, 1))


# cached although only compiled code calls it (tests/test_kernel_cache.py,
# PLAIN_CACHED_CALLEES), and put in line by LLVM (.inlining), not by Numba, whose
# inlining typed it and its powers again at every loop's cold compile (~0.25 s each)
@njit(cache=True)
def pi_factor(err, err_prev, beta1, beta2, safety, qmin, qmax):
    """Step-size factor of the PI controller after an accepted step:
    ``safety * err^-beta1 * err_prev^beta2`` clipped to ``[qmin, qmax]``.

    With ``k`` the controller's order (lowest order of the pair + 1), Hairer's defaults
    are ``beta1 = 7/(10 k)`` and ``beta2 = 2/(5 k)``.  The powers are one
    ``exp2(beta2 log2(err_prev) - beta1 log2(err))`` (:mod:`.fastpow`: no libm call, no
    branch but the clipping; ``err = 0`` gives ``qmax``, NaN and Inf as ``**`` would).
    """
    llvm_always_inline()
    q = safety * exp2_fast(ylog2_fast(err_prev, beta2) + ylog2_fast(err, -beta1))
    q = min(qmax, max(qmin, q))
    return qmax if err == 0.0 else q


# cached although only compiled code calls it: plain arrays, no functions, so a loop
# compiled in a later process loads it (tests/test_kernel_cache.py, PLAIN_CACHED_CALLEES)
@njit(cache=True)
def reject_factor(err, beta1, safety, qmin):
    """Step-size factor after a rejected step (never grows; NaN errors shrink by ``qmin``)."""
    if not (err < np.inf):   # NaN or Inf: the step blew up
        return qmin
    return min(1.0, max(qmin, safety * exp2_fast(ylog2_fast(err, -beta1))))


@njit(inline="always", cache=False)
def accepted_step(hstep, fac, habs, land, hit_stop, dtmin, dtmax):
    """The step size after an accepted step, and whether the solve must stop there with
    ``DtLessThanMin``.

    ``hstep`` is the size of the step just taken, ``fac`` the controller's factor for it
    (:func:`pi_factor`), ``habs`` the size the controller had proposed for it, ``land``
    whether the step was set to end on a stop (``hstep`` is then the distance, shorter
    than ``habs`` when the step was clamped), ``hit_stop`` whether it ended on one (an
    event can cut it short).  The next step is ``min(hstep fac, dtmax)``, not shorter
    than ``hstep`` after a step that ended on a stop.

    Returns ``(habs_next, too_small)``.  ``too_small``: the controller shrinks the step
    (``fac < 1``) below ``dtmin``, OrdinaryDiffEq's ``DtLessThanMin`` after an accepted
    step (accepted steps that keep shrinking, e.g. towards a finite-time blow-up, must
    not run on for ever; a rejected step below ``dtmin`` is the loops' own test).  A step
    clamped short to land on a stop (``t1``, a ``tstop``, a ``saveat`` time) never
    counts: its proposal reflects the clamp, not the error; neither does a growing one
    (a short step after such a clamp).  The caller ignores it after the last stop.
    """
    hprop = hstep * fac
    hnext = min(hprop, dtmax)
    if hit_stop and hnext < hstep:
        hnext = hstep
    clamped = land and hstep < habs
    return hnext, fac < 1.0 and hprop < dtmin and not clamped


@njit(inline="always", cache=False)
def initial_dt_probe(u0, f0, tdir, atol, rtol, dtmax, u1):
    """First half of :func:`initial_dt`: the trial step ``h0`` and the explicit Euler probe
    ``u1 = u0 + tdir h0 f0`` (written into ``u1``); returns ``(h0, d1)``.  Lockstep
    ensembles call the two halves around one batch evaluation of ``f`` at the probes."""
    d0 = rms_norm(u0, u0, atol, rtol)
    d1 = rms_norm(f0, u0, atol, rtol)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
        if not (h0 > 0.0):
            # d1 overflowed (f0 beyond ~1e154 of the tolerance scales): a tiny trial step;
            # the controller or the loop's checks then end the solve with a retcode
            # (h0 = 0 divided by zero below: ZeroDivisionError out of solve)
            h0 = 1e-6
    h0 = min(h0, dtmax)
    for i in range(u0.size):
        u1[i] = u0[i] + tdir * h0 * f0[i]
    return h0, d1


@njit(inline="always", cache=False)
def initial_dt_finish(u0, f0, f1, h0, d1, order, atol, rtol, dtmax, work):
    """Second half of :func:`initial_dt` from ``f1 = f(u1, t0 + tdir h0)``; ``work`` may be
    ``u1``.  Returns the positive starting step."""
    for i in range(u0.size):
        work[i] = f1[i] - f0[i]
    d2 = rms_norm(work, u0, atol, rtol) / h0
    m = max(d1, d2)
    if not (m < np.inf):
        return h0 * 1e-3
    if m <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / m) ** (1.0 / (order + 1.0))
    return min(100.0 * h0, h1, dtmax)


@njit(cache=True)
def initial_dt(rhs, u0, f0, t0, tdir, order, atol, rtol, dtmax, u1, f1):
    """Hairer's starting step size (HNW I, p. 169): an explicit Euler probe decides the scale.

    ``rhs`` is a right-hand side tuple (:mod:`.rhs`); ``f0 = f(u0, t0)`` is given;
    ``u1`` and ``f1`` are work arrays.  Returns a positive step (the direction is ``tdir``).
    Costs one evaluation of ``f``.
    """
    h0, d1 = initial_dt_probe(u0, f0, tdir, atol, rtol, dtmax, u1)
    f, p, lin, plin, haslin, tmp = rhs
    eval_rhs(f, p, lin, plin, haslin, tmp, f1, u1, t0 + tdir * h0)
    return initial_dt_finish(u0, f0, f1, h0, d1, order, atol, rtol, dtmax, u1)
