"""``js.work_precision``: achieved error against time for several methods and tolerances.

The diagram DiffEqDevTools.jl draws (``WorkPrecisionSet``): for every algorithm and every
tolerance, solve, measure the error against a tight reference solution and the best-of-3
time, and plot time against error on log-log axes; the lower-left method wins.
"""
import time

import numpy as np

__all__ = ["work_precision", "WorkPrecision", "SciPyMethod"]


class SciPyMethod:
    """A ``scipy.integrate.solve_ivp`` method as a peer in :func:`work_precision`
    (``SciPyMethod("RK45")``, ``"DOP853"``, ``"LSODA"``, ...; the strings
    ``"scipy:RK45"`` are accepted too).  SciPy calls the problem's own ``f`` from Python."""

    def __init__(self, method="RK45"):
        self.method = method

    @property
    def name(self):
        return f"SciPy {getattr(self.method, '__name__', self.method)}"

    def __repr__(self):
        return f"SciPyMethod({self.method!r})"


#: the method names ``scipy.integrate.solve_ivp`` knows
_SCIPY_METHODS = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")

#: ``js.solve`` options a SciPy peer (or the SciPy fallback reference) cannot apply:
#: they change the solution, so the comparison would not be of the same problem
_SCIPY_REFUSES = ("callback",)


def _linear_np(L, shape):
    """``u -> L u (+ boundary term)`` on flat vectors, for a grid operator, a sparse or
    dense matrix or a diagonal (what ``SplitODEProblem`` accepts as ``L``; a grid
    operator adds its ``boundary_term()`` as the compiled right-hand sides do)."""
    import scipy.sparse as sp

    from .grid.operators import GridOperator
    if isinstance(L, GridOperator):
        b = np.asarray(L.boundary_term(), dtype=float).ravel()
        gshape = L.grid.shape
        if np.any(b):
            return lambda u: L.apply(u.reshape(gshape)).ravel() + b
        return lambda u: L.apply(u.reshape(gshape)).ravel()
    if sp.issparse(L):
        A = sp.csr_matrix(L)
        return lambda u: A @ u
    a = np.asarray(L, dtype=float)
    if a.ndim == 1:
        return lambda u: a * u
    return lambda u: a @ u


def _np_rhs(prob):
    """The right-hand side ``(t, u) -> du/dt`` of an ODE or split ODE problem on flat
    vectors, for ``solve_ivp``: ``L u + f(u, p, t)`` for a ``SplitODEProblem``."""
    from .grid.operators import GridOperator
    from .problems import SplitODEProblem
    f = prob.f
    p = prob.p if prob.p is not None else np.zeros(0)
    shape = np.shape(prob.u0)
    lin = _linear_np(prob.L, shape) if isinstance(prob, SplitODEProblem) else None
    if isinstance(f, GridOperator):
        fpart = _linear_np(f, shape)
    else:
        raw = getattr(f, "f", f)

        def fpart(u, t):
            du = np.empty_like(u)
            raw(du, u, p, t)
            return du
        if lin is None:
            return lambda t, u: fpart(u, t)
        return lambda t, u: lin(u) + fpart(u, t)
    if lin is None:
        return lambda t, u: fpart(u)
    return lambda t, u: lin(u) + fpart(u)


def _solve_scipy(prob, method, rtol, atol, times, tstops=None):
    """``solve_ivp`` with ``method``, saved at ``times``; with ``tstops`` inside the span
    it integrates piece by piece between them (the steps land on them, as in
    ``js.solve``).  Returns ``(states or None, info)``."""
    from scipy.integrate import solve_ivp
    t0, t1 = (float(t) for t in prob.tspan)
    sgn = 1.0 if t1 >= t0 else -1.0
    stops = [] if tstops is None else sorted(
        {float(t) for t in np.atleast_1d(np.asarray(tstops, dtype=float))
         if sgn * (t - t0) > 0 and sgn * (t1 - t) > 0}, key=lambda t: sgn * t)
    rhs = _np_rhs(prob)
    y = np.asarray(prob.u0, dtype=float).ravel()
    shape = (len(times),) + np.shape(prob.u0)
    if not stops:
        r = solve_ivp(rhs, (t0, t1), y, method=method, rtol=rtol, atol=atol, t_eval=times)
        if not r.success:
            return None, dict(nsteps=None, nf=int(r.nfev), ok=False)
        return r.y.T.reshape(shape), dict(nsteps=None, nf=int(r.nfev), ok=True)
    edges = [t0] + stops + [t1]
    out = np.empty((len(times), y.size))
    done = np.zeros(len(times), dtype=bool)
    nf = 0
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        upto = (sgn * (times - b) <= 0) if k == len(edges) - 2 else (sgn * (times - b) < 0)
        inside = ~done & upto
        te = times[inside]
        extra = not te.size or te[-1] != b
        if extra:                                   # the end state starts the next piece
            te = np.append(te, b)
        r = solve_ivp(rhs, (a, b), y, method=method, rtol=rtol, atol=atol, t_eval=te)
        nf += int(r.nfev)
        if not r.success:
            return None, dict(nsteps=None, nf=nf, ok=False)
        out[inside] = r.y.T[:-1] if extra else r.y.T
        done |= inside
        y = r.y[:, -1]
    return out.reshape(shape), dict(nsteps=None, nf=nf, ok=True)


def _alg_of(a):
    from .errors import InvalidProblemError
    if isinstance(a, str):
        if a.lower().startswith("scipy:"):
            a = SciPyMethod(a.split(":", 1)[1])
        else:
            raise InvalidProblemError(
                f"algs: expected jitsolve algorithms or 'scipy:METHOD', got {a!r}")
    if isinstance(a, SciPyMethod):
        m = a.method
        if isinstance(m, str):
            if m not in _SCIPY_METHODS:
                raise InvalidProblemError(f"algs: unknown SciPy method {m!r}; solve_ivp "
                                          f"knows {', '.join(_SCIPY_METHODS)}")
        else:
            from scipy.integrate import OdeSolver
            if not (isinstance(m, type) and issubclass(m, OdeSolver)):
                raise InvalidProblemError(f"algs: SciPyMethod needs a solve_ivp method "
                                          f"name or an OdeSolver subclass, got {m!r}")
    return a


def _name(a):
    return a.name if isinstance(a, SciPyMethod) else type(a).__name__


def _run(prob, alg, tol, times, solve_kw):
    atol = tol * solve_kw.get("atol_ratio", 1.0)
    kw = {k: v for k, v in solve_kw.items() if k != "atol_ratio"}
    if isinstance(alg, SciPyMethod):
        return _solve_scipy(prob, alg.method, tol, atol, times, kw.get("tstops"))
    from .solve import solve
    s = solve(prob, alg, rtol=tol, atol=atol, saveat=times, **kw)
    st = s.stats
    return (s.u if s.successful else None), dict(nsteps=int(st.naccept), nf=int(st.nf),
                                                   ok=bool(s.successful))


def _tolerances(tols):
    from .errors import InvalidProblemError
    try:
        arr = np.atleast_1d(np.asarray(tols, dtype=float))
    except (TypeError, ValueError):
        raise InvalidProblemError(f"tols: expected a positive number or a sequence of "
                                  f"them, got {tols!r}") from None
    out = [float(t) for t in arr.ravel()]
    if arr.ndim != 1 or not out or not all(np.isfinite(t) and t > 0 for t in out):
        raise InvalidProblemError(f"tols: expected positive tolerances, got {out!r}")
    return out


def _compared_times(prob, saveat):
    """The compared times: ``saveat`` checked as ``js.solve`` checks it, or the final
    time."""
    from .errors import InvalidProblemError
    from .solve import _check_times
    if saveat is None:
        return np.array([float(prob.tspan[1])])
    if np.ndim(saveat) == 0:
        from .ode import saveat_times
        return saveat_times(prob.tspan, float(saveat))
    try:
        times = _check_times(saveat, "saveat", prob.tspan)
    except (TypeError, ValueError):
        raise InvalidProblemError(f"saveat: expected times, got {saveat!r}") from None
    if times.size == 0:
        raise InvalidProblemError("saveat: expected at least one time to compare at")
    return times


def _reference(prob, times, solve_kw):
    """Vern7 at 1e-13 with the caller's options (callback, tstops, ...); on a failed
    solve, SciPy DOP853 at 1e-13 with a warning when SciPy can solve the same problem.
    Returns ``(states, description)``."""
    import warnings

    from .errors import InvalidProblemError
    from .ode import Vern7
    from .solve import solve
    # the tolerances and the stepping (dt, adaptive, dtmin) are the reference's own
    kw = {k: v for k, v in solve_kw.items()
          if k not in ("dt", "adaptive", "dtmin", "progress")}
    kw["maxiters"] = max(int(kw.get("maxiters") or 0), 10_000_000)
    s = solve(prob, Vern7(), rtol=1e-13, atol=1e-13, saveat=times, **kw)
    if s.successful and np.shape(s.u) == (len(times),) + np.shape(prob.u0):
        return np.asarray(s.u), "Vern7 at rtol = atol = 1e-13"
    why = (f"retcode {s.retcode}" if not s.successful
           else f"{np.shape(s.u)[0]} saved states for {len(times)} compared times")
    refused = [k for k in _SCIPY_REFUSES if solve_kw.get(k) is not None]
    if refused:
        raise InvalidProblemError(
            f"reference: Vern7 at 1e-13 failed ({why}) and SciPy cannot apply "
            f"{', '.join(k + '=' for k in refused)}; pass reference=")
    ref, info = _solve_scipy(prob, "DOP853", 1e-13, 1e-13, times, solve_kw.get("tstops"))
    if ref is None:
        raise InvalidProblemError(f"reference: Vern7 at 1e-13 failed ({why}) and so did "
                                  f"SciPy DOP853; pass reference=")
    desc = f"SciPy DOP853 at rtol = atol = 1e-13 (Vern7 failed: {why})"
    warnings.warn(f"work_precision: reference from {desc}", RuntimeWarning, stacklevel=3)
    return ref, desc


class WorkPrecision:
    """Result of :func:`work_precision`: ``rows`` (one dict per algorithm and tolerance:
    ``alg``, ``tol``, ``error``, ``time`` (s, best of ``repeat``), ``nf``, ``nsteps``,
    ``ok``), ``reference`` (the reference states at the compared times), ``times`` and
    ``reference_alg`` (how the reference was computed: ``"given"``, Vern7 at 1e-13, or
    the SciPy DOP853 fallback and why)."""

    def __init__(self, rows, reference, times, problem_name="", reference_alg="given"):
        self.rows, self.reference, self.times, self.problem_name = rows, reference, times, problem_name
        self.reference_alg = reference_alg

    def algorithms(self):
        out = []
        for r in self.rows:
            if r["alg"] not in out:
                out.append(r["alg"])
        return out

    def __str__(self):
        lines = [f"work-precision{(' ' + self.problem_name) if self.problem_name else ''}: "
                 f"relative L2 error at t = {', '.join(f'{t:g}' for t in self.times[:4])}"
                 f"{' ...' if len(self.times) > 4 else ''}",
                 f"reference: {self.reference_alg}",
                 f"{'algorithm':16s} {'tol':>8s} {'error':>10s} {'time (ms)':>10s} {'nf':>8s}"]
        for r in self.rows:
            err = f"{r['error']:10.2e}" if r["error"] is not None else f"{'failed':>10s}"
            lines.append(f"{r['alg']:16s} {r['tol']:8.0e} {err} {1e3 * r['time']:10.3f} {r['nf']:8d}")
        return "\n".join(lines)

    def __repr__(self):
        return f"<WorkPrecision: {len(self.rows)} rows, {len(self.algorithms())} algorithms>"

    def plot(self, path=None, ax=None, title=None):
        """Time against error on log-log axes, one line per algorithm (matplotlib, imported
        here).  Writes ``path`` when given; returns the axes, or None without matplotlib."""
        try:
            import matplotlib
            if ax is None and path is not None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
        for name in self.algorithms():
            rs = [r for r in self.rows if r["alg"] == name and r["error"] is not None and r["error"] > 0]
            if rs:
                ax.loglog([r["error"] for r in rs], [r["time"] for r in rs], "o-", label=name)
        ax.set_xlabel("error (relative L2 against the reference)")
        ax.set_ylabel("time (s)")
        ax.set_title(title or f"work-precision {self.problem_name}".strip())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        if path is not None and fig is not None:
            fig.savefig(path, dpi=100)
            plt.close(fig)
        return ax


def work_precision(prob, algs, tols, reference=None, *, saveat=None, repeat=3, atol_ratio=1.0,
                   name="", **solve_kw):
    """Error and time of every algorithm at every tolerance, against a reference solution.

    Parameters
    ----------
    prob : js.ODEProblem or js.SplitODEProblem
        Anything else (an SDE, an ensemble) raises ``InvalidProblemError``.
    algs : sequence
        jitsolve algorithm instances (``js.Tsit5()``, ...) and SciPy peers
        (``js.workprecision.SciPyMethod("RK45")`` or the string ``"scipy:RK45"``); a
        SciPy peer integrates ``L u + f`` for a split problem (plus a grid operator's
        boundary term).
    tols : float or sequence of float
        ``rtol`` values; ``atol = atol_ratio * rtol``.
    reference : array, optional
        The exact states at the compared times (``(len(saveat),) + u0.shape``, or
        ``u0.shape`` for the final time; another shape raises ``InvalidProblemError``).
        Default: ``js.Vern7()`` at ``rtol = atol = 1e-13`` on the same problem with the
        same ``solve_kw`` (callback, tstops, ...); when that solve fails, SciPy DOP853 at
        1e-13 with a ``RuntimeWarning`` (``wp.reference_alg`` says which), or an
        ``InvalidProblemError`` where SciPy cannot apply the options (a callback).
    saveat : float or array of times, optional
        Compare at these times (the error is over all of them); default the final time.
    repeat : int
        Each time is the best of ``repeat`` solves (after one untimed warm-up).
    **solve_kw
        Passed to ``js.solve`` for the jitsolve algorithms and the reference.  SciPy
        peers honour ``tstops`` (they integrate piece by piece) and refuse ``callback``.

    Returns
    -------
    WorkPrecision
        ``.rows``; ``print(wp)`` prints the table; ``wp.plot("wp.png")`` draws the diagram.

    The error is ``||U - U_ref||_2 / ||U_ref||_2`` over all compared states.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> wp = js.work_precision(prob, [js.Tsit5(), "scipy:RK45"], [1e-4, 1e-8],
    ...                        reference=np.exp(-2.0) * np.ones(1), repeat=1)
    >>> [(r["alg"], r["tol"], bool(r["error"] < 10 * r["tol"])) for r in wp.rows]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('Tsit5', 0.0001, True), ('Tsit5', 1e-08, True),
     ('SciPy RK45', 0.0001, True), ('SciPy RK45', 1e-08, True)]

    Cost
    ----
    Per call: ``len(algs) * len(tols) * (repeat + 1)`` solves (one untimed warm-up
    each) plus the reference solve (Vern7 at ``1e-13``) unless ``reference`` is given.
    SciPy peers call ``f`` from Python at every stage.

    References
    ----------
    Rackauckas, Nie, *DifferentialEquations.jl* (2017) and DiffEqDevTools.jl's
    ``WorkPrecisionSet``; Hairer, Norsett, Wanner, *Solving ODEs I* (1993), sec. II.10.
    """
    from .errors import InvalidProblemError
    from .problems import ODEProblem, SplitODEProblem, with_problem_callback
    if not isinstance(prob, (ODEProblem, SplitODEProblem)):
        raise InvalidProblemError(
            f"prob: work_precision compares ODE solvers on a js.ODEProblem or "
            f"js.SplitODEProblem, got {type(prob).__name__}")
    solve_kw = with_problem_callback(prob, solve_kw)    # the SciPy peers cannot apply it
    for k in ("rtol", "atol"):
        if k in solve_kw:
            raise InvalidProblemError(f"{k}: set by work_precision from tols (and "
                                      f"atol_ratio); do not pass it")
    tols = _tolerances(tols)
    algs = [_alg_of(a) for a in algs]
    if not algs:
        raise InvalidProblemError("algs: expected at least one algorithm")
    refused = [k for k in _SCIPY_REFUSES if solve_kw.get(k) is not None]
    if refused and any(isinstance(a, SciPyMethod) for a in algs):
        raise InvalidProblemError(
            f"algs: SciPy peers cannot apply {', '.join(k + '=' for k in refused)} "
            f"(solve_ivp would solve another problem); leave them out")
    times = _compared_times(prob, saveat)
    want = (len(times),) + np.shape(prob.u0)
    if reference is None:
        ref, ref_alg = _reference(prob, times, solve_kw)
    else:
        try:
            ref = np.asarray(reference, dtype=float)
        except (TypeError, ValueError):
            raise InvalidProblemError("reference: expected an array of states") from None
        if ref.shape == np.shape(prob.u0) and len(times) == 1:
            ref = ref[None]
        if ref.shape != want:
            raise InvalidProblemError(
                f"reference: expected shape {want} (one state per compared time"
                f"{'' if saveat is not None else ', the final time'}), got {ref.shape}")
        if not np.all(np.isfinite(ref)):
            raise InvalidProblemError("reference: contains NaN or Inf")
        ref_alg = "given"
    nref = float(np.linalg.norm(ref))
    if nref == 0:
        raise InvalidProblemError("reference: is zero, so the relative error is undefined")
    rows = []
    kw = dict(solve_kw, atol_ratio=atol_ratio)
    for alg in algs:
        for tol in tols:
            u, info = _run(prob, alg, tol, times, kw)   # warm-up (compile) and the answer
            best = np.inf
            for _ in range(max(1, repeat)):
                t0 = time.perf_counter()
                _run(prob, alg, tol, times, kw)
                best = min(best, time.perf_counter() - t0)
            if u is not None and np.shape(u) != want:   # e.g. a terminating callback
                u, info = None, dict(info, ok=False)
            err = None if u is None else float(np.linalg.norm(np.asarray(u) - ref) / nref)
            rows.append(dict(alg=_name(alg), tol=tol, error=err, time=best, nf=int(info["nf"] or 0),
                             nsteps=info["nsteps"], ok=info["ok"]))
    return WorkPrecision(rows, ref, times, problem_name=name, reference_alg=ref_alg)
