"""Krylov + multigrid figures for issue 3, measured in one run beside the peers.

Tables:
  1. 2D Poisson (5-point, Dirichlet, rtol 1e-8): CG + geometric multigrid iterations,
     setup/solve/total time, and the cost in units of one stencil apply, 256^2 .. 2048^2
     (an apply with its vectors in cache, and one out of cache, as inside the solve, whose
     working set of some 10 vectors does not fit in the cache from 1024^2 on);
     at 1024^2 the peers: pyamg smoothed aggregation as a CG preconditioner
     (setup + solve) and plain SciPy ``cg`` on the CSR matrix (capped, extrapolated).
  2. Plain CG per iteration vs the bytes an iteration moves / triad bandwidth measured
     here on arrays of the same size, and vs SciPy ``cg`` per iteration; the model stays
     the reference loop's 13 vectors whatever the fused kernels move; the generic
     unfused loop is timed beside it, and the fused loop with ``x`` updated in its
     update pass (``LAG_X`` off) against the default (deferred to the next pass).
  3. The same for 3D Poisson (7-point) at 128^3.
  4. Jump coefficients 1 vs 1000 in a checkerboard of blocks, 3D (rtol 1e-10) and 2D
     (512^2, 16^2 blocks, rtol 1e-8): CG + Multigrid (the default ``coarse="auto"``,
     and rediscretised / Galerkin levels explicitly) and CG + AMG against SciPy's direct
     solve (``--jump-only``: this table alone).
  5. Smoother variants at 1024^2 and 128^3: red-black against symmetric red-black-red
     (``smoother="srbgs"``; the default ``"auto"`` takes it for the 3-D Laplacian, so
     table 3's CG + Multigrid is its srbgs row), for the Laplacian and for a Diffusion
     operator with ``kappa = exp(U(-1, 1))`` (the conductivity problems' kind), in
     interleaved rounds.

  6. Grids whose cell counts are not powers of two (1000^2, 600^2, 1008^2, 1025^2,
     1001^2, 100^3, 120^3, 101^3, 129^3): odd axes coarsen to (n - 1) / 2 with the
     far Dirichlet ghost moved to the true boundary on every level; CG + Multigrid
     against pyamg SA + CG on the same matrix.

  7. Stretched cells (unit extents on 1024 x 64, 512 x 128, 128 x 128 x 32 cells; a
     1 x 4 extent on 256^2 cells): CG + Multigrid with semi-coarsening (the default)
     against full coarsening (``SEMI_COARSENING = 0``) and pyamg SA + CG.

  8. Implicit steps: ``(I - dt A) u = b`` on 1024^2 cells, A the Laplacian or a
     Diffusion, dt from 1e-6 to 1: CG + Multigrid with the shift against Jacobi CG and
     pyamg SA + CG on the CSR matrix.

Run:  python perf/bench_krylov.py [--max2d 2048] [--scipy-cap 15] [--odd-only] [--implicit-only]
      [--jump-only] [--jump 32] [--jump2d 512]
Every time is the best of a few runs (setup and solve each), except the single large runs.
"""
import argparse
import time

import numpy as np


def _triad():
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def triad(a, b, c, s):
        for i in prange(a.size):
            a[i] = b[i] + s * c[i]
    return triad


def best(fn, repeat=5):
    fn()
    t = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def triad_bw(n, repeat=10):
    """GB/s of a = b + s c on float64 arrays of n entries (24 bytes per entry counted)."""
    tr = _triad()
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    t = best(lambda: tr(a, b, c, 3.0), repeat)
    return 24.0 * n / t / 1e9


def apply_time(A, repeat=30):
    from jitsolve.linear import operator_matvec
    n = A.grid.size
    mv = operator_matvec(A, np.float64)
    x, y = np.random.default_rng(0).random(n), np.empty(n)
    return best(lambda: mv(x, y), repeat)


def apply_time_cold(A, repeat=3, span_bytes=512 << 20):
    """Best time of one apply whose input and output are not in cache: the applies cycle
    through distinct (x, y) pairs spanning ``span_bytes`` (well above the last-level cache
    a core sees), as in a solve whose working set does not fit there."""
    from jitsolve.linear import operator_matvec
    n = A.grid.size
    mv = operator_matvec(A, np.float64)
    pairs = max(3, span_bytes // (16 * n))
    rng = np.random.default_rng(0)
    xs = [rng.random(n) for _ in range(pairs)]
    ys = [np.zeros(n) for _ in range(pairs)]
    mv(xs[0], ys[0])
    t = np.inf
    for _ in range(repeat):
        for x, y in zip(xs, ys):
            t0 = time.perf_counter()
            mv(x, y)
            t = min(t, time.perf_counter() - t0)
    return t


def cg_mg(A, b, rtol=1e-8, repeat=3):
    import jitsolve as js
    ts, tt, sol = np.inf, np.inf, None
    for _ in range(repeat):
        pc = js.Multigrid()
        t0 = time.perf_counter()
        pc.setup(A)
        t1 = time.perf_counter()
        sol = js.solve(js.LinearProblem(A, b), js.CG(pc), rtol=rtol)
        t2 = time.perf_counter()
        ts, tt = min(ts, t1 - t0), min(tt, t2 - t1)
    return sol, ts, tt


def pyamg_cg(M, b, rtol=1e-8):
    import pyamg
    t0 = time.perf_counter()
    ml = pyamg.smoothed_aggregation_solver(M)
    t1 = time.perf_counter()
    res = []
    x = ml.solve(b, tol=rtol, accel="cg", residuals=res, maxiter=500)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(res) - 1, np.linalg.norm(b - M @ x) / np.linalg.norm(b)


def best_pyamg(M, b, repeat):
    """pyamg SA + CG, setup + solve: ``(best seconds, its iterations)`` of ``repeat`` runs."""
    best = (np.inf, 0)
    for _ in range(repeat):
        ps, pt, pit, _res = pyamg_cg(M, b)
        best = min(best, (ps + pt, pit))
    return best


def scipy_cg(M, b, cap_s, est_iters):
    """SciPy cg on the CSR matrix for at most ~cap_s seconds; returns (time/iter, iters run,
    converged?, total or extrapolated time)."""
    import scipy.sparse.linalg as spla
    # probe the per-iteration time, then run as many iterations as fit in the cap
    t0 = time.perf_counter()
    spla.cg(M, b, rtol=1e-8, atol=0.0, maxiter=20)
    per = (time.perf_counter() - t0) / 20
    k = int(min(max(cap_s / per, 20), 10 * est_iters))
    count = [0]
    t0 = time.perf_counter()
    x, info = spla.cg(M, b, rtol=1e-8, atol=0.0, maxiter=k,
                      callback=lambda xk: count.__setitem__(0, count[0] + 1))
    t = time.perf_counter() - t0
    per = min(per, t / max(count[0], 1))
    conv = info == 0
    return per, count[0], conv, (t if conv else per * est_iters)


def plain_cg(A, b, iters=100, repeat=5):
    """Per-iteration time of plain CG, ``best``, and the times ``(t_long, t_short)`` of its
    marginal cost.  ``best``: the best over
    ``repeat`` solves of ``iters`` iterations of their time per iteration (the solve's
    setup included: its fresh vectors' first-touch page faults, ~4 ms for four 8 MB
    vectors here, are ~5 % of 100 iterations at 1024^2); the marginal cost ``(min t(iters
    + 50) - min t(50)) / iters`` over interleaved solves of each length is the cost of an
    iteration without the setup (the minima taken separately: a difference per pair is
    at the mercy of one slow short solve)."""
    import jitsolve as js
    prob = js.LinearProblem(A, b)
    js.solve(prob, js.CG(), maxiter=5)
    best_t = np.inf
    t_long = t_short = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        sol = js.solve(prob, js.CG(), rtol=1e-14, maxiter=iters)
        best_t = min(best_t, (time.perf_counter() - t0) / sol.iters)
        t0 = time.perf_counter()
        js.solve(prob, js.CG(), rtol=1e-14, maxiter=iters + 50)
        t_long = min(t_long, time.perf_counter() - t0)
        t0 = time.perf_counter()
        js.solve(prob, js.CG(), rtol=1e-14, maxiter=50)
        t_short = min(t_short, time.perf_counter() - t0)
    return best_t, t_long, t_short


def unfused_cg(A, b, iters=100, repeat=5):
    """Per-iteration time of the generic (unfused) CG loop on the same operator: the
    solver called without its grid description, so matvec, dot, update and xpay run as
    four kernels (the loop ``js.CG()`` used before the fused grid kernels)."""
    from jitsolve.linear import operator_matvec
    from jitsolve.solvers.linear import cg
    mv = operator_matvec(A, np.float64)
    bf = np.ascontiguousarray(b, dtype=np.float64).ravel()
    cg(mv, bf, maxiter=5)
    best_t = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = cg(mv, bf, rtol=1e-14, maxiter=iters)
        best_t = min(best_t, (time.perf_counter() - t0) / res.iters)
    return best_t


def lag_ab(A, b, iters=20, rounds=40):
    """Plain CG per iteration with ``x += alpha p`` deferred into the next direction pass
    (the default, ``solvers.linear.cg.LAG_X``) and done in the update pass, interleaved
    in ``rounds`` solves of ``iters`` iterations each; returns the medians (lagged,
    eager)."""
    import importlib
    import jitsolve as js
    cgmod = importlib.import_module("jitsolve.solvers.linear.cg")
    prob = js.LinearProblem(A, b)
    old = cgmod.LAG_X
    out = {True: [], False: []}
    try:
        for k in range(rounds):
            for lag in ((True, False) if k % 2 == 0 else (False, True)):
                cgmod.LAG_X = lag
                t0 = time.perf_counter()
                sol = js.solve(prob, js.CG(), rtol=1e-14, maxiter=iters)
                out[lag].append((time.perf_counter() - t0) / sol.iters)
    finally:
        cgmod.LAG_X = old
    return float(np.median(out[True])), float(np.median(out[False]))


def plain_cg_iters(A, b):
    import jitsolve as js
    sol = js.solve(js.LinearProblem(A, b), js.CG(), rtol=1e-8, maxiter=20000)
    return sol.iters, sol.retcode


def poisson_block(shape, scipy_cap, lines, peers=True):
    import jitsolve as js
    g = js.Grid(shape)
    A = -js.Laplacian(g)
    b = np.ones(g.shape)
    n = g.size
    ta = apply_time(A)
    sol, ts, tt = cg_mg(A, b)
    ta = min(ta, apply_time(A))         # measured before and after: the less disturbed one
    tc = apply_time_cold(A)
    name = "x".join(map(str, shape))
    lines.append(f"| {name} | {sol.iters} | {sol.resnorm / np.linalg.norm(b):.1e} | {ts * 1e3:.1f} | "
                 f"{tt * 1e3:.1f} | {(ts + tt) * 1e3:.1f} | {ta * 1e3:.3f} | {(ts + tt) / ta:.0f} | "
                 f"{tc * 1e3:.3f} | {(ts + tt) / tc:.0f} |")
    if not peers:
        return None
    M = A.to_csr()
    bf = b.ravel()
    pa_s, pa_t, pa_it, pa_res = pyamg_cg(M, bf)
    k_cg, rc = plain_cg_iters(A, b)
    sp_per, sp_run, sp_conv, sp_total = scipy_cg(M, bf, scipy_cap, k_cg)
    bw = triad_bw(n)
    t_it, t_long, t_short = plain_cg(A, b)
    t_un = unfused_cg(A, b)
    t_it2, t_long2, t_short2 = plain_cg(A, b)   # fused and unfused interleaved: the same noise
    t_it = min(t_it, t_it2)
    t_marg = (min(t_long, t_long2) - min(t_short, t_short2)) / 100
    t_lag, t_eager = lag_ab(A, b)
    bw = max(bw, triad_bw(n))           # the best triad of the run (noise only lowers it)
    bytes_it = 13 * 8 * n   # matvec 2, p.Ap 2, fused update 6 (4 reads, 2 writes), p = r + b p 3
    model = bytes_it / (bw * 1e9)
    return dict(n=n, name=name, total=ts + tt, pa_s=pa_s, pa_t=pa_t, pa_it=pa_it, pa_res=pa_res,
                sp_per=sp_per, sp_run=sp_run, sp_conv=sp_conv, sp_total=sp_total, k_cg=k_cg,
                bw=bw, t_it=t_it, t_un=t_un, model=model, ta=ta, tc=tc, t_lag=t_lag,
                t_eager=t_eager, t_marg=t_marg)


def peer_lines(r):
    out = []
    out.append(f"Peers at {r['name']} (same run):")
    out.append(f"- CG + Multigrid total (setup + solve): {r['total']:.3f} s")
    out.append(f"- pyamg smoothed aggregation + CG (accel='cg'): setup {r['pa_s']:.2f} s + solve "
               f"{r['pa_t']:.2f} s = {r['pa_s'] + r['pa_t']:.2f} s, {r['pa_it']} iterations, "
               f"rel. residual {r['pa_res']:.1e} -> ratio ours/pyamg = "
               f"{r['total'] / (r['pa_s'] + r['pa_t']):.3f} (target <= 0.05)")
    if r["sp_conv"]:
        out.append(f"- SciPy cg on CSR: {r['sp_total']:.2f} s ({r['sp_run']} iterations, converged) -> "
                   f"ratio {r['total'] / r['sp_total']:.4f} (target <= 0.01)")
    else:
        out.append(f"- SciPy cg on CSR: capped after {r['sp_run']} iterations at {r['sp_per'] * 1e3:.2f} ms/iter; "
                   f"extrapolated to the {r['k_cg']} iterations plain CG needs for rtol 1e-8 here: "
                   f"{r['sp_total']:.1f} s (extrapolated) -> ratio {r['total'] / r['sp_total']:.4f} (target <= 0.01)")
    out.append(f"- plain CG (js.CG()): {r['k_cg']} iterations to rtol 1e-8; {r['t_it'] * 1e3:.3f} ms/iteration; "
               f"13 vectors x 8 B x {r['n']} = {13 * 8 * r['n'] / 1e6:.1f} MB/iteration; triad on arrays of "
               f"this size {r['bw']:.1f} GB/s -> model {r['model'] * 1e3:.3f} ms; ratio measured/model "
               f"{r['t_it'] / r['model']:.2f} (target <= 1.3); vs SciPy cg per iteration "
               f"{r['sp_per'] / r['t_it']:.2f}x faster (target >= 3)")
    out.append(f"- plain CG per iteration without the solve's setup (marginal: (min t(150) - min t(50)) / 100, "
               f"10 solves each): {r['t_marg'] * 1e3:.3f} ms/iteration; ratio measured/model "
               f"{r['t_marg'] / r['model']:.2f} (target <= 1.3)")
    out.append(f"- same run, the generic unfused CG loop (matvec, dot, update, xpay as four kernels): "
               f"{r['t_un'] * 1e3:.3f} ms/iteration, ratio measured/model {r['t_un'] / r['model']:.2f}; "
               f"fused/unfused {r['t_it'] / r['t_un']:.2f}")
    out.append(f"- same run, the fused loop with x updated in the update pass (LAG_X off): "
               f"{r['t_eager'] * 1e3:.3f} against {r['t_lag'] * 1e3:.3f} ms/iteration deferred "
               f"(medians of 40 interleaved solves of 20 iterations); lagged/eager "
               f"{r['t_lag'] / r['t_eager']:.2f}")
    out.append(f"- one stencil apply: {r['ta'] * 1e3:.3f} ms with its vectors in cache, "
               f"{r['tc'] * 1e3:.3f} ms out of cache; CG+MG total = {r['total'] / r['ta']:.0f} "
               f"in-cache applies = {r['total'] / r['tc']:.0f} out-of-cache applies")
    return out


def jump_block(shape, lines, blocks=8, rtol=1e-10):
    """CG with each preconditioner on a 1 : 1000 checkerboard of ``blocks`` blocks per
    axis against SciPy's direct solve: the default ``Multigrid()`` (``coarse="auto"``),
    both coarse operators explicitly, and pyamg's smoothed aggregation."""
    import scipy.sparse.linalg as spla
    import jitsolve as js
    g = js.Grid(shape)
    idx = np.indices(g.shape)
    blk = sum(idx[a] * blocks // shape[a] for a in range(g.ndim))
    kappa = np.where(blk % 2 == 0, 1.0, 1000.0)
    A = -js.Diffusion(g, kappa)
    b = np.ones(g.shape)
    t0 = time.perf_counter()
    ref = spla.spsolve(A.to_csr().tocsc(), b.ravel()).reshape(g.shape)
    td = time.perf_counter() - t0
    dims = "x".join(map(str, shape))
    lines.append(f"Jump coefficients, {g.ndim}D {dims}, checkerboard of {blocks}^{g.ndim} "
                 f"blocks, kappa 1 / 1000, rtol {rtol:g} (SciPy spsolve reference: {td:.1f} s):")
    lines.append("")
    lines.append("| preconditioner | retcode | iterations | time (s) | rel. diff to spsolve |")
    lines.append("|---|---|---|---|---|")
    for name, pc, runs in (("Multigrid() (default: coarse='auto')", js.Multigrid, 2),
                           ("Multigrid(coarse='rediscretised')",
                            lambda: js.Multigrid(coarse="rediscretised"), 2),
                           ("Multigrid(coarse='galerkin')",
                            lambda: js.Multigrid(coarse="galerkin"), 2),
                           ("AMG (pyamg SA)", js.AMG, 1)):
        t = np.inf              # setup + solve, best of ``runs`` (the first compiles)
        for _ in range(runs):
            t0 = time.perf_counter()
            sol = js.solve(js.LinearProblem(A, b), js.CG(pc()), rtol=rtol, maxiter=1000)
            t = min(t, time.perf_counter() - t0)
        err = np.linalg.norm(sol.u - ref) / np.linalg.norm(ref)
        lines.append(f"| {name} | {sol.retcode.value} | {sol.iters} | {t:.2f} | {err:.1e} |")
    lines.append("")


def smoother_block(lines, n2d=1024, n3d=128, rounds=5):
    """CG + Multigrid to rtol 1e-8 with ``smoother="rbgs"`` and ``"srbgs"``, Laplacian and
    Diffusion, best totals (setup + solve) of ``rounds`` interleaved rounds."""
    import jitsolve as js
    lines += ["Smoother variants, CG + Multigrid, rtol 1e-8 (best of %d interleaved rounds, "
              "setup + solve):" % rounds, "",
              "| operator | grid | rbgs iters | rbgs (ms) | srbgs iters | srbgs (ms) | srbgs / rbgs |",
              "|---|---|---|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for shape in ((n2d, n2d), (n3d,) * 3):
        g = js.Grid(shape)
        kappa = np.exp(rng.uniform(-1.0, 1.0, g.shape))
        for name, A in (("-Laplacian", -js.Laplacian(g)), ("-Diffusion", -js.Diffusion(g, kappa))):
            b = np.ones(g.shape)
            best_t, its = {}, {}
            for _ in range(rounds):
                for sm in ("rbgs", "srbgs"):
                    t0 = time.perf_counter()
                    sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(smoother=sm)), rtol=1e-8)
                    t = time.perf_counter() - t0
                    best_t[sm] = min(best_t.get(sm, np.inf), t)
                    its[sm] = sol.iters
            lines.append(f"| {name} | {'x'.join(map(str, shape))} | {its['rbgs']} | "
                         f"{best_t['rbgs'] * 1e3:.1f} | {its['srbgs']} | {best_t['srbgs'] * 1e3:.1f} | "
                         f"{best_t['srbgs'] / best_t['rbgs']:.2f} |")


def odd_block(lines, shapes=((1000, 1000), (600, 600), (1008, 1008), (1025, 1025),
                              (1001, 1001), (100, 100, 100), (120, 120, 120), (101, 101, 101),
                              (129, 129, 129)), repeat=3):
    """CG + Multigrid and pyamg SA + CG to rtol 1e-8 on grids whose cell counts are not
    powers of two: levels, the coarsest level's shape and factorisation time, best of
    ``repeat``."""
    import jitsolve as js
    from jitsolve.solvers.linear.precond.multigrid import GeometricMultigrid
    lines += ["Grids that are not powers of two (Poisson, Dirichlet, rtol 1e-8; best of %d):"
              % repeat, "",
              "| grid | levels, coarsest | factor (ms) | CG+MG iters | setup (ms) | solve (ms) | "
              "total (ms) | pyamg iters | pyamg total (ms) | ours / pyamg |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for shape in shapes:
        g = js.Grid(shape)
        A = -js.Laplacian(g)
        b = np.ones(g.shape)
        sol, ts, tt = cg_mg(A, b, repeat=repeat)
        pad = 3 - g.ndim
        mg = GeometricMultigrid((1,) * pad + tuple(shape), [0.0] * pad + [1.0] * g.ndim,
                                np.zeros(3, np.int64), -np.ones((3, 2)), -1.0, None)
        coarse = "x".join(map(str, mg.levels[-1].shape[pad:]))
        t0 = time.perf_counter()
        mg._factor_coarsest()     # timed again on its own
        tf = time.perf_counter() - t0
        best_p = best_pyamg(A.to_csr(), b.ravel(), repeat)
        tot = ts + tt
        lines.append(f"| {'x'.join(map(str, shape))} | {mg.nlevels}, {coarse} | "
                     f"{tf * 1e3:.1f} | {sol.iters} | {ts * 1e3:.1f} | {tt * 1e3:.1f} | "
                     f"{tot * 1e3:.1f} | {best_p[1]} | {best_p[0] * 1e3:.0f} | "
                     f"{tot / best_p[0]:.3f} |")


def stretched_block(lines, repeat=3):
    """CG + Multigrid to rtol 1e-8 on grids of stretched cells, with semi-coarsening and
    with every axis halved on every level, beside pyamg SA + CG (best of ``repeat``)."""
    import jitsolve as js
    from jitsolve.solvers.linear.precond import multigrid as MG
    lines += ["Stretched cells (Poisson, Dirichlet, rtol 1e-8; setup + solve, best of %d):"
              % repeat, "",
              "| grid | cell aspect | semi: iters | semi (ms) | full: iters | full (ms) | "
              "pyamg iters | pyamg (ms) | semi / pyamg |",
              "|---|---|---|---|---|---|---|---|---|"]
    cases = (((1024, 64), None), ((512, 128), None), ((256, 256), [(0, 1), (0, 4)]),
             ((128, 128, 32), None))
    saved = MG.SEMI_COARSENING
    for shape, extent in cases:
        g = js.Grid(shape, extent=extent) if extent else js.Grid(shape)
        A = -js.Laplacian(g)
        b = np.ones(g.shape)
        row = {}
        for name, theta in (("semi", saved), ("full", 0.0)):
            MG.SEMI_COARSENING = theta
            try:
                sol, ts, tt = cg_mg(A, b, repeat=repeat)
            finally:
                MG.SEMI_COARSENING = saved
            row[name] = (sol.iters, ts + tt)
        best_p = best_pyamg(A.to_csr(), b.ravel(), repeat)
        aspect = max(g.spacing) / min(g.spacing)
        lines.append(f"| {'x'.join(map(str, shape))} | {aspect:.0f} : 1 | {row['semi'][0]} | "
                     f"{row['semi'][1] * 1e3:.1f} | {row['full'][0]} | {row['full'][1] * 1e3:.1f} | "
                     f"{best_p[1]} | {best_p[0] * 1e3:.0f} | {row['semi'][1] / best_p[0]:.3f} |")


def implicit_block(lines, n=1024, dts=(1e-6, 1e-4, 1e-2, 1.0), repeat=3):
    """One implicit (backward Euler) step of the heat equation, ``(I - dt A) u = b`` on
    ``n^2`` cells for ``A`` the Laplacian and a ``Diffusion(exp(U(-1, 1)))``: CG +
    Multigrid with the shift beside pyamg SA + CG on the CSR matrix and Jacobi CG
    (setup + solve, rtol 1e-8, best of ``repeat``)."""
    import jitsolve as js
    g = js.Grid((n, n))
    kap = np.exp(np.random.default_rng(1).uniform(-1, 1, g.shape))
    b = np.random.default_rng(0).standard_normal(g.shape)
    lines += [f"Implicit steps (I - dt A) u = b on {n}^2 cells (rtol 1e-8; setup + solve, "
              f"best of {repeat}):", "",
              "| A | dt | dt / h^2 | CG+MG iters | CG+MG (ms) | Jacobi CG iters | "
              "Jacobi CG (ms) | pyamg iters | pyamg (ms) | MG / pyamg |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    h2 = min(g.spacing) ** 2
    for name, op in (("Laplacian", js.Laplacian(g)), ("Diffusion", js.Diffusion(g, kap))):
        for dt in dts:
            A = js.Identity(g) - dt * op
            sol, ts, tt = cg_mg(A, b, repeat=repeat)
            tj, solj = np.inf, None
            for _ in range(repeat):
                t0 = time.perf_counter()
                solj = js.solve(js.LinearProblem(A, b), js.CG(js.Jacobi()), rtol=1e-8,
                                maxiter=20000)
                tj = min(tj, time.perf_counter() - t0)
            best_p = best_pyamg(A.to_csr(), b.ravel(), repeat)
            tot = ts + tt
            lines.append(f"| {name} | {dt:g} | {dt / h2:.3g} | {sol.iters} | {tot * 1e3:.1f} | "
                         f"{solj.iters} | {tj * 1e3:.1f} | {best_p[1]} | {best_p[0] * 1e3:.0f} | "
                         f"{tot / best_p[0]:.3f} |")


def main(argv=None):
    import os
    import numba
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max2d", type=int, default=2048)
    ap.add_argument("--n3d", type=int, default=128)
    ap.add_argument("--jump", type=int, default=32)
    ap.add_argument("--jump2d", type=int, default=512)
    ap.add_argument("--scipy-cap", type=float, default=15.0)
    ap.add_argument("--odd-only", action="store_true", help="only tables 6 and 7")
    ap.add_argument("--implicit-only", action="store_true", help="only table 8")
    ap.add_argument("--jump-only", action="store_true", help="only table 4")
    a = ap.parse_args(argv)
    lines = [f"threads: {numba.get_num_threads()} (cores: {os.cpu_count()})", ""]
    if a.jump_only:
        jump_block((a.jump,) * 3, lines)
        jump_block((a.jump2d,) * 2, lines, blocks=16, rtol=1e-8)
        print("\n".join(lines))
        return
    if a.implicit_only:
        implicit_block(lines)
        print("\n".join(lines))
        return
    if a.odd_only:
        odd_block(lines)
        lines.append("")
        stretched_block(lines)
        print("\n".join(lines))
        return
    head = ["| grid | CG+MG iters | rel. residual | setup (ms) | solve (ms) | total (ms) | "
            "1 apply (ms) | total / apply | 1 apply, cold (ms) | total / cold apply |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    lines += ["2D Poisson, 5-point, Dirichlet, rtol 1e-8, CG + Multigrid (V(1,1), red-black GS):", ""] + head
    peers2 = None
    n = 256
    while n <= a.max2d:
        r = poisson_block((n, n), a.scipy_cap, lines, peers=(n == 1024))
        if r is not None:
            peers2 = r
        n *= 2
    lines.append("")
    if peers2:
        lines += peer_lines(peers2)
    lines += ["", "3D Poisson, 7-point, Dirichlet, rtol 1e-8:", ""] + head
    r3 = poisson_block((a.n3d,) * 3, a.scipy_cap, lines, peers=True)
    lines.append("")
    lines += peer_lines(r3)
    lines.append("")
    jump_block((a.jump,) * 3, lines)
    jump_block((a.jump2d,) * 2, lines, blocks=16, rtol=1e-8)
    lines.append("")
    smoother_block(lines, n3d=a.n3d)
    lines.append("")
    odd_block(lines)
    lines.append("")
    stretched_block(lines)
    lines.append("")
    implicit_block(lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
