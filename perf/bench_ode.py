"""pytest-benchmark suite of the explicit ODE integrators and their adjoints (issues 4, 6).

    python -m pytest perf/bench_ode.py --benchmark-only

Peers run in the same session: SciPy ``solve_ivp`` (RK45, DOP853).  perf/ode_figures.py
prints the issue's ratios in one run.
"""
import numpy as np
import pytest

import jitsolve as js


def lorenz(du, u, p, t):
    du[0] = 10.0 * (u[1] - u[0])
    du[1] = u[0] * (p[0] - u[2]) - u[1]
    du[2] = u[0] * u[1] - 8.0 / 3.0 * u[2]


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


def lotka_vjp(ou, op, lam, u, p, t):
    """Lotka-Volterra's own VJP: ``ou = J^T lam``, ``op = J_p^T lam``."""
    ou[0] = (p[0] - p[1] * u[1]) * lam[0] + p[3] * u[1] * lam[1]
    ou[1] = -p[1] * u[0] * lam[0] + (-p[2] + p[3] * u[0]) * lam[1]
    op[0] = u[0] * lam[0]
    op[1] = -u[0] * u[1] * lam[0]
    op[2] = -u[1] * lam[1]
    op[3] = u[0] * u[1] * lam[1]


LORENZ = js.ODEProblem(lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 100.0), p=np.array([28.0]))


@pytest.mark.parametrize("alg", [js.Tsit5(), js.DP5(), js.Vern7()], ids=str)
def test_lorenz_jitsolve(benchmark, alg):
    js.solve(js.remake(LORENZ, tspan=(0.0, 1.0)), alg)
    sol = benchmark(js.solve, LORENZ, alg, rtol=1e-8, atol=1e-8)
    benchmark.extra_info["steps"] = sol.stats.naccept


@pytest.mark.parametrize("method", ["RK45", "DOP853"])
def test_lorenz_scipy(benchmark, method):
    from scipy.integrate import solve_ivp

    def f(t, u):
        return [10 * (u[1] - u[0]), u[0] * (28 - u[2]) - u[1], u[0] * u[1] - 8 / 3 * u[2]]
    r = benchmark.pedantic(solve_ivp, args=(f, (0, 100), [1.0, 0, 0]),
                           kwargs=dict(method=method, rtol=1e-8, atol=1e-8), rounds=2)
    benchmark.extra_info["steps"] = r.t.size - 1


def test_lorenz_ensemble_10k(benchmark):
    ps = np.random.default_rng(0).uniform(20, 30, (10_000, 1))
    ep = js.EnsembleProblem(js.remake(LORENZ, tspan=(0.0, 10.0)), ps=ps)
    js.solve(js.EnsembleProblem(ep.prob, ps=ps[:2]), js.Tsit5(), saveat=[10.0])
    benchmark.pedantic(js.solve, args=(ep, js.Tsit5()), kwargs=dict(saveat=[0.0, 10.0], rtol=1e-6,
                                                                     atol=1e-6), rounds=3)


@pytest.mark.parametrize("vjp", [False, True], ids=["complex-step", "user-vjp"])
def test_lotka_gradient(benchmark, vjp):
    p = np.array([1.5, 1.0, 3.0, 1.0])
    f = js.ODEFunction(lotka, vjp=lotka_vjp) if vjp else lotka
    prob = js.ODEProblem(f, np.array([1.0, 1.0]), (0.0, 10.0), p)
    t = np.linspace(0, 10, 100)
    loss = js.L2Loss(t, js.solve(prob, js.Tsit5(), saveat=t, rtol=1e-10).u * 1.01)
    js.gradient(prob, js.Tsit5(), loss, wrt="p", rtol=1e-7, atol=1e-7)
    benchmark(js.gradient, prob, js.Tsit5(), loss, wrt="p", rtol=1e-7, atol=1e-7)
