"""``solve``: validate the common options, then dispatch on (problem type, algorithm type).

Solver issues add implementations with :func:`register`::

    @register(LinearProblem, CG)
    def _solve_cg(prob, alg, **options): ...

The registry walks both classes' MROs, so an implementation registered for a base
algorithm class serves all its subclasses unless a more specific one exists.
"""
import math
import time

import numpy as np

from .algorithms import AbstractAlgorithm
from .errors import BackendUnavailableError, InvalidProblemError, UnsupportedAlgorithmError
from .log import get_logger
from .problems import (AbstractProblem, EnsembleProblem, LinearProblem, ODEProblem, SDEProblem,
                       SplitODEProblem, remake, with_problem_callback)
from .retcodes import ReturnCode
from .user_exceptions import WatchUserExceptions
from .validate import (check_dt, check_dtmin, check_finite, check_positive_float,
                       check_positive_int, check_seed, check_tolerances, check_trajectories)

__all__ = ["solve", "register", "registered", "BACKENDS"]

BACKENDS = ("auto", "cpu", "cuda", "mpi")
_REGISTRY = {}
_log = get_logger("solve")

_DE_DEFAULTS = dict(dt=None, adaptive=True, rtol=1e-3, atol=1e-6, saveat=None, tstops=None,
                    maxiters=100_000, dtmin=None, seed=None, save_noise=False, backend="auto",
                    progress=False, callback=None)
_LINEAR_DEFAULTS = dict(rtol=1e-8, atol=0.0, maxiter=None, callback=None, backend="auto",
                        progress=False)


def register(problem_type, algorithm_type):
    """Decorator: ``impl(prob, alg, **options)`` solves ``problem_type`` with ``algorithm_type``.

    ``solve`` checks the options, then calls the implementation registered for the
    most specific (problem type, algorithm type) pair of the two types' MROs with
    every option filled in.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> class Halve(js.LinearAlgorithm):      # a toy solver for A = 2 I
    ...     pass
    >>> @js.register(js.LinearProblem, Halve)
    ... def _solve_halve(prob, alg, **options):
    ...     return js.LinearSolution(prob.b / 2, js.ReturnCode.Success, iters=1,
    ...                              resnorm=0.0)
    >>> js.solve(js.LinearProblem(2 * np.eye(2), np.array([2.0, 4.0])), Halve()).u
    array([1., 2.])
    """
    def deco(fn):
        _REGISTRY[(problem_type, algorithm_type)] = fn
        return fn
    return deco


def registered():
    """The registered (problem type, algorithm type) pairs, as sorted name pairs.

    Examples
    --------
    >>> import jitsolve as js
    >>> ("LinearProblem", "CG") in js.solve_registry()
    True
    >>> len(js.solve_registry()) > 10
    True
    """
    return sorted(((p.__name__, a.__name__) for p, a in _REGISTRY), key=str)


def _lookup(prob, alg):
    for P in type(prob).__mro__:
        for A in type(alg).__mro__:
            fn = _REGISTRY.get((P, A))
            if fn is not None:
                return fn
    return None


def _check_backend(backend):
    if backend not in BACKENDS:
        raise InvalidProblemError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend in ("cuda", "mpi"):
        raise BackendUnavailableError(
            f"backend: {backend!r} is not available in this build of jitsolve yet; use 'cpu'")
    return "cpu"


def _check_times_short(x, name, tspan):
    """:func:`_check_times` for a list, tuple or 1-D float64 array of at most 16 times:
    the same checks and messages on Python floats (each NumPy call costs ~1 us, and a
    short ``saveat`` is checked on every solve of a fit).  None when another form."""
    if type(x) is np.ndarray:
        if x.ndim != 1 or x.dtype != np.float64 or x.size > 16:
            return None
        v = x.tolist()
    elif type(x) in (list, tuple) and len(x) <= 16 and all(type(e) is float for e in x):
        v = list(x)
    else:
        return None
    if not v or not all(math.isfinite(e) for e in v):
        return None                 # the general path raises (or returns the empty array)
    t0, t1 = tspan
    lo, hi = min(t0, t1), max(t0, t1)
    if min(v) < lo or max(v) > hi:
        raise InvalidProblemError(f"{name}: times must lie in tspan [{lo}, {hi}]")
    if t1 > t0:
        ok = all(b > a for a, b in zip(v, v[1:]))
    else:
        ok = all(a > b for a, b in zip(v, v[1:]))
    if not ok:
        raise InvalidProblemError(f"{name}: times must be strictly increasing in the direction of tspan")
    return np.array(v, dtype=np.float64)


def _check_times(x, name, tspan):
    """``saveat``/``tstops`` as a fresh 1-D float64 array of finite times inside
    ``tspan``, strictly increasing in its direction; else ``InvalidProblemError``."""
    a = _check_times_short(x, name, tspan)
    if a is not None:
        return a
    return _check_times_array(x, name, tspan)


def _check_times_array(x, name, tspan):
    """:func:`_check_times` for any form, with NumPy."""
    t0, t1 = tspan
    a = np.atleast_1d(np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x)
    if a.dtype.kind not in "fiu" or a.ndim != 1:
        raise InvalidProblemError(f"{name}: expected a 1-D array of times")
    a = check_finite(a.astype(np.float64), name)
    lo, hi = min(t0, t1), max(t0, t1)
    if (a < lo).any() or (a > hi).any():
        raise InvalidProblemError(f"{name}: times must lie in tspan [{lo}, {hi}]")
    step = np.diff(a) if t1 > t0 else -np.diff(a)
    if (step <= 0).any():
        raise InvalidProblemError(f"{name}: times must be strictly increasing in the direction of tspan")
    return a


def _check_callback(cb):
    """``callback``: None, a callable, a js callback object, or a list/tuple of callback
    objects (each solver checks which kinds it takes)."""
    if cb is None or callable(cb) or hasattr(cb, "condition"):
        return
    if isinstance(cb, (list, tuple)) and all(hasattr(c, "condition") for c in cb):
        return
    raise InvalidProblemError("callback: expected a callable, a js callback object or a list "
                              f"of js callback objects, got {type(cb).__name__}")


def option_defaults(prob, kwargs):
    """The defaults of ``solve``'s options for ``prob``; an unknown name in ``kwargs``
    (a typo such as ``rtoll``) raises ``InvalidProblemError`` naming it."""
    if isinstance(prob, LinearProblem):
        defaults = _LINEAR_DEFAULTS
    elif isinstance(prob, EnsembleProblem):
        defaults = dict(_DE_DEFAULTS, trajectories=None)
    else:
        defaults = _DE_DEFAULTS
    unknown = set(kwargs) - set(defaults)
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidProblemError(
            f"{name}: not an option of solve for {type(prob).__name__} "
            f"(options: {', '.join(sorted(defaults))})")
    # checked here, once for solve and for gradient, fit and the local sensitivities
    # (which pass their options through this function and run on the CPU themselves)
    if "backend" in kwargs:
        _check_backend(kwargs["backend"])
    if "progress" in kwargs and not isinstance(kwargs["progress"], (bool, np.bool_)):
        raise InvalidProblemError(f"progress: expected True or False, got {kwargs['progress']!r}")
    return defaults


def _check_de_options(prob, o):
    n = prob.u0.size
    o["rtol"], o["atol"] = check_tolerances(o["rtol"], o["atol"], n,
                                            shape=prob.u0.shape)
    o["dt"] = check_dt(o["dt"], prob.tspan)
    o["dtmin"] = check_positive_float(o["dtmin"], "dtmin", allow_none=True)
    check_dtmin(o["dtmin"], prob.tspan)
    o["maxiters"] = check_positive_int(o["maxiters"], "maxiters")
    if not isinstance(o["adaptive"], (bool, np.bool_)):
        raise InvalidProblemError(f"adaptive: expected True or False, got {o['adaptive']!r}")
    if o["saveat"] is not None:
        s = o["saveat"]
        if np.ndim(s) == 0:
            o["saveat"] = check_positive_float(s, "saveat")
        else:
            o["saveat"] = _check_times(s, "saveat", prob.tspan)
            if o["saveat"].size == 0:
                o["saveat"] = None      # DifferentialEquations.jl: saveat=[] saves every step
    if o["tstops"] is not None:
        o["tstops"] = _check_times(o["tstops"], "tstops", prob.tspan)
    if not isinstance(o["save_noise"], (bool, np.bool_)):
        raise InvalidProblemError(f"save_noise: expected True or False, got {o['save_noise']!r}")
    if o["seed"] is not None:
        o["seed"] = check_seed(o["seed"])


def solve(prob, alg, **kwargs):
    """Solve ``prob`` with the algorithm ``alg``.

    ``solve(prob, alg, *, dt=None, adaptive=True, rtol=1e-3, atol=1e-6, saveat=None,
    tstops=None, maxiters=100_000, dtmin=None, seed=None, save_noise=False,
    backend="auto", progress=False, callback=None)`` for ODE/SDE problems;
    ``solve(prob, alg, rtol=1e-8, atol=0.0, maxiter=None, callback=None)`` for a
    ``LinearProblem``; ``solve(eprob, alg, trajectories=N, ...)`` for an ensemble.
    ``callback`` of an ODE solve is a ``js.ContinuousCallback``, a ``js.DiscreteCallback``
    or a list of them.  ``rtol`` and ``atol`` of an ODE/SDE solve are numbers or
    per-component arrays (as SciML's ``reltol``/``abstol``): the step control's weighted
    RMS norm divides component ``i`` by ``atol_i + rtol_i |u_i|``.  ``dt`` is the step
    (the first one when ``adaptive``); on a backward span (``t1 < t0``) it may carry the
    direction's sign, as SciML's does (``dt=-0.1`` and ``dt=0.1`` give the same solve).

    ``progress=True`` prints the iterations of a linear solve (every 10th), and one line
    as an ODE/SDE solve or ensemble starts and one as it ends (retcode, the time
    reached, steps and work, wall time): the compiled time-stepping loops have no
    per-step hook.

    Every option is checked before any work starts; a bad one raises
    :class:`jitsolve.errors.InvalidProblemError` naming it.  A numerical failure
    returns a solution whose ``retcode`` says so, holding what was computed: an ODE
    solution then ends at the state the solve stopped at (with ``saveat``: the times
    reached, then the failure's time, which is no ``saveat`` time), and so does an SDE
    path; ensembles keep their fixed save times (a failed trajectory's rows after its
    failure are NaN).

    Raises
    ------
    UnsupportedAlgorithmError
        No implementation is registered for this pair (see ``js.solve_registry()``).
    UserFunctionError
        A user function raised an exception inside the compiled loop (once, however
        often it raised; the first exception chained).  Division by zero does not raise
        there: it gives ``inf``/NaN, which the integrators report through ``retcode``.
        A linear solve's user preconditioner, LinearOperator or callback that raises
        stops the solve at once.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> sol = js.solve(js.LinearProblem(np.diag([2.0, 4.0]), np.ones(2)), js.CG())
    >>> sol.retcode, sol.u
    (<ReturnCode.Success: 'Success'>, array([0.5 , 0.25]))
    >>> def decay(du, u, p, t):
    ...     du[0] = -u[0]
    >>> sol = js.solve(js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0)), js.RK4(),
    ...                dt=0.1, saveat=0.5)
    >>> sol.t, np.round(sol.u[:, 0], 5)
    (array([0. , 0.5, 1. ]), array([1.     , 0.60653, 0.36788]))
    """
    if not isinstance(prob, AbstractProblem):
        raise InvalidProblemError(f"prob: expected a jitsolve problem, got {type(prob).__name__}")
    if isinstance(alg, type) and issubclass(alg, AbstractAlgorithm):
        raise InvalidProblemError(f"alg: pass an instance, e.g. {alg.__name__}(), not the class")
    if not isinstance(alg, AbstractAlgorithm):
        raise InvalidProblemError(f"alg: expected an algorithm object (e.g. js.CG()), got {type(alg).__name__}")
    kwargs = with_problem_callback(prob, kwargs)
    defaults = option_defaults(prob, kwargs)
    options = dict(defaults, **kwargs)
    options["backend"] = "cpu"      # every backend option_defaults lets through runs here
    _check_callback(options.get("callback"))
    if isinstance(prob, LinearProblem):
        options["rtol"], options["atol"] = check_tolerances(options["rtol"], options["atol"])
        options["maxiter"] = check_positive_int(options["maxiter"], "maxiter", allow_none=True)
    elif isinstance(prob, (ODEProblem, SDEProblem, SplitODEProblem)):
        _check_de_options(prob, options)
    elif isinstance(prob, EnsembleProblem):
        _check_de_options(prob.prob, options)
        options["trajectories"] = check_trajectories(options["trajectories"], prob.ntrajectories)
    fn = _lookup(prob, alg)
    if fn is None:
        algs = sorted({a for p, a in registered() if p == type(prob).__name__})
        raise UnsupportedAlgorithmError(
            f"alg: no solver for {type(prob).__name__} with {type(alg).__name__} in this build"
            + (f" ({type(prob).__name__} takes: {', '.join(algs)})" if algs else ""))
    report = bool(options.get("progress")) and not isinstance(prob, LinearProblem)
    if report:
        _progress_start(prob, alg, options)
    t0 = time.perf_counter()
    with WatchUserExceptions("solve"):
        sol = fn(prob, alg, **options)
    _log_outcome(prob, alg, sol, time.perf_counter() - t0)
    if report:
        _progress_end(alg, sol, time.perf_counter() - t0)
    return sol


def _progress_start(prob, alg, options):
    """``progress=True`` for an ODE/SDE solve or ensemble: one line as it starts (the
    compiled loops have no per-step hook; a linear solve prints its own iterations)."""
    base = prob.prob if isinstance(prob, EnsembleProblem) else prob
    what = type(base).__name__
    if isinstance(prob, EnsembleProblem):
        what = f"{options['trajectories']} trajectories of an {what}"
    print(f"{type(alg).__name__}: solving {what} with {base.u0.size} states on "
          f"[{base.tspan[0]:g}, {base.tspan[1]:g}] ...", flush=True)


def _progress_end(alg, sol, seconds):
    """``progress=True``: one line as the solve ends (retcode, where, work, time)."""
    name = type(alg).__name__
    rc = getattr(sol, "retcode", None)
    rc = getattr(rc, "value", rc)
    if hasattr(type(sol), "successful_mask"):
        ok = sol.successful_mask
        print(f"{name}: {rc}: {int(ok.sum())} of {ok.size} trajectories successful "
              f"({seconds:.3g} s)", flush=True)
        return
    st = getattr(sol, "stats", None)
    work = "" if st is None else (f", {st.naccept} steps ({st.nreject} rejected), "
                                  f"{st.nf} f evaluations")
    end = f" at t = {float(sol.t[-1]):.6g}" if np.size(sol.t) else ""
    print(f"{name}: {rc}{end}{work} ({seconds:.3g} s)", flush=True)


def _check_trajectory(prob, pi, i, kinds):
    """``prob_func``'s problem ``pi`` for trajectory ``i``: one of ``kinds`` with
    ``prob``'s ``u0`` shape and ``tspan`` (the ensemble shares one time grid)."""
    if not isinstance(pi, kinds):
        raise InvalidProblemError(f"prob_func: returned {type(pi).__name__} for i={i}, "
                                  f"expected an {kinds[0].__name__}")
    if pi.u0.shape != prob.u0.shape:
        raise InvalidProblemError(
            f"prob_func: u0 of trajectory {i} has shape {pi.u0.shape}; every trajectory "
            f"needs the shape of prob.u0, {prob.u0.shape}")
    if tuple(pi.tspan) != tuple(prob.tspan):
        raise InvalidProblemError(
            f"prob_func: tspan of trajectory {i} is {pi.tspan}; every trajectory needs "
            f"prob.tspan, {prob.tspan}")


def _prob_func_trajectories(eprob, N, savet, kinds, solve_one):
    """The general (slow) ensemble path shared by ODEs and SDEs: trajectory ``i`` is
    ``solve_one(prob_func(prob, i), i)`` or, without ``prob_func``, ``solve_one`` of
    ``prob`` remade with row ``i`` of ``u0s``/``ps`` (methods without an ensemble kernel);
    each a solution saved at (a prefix of) the ensemble's times ``savet``.  A trajectory that fails keeps its retcode and its saved prefix (NaN
    after it, in ``u`` and in its Brownian path ``W`` when the solutions carry one).

    Returns ``(u (N, nt, *u0.shape), W (N, nt, m) or None, retcodes, stats (N, 6))``,
    ``stats`` the per-trajectory :class:`~jitsolve.solution.SolverStats` fields in order.
    Raises :class:`~jitsolve.errors.InvalidProblemError` naming ``prob_func`` when it
    returns no problem of ``kinds``, or one of another ``u0`` shape or ``tspan``."""
    prob = eprob.prob
    u = np.full((N, savet.size) + prob.u0.shape, np.nan)
    W, rcs, stats = None, [], None
    for i in range(N):
        if eprob.prob_func is None:     # rows of u0s/ps (methods without an ensemble kernel)
            pi = remake(prob, **({} if eprob.u0s is None else {"u0": eprob.u0s[i]}),
                        **({} if eprob.ps is None else {"p": eprob.ps[i]}))
        else:
            pi = eprob.prob_func(prob, i)
            _check_trajectory(prob, pi, i, kinds)
        s = solve_one(pi, i)
        m = min(s.t.size, savet.size)
        k = int(np.argmin(np.append(s.t[:m] == savet[:m], False)))   # saved save times
        u[i, :k] = s.u[:k]
        sW = getattr(s, "W", None)
        if sW is not None:
            if W is None:
                W = np.full((N, savet.size, sW.shape[1]), np.nan)
            W[i, :k] = sW[:k]
        rcs.append(s.retcode)
        st = list(s.stats.asdict().values())
        if stats is None:
            stats = np.zeros((N, len(st)), np.int64)
        stats[i] = st
    return u, W, rcs, stats


def _log_outcome(prob, alg, sol, seconds):
    """DEBUG the dispatch and wall time; WARNING a solve that did not succeed."""
    what = f"{type(prob).__name__}/{type(alg).__name__}"
    rc = getattr(sol, "retcode", None)
    failed = isinstance(rc, ReturnCode) and not rc.successful
    ensemble = hasattr(type(sol), "successful_mask")   # one retcode per trajectory
    if failed and ensemble:
        ok = sol.successful_mask
        rc = f"{rc} ({int(ok.size - ok.sum())} of {ok.size} trajectories unsuccessful)"
    _log.debug("solve %s: %.4f s, retcode %s", what, seconds, rc)
    if failed:
        t = getattr(sol, "t", None)
        where = ""
        if not ensemble and t is not None and np.ndim(t) == 1 and np.size(t):
            where = f" at t = {float(np.asarray(t)[-1]):.6g}"
        _log.warning("solve %s ended with %s%s; the solution holds what was computed so far",
                     what, rc, where)
