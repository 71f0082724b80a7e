"""ODE algorithms (explicit Runge-Kutta), callbacks, and their ``solve`` registrations.

Each algorithm names a tableau module in ``jitsolve.solvers.ode.tableaus``; one compiled
loop (``jitsolve.kernels.cpu.erk``) integrates every method and every user function.
Stiff methods live in :mod:`jitsolve.ode_stiff`.

Conventions (after DifferentialEquations.jl): ``saveat=None`` saves every step and keeps
the method's interpolant for ``sol(t)``; ``saveat`` times do not constrain the steps of
the methods with an interpolant (Tsit5, DP5, Vern7; states below ``erk.PARALLEL_N``
entries): a time inside a step is saved from that step's interpolant, so saving at many
times costs no extra steps (:func:`interpolates_saveat`); ensembles follow the same rule,
each trajectory bit for bit its own single solve.  Euler and RK4 and large states step
onto their ``saveat`` times (saved values are then step ends).
``tstops`` are hit exactly always.
"""
import weakref

import numpy as np

from .algorithms import ODEAlgorithm, document
from .errors import CompileError, InvalidProblemError, UnsupportedAlgorithmError
from .functions import compile_batch_cfunc, compile_cfunc, probe_user_function
from .log import get_logger
from .problems import EnsembleProblem, ODEProblem, SplitODEProblem, callback_list
from .rhs import problem_rhs
from .solution import DenseInterpolant, EnsembleSolution, ODESolution, SolverStats
from .solve import register
from .validate import check_dtmin

_log = get_logger("compile")

__all__ = ["ExplicitRK", "Euler", "RK4", "Tsit5", "DP5", "Vern7", "ContinuousCallback",
           "DiscreteCallback", "ode_options", "ode_solution", "saveat_times",
           "interpolates_saveat"]


# ------------------------------------------------------------------------- callbacks
class ContinuousCallback:
    """An event ``condition(u, t, p) = 0`` located by root finding on the dense output.

    Parameters
    ----------
    condition : callable
        ``condition(u, t, p) -> float``; the event is a sign change within a step.
    affect : callable, optional
        ``affect(u, t, p)`` modifies the state ``u`` in place at the event.
    terminate : bool
        Stop the solve at the event (``ReturnCode.Terminated``).
    direction : {0, 1, -1}
        Only up-crossings (1), down-crossings (-1), or both (0).

    The event time is found by the Illinois method on the step's interpolant, then the
    step is redone to end exactly there (so the state at the event is a real step of the
    method, not an interpolated value).  Events go to ``sol.events`` as ``(t, u)``.

    References
    ----------
    Shampine, Thompson, *Event location for ordinary differential equations* (2000).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> def half(u, t, p):
    ...     return u[0] - 0.5
    >>> cb = js.ContinuousCallback(half, terminate=True)
    >>> sol = js.solve(prob, js.Tsit5(), callback=cb, rtol=1e-8, atol=1e-10)
    >>> sol.retcode, round(float(sol.t[-1]), 8), len(sol.events)     # t = ln(2) / 2
    (<ReturnCode.Terminated: 'Terminated'>, 0.34657359, 1)

    Cost
    ----
    Per step: four evaluations of ``condition`` (at the step's end and at three
    interior points of the interpolant, each an interpolant evaluation of ``n``
    entries), plus the extra interpolation stages of methods that have them (Vern7).
    Per event: Illinois iterations on the interpolant (one interpolant evaluation and
    one ``condition`` call each, to a relative bracket of a few ulps of ``t``), one
    redone step (``s`` evaluations of f), ``affect`` once and ``condition`` once more.
    """

    def __init__(self, condition, affect=None, terminate=False, direction=0):
        if direction not in (-1, 0, 1):
            raise InvalidProblemError(f"direction: expected -1, 0 or 1, got {direction!r}")
        self.condition = compile_cfunc(condition, "condition", "condition", nargs=3)
        self.affect = None if affect is None else compile_cfunc(affect, "affect", "affect", nargs=3)
        self._raw = {"condition": condition, "affect": affect}   # for the probe (_callback_tuple)
        self.terminate = bool(terminate)
        self.direction = int(direction)


class DiscreteCallback:
    """``affect(u, t, p)`` applied after every step where ``condition(u, t, p)`` is nonzero.

    The state at the end of such a step, before ``affect`` changes it, is recorded in
    ``sol.events`` as ``(t, u)``; the next step starts from the changed state.  When
    every step is saved (``saveat=None``), ``sol`` holds both states at that ``t``
    (before, then after the change).

    References
    ----------
    Rackauckas, Nie, *DifferentialEquations.jl* (2017), the callback interface
    (``DiscreteCallback``) followed here.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> def low(u, t, p):
    ...     return 1.0 if u[0] < 0.5 else 0.0
    >>> def reset(u, t, p):
    ...     u[0] = 1.0
    >>> sol = js.solve(prob, js.Euler(), dt=0.125, callback=js.DiscreteCallback(low, reset))
    >>> [float(t) for t, u in sol.events], sol.u[-1]
    ([0.375, 0.75], array([0.5625]))

    Gradients through it: ``js.DiscreteAdjoint()`` or ``js.ForwardSensitivity()`` with
    the explicit methods (:mod:`jitsolve.callback_gradient`: ``affect`` then also
    compiled for complex ``u`` and ``p``; it must be complex-analytic -- no ``abs``,
    ``.real`` -- and change ``u`` only, both checked), or ``js.FiniteDifference()``.

    Cost
    ----
    Per step: one call of ``condition``; when it fires, one call of ``affect`` and, for
    first-same-as-last methods, one extra evaluation of f at the start of the next step
    (the reused slope is no longer valid).
    """

    def __init__(self, condition, affect):
        self.condition = compile_cfunc(condition, "condition", "condition", nargs=3)
        self.affect = compile_cfunc(affect, "affect", "affect", nargs=3)
        self._raw = {"condition": condition, "affect": affect}   # for the probe (_callback_tuple)


def _callback_tuple(callback, p, u0=None, t0=0.0):
    """The kernels' callback tuple (see :mod:`jitsolve.kernels.cpu.erk`); with ``u0``, each
    callback function is first probed once at ``(u0, t0, p)`` for indexing out of bounds
    (:func:`jitsolve.functions.probe_user_function`)."""
    cbs = callback_list(callback)
    cc = [c for c in cbs if isinstance(c, ContinuousCallback)]
    dc = [c for c in cbs if isinstance(c, DiscreteCallback)]
    if len(cc) + len(dc) != len(cbs):
        raise InvalidProblemError("callback: ODE solves take js.ContinuousCallback / "
                                  "js.DiscreteCallback objects (or a list of them)")
    if len(cc) > 1 or len(dc) > 1:
        raise UnsupportedAlgorithmError("callback: at most one continuous and one discrete "
                                        "callback per solve in this version (a problem's own "
                                        "ODEProblem(..., callback=) counts with solve's)")
    c = cc[0] if cc else None
    d = dc[0] if dc else None
    if u0 is not None:
        for cb in (c, d):
            for name, fn in (cb._raw.items() if cb is not None else ()):
                if fn is not None:
                    probe_user_function(fn, name, u0, p, t0)
    # None for what is absent: no event code compiled, no function value unboxed
    # (kernels.cpu.erk.event_step, cond_value, apply_affect)
    return (c.condition if c else None,
            c.affect if (c and c.affect) else None,
            True if c is not None else None,
            bool(c and c.terminate), c.direction if c else 0,
            bool(c and c.affect), d.condition if d else None,
            d.affect if d else None, d is not None, p)


# ------------------------------------------------------------------------- algorithms
class ExplicitRK(ODEAlgorithm):
    """Base of explicit Runge-Kutta methods; ``tableau`` names the coefficient module.

    The concrete methods (``Euler``, ``RK4``, ``Tsit5``, ``DP5``, ``Vern7``) share one
    compiled loop driven by the tableau's arrays; PI step control when ``adaptive``.

    References
    ----------
    Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), II.1-II.6 (Butcher tableaus,
    embedded pairs, dense output) and II.4 (step-size control).

    Examples
    --------
    >>> import jitsolve as js
    >>> [type(a).__name__ for a in (js.RK4(), js.Tsit5()) if isinstance(a, js.ExplicitRK)]
    ['RK4', 'Tsit5']
    >>> js.Tsit5().tableau, js.Tsit5().order, js.Tsit5().adaptive
    ('tsit5', 5, True)

    Cost
    ----
    Per step of an ``s``-stage tableau: ``s`` evaluations of f (``s - 1`` for
    first-same-as-last pairs), ``s`` more per rejected step, and ``s + O(1)`` state
    vectors of work arrays; see each method for its numbers.
    """

    tableau = None

    def _tab(self):
        from .solvers.ode.explicit import tableau
        return tableau(self.tableau)


class Euler(ExplicitRK):
    """Forward Euler (order 1, fixed steps: pass ``dt``).

    References
    ----------
    Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), I.7.
    """
    tableau, order, adaptive, dense = "euler", 1, False, False


class RK4(ExplicitRK):
    """The classical 4th-order Runge-Kutta method (fixed steps: pass ``dt``), with its
    3rd-order continuous extension.

    References
    ----------
    Kutta (1901); Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), II.1 and II.6.
    """
    tableau, order, adaptive, dense = "rk4", 4, False, True


class Tsit5(ExplicitRK):
    """Tsitouras' 5(4) pair with its free 4th-order interpolant; the default non-stiff method.

    References
    ----------
    Tsitouras, *Runge-Kutta pairs of order 5(4) satisfying only the first column
    simplifying assumption*, Comput. Math. Appl. 62 (2011).
    """
    tableau, order, adaptive, dense = "tsit5", 5, True, True


class DP5(ExplicitRK):
    """Dormand-Prince 5(4) (``dopri5``, SciPy's RK45) with Shampine's dense output.

    References
    ----------
    Dormand, Prince, J. Comput. Appl. Math. 6 (1980); Hairer, Nørsett, Wanner,
    *Solving ODEs I* (1993), II.5-II.6.
    """
    tableau, order, adaptive, dense = "dp5", 5, True, True


class Vern7(ExplicitRK):
    """Verner's "most efficient" 7(6) pair with its interpolant (six extra stages per
    step, evaluated only when dense output or an event needs them).

    References
    ----------
    Verner, *Numerically optimal Runge-Kutta pairs with interpolants*, Numer. Algorithms
    53 (2010).
    """
    tableau, order, adaptive, dense = "vern7", 7, True, True


# ------------------------------------------------------------------------- shared plumbing
def saveat_times(tspan, saveat):
    """``saveat`` as an array of times (None stays None; an interval includes both ends)."""
    if saveat is None:
        return None
    if np.ndim(saveat) == 0:
        t0, t1 = tspan
        d = float(saveat) * (1.0 if t1 >= t0 else -1.0)
        m = int(np.floor((t1 - t0) / d * (1 + 1e-12)))
        ts = t0 + d * np.arange(m + 1)
        if abs(ts[-1] - t1) > 1e-12 * max(abs(t1), 1.0):
            ts = np.append(ts, t1)
        else:
            ts[-1] = t1
        return ts
    return np.asarray(saveat, dtype=np.float64)


def ode_options(prob, alg, o):
    """Check and convert ``solve``'s options for a compiled ODE loop."""
    if o["backend"] != "cpu":   # pragma: no cover - solve() already refuses others
        raise UnsupportedAlgorithmError(f"backend: {o['backend']!r}")
    if np.iscomplexobj(prob.u0):
        raise UnsupportedAlgorithmError("u0: complex ODE states are not supported by the "
                                        "integrators yet (split into real and imaginary parts)")
    t0, t1 = prob.tspan
    if not getattr(alg, "adaptive", False) or not o["adaptive"]:
        if o["dt"] is None:
            raise InvalidProblemError(
                f"dt: {type(alg).__name__} with fixed steps needs a step size dt"
                + ("" if getattr(alg, "adaptive", False) else " (it has no error estimate)"))
        adaptive = False
    else:
        adaptive = True
    check_dtmin(o["dtmin"], prob.tspan, o["dt"], adaptive)
    span = abs(t1 - t0)
    dtmin = o["dtmin"] if o["dtmin"] is not None else 16 * np.finfo(float).eps * max(abs(t0), abs(t1), span)
    savet = saveat_times(prob.tspan, o["saveat"])
    return dict(adaptive=adaptive, dt=o["dt"], dtmin=dtmin, rtol=o["rtol"], atol=o["atol"],
                maxiters=o["maxiters"], tstops=o["tstops"], saveat=savet)


def ode_solution(prob, alg, raw, tab_bth=None):
    """An :class:`ODESolution` from a raw result dict of a compiled loop."""
    shape = prob.u0.shape
    st = raw["stats"]
    stats = SolverStats(nf=int(st[0]), njac=int(st[1]), nsolve=int(st[2]), naccept=int(st[3]),
                        nreject=int(st[4]), nliniter=int(st[5]) if len(st) > 5 else 0)
    interp = None
    if raw.get("dense_k") is not None and tab_bth is not None and raw["steps_t"].size:
        interp = DenseInterpolant(raw["steps_t"], raw["steps_h"], raw["dense_u"],
                                  raw["dense_k"], tab_bth, shape)
    events = [(t, u.reshape(shape)) for t, u in zip(raw["event_t"], raw["event_u"])]
    ts, us = raw["t"], raw["u"].reshape((-1,) + shape)
    if raw["retcode"] != "Success" and raw.get("t_end") is not None \
            and (ts.size == 0 or ts[-1] != raw["t_end"]):
        # a terminating callback, or a failure, between save times: the state it stopped
        # at ends the solution (as SciML's solutions end at the failure's time)
        ts = np.append(ts, raw["t_end"])
        us = np.concatenate([us, np.reshape(raw["u_end"], (1,) + shape)])
    sol = ODESolution(ts, us, raw["retcode"], stats, events=events, alg=type(alg).__name__,
                      interp=interp)
    sol.steps_t, sol.steps_h = raw["steps_t"], raw["steps_h"]
    return sol


def interpolates_saveat(alg, n):
    """Whether ``solve(prob, alg, saveat=...)`` saves from the method's interpolant
    instead of stepping onto the times: methods with an error estimate and an
    interpolant (Tsit5, DP5, Vern7), fixed ``dt`` or not, on states of fewer than
    ``erk.PARALLEL_N`` entries (the threaded large-state kernels step onto them).
    Ensembles of such a problem save the same way (``erk_ensemble`` and the lockstep
    kernel), so each trajectory is bit for bit its own single solve.
    ``js.gradient`` with ``DiscreteAdjoint`` differentiates whichever saving this says.

    References
    ----------
    Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), II.6 (dense output).
    """
    from .kernels.cpu.erk import PARALLEL_N
    return bool(getattr(alg, "adaptive", False) and getattr(alg, "dense", False)) and n < PARALLEL_N


#: per problem and method, the step count of its last solve that saved every step: the
#: next such solve sizes its buffers from it (growing them by doubling from 64 rows cost a
#: Lorenz-63 solve of 11,659 steps ~12 %: the copies and the fresh pages they touch)
_STEP_HINTS = weakref.WeakKeyDictionary()


def _run_explicit(prob, alg, o, rhs=None, dense=None, pooled=False):
    from .solvers.ode.explicit import solve_erk
    oo = ode_options(prob, alg, o)
    rhs = problem_rhs(prob) if rhs is None else rhs
    if dense is None:
        dense = oo["saveat"] is None and alg.dense
    every = oo["saveat"] is None
    hints = _STEP_HINTS.setdefault(prob, {}) if every else {}
    hint = hints.get(alg.tableau)
    raw = solve_erk(alg.tableau, rhs.f, rhs.p, prob.u0.ravel(), prob.tspan[0], prob.tspan[1],
                    lin=rhs.lin, plin=rhs.plin, rtol=oo["rtol"], atol=oo["atol"],
                    adaptive=oo["adaptive"], dt=oo["dt"], dtmin=oo["dtmin"],
                    maxiters=oo["maxiters"], tstops=oo["tstops"], saveat=oo["saveat"],
                    dense=dense, callbacks=_callback_tuple(o["callback"], rhs.p, prob.u0, prob.tspan[0]),
                    hasf=rhs.fun is not None,
                    interpolate=oo["saveat"] is not None and interpolates_saveat(alg, prob.u0.size),
                    cap=None if hint is None else hint + hint // 4 + 16, pooled=pooled)
    if every:
        hints[alg.tableau] = int(raw["steps_t"].size)
    return raw


@register(ODEProblem, ExplicitRK)
@register(SplitODEProblem, ExplicitRK)
def _solve_explicit(prob, alg, **o):
    raw = _run_explicit(prob, alg, o)
    return ode_solution(prob, alg, raw, alg._tab().BTHETA if alg.dense else None)


def _batch_spec(rhs):
    """``(make, placeholder)`` for the lockstep ensemble kernel: ``make()`` compiles the
    batch form of the user's ``f`` (``SIGNATURES["f_batch_t"]``), called by the solvers
    layer only for ensembles large enough to win back the compile, None where ``f`` has no
    such form; None for right-hand sides without a user function (grid operators)."""
    if rhs.fun is None:
        return None

    def make():
        try:
            return compile_batch_cfunc(rhs.fun.f, "f", "f_batch_t")
        except CompileError as exc:      # the lane-by-lane calls still work
            _log.debug("lockstep ensemble without the batch form: %s", exc)
            return None
    return make, compile_batch_cfunc(None, "f", "f_batch_t")


def _solve_prob_func(eprob, alg, N, o):
    """The general (slow) path: one ``solve`` per trajectory, each saved at the ensemble's
    times (``saveat``, else ``tspan``'s ends, as the compiled path).  The trajectories are
    the problems ``prob_func(prob, i)``, or without ``prob_func`` ``prob`` with row ``i``
    of ``u0s``/``ps`` (what the compiled ensemble kernels do not cover: the stiff methods
    on the Newton-Krylov path), each solved exactly as that single problem.  A trajectory that fails keeps
    its retcode and its saved prefix (NaN after it)."""
    from .solve import _prob_func_trajectories, solve
    prob = eprob.prob
    savet = saveat_times(prob.tspan, o["saveat"])
    if savet is None:
        savet = np.array(prob.tspan, dtype=np.float64)
    o = dict(o, saveat=savet, progress=False)     # the ensemble reports, not each one
    u, _W, rcs, stats = _prob_func_trajectories(eprob, N, savet, (ODEProblem, SplitODEProblem),
                                                lambda pi, i: solve(pi, alg, **o))
    return EnsembleSolution(savet, u, rcs, alg=type(alg).__name__, stats=stats)


@register(EnsembleProblem, ExplicitRK)
def _solve_ensemble_explicit(eprob, alg, **o):
    from .solvers.ode.explicit import solve_erk_ensemble
    prob = eprob.prob
    if not isinstance(prob, (ODEProblem, SplitODEProblem)):
        raise UnsupportedAlgorithmError(
            f"alg: {type(alg).__name__} integrates ODEs; the ensemble holds a {type(prob).__name__}")
    N = o.pop("trajectories")
    if eprob.prob_func is not None:
        return _solve_prob_func(eprob, alg, N, o)
    oo = ode_options(prob, alg, o)
    rhs = problem_rhs(prob)
    t0, t1 = prob.tspan
    savet = oo["saveat"] if oo["saveat"] is not None else np.array([t0, t1])
    u0s = (eprob.u0s[:N].reshape(N, -1) if eprob.u0s is not None
           else np.broadcast_to(prob.u0.ravel(), (N, prob.u0.size)))
    ps = (eprob.ps[:N] if eprob.ps is not None else np.broadcast_to(rhs.p, (N, rhs.p.size)))
    u, rcs, stats = solve_erk_ensemble(
        alg.tableau, rhs.f, u0s, ps, t0, t1, savet, lin=rhs.lin, plin=rhs.plin, rtol=oo["rtol"],
        atol=oo["atol"], adaptive=oo["adaptive"], dt=oo["dt"], dtmin=oo["dtmin"],
        maxiters=oo["maxiters"], tstops=oo["tstops"],
        callbacks=_callback_tuple(o["callback"], rhs.p, prob.u0, prob.tspan[0]),
        batch=_batch_spec(rhs),
        interpolate=interpolates_saveat(alg, prob.u0.size))
    return EnsembleSolution(savet, u.reshape((N, savet.size) + prob.u0.shape), rcs,
                            alg=type(alg).__name__, stats=stats)


_EXAMPLE = """>>> import numpy as np, jitsolve as js
>>> def decay(du, u, p, t):
...     du[0] = -p[0] * u[0]
>>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
>>> sol = js.solve(prob, js.{name}(){kw})
>>> bool(abs(sol.u[-1][0] - np.exp(-2.0)) < {tol})
True"""
_COSTS = {
    Euler: ("1 evaluation of f per step, no error estimate (fixed ``dt``); work arrays: 3 "
            "state vectors.  Adjoint: 1 VJP per step.", ", dt=1e-4", "1e-3"),
    RK4: ("4 evaluations of f per step, no error estimate (fixed ``dt``); work arrays: 6 "
          "state vectors.  Adjoint: 4 VJPs per step.", ", dt=1e-2", "1e-7"),
    Tsit5: ("6 evaluations of f per accepted step (7 stages, first-same-as-last), 6 more per "
            "rejected step; the dense output is free; work arrays: 10 state vectors (plus 7 "
            "per step when every step is saved for ``sol(t)``).  Adjoint: 7 VJPs per step.",
            ", rtol=1e-8, atol=1e-10", "1e-7"),
    DP5: ("6 evaluations of f per accepted step (7 stages, first-same-as-last), 6 more per "
          "rejected step; dense output free; work arrays as Tsit5.  Adjoint: 7 VJPs per step.",
          ", rtol=1e-8, atol=1e-10", "1e-7"),
    Vern7: ("10 evaluations of f per step (no first-same-as-last), plus 6 for the "
            "interpolant on steps where it is needed (``sol(t)``, events); work arrays: 19 "
            "state vectors.  Adjoint: 10 VJPs per step.  Cheapest per digit below ~1e-8.",
            ", rtol=1e-10, atol=1e-12", "1e-9"),
}
for _cls, (_cost, _kw, _tol) in _COSTS.items():
    document(_cls, _cost, _EXAMPLE.format(name=_cls.__name__, kw=_kw, tol=_tol))
