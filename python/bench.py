"""``jitsolve bench``: this machine's limits and each suite's figures as ratios to them.

Every run measures, in the same process, the STREAM triad bandwidth ``a = b + s c`` with
Numba on all threads, then the suites:

``stencil``  Laplacian / Diffusion apply GB/s (bytes that must move: each field read
             once, the result written once) over the triad GB/s.
``krylov``   2-D Poisson (128^2), rtol 1e-8: CG + geometric multigrid against pyamg smoothed
             aggregation (as a CG preconditioner) and SciPy ``cg`` on the same CSR matrix;
             setup + solve time, and the peers' time over jitsolve's.
``ode``      Lorenz-63 on [0, 20], rtol 1e-6 / atol 1e-9: Tsit5 against SciPy
             ``solve_ivp`` RK45 at the same tolerances (time ratio; both errors against a
             DOP853 reference at 1e-13).
``sde``      Euler-Maruyama ensemble of geometric Brownian motions: ns per path-step.
``adjoint``  gradient (forward + discrete adjoint) time over forward time, Lotka-Volterra
             with Tsit5 and a 2-D heat equation with RK4.

All times are best-of-``repeat``.  ``quick=True`` shrinks every size (a smoke test, not a
measurement).  The measuring helpers (:func:`best_time`, :class:`Bandwidth`) are used by
``perf/roofline.py`` and :func:`jitsolve.profile` too.
"""
import json
import time

import numpy as np

__all__ = ["best_time", "Bandwidth", "triad_bandwidth", "run", "format_table", "SUITES"]

SUITES = ("stencil", "krylov", "ode", "sde", "adjoint")


# --------------------------------------------------------------------- measuring helpers
def _kernels():
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def triad(a, b, c, s):
        for i in prange(a.size):
            a[i] = b[i] + s * c[i]

    @njit(parallel=True, cache=True)
    def copy(a, b):
        for i in prange(a.size):
            a[i] = b[i]

    return triad, copy


_KERNELS = []


def _cached_kernels():
    if not _KERNELS:
        _KERNELS.extend(_kernels())
    return _KERNELS


def best_time(fn, repeat=5, warmup=1):
    """Best wall time of ``repeat`` calls of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(int(warmup)):
        fn()
    best = np.inf
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


class Bandwidth:
    """STREAM triad ``a = b + s c`` and copy ``a = b`` on float64 arrays of ``gib`` GiB in total.

    ``measure()`` appends one triad and one copy figure (GB/s, best of ``repeat``); the
    properties ``triad`` and ``copy`` are the best of all measurements so far.
    """

    def __init__(self, gib=1.5, repeat=7):
        self.triad_k, self.copy_k = _cached_kernels()
        n = int(gib * 2**30 / 8 / 3)
        self.a = np.zeros(n)
        self.b = np.full(n, 1.0)
        self.c = np.full(n, 2.0)
        self.repeat = repeat
        self.triads = []
        self.copies = []

    def measure(self):
        n = self.a.size
        t = best_time(lambda: self.triad_k(self.a, self.b, self.c, 3.0), self.repeat)
        self.triads.append(3 * 8 * n / t / 1e9)
        t = best_time(lambda: self.copy_k(self.a, self.b), self.repeat)
        self.copies.append(2 * 8 * n / t / 1e9)
        return self.triads[-1]

    @property
    def triad(self):
        return max(self.triads)

    @property
    def copy(self):
        return max(self.copies)


_TRIAD_CACHE = {}


def triad_bandwidth(gib=0.5, repeat=5, cached=True):
    """This machine's triad bandwidth in GB/s (measured once per process when ``cached``)."""
    key = (gib, repeat)
    if cached and key in _TRIAD_CACHE:
        return _TRIAD_CACHE[key]
    bw = Bandwidth(gib=gib, repeat=repeat)
    v = bw.measure()
    _TRIAD_CACHE[key] = v
    return v


# --------------------------------------------------------------------- problems
def lorenz(du, u, p, t):
    """Lorenz-63 with ``p = (sigma, rho, beta)``."""
    du[0] = p[0] * (u[1] - u[0])
    du[1] = u[0] * (p[1] - u[2]) - u[1]
    du[2] = u[0] * u[1] - p[2] * u[2]


def lotka(du, u, p, t):
    """Lotka-Volterra with ``p = (alpha, beta, gamma, delta)`` (prey, predator)."""
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


def _lorenz_np(t, u, p=(10.0, 28.0, 8.0 / 3.0)):
    return [p[0] * (u[1] - u[0]), u[0] * (p[1] - u[2]) - u[1], u[0] * u[1] - p[2] * u[2]]


def _lotka_np(t, u, p=(1.5, 1.0, 3.0, 1.0)):
    return [p[0] * u[0] - p[1] * u[0] * u[1], -p[2] * u[1] + p[3] * u[0] * u[1]]


def standard_problems():
    """name -> (js.ODEProblem, SciPy right-hand side ``f(t, u)``) for the ODE benchmarks."""
    import jitsolve as js
    return {
        "lorenz": (js.ODEProblem(lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 20.0),
                                 p=np.array([10.0, 28.0, 8.0 / 3.0])), _lorenz_np),
        "lotka-volterra": (js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 10.0),
                                         p=np.array([1.5, 1.0, 3.0, 1.0])), _lotka_np),
    }


def _gbm_f(du, u, p, t):
    du[0] = p[0] * u[0]


def _gbm_g(gu, u, p, t):
    gu[0] = p[1] * u[0]


# --------------------------------------------------------------------- suites
def suite_stencil(triad, quick=False, repeat=5):
    import jitsolve as js
    n = 512 if quick else 2048
    g = js.Grid((n, n), bc=js.Dirichlet(0.0))
    rng = np.random.default_rng(0)
    u = rng.standard_normal(g.shape)
    out = np.empty(g.shape)
    kappa = 0.5 + rng.random(g.shape)
    L, D = js.Laplacian(g), js.Diffusion(g, kappa)
    rows = []
    for name, fn, nbytes in (("Laplacian.apply", lambda: L.apply(u, out), 2 * 8 * g.size),
                             ("Diffusion.apply", lambda: D.apply(u, out), 3 * 8 * g.size)):
        t = best_time(fn, 3 * repeat)
        gbs = nbytes / t / 1e9
        rows.append(dict(suite="stencil", case=f"{name} {n}^2", seconds=t, value=gbs, unit="GB/s",
                         ratio=gbs / triad, ratio_to="triad"))
    return rows


def suite_krylov(triad, quick=False, repeat=3):
    import scipy.sparse.linalg as spla

    import jitsolve as js
    n = 64 if quick else 128
    g = js.Grid((n, n), bc=js.Dirichlet(0.0))
    A = -js.Laplacian(g)
    x, y = g.mesh()
    b = np.sin(np.pi * x) * np.sin(2 * np.pi * y) + 1.0
    prob = js.LinearProblem(A, b)

    def ours():
        return js.solve(prob, js.CG(js.Multigrid()), rtol=1e-8)
    t_js = best_time(ours, repeat)
    sol = ours()
    M = A.to_csr().tocsr()
    bf = b.ravel()
    rows = [dict(suite="krylov", case=f"Poisson {n}^2 CG+Multigrid", seconds=t_js,
                 value=float(sol.iters), unit="iters", ratio=1.0, ratio_to="itself")]
    try:
        import pyamg

        def amg():
            ml = pyamg.smoothed_aggregation_solver(M)
            return ml.solve(bf, tol=1e-8, accel="cg", maxiter=500)
        t = best_time(amg, 2, warmup=0)
        rows.append(dict(suite="krylov", case=f"Poisson {n}^2 pyamg SA+CG", seconds=t, value=t * 1e3,
                         unit="ms", ratio=t / t_js, ratio_to="CG+MG time"))
    except ImportError:
        pass
    # SciPy cg: probe 20 iterations, then run as many as fit in ~cap_s; extrapolate if capped
    cap_s = 0.5 if quick else 2.0
    t0 = time.perf_counter()
    spla.cg(M, bf, rtol=1e-8, atol=0.0, maxiter=20)
    per = (time.perf_counter() - t0) / 20
    cnt = [0]
    t0 = time.perf_counter()
    _, info = spla.cg(M, bf, rtol=1e-8, atol=0.0, maxiter=int(max(20, min(cap_s / per, 20 * n))),
                      callback=lambda xk: cnt.__setitem__(0, cnt[0] + 1))
    t = time.perf_counter() - t0
    if info == 0:
        label = f"{cnt[0]} it"
    else:   # not converged within the cap: CG on this problem needs about 2.1 n iterations
        est = int(2.1 * n)
        t = t / max(cnt[0], 1) * est
        label = f"{cnt[0]} it run, ~{est} extrapolated"
    rows.append(dict(suite="krylov", case=f"Poisson {n}^2 SciPy cg ({label})", seconds=t,
                     value=t * 1e3, unit="ms", ratio=t / t_js, ratio_to="CG+MG time"))
    return rows


def _reference(prob, f_np, t_eval=None):
    from scipy.integrate import solve_ivp
    r = solve_ivp(f_np, prob.tspan, np.asarray(prob.u0, float), method="DOP853", rtol=1e-13,
                  atol=1e-13, t_eval=t_eval)
    return r.y[:, -1]


def suite_ode(triad, quick=False, repeat=5):
    from scipy.integrate import solve_ivp

    import jitsolve as js
    prob, f_np = standard_problems()["lorenz"]
    if quick:
        prob = js.remake(prob, tspan=(0.0, 5.0))
    rtol, atol = 1e-6, 1e-9
    ref = _reference(prob, f_np)
    t_js = best_time(lambda: js.solve(prob, js.Tsit5(), rtol=rtol, atol=atol, saveat=[prob.tspan[1]]),
                     repeat)
    sol = js.solve(prob, js.Tsit5(), rtol=rtol, atol=atol, saveat=[prob.tspan[1]])
    err_js = float(np.linalg.norm(sol.u[-1] - ref) / np.linalg.norm(ref))

    def sp():
        return solve_ivp(f_np, prob.tspan, np.asarray(prob.u0, float), method="RK45", rtol=rtol,
                         atol=atol)
    t_sp = best_time(sp, max(1, repeat // 2), warmup=0)
    r = sp()
    err_sp = float(np.linalg.norm(r.y[:, -1] - ref) / np.linalg.norm(ref))
    T = prob.tspan[1]
    return [dict(suite="ode", case=f"Lorenz [0,{T:g}] Tsit5 1e-6 ({sol.stats.naccept} steps, err {err_js:.1e})",
                 seconds=t_js, value=t_js / max(sol.stats.naccept, 1) * 1e9, unit="ns/step",
                 ratio=1.0, ratio_to="itself"),
            dict(suite="ode", case=f"Lorenz SciPy RK45 1e-6 ({r.t.size - 1} steps, err {err_sp:.1e})",
                 seconds=t_sp, value=t_sp * 1e3, unit="ms", ratio=t_sp / t_js, ratio_to="Tsit5 time")]


def suite_sde(triad, quick=False, repeat=3):
    import jitsolve as js
    N = 1000 if quick else 10_000
    nsteps = 256 if quick else 1024
    ep = js.EnsembleProblem(js.SDEProblem(_gbm_f, _gbm_g, np.array([1.0]), (0.0, 1.0),
                                          p=np.array([1.0, 0.5])))

    def run_():
        return js.solve(ep, js.EM(), trajectories=N, dt=1.0 / nsteps, saveat=np.array([1.0]), seed=1)
    t = best_time(run_, repeat)
    ns = t / (N * nsteps) * 1e9
    rng = np.random.default_rng(1)
    ksteps = max(nsteps // 4, 16)
    h = 1.0 / nsteps

    def numpy_em():
        x = np.ones(N)
        for _ in range(ksteps):
            x += 1.0 * x * h + 0.5 * x * np.sqrt(h) * rng.standard_normal(N)
        return x
    t_np = best_time(numpy_em, repeat)
    ns_np = t_np / (N * ksteps) * 1e9
    return [dict(suite="sde", case=f"EM GBM ensemble {N} paths x {nsteps} steps", seconds=t,
                 value=ns, unit="ns/path-step", ratio=1.0, ratio_to="itself"),
            dict(suite="sde", case=f"NumPy vectorised EM, same paths ({ksteps} steps)", seconds=t_np,
                 value=ns_np, unit="ns/path-step", ratio=ns_np / ns, ratio_to="jitsolve EM")]


def suite_adjoint(triad, quick=False, repeat=5):
    import jitsolve as js
    rows = []
    prob, _ = standard_problems()["lotka-volterra"]
    t_data = np.linspace(0.0, 10.0, 21)[1:]
    d = js.solve(prob, js.Tsit5(), rtol=1e-8, atol=1e-8, saveat=t_data).u
    loss = js.L2Loss(t_data, d)
    kw = dict(rtol=1e-8, atol=1e-8)
    t_f = best_time(lambda: js.solve(prob, js.Tsit5(), saveat=t_data, **kw), repeat)
    t_g = best_time(lambda: js.gradient(prob, js.Tsit5(), loss, wrt=("p", "u0"),
                                        sensealg=js.DiscreteAdjoint(), **kw), repeat, warmup=2)
    rows.append(dict(suite="adjoint", case="Lotka-Volterra Tsit5 1e-8, grad wrt p,u0", seconds=t_g,
                     value=t_g * 1e3, unit="ms", ratio=t_g / t_f, ratio_to="forward time"))
    n = 32 if quick else 64
    g = js.Grid((n, n), bc=js.Dirichlet(0.0))
    x, y = g.mesh()
    u0 = np.sin(np.pi * x) * np.sin(np.pi * y)
    dt = 0.2 * min(g.spacing) ** 2
    T = (50 if quick else 200) * dt
    hp = js.ODEProblem(js.Laplacian(g), u0, (0.0, T))
    hl = js.L2Loss([T], np.zeros((1,) + g.shape))
    t_f = best_time(lambda: js.solve(hp, js.RK4(), dt=dt, saveat=[T]), repeat)
    t_g = best_time(lambda: js.gradient(hp, js.RK4(), hl, wrt="u0", dt=dt), repeat, warmup=2)
    rows.append(dict(suite="adjoint", case=f"heat {n}^2 RK4 {int(round(T / dt))} steps, grad wrt u0",
                     seconds=t_g, value=t_g * 1e3, unit="ms", ratio=t_g / t_f,
                     ratio_to="forward time"))
    return rows


_SUITE_FUNCS = {"stencil": suite_stencil, "krylov": suite_krylov, "ode": suite_ode,
                "sde": suite_sde, "adjoint": suite_adjoint}


def run(suites=("all",), quick=False, gib=None, repeat=None):
    """Measure the triad bandwidth and the named suites; returns a dict (JSON-serialisable)."""
    import numba
    if "all" in suites:
        suites = SUITES
    gib = gib if gib is not None else (0.1 if quick else 0.75)
    rep = repeat if repeat is not None else (3 if quick else 5)
    bw = Bandwidth(gib=gib, repeat=rep)
    bw.measure()
    rows, seconds = [], {}
    t0 = time.perf_counter()
    for s in suites:
        ts = time.perf_counter()
        rows.extend(_SUITE_FUNCS[s](bw.triad, quick=quick))
        seconds[s] = time.perf_counter() - ts
        bw.measure()   # between the suites: the best triad of the run is the limit
    for r in rows:
        if r["suite"] == "stencil":
            r["ratio"] = r["value"] / bw.triad
    return dict(threads=numba.get_num_threads(), triad_gbs=bw.triad, copy_gbs=bw.copy,
                triad_samples=bw.triads, quick=bool(quick), suites=list(suites), rows=rows, suite_seconds=seconds,
                wall_seconds=time.perf_counter() - t0)


def format_table(res):
    lines = [f"threads: {res['threads']}   triad: {res['triad_gbs']:.1f} GB/s   copy: "
             f"{res['copy_gbs']:.1f} GB/s   (triad samples {', '.join(f'{x:.1f}' for x in res['triad_samples'])})",
             "",
             f"{'suite':8s} {'case':62s} {'time (ms)':>10s} {'figure':>18s} {'ratio':>8s}  to"]
    for r in res["rows"]:
        lines.append(f"{r['suite']:8s} {r['case'][:62]:62s} {1e3 * r['seconds']:10.2f} "
                     f"{r['value']:10.3g} {r['unit']:>7s} {r['ratio']:8.3g}  {r['ratio_to']}")
    lines.append("")
    per = ", ".join(f"{k} {v:.1f} s" for k, v in res.get("suite_seconds", {}).items())
    lines.append(f"(suites: {per}; total {res['wall_seconds']:.1f} s; times are best of several runs "
                 f"except SciPy cg and pyamg, best of 1-2)")
    return "\n".join(lines)


def to_json(res):
    return json.dumps(res, indent=1, default=float)
