"""``jitsolve bench``: this machine's limits and each suite's figures as ratios to them.

Every run measures, in the same process, the STREAM triad bandwidth ``a = b + s c`` with
Numba on all of Numba's threads (``threads`` in the output: ``numba.get_num_threads()``,
i.e. ``NUMBA_NUM_THREADS``), then the suites:

``stencil``  Laplacian / Diffusion apply GB/s (bytes that must move: each field read
             once, the result written once -- Laplacian ``2 x 8`` bytes a cell (``u``,
             ``out``), Diffusion ``3 x 8`` (``u``, ``kappa``, ``out``)) over the triad GB/s.
             The grid is the smallest multiple of 256 cells a side, at least 2048, whose
             arrays are each at least 4x the last-level cache (STREAM's rule; 4096^2 on a
             32 MiB L3), so that no repeat finds its inputs in the cache.
``krylov``   2-D Poisson (128^2), rtol 1e-8, zero initial guess, every solver stopping on
             the relative residual 2-norm ``||b - A x|| <= 1e-8 ||b||``: CG + geometric
             multigrid against pyamg smoothed aggregation (as a CG preconditioner) and
             SciPy ``cg`` on the same CSR matrix; jitsolve and pyamg are timed *setup +
             solve* (hierarchy built in every timed call), SciPy ``cg`` has no setup; the
             peers' time over jitsolve's.  The peers' sparse products run on one thread.
``ode``      Lorenz-63 on [0, 20], rtol 1e-6 / atol 1e-9: Tsit5 against SciPy
             ``solve_ivp`` RK45 at the same tolerances (time ratio at equal tolerance, not
             equal error; both errors against a DOP853 reference at 1e-13 are shown).
``sde``      Euler-Maruyama ensemble of geometric Brownian motions: ns per path-step.
``adjoint``  gradient (forward + discrete adjoint) time over forward time, Lotka-Volterra
             with Tsit5 and a 2-D heat equation with RK4 (the two timed in alternation,
             :func:`best_times`).

Conventions (as STREAM and PETSc's ``-log_view`` count them):

- GB/s is 10^9 bytes per second everywhere (GiB = 2^30 is used only for array sizes).
- The triad counts ``3 x 8`` bytes per element (read ``b`` and ``c``, write ``a``); the
  write-allocate read of ``a`` that a plain store also causes is *not* counted, as in
  STREAM, so the triad figure is about 3/4 of the bytes the memory system really moved.
  The stencil figures count their ideal bytes the same way (no write-allocate), so a
  kernel with plain stores tops out near ``(2/3) / (3/4) = 0.89`` of the triad; the 2-D
  Laplacian at these sizes writes with streaming stores (no write-allocate), whose
  ceiling is ``1 / (3/4) = 1.33``.
- The triad arrays are each at least 4x the last-level cache (:func:`llc_bytes`, read
  from ``/sys``), and the triad is measured at the start and after every suite: the
  stencil ratios use the best triad of the run.
- Every time is the minimum over ``repeat`` warm calls (one untimed call first, which
  carries Numba's compilation or cache load), except the peers' (SciPy ``cg``: one run
  after a 20-iteration probe; pyamg and SciPy ``solve_ivp``: best of 2, no warm-up).

``run()`` returns (and ``--json`` prints, as strict JSON: a non-finite number becomes
``null``) a dict with the fields

``threads``            Numba threads used by the kernels and the triad
``triad_gbs``          best triad of the run, GB/s (10^9 B/s), 3 x 8 bytes per element
``triad_median_gbs``   median of the triad samples, GB/s
``copy_gbs``           best copy ``a = b``, GB/s, 2 x 8 bytes per element
``triad_samples``      every triad measurement, GB/s, in order
``triad_array_bytes``  bytes of each of the three triad arrays
``llc_bytes``          last-level cache size found (bytes; null where unknown)
``timing``             how the times were taken (the sentence above)
``quick``, ``suites``  the options
``rows``               one dict per case: ``suite``, ``case`` (label), ``seconds`` (min
                       time of one call, s), ``value`` and ``unit`` (the figure: GB/s,
                       iters, ms, ns/step, ns/path-step), ``ratio`` and ``ratio_to`` (what
                       it divides: ``triad``, ``CG+MG time``, ...); stencil rows also
                       ``bytes`` (counted bytes per call) and ``array_bytes``
``suite_seconds``      wall time of each suite, s; ``wall_seconds`` their total, s

``quick=True`` shrinks every size (a smoke test, not a measurement: its arrays may sit in
the cache).  The measuring helpers (:func:`best_time`, :class:`Bandwidth`) are used by
``perf/roofline.py`` and :func:`jitsolve.profile` too.
"""
import glob
import json
import math
import os
import time

import numpy as np

__all__ = ["best_time", "best_times", "Bandwidth", "triad_bandwidth", "run", "format_table", "SUITES",
           "llc_bytes", "stream_gib", "stencil_size"]

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


def _cache_size(text):
    """``"32768K"`` / ``"2M"`` / ``"512"`` (sysfs) -> bytes."""
    t = text.strip().upper().rstrip("B")
    mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(t[-1:], 1)
    return int(t[:-1] if t[-1:] in "KMG" else t) * mult


def llc_bytes(root="/sys/devices/system/cpu"):
    """Total bytes of this machine's last-level cache: the highest cache level that
    ``/sys`` lists, summed over its distinct instances (one per socket or core complex).
    None where ``/sys`` says nothing (not Linux)."""
    found = {}
    for d in glob.glob(os.path.join(root, "cpu[0-9]*", "cache", "index[0-9]*")):
        try:
            with open(os.path.join(d, "level")) as f:
                level = int(f.read())
            with open(os.path.join(d, "type")) as f:
                if f.read().strip() == "Instruction":
                    continue
            with open(os.path.join(d, "size")) as f:
                size = _cache_size(f.read())
            try:
                with open(os.path.join(d, "shared_cpu_list")) as f:
                    shared = f.read().strip()
            except OSError:
                shared = d
        except (OSError, ValueError):
            continue
        found.setdefault(level, {})[shared] = size
    if not found:
        return None
    return int(sum(found[max(found)].values()))


def _phys_bytes():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def stream_gib(gib, llc=None):
    """``gib`` raised to STREAM's rule (each of the three triad arrays at least 4x the
    last-level cache ``llc``, bytes; :func:`llc_bytes` when None), without going past a
    quarter of the physical memory."""
    llc = llc_bytes() if llc is None else llc
    if not llc:
        return float(gib)
    want = 3 * 4 * llc / 2**30
    phys = _phys_bytes()
    if phys:
        want = min(want, phys / 4 / 2**30)
    return float(max(gib, want))


def stencil_size(llc=None, ndim=2, minimum=2048):
    """Cells a side of the ``ndim``-D grid whose float64 arrays are each at least 4x the
    last-level cache (STREAM's rule): the smallest multiple of 256 at or above
    ``minimum`` (and that bound), at most what leaves four arrays in a quarter of the
    physical memory."""
    llc = llc_bytes() if llc is None else llc
    n = minimum
    if llc:
        n = max(n, math.ceil((4 * llc / 8) ** (1.0 / ndim)))
    n = -(-n // 256) * 256
    phys = _phys_bytes()
    if phys:
        n = min(n, int((phys / 16 / 8) ** (1.0 / ndim)) // 256 * 256)
    return max(256, n)


def best_time(fn, repeat=5, warmup=1):
    """Best wall time of ``repeat`` calls of ``fn()`` after ``warmup`` untimed calls."""
    return best_times([fn], repeat, warmup)[0]


def best_times(fns, repeat=5, warmup=1):
    """Best wall time of each of ``fns`` over ``repeat`` rounds that call them in turn
    (after ``warmup`` untimed rounds): for a ratio of two times on a shared machine, a
    burst of load then slows both, not only the one being timed."""
    for _ in range(int(warmup)):
        for fn in fns:
            fn()
    best = [np.inf] * len(fns)
    for _ in range(max(1, repeat)):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


class Bandwidth:
    """STREAM triad ``a = b + s c`` and copy ``a = b`` on float64 arrays of ``gib`` GiB in total.

    ``measure()`` appends one triad and one copy figure (GB/s = 10^9 B/s, best of
    ``repeat`` calls after one untimed call); the properties ``triad`` and ``copy`` are
    the best of all measurements so far, ``triad_median`` the median.  Bytes are counted
    as STREAM counts them: the triad ``3 x 8`` per element, the copy ``2 x 8`` (the
    write-allocate read of ``a`` is not counted).  For a memory figure each array
    (``gib / 3``) must be several times the last-level cache: :func:`stream_gib`.
    """

    def __init__(self, gib=1.5, repeat=7):
        try:
            n = int(float(gib) * 2**30 / 8 / 3) if float(gib) > 0 else 0
        except (TypeError, ValueError, OverflowError):
            n = 0
        if n < 1:
            from .errors import InvalidProblemError
            raise InvalidProblemError(f"gib: expected a positive size in GiB, got {gib!r}")
        self.triad_k, self.copy_k = _cached_kernels()
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

    @property
    def triad_median(self):
        return float(np.median(self.triads))


_TRIAD_CACHE = {}


def triad_bandwidth(gib=None, repeat=5, cached=True):
    """This machine's triad bandwidth in GB/s (measured once per process when ``cached``).

    ``gib`` (total of the three arrays) defaults to 0.25 GiB raised to STREAM's rule,
    each array at least 4x the last-level cache (:func:`stream_gib`)."""
    if gib is None:
        gib = stream_gib(0.25)
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
    n = 512 if quick else stencil_size()
    g = js.Grid((n, n), bc=js.Dirichlet(0.0))
    rng = np.random.default_rng(0)
    u = rng.standard_normal(g.shape)
    out = np.empty(g.shape)
    kappa = 0.5 + rng.random(g.shape)
    L, D = js.Laplacian(g), js.Diffusion(g, kappa)
    rows = []
    for name, fn, nbytes in stencil_cases(L, D, u, out):
        t = best_time(fn, 3 * repeat)
        gbs = nbytes / t / 1e9
        rows.append(dict(suite="stencil", case=f"{name} {n}^2", seconds=t, value=gbs, unit="GB/s",
                         ratio=gbs / triad, ratio_to="triad", bytes=int(nbytes),
                         array_bytes=int(u.nbytes)))
    return rows


def stencil_cases(L, D, u, out):
    """``(name, call, bytes)`` of the stencil suite: the bytes that must move per call
    (each field read once, the result written once; no write-allocate)."""
    f = u.itemsize * u.size        # one field
    return (("Laplacian.apply", lambda: L.apply(u, out), 2 * f),               # u, out
            ("Diffusion.apply", lambda: D.apply(u, out), 2 * f + D.kappa.nbytes))  # + kappa


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
    rows = [dict(suite="krylov", case=f"Poisson {n}^2 CG+Multigrid, setup+solve", seconds=t_js,
                 value=float(sol.iters), unit="iters", ratio=1.0, ratio_to="itself")]
    try:
        import pyamg

        def amg():
            ml = pyamg.smoothed_aggregation_solver(M)
            return ml.solve(bf, tol=1e-8, accel="cg", maxiter=500)
        t = best_time(amg, 2, warmup=0)
        rows.append(dict(suite="krylov", case=f"Poisson {n}^2 pyamg SA+CG, setup+solve", seconds=t,
                         value=t * 1e3,
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
    # forward and gradient timed in alternation: a load spike hits both, not one
    t_f, t_g = best_times([lambda: js.solve(prob, js.Tsit5(), saveat=t_data, **kw),
                           lambda: js.gradient(prob, js.Tsit5(), loss, wrt=("p", "u0"),
                                               sensealg=js.DiscreteAdjoint(), **kw)],
                          repeat, warmup=2)
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
    t_f, t_g = best_times([lambda: js.solve(hp, js.RK4(), dt=dt, saveat=[T]),
                           lambda: js.gradient(hp, js.RK4(), hl, wrt="u0", dt=dt)],
                          repeat, warmup=2)
    rows.append(dict(suite="adjoint", case=f"heat {n}^2 RK4 {int(round(T / dt))} steps, grad wrt u0",
                     seconds=t_g, value=t_g * 1e3, unit="ms", ratio=t_g / t_f,
                     ratio_to="forward time"))
    return rows


_SUITE_FUNCS = {"stencil": suite_stencil, "krylov": suite_krylov, "ode": suite_ode,
                "sde": suite_sde, "adjoint": suite_adjoint}


_TIMING = ("seconds: minimum over repeated warm calls (one untimed call first, carrying the "
           "compilation); peers: SciPy cg one run after a 20-iteration probe, pyamg and SciPy "
           "solve_ivp best of 2 without warm-up")


def _suite_names(suites):
    from .errors import InvalidProblemError
    if isinstance(suites, str):
        suites = (suites,)
    try:
        names = [str(s) for s in suites]
    except TypeError:
        raise InvalidProblemError(f"suites: expected suite names, got {suites!r}") from None
    bad = [s for s in names if s not in SUITES and s != "all"]
    if bad or not names:
        raise InvalidProblemError(
            f"suites: unknown suite {', '.join(map(repr, bad)) or '(none given)'}; expected "
            f"some of {', '.join(SUITES)} or 'all'")
    return list(SUITES) if "all" in names else names


def run(suites=("all",), quick=False, gib=None, repeat=None):
    """Measure the triad bandwidth and the named suites; returns a dict (JSON-serialisable,
    fields in the module docstring).

    ``suites``: names from :data:`SUITES` or ``"all"`` (a single name may be a string);
    another name raises ``InvalidProblemError``.  ``gib``: total GiB of the three triad
    arrays (default 0.1 quick, else 0.75 raised to STREAM's rule by :func:`stream_gib`).
    ``repeat``: how many timed calls each figure is the minimum of (default: each suite's
    own, 3-15).
    """
    import numba
    suites = _suite_names(suites)
    if gib is None:
        gib = 0.1 if quick else stream_gib(0.75)
    rep = repeat if repeat is not None else (3 if quick else 5)
    bw = Bandwidth(gib=gib, repeat=rep)
    bw.measure()
    rows, seconds = [], {}
    kw = {} if repeat is None else dict(repeat=int(repeat))
    t0 = time.perf_counter()
    for s in suites:
        ts = time.perf_counter()
        rows.extend(_SUITE_FUNCS[s](bw.triad, quick=quick, **kw))
        seconds[s] = time.perf_counter() - ts
        bw.measure()   # between the suites: the best triad of the run is the limit
    for r in rows:
        if r["suite"] == "stencil":
            r["ratio"] = r["value"] / bw.triad
    return dict(threads=numba.get_num_threads(), triad_gbs=bw.triad, triad_median_gbs=bw.triad_median,
                copy_gbs=bw.copy, triad_samples=bw.triads, triad_array_bytes=int(bw.a.nbytes),
                llc_bytes=llc_bytes(), timing=_TIMING, quick=bool(quick), suites=list(suites),
                rows=rows, suite_seconds=seconds, wall_seconds=time.perf_counter() - t0)


def format_table(res):
    llc = res.get("llc_bytes")
    arr = res.get("triad_array_bytes")
    lines = [f"threads: {res['threads']}   triad: {res['triad_gbs']:.1f} GB/s   copy: "
             f"{res['copy_gbs']:.1f} GB/s   (triad samples {', '.join(f'{x:.1f}' for x in res['triad_samples'])})",
             "(GB/s = 1e9 B/s; triad 3 x 8 B per element, copy 2 x 8, write-allocate not counted"
             + (f"; arrays {arr / 2**20:.0f} MiB each" if arr else "")
             + (f", last-level cache {llc / 2**20:.0f} MiB" if llc else "") + ")",
             "",
             f"{'suite':8s} {'case':62s} {'time (ms)':>10s} {'figure':>18s} {'ratio':>8s}  to"]
    for r in res["rows"]:
        lines.append(f"{r['suite']:8s} {r['case'][:62]:62s} {1e3 * r['seconds']:10.2f} "
                     f"{r['value']:10.3g} {r['unit']:>7s} {r['ratio']:8.3g}  {r['ratio_to']}")
    lines.append("")
    per = ", ".join(f"{k} {v:.1f} s" for k, v in res.get("suite_seconds", {}).items())
    lines.append(f"(suites: {per}; total {res['wall_seconds']:.1f} s; times are the minimum of "
                 f"several warm calls, except SciPy cg (one run) and pyamg / SciPy solve_ivp "
                 f"(best of 2, no warm-up); stencil bytes: each field read once, the result "
                 f"written once)")
    return "\n".join(lines)


def _jsonable(x):
    """``x`` with NumPy scalars and arrays made plain and non-finite floats made None
    (``json`` would write a bare ``NaN``, which is not JSON)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def to_json(res):
    """``res`` as strict JSON (NaN and infinities written as ``null``)."""
    return json.dumps(_jsonable(res), indent=1, allow_nan=False, default=str)
