"""Explicit Runge-Kutta integrators: measured orders, accuracy against SciPy, options,
events, failures and ensembles."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import jitsolve as js
from jitsolve.errors import InvalidProblemError
from ode_models import ball, ground, lotka

METHODS = [(js.Euler, 1, 1), (js.RK4, 4, 4), (js.Tsit5, 5, 5), (js.DP5, 5, 5), (js.Vern7, 7, 7)]


def expsin(du, u, p, t):        # u' = u cos t, u = exp(sin t)
    du[0] = u[0] * np.cos(t)
    du[1] = -p[0] * u[1]


def lorenz(du, u, p, t):
    du[0] = 10.0 * (u[1] - u[0])
    du[1] = u[0] * (28.0 - u[2]) - u[1]
    du[2] = u[0] * u[1] - 8.0 / 3.0 * u[2]


def exact_expsin(t, u0=np.array([1.0, 2.0]), k=0.7):
    return np.array([u0[0] * np.exp(np.sin(t)), u0[1] * np.exp(-k * t)])


EXP = js.ODEProblem(expsin, np.array([1.0, 2.0]), (0.0, 2.0), p=np.array([0.7]))
LV = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 10.0), p=np.array([1.5, 1.0, 3.0, 1.0]))


def _slope(hs, errs):
    return np.polyfit(np.log(hs), np.log(errs), 1)[0]


@pytest.mark.parametrize("alg,order,_", METHODS, ids=[m[0].__name__ for m in METHODS])
def test_convergence_order(alg, order, _):
    # step counts in the asymptotic range, above round-off (Tsit5 and Vern7 have tiny
    # leading error constants here, so coarse steps show pre-asymptotic slopes)
    T, ns = {1: (2.0, [50, 100, 200, 400]), 4: (2.0, [10, 20, 40, 80]),
             5: (10.0, [40, 80, 160, 320]), 7: (10.0, [40, 56, 80, 112])}[order]
    prob = js.remake(EXP, tspan=(0.0, T))
    hs, errs = [], []
    for n in ns:
        dt = T / n
        sol = js.solve(prob, alg(), dt=dt, adaptive=False)
        assert sol.t[-1] == T and len(sol.t) == n + 1
        hs.append(dt)
        errs.append(np.abs(sol.u[-1] - exact_expsin(T)).max())
    assert abs(_slope(hs, errs) - order) < 0.2, (errs, _slope(hs, errs))


@pytest.mark.parametrize("alg,order", [(js.RK4, 4), (js.Tsit5, 5), (js.DP5, 5), (js.Vern7, 6)],
                         ids=["RK4", "Tsit5", "DP5", "Vern7"])
def test_interpolant_order(alg, order):
    """Dense output between steps converges at min(p, q + 1) (q the interpolant's order).
    Vern7's published interpolant coefficients meet the order-7 conditions only to ~3e-7
    (see its tableau module), so its measured dense order is ~6-7."""
    ns = [8, 12, 16, 24] if order >= 6 else [10, 20, 40, 80]
    hs, errs = [], []
    for n in ns:
        dt = 2.0 / n
        sol = js.solve(EXP, alg(), dt=dt, adaptive=False)
        tq = (np.arange(n) + 0.37) * dt
        e = np.abs(sol(tq) - np.stack([exact_expsin(t) for t in tq])).max()
        hs.append(dt)
        errs.append(e)
    assert _slope(hs, errs) > order - 0.25, errs


@pytest.mark.parametrize("alg", [js.Tsit5, js.DP5, js.Vern7])
def test_lotka_volterra_against_dop853(alg):
    ref = solve_ivp(lambda t, u: [1.5 * u[0] - u[0] * u[1], -3 * u[1] + u[0] * u[1]], (0, 10),
                    [1.0, 1.0], method="DOP853", rtol=1e-13, atol=1e-13, dense_output=True)
    sol = js.solve(LV, alg(), rtol=1e-12, atol=1e-12)
    assert sol.successful
    np.testing.assert_allclose(sol.u[-1], ref.y[:, -1], rtol=1e-9)
    tq = np.linspace(0, 10, 37)
    np.testing.assert_allclose(sol(tq), ref.sol(tq).T, rtol=2e-8, atol=1e-9)


def test_adaptive_tolerance_proportionality():
    errs = []
    for tol in (1e-4, 1e-6, 1e-8, 1e-10):
        sol = js.solve(EXP, js.Tsit5(), rtol=tol, atol=tol)
        errs.append(np.abs(sol.u[-1] - exact_expsin(2.0)).max())
    # the error follows the tolerance (within a modest factor) and always falls
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:]))
    assert errs[-1] < 1e-8


def test_saveat_hit_exactly_and_interval():
    ts = np.array([0.0, 0.3, 1.1, 1.7, 2.0])
    sol = js.solve(EXP, js.Tsit5(), saveat=ts, rtol=1e-10, atol=1e-10)
    assert np.array_equal(sol.t, ts)
    np.testing.assert_allclose(sol.u, np.stack([exact_expsin(t) for t in ts]), rtol=1e-8)
    sol = js.solve(EXP, js.Tsit5(), saveat=0.25)
    np.testing.assert_array_equal(sol.t, np.linspace(0, 2, 9))
    sol = js.solve(EXP, js.Tsit5(), saveat=[1.0])           # t0 not saved unless asked
    assert sol.t.tolist() == [1.0]


def test_tstops_are_steps():
    sol = js.solve(EXP, js.Tsit5(), tstops=[0.123456, 1.5])
    assert 0.123456 in sol.t and 1.5 in sol.t


def test_backward_integration():
    prob = js.ODEProblem(expsin, exact_expsin(2.0), (2.0, 0.0), p=np.array([0.7]))
    sol = js.solve(prob, js.Tsit5(), rtol=1e-10, atol=1e-12)
    assert sol.t[-1] == 0.0 and np.all(np.diff(sol.t) < 0)
    np.testing.assert_allclose(sol.u[-1], [1.0, 2.0], rtol=1e-8)
    np.testing.assert_allclose(sol(1.0), exact_expsin(1.0), rtol=1e-8)


def test_per_component_atol_changes_steps():
    a = js.solve(LV, js.Tsit5(), rtol=1e-3, atol=1e-6)
    b = js.solve(LV, js.Tsit5(), rtol=1e-3, atol=np.array([1e-6, 1e-12]))
    assert b.stats.naccept >= a.stats.naccept
    with pytest.raises(InvalidProblemError, match="atol"):
        js.solve(LV, js.Tsit5(), atol=np.array([1e-6, 1e-6, 1e-6]))


def test_stats_count_evaluations():
    sol = js.solve(LV, js.Tsit5(), rtol=1e-6, atol=1e-6)
    s = sol.stats
    # FSAL: 6 new stages per attempted step, + 1 initial f + 1 for the initial step size
    assert s.nf == 6 * (s.naccept + s.nreject) + 2
    assert len(sol.t) == s.naccept + 1


def test_fixed_step_methods_need_dt():
    with pytest.raises(InvalidProblemError, match="dt"):
        js.solve(LV, js.RK4())
    with pytest.raises(InvalidProblemError, match="dt"):
        js.solve(LV, js.Tsit5(), adaptive=False)


def test_maxiters_keeps_trajectory():
    sol = js.solve(LV, js.Tsit5(), maxiters=10, rtol=1e-10, atol=1e-10)
    assert sol.retcode == js.ReturnCode.MaxIters
    assert 1 < len(sol.t) <= 11 and sol.t[-1] < 10.0


def test_dtmin_and_blowup():
    def blowup(du, u, p, t):
        du[0] = u[0] * u[0]
    prob = js.ODEProblem(blowup, np.array([1.0]), (0.0, 2.0))   # u = 1/(1-t) blows up at t=1
    sol = js.solve(prob, js.Tsit5())
    assert sol.retcode in (js.ReturnCode.DtLessThanMin, js.ReturnCode.Unstable)
    assert 0.99 < sol.t[-1] < 1.0 and np.all(np.isfinite(sol.u))
    sol = js.solve(prob, js.Tsit5(), dtmin=1e-3)
    assert sol.retcode == js.ReturnCode.DtLessThanMin
    sol = js.solve(prob, js.Euler(), dt=0.05)
    assert sol.retcode == js.ReturnCode.Unstable
    assert np.all(np.isfinite(sol.u)) and sol.t[-1] > 1.0


def test_nan_rhs_is_initial_failure():
    def bad(du, u, p, t):
        du[0] = np.sqrt(u[0] - 2.0)
    sol = js.solve(js.ODEProblem(bad, np.array([1.0]), (0.0, 1.0)), js.Tsit5())
    assert sol.retcode == js.ReturnCode.InitialFailure and len(sol.t) == 1


# ----------------------------------------------------------------------------- events
def bounce(u, t, p):
    u[1] = -0.9 * u[1]


def test_bouncing_ball_event_times():
    cb = js.ContinuousCallback(ground, bounce)
    sol = js.solve(js.ODEProblem(ball, np.array([10.0, 0.0]), (0.0, 9.0)), js.Tsit5(), callback=cb)
    t1 = np.sqrt(2 * 10 / 9.81)
    v = 0.9 * 9.81 * t1
    expect = [t1]
    for _ in range(5):
        expect.append(expect[-1] + 2 * v / 9.81)
        v *= 0.9
    expect = [t for t in expect if t < 9.0]
    got = [e[0] for e in sol.events]
    np.testing.assert_allclose(got, expect, rtol=1e-10)
    assert all(abs(e[1][0]) < 1e-9 for e in sol.events)
    assert sol.u[:, 0].min() > -1e-9


def test_terminating_event_and_direction():
    def up(u, t, p):
        return u[0] - 1.5
    cb = js.ContinuousCallback(up, terminate=True, direction=1)
    sol = js.solve(EXP, js.Tsit5(), callback=cb, rtol=1e-10, atol=1e-10)
    assert sol.retcode == js.ReturnCode.Terminated
    assert sol.t[-1] == pytest.approx(np.arcsin(np.log(1.5)), rel=1e-10)
    cb = js.ContinuousCallback(up, terminate=True, direction=-1)     # the down-crossing
    sol = js.solve(js.remake(EXP, tspan=(0.0, 4.0)), js.Tsit5(), callback=cb, rtol=1e-10, atol=1e-10)
    assert sol.t[-1] == pytest.approx(np.pi - np.arcsin(np.log(1.5)), rel=1e-9)


def test_discrete_callback():
    def every_step(u, t, p):
        return 1.0 if t >= 1.0 else 0.0

    def zero(u, t, p):
        u[1] = 0.0
    cb = js.DiscreteCallback(every_step, zero)
    sol = js.solve(EXP, js.Tsit5(), callback=cb)
    after = sol.t >= 1.0
    assert np.all(sol.u[after][:, 1][1:] == 0.0) and len(sol.events) > 0


# ----------------------------------------------------------------------------- grids, splits
def test_heat_equation_eigenmode_2d():
    g = js.Grid((24, 24), bc=js.Dirichlet(0.0))
    L = js.Laplacian(g)
    x, y = g.mesh()
    u0 = np.sin(np.pi * x) * np.sin(np.pi * y)
    lam = -np.sum(L.apply(u0) * u0) / np.sum(u0 * u0)      # discrete eigenvalue (exact mode)
    sol = js.solve(js.ODEProblem(L, u0, (0.0, 0.02)), js.Tsit5(), rtol=1e-9, atol=1e-12,
                   saveat=[0.01, 0.02])
    assert sol.u.shape == (2, 24, 24)
    np.testing.assert_allclose(sol.u[-1], np.exp(-lam * 0.02) * u0, atol=1e-9)


def test_split_problem_matches_full_rhs():
    g = js.Grid((16, 16), bc=js.Neumann())
    L = 0.1 * js.Laplacian(g)
    A = L.to_csr()

    def reaction(du, u, p, t):
        for i in range(u.size):
            du[i] = p[0] * (u[i] - u[i] ** 3)
    u0 = np.random.default_rng(0).uniform(-0.5, 0.5, g.size)
    p = np.array([1.0])
    s1 = js.solve(js.SplitODEProblem(L, reaction, u0, (0.0, 1.0), p), js.Tsit5(),
                  rtol=1e-10, atol=1e-10, saveat=[1.0])
    s2 = js.solve(js.SplitODEProblem(A, reaction, u0, (0.0, 1.0), p), js.Tsit5(),
                  rtol=1e-10, atol=1e-10, saveat=[1.0])
    ref = solve_ivp(lambda t, u: A @ u + (u - u ** 3), (0, 1), u0, method="DOP853",
                    rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s1.u[-1], ref.y[:, -1], atol=1e-8)
    np.testing.assert_allclose(s2.u[-1], s1.u[-1], atol=1e-12)


# ----------------------------------------------------------------------------- ensembles
def test_ensemble_matches_single_solves():
    rng = np.random.default_rng(1)
    ps = LV.p * (1 + 0.1 * rng.random((64, 4)))
    u0s = 1 + rng.random((64, 2))
    ts = np.linspace(0, 10, 11)
    es = js.solve(js.EnsembleProblem(LV, u0s=u0s, ps=ps), js.Tsit5(), saveat=ts, rtol=1e-8, atol=1e-8)
    assert es.u.shape == (64, 11, 2) and es.retcode == js.ReturnCode.Success
    for i in (0, 17, 63):
        s = js.solve(js.remake(LV, u0=u0s[i], p=ps[i]), js.Tsit5(), saveat=ts, rtol=1e-8, atol=1e-8)
        np.testing.assert_array_equal(es.u[i], s.u)
    # each trajectory chose its own steps
    assert len(set(es.stats[:, 3].tolist())) > 1


def test_ensemble_prob_func_path():
    ep = js.EnsembleProblem(LV, prob_func=lambda prob, i: js.remake(prob, u0=prob.u0 * (1 + i)))
    es = js.solve(ep, js.Tsit5(), trajectories=3, saveat=[0.0, 1.0])
    assert es.u.shape == (3, 2, 2)
    np.testing.assert_array_equal(es.u[:, 0], [[1, 1], [2, 2], [3, 3]])


def test_hdf5_roundtrip(tmp_path):
    sol = js.solve(LV, js.Tsit5())
    sol.to_hdf5(tmp_path / "s.h5")
    back = js.load(tmp_path / "s.h5")
    np.testing.assert_array_equal(back.u, sol.u)
    assert back.stats == sol.stats and back.retcode == sol.retcode


def test_user_function_compile_error_names_it():
    def broken(du, u, p, t):
        du[0] = undefined_name  # noqa: F821
    with pytest.raises(js.errors.CompileError, match="broken"):
        js.ODEProblem(broken, np.array([1.0]), (0.0, 1.0))


def _osc_count(du, u, p, t):
    du[0] = u[1]
    du[1] = -u[0]
    du[2] = 0.0


def _osc_cond(u, t, p):
    return u[0]


def _osc_affect(u, t, p):
    u[2] += 1.0


@pytest.mark.parametrize("alg", [js.Tsit5(), js.DP5()], ids=lambda a: type(a).__name__)
def test_continuous_callback_fires_once_per_crossing(alg):
    """The harmonic oscillator crosses u0 = 0 six times on [0, 20]; the redone event step
    used to land short of the root and the next step fired again (7 or 12 events)."""
    prob = js.ODEProblem(_osc_count, np.array([1.0, 0.0, 0.0]), (0.0, 20.0))
    for kw in ({}, {"rtol": 1e-3, "atol": 1e-6}):
        sol = js.solve(prob, alg, callback=js.ContinuousCallback(_osc_cond, _osc_affect), **kw)
        times = np.array([t for t, _ in sol.events])
        np.testing.assert_allclose(times, np.pi / 2 + np.pi * np.arange(6), atol=2e-2)
        assert sol.u[-1, 2] == 6.0


def test_every_step_buffers_sized_from_the_last_solve_give_the_same_solution():
    """A solve saving every step sizes its buffers from the problem's previous step count
    (python/ode.py ``_STEP_HINTS``); past the hint they still grow.  Same bits either way."""
    from jitsolve.ode import _STEP_HINTS
    prob = js.ODEProblem(lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 5.0))
    coarse = js.solve(prob, js.Tsit5(), rtol=1e-3, atol=1e-3)
    assert _STEP_HINTS[prob]["tsit5"] == coarse.stats.naccept
    fine = js.solve(prob, js.Tsit5(), rtol=1e-10, atol=1e-10)      # far past the hint
    assert fine.stats.naccept > 4 * coarse.stats.naccept
    again = js.solve(prob, js.Tsit5(), rtol=1e-10, atol=1e-10)     # sized from the hint
    fresh = js.solve(js.remake(prob), js.Tsit5(), rtol=1e-10, atol=1e-10)   # no hint
    for sol in (again, fine):
        np.testing.assert_array_equal(sol.t, fresh.t)
        np.testing.assert_array_equal(sol.u, fresh.u)
        np.testing.assert_array_equal(sol(np.linspace(0.0, 5.0, 37)),
                                      fresh(np.linspace(0.0, 5.0, 37)))
    js.solve(prob, js.Tsit5(), saveat=[5.0])                        # saveat: no hint change
    assert _STEP_HINTS[prob]["tsit5"] == fine.stats.naccept
