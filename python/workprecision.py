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
        return f"SciPy {self.method}"

    def __repr__(self):
        return f"SciPyMethod({self.method!r})"


def _np_rhs(prob):
    from .grid.operators import GridOperator
    f = prob.f
    p = prob.p
    shape = np.shape(prob.u0)
    if isinstance(f, GridOperator):
        return lambda t, u: f.apply(u.reshape(shape)).ravel()
    raw = getattr(f, "f", f)

    def rhs(t, u):
        du = np.empty_like(u)
        raw(du, u, p, t)
        return du
    return rhs


def _solve_scipy(prob, method, rtol, atol, times):
    from scipy.integrate import solve_ivp
    r = solve_ivp(_np_rhs(prob), prob.tspan, np.asarray(prob.u0, dtype=float).ravel(),
                  method=method, rtol=rtol, atol=atol, t_eval=times)
    if not r.success:
        return None, dict(nsteps=r.t.size, nf=r.nfev, ok=False)
    return r.y.T.reshape((len(times),) + np.shape(prob.u0)), dict(nsteps=None, nf=int(r.nfev), ok=True)


def _alg_of(a):
    if isinstance(a, str):
        if a.lower().startswith("scipy:"):
            return SciPyMethod(a.split(":", 1)[1])
        from .errors import InvalidProblemError
        raise InvalidProblemError(f"algs: expected jitsolve algorithms or 'scipy:METHOD', got {a!r}")
    return a


def _name(a):
    return a.name if isinstance(a, SciPyMethod) else type(a).__name__


def _run(prob, alg, tol, times, solve_kw):
    if isinstance(alg, SciPyMethod):
        return _solve_scipy(prob, alg.method, tol, tol * solve_kw.get("atol_ratio", 1.0), times)
    from .solve import solve
    kw = {k: v for k, v in solve_kw.items() if k != "atol_ratio"}
    s = solve(prob, alg, rtol=tol, atol=tol * solve_kw.get("atol_ratio", 1.0), saveat=times, **kw)
    st = s.stats
    return (s.u if s.successful else None), dict(nsteps=int(st.naccept), nf=int(st.nf),
                                                   ok=bool(s.successful))


class WorkPrecision:
    """Result of :func:`work_precision`: ``rows`` (one dict per algorithm and tolerance:
    ``alg``, ``tol``, ``error``, ``time`` (s, best of ``repeat``), ``nf``, ``nsteps``,
    ``ok``), ``reference`` (the reference states at the compared times) and ``times``."""

    def __init__(self, rows, reference, times, problem_name=""):
        self.rows, self.reference, self.times, self.problem_name = rows, reference, times, problem_name

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
    prob : js.ODEProblem
    algs : sequence
        jitsolve algorithm instances (``js.Tsit5()``, ...) and SciPy peers
        (``js.workprecision.SciPyMethod("RK45")`` or the string ``"scipy:RK45"``).
    tols : sequence of float
        ``rtol`` values; ``atol = atol_ratio * rtol``.
    reference : array, optional
        The exact states at the compared times (``(len(saveat),) + u0.shape``, or
        ``u0.shape`` for the final time).  Default: ``js.Vern7()`` at ``rtol = atol =
        1e-13``, or SciPy DOP853 at 1e-13 when Vern7 fails.
    saveat : array of times, optional
        Compare at these times (the error is over all of them); default the final time.
    repeat : int
        Each time is the best of ``repeat`` solves (after one untimed warm-up).
    **solve_kw
        Passed to ``js.solve`` for the jitsolve algorithms.

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
    t1 = prob.tspan[1]
    times = np.array([t1] if saveat is None else np.asarray(saveat, dtype=float), dtype=float)
    tols = [float(t) for t in tols]
    if not tols or not all(t > 0 for t in tols):
        raise InvalidProblemError(f"tols: expected positive tolerances, got {tols!r}")
    algs = [_alg_of(a) for a in algs]
    if reference is None:
        ref = None
        try:
            from .ode import Vern7
            from .solve import solve
            s = solve(prob, Vern7(), rtol=1e-13, atol=1e-13, saveat=times, maxiters=10_000_000)
            if s.successful:
                ref = np.asarray(s.u)
        except Exception:
            ref = None
        if ref is None:
            ref, _ = _solve_scipy(prob, "DOP853", 1e-13, 1e-13, times)
    else:
        ref = np.asarray(reference, dtype=float)
        if ref.shape == np.shape(prob.u0) and saveat is None:
            ref = ref[None]
    if ref is None:
        raise InvalidProblemError("reference: could not compute one; pass reference=")
    nref = float(np.linalg.norm(ref))
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
            err = None if u is None else float(np.linalg.norm(np.asarray(u) - ref) / nref)
            rows.append(dict(alg=_name(alg), tol=tol, error=err, time=best, nf=int(info["nf"] or 0),
                             nsteps=info["nsteps"], ok=info["ok"]))
    return WorkPrecision(rows, ref, times, problem_name=name)
