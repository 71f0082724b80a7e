"""ODE and adjoint figures of issues 4 and 6, peers timed in the same run.

    python perf/ode_figures.py [--repeat N] [--ens-repeat M] [--no-heat]

Lorenz-63 on [0, 100] at rtol = atol = 1e-8 (Tsit5 vs SciPy RK45 and DOP853); a
10,000-trajectory Lorenz ensemble (rho in [20, 30], t in [0, 10], Tsit5 at 1e-6, own
steps per trajectory); the gradient of 0.5 ||u_T - d||^2 wrt u0 through 1,000 RK4 steps
of a 256x256 heat equation (store-all and 16 binomial checkpoints, time and peak extra
memory as ratios to the forward solve).  Best of several repeats (``--repeat`` for the
single Lorenz solve, ``--ens-repeat`` for the ensemble); ``--no-heat`` stops after the
Lorenz figures.
"""
import argparse
import os
import time
import tracemalloc

import numpy as np


def best(fn, rep=5):
    t = np.inf
    out = None
    for _ in range(rep):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, time.perf_counter() - t0)
    return t, out


def lorenz(du, u, p, t):
    du[0] = 10.0 * (u[1] - u[0])
    du[1] = u[0] * (p[0] - u[2]) - u[1]
    du[2] = u[0] * u[1] - 8.0 / 3.0 * u[2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="best of N single Lorenz solves")
    ap.add_argument("--ens-repeat", type=int, default=3, help="best of M ensemble solves")
    ap.add_argument("--no-heat", action="store_true", help="only the Lorenz figures")
    args = ap.parse_args(argv)
    import jitsolve as js
    from scipy.integrate import solve_ivp
    print("load average at start: " + "/".join(f"{x:.2f}" for x in os.getloadavg()))
    prob = js.ODEProblem(lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 100.0), p=np.array([28.0]))
    js.solve(js.remake(prob, tspan=(0.0, 1.0)), js.Tsit5())
    t_js, sol = best(lambda: js.solve(prob, js.Tsit5(), rtol=1e-8, atol=1e-8), args.repeat)

    def f(t, u):
        return [10 * (u[1] - u[0]), u[0] * (28 - u[2]) - u[1], u[0] * u[1] - 8 / 3 * u[2]]
    t_rk45, r = best(lambda: solve_ivp(f, (0, 100), [1.0, 0, 0], method="RK45", rtol=1e-8, atol=1e-8), 2)
    print(f"Lorenz [0,100] 1e-8: jitsolve Tsit5 {t_js * 1e3:.2f} ms ({sol.stats.naccept} steps, "
          f"{t_js / sol.stats.naccept * 1e9:.0f} ns/step); SciPy RK45 {t_rk45 * 1e3:.0f} ms "
          f"({r.t.size - 1} steps): ratio {t_rk45 / t_js:.0f}x")

    N = 10_000
    rng = np.random.default_rng(0)
    ps = rng.uniform(20, 30, (N, 1))
    ep = js.EnsembleProblem(js.remake(prob, tspan=(0.0, 10.0)), ps=ps)
    js.solve(js.EnsembleProblem(js.remake(prob, tspan=(0.0, 10.0)), ps=ps[:4]), js.Tsit5(),
             saveat=[10.0])
    t_ens, es = best(lambda: js.solve(ep, js.Tsit5(), saveat=[0.0, 10.0], rtol=1e-6, atol=1e-6),
                     args.ens_repeat)
    steps = es.stats[:, 3]
    print(f"Ensemble 10,000 Lorenz (Tsit5 1e-6, t in [0,10]): {t_ens:.3f} s, steps per trajectory "
          f"{steps.min()}-{steps.max()} (mean {steps.mean():.0f}), {t_ens / steps.sum() * 1e9:.0f} ns/step")
    if args.no_heat:
        print("load average at end: " + "/".join(f"{x:.2f}" for x in os.getloadavg()))
        return

    g = js.Grid((256, 256), bc=js.Dirichlet(0.0))
    L = js.Laplacian(g)
    x, y = g.mesh()
    u0 = np.sin(np.pi * x) * np.sin(np.pi * y)
    dt = 0.2 * min(g.spacing) ** 2
    T = 1000 * dt
    hp = js.ODEProblem(L, u0, (0.0, T))
    d = np.zeros((1,) + g.shape)
    loss = js.L2Loss([T], d)
    js.solve(js.remake(hp, tspan=(0, 2 * dt)), js.RK4(), dt=dt, saveat=[2 * dt])
    t_fwd, _ = best(lambda: js.solve(hp, js.RK4(), dt=dt, saveat=[T]), 3)
    js.gradient(js.remake(hp, tspan=(0, 2 * dt)), js.RK4(), js.L2Loss([2 * dt], d), wrt="u0", dt=dt)
    t_all, _ = best(lambda: js.gradient(hp, js.RK4(), loss, wrt="u0", dt=dt), 2)
    sa = js.DiscreteAdjoint(checkpoints=16)
    t_c16, _ = best(lambda: js.gradient(hp, js.RK4(), loss, wrt="u0", dt=dt, sensealg=sa), 2)
    mem = {}
    from jitsolve.solvers import workspace
    for name, s in (("all", js.DiscreteAdjoint()), ("c16", sa)):
        # the store-all gradient's state array comes from the work pool (kept from the
        # timed calls): emptied first, so its allocation is traced
        workspace.clear()
        tracemalloc.start()
        js.gradient(hp, js.RK4(), loss, wrt="u0", dt=dt, sensealg=s)
        mem[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    state = g.size * 8
    print(f"Heat 256x256, 1,000 RK4 steps: forward {t_fwd * 1e3:.0f} ms; gradient wrt u0 "
          f"store-all {t_all * 1e3:.0f} ms ({t_all / t_fwd:.2f}x forward), 16 checkpoints "
          f"{t_c16 * 1e3:.0f} ms ({t_c16 / t_fwd:.2f}x); peak traced memory store-all "
          f"{mem['all'] / 2**20:.0f} MiB ({mem['all'] / state:.0f} states), 16 checkpoints "
          f"{mem['c16'] / 2**20:.1f} MiB ({mem['c16'] / state:.0f} states, "
          f"{mem['c16'] / mem['all']:.3f} of store-all)")


if __name__ == "__main__":
    main()
