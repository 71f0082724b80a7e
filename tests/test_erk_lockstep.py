"""Lockstep explicit RK ensembles (kernels/cpu/erk_lockstep.py) against the general
per-trajectory kernel (erk.erk_ensemble): saved states, statistics and return codes must
be bit-for-bit identical, with the batch form of f and with first-class calls per lane."""
import numpy as np
import pytest

import jitsolve as js
from ensemble_modes import bits, solve_mode
from jitsolve.solvers.ode import explicit as E
from ode_models import lotka

MODES = ("percall", "batched")


def lorenz(du, u, p, t):
    du[0] = 10.0 * (u[1] - u[0])
    du[1] = u[0] * (p[0] - u[2]) - u[1]
    du[2] = u[0] * u[1] - 8.0 / 3.0 * u[2]


def forced(du, u, p, t):          # time-dependent, so every stage time matters
    du[0] = u[1]
    du[1] = -p[0] * u[0] - 0.1 * u[1] + np.sin(p[1] * t)


def blowup(du, u, p, t):          # u' = p u^2: blows up at t = 1 / (p u0)
    du[0] = p[0] * u[0] * u[0]


def vdp(du, u, p, t):             # stiffer for larger mu: more steps
    du[0] = u[1]
    du[1] = p[0] * (1.0 - u[0] * u[0]) * u[1] - u[0]


def _check(monkeypatch, eprob, alg, N, **kw):
    ref = solve_mode(monkeypatch, "general", eprob, alg, N, **kw)
    for mode in MODES:
        sol = solve_mode(monkeypatch, mode, eprob, alg, N, **kw)
        assert np.array_equal(bits(sol.u), bits(ref.u)), mode
        assert list(sol.retcodes) == list(ref.retcodes), mode
        assert np.array_equal(sol.stats, ref.stats), mode
        assert np.array_equal(sol.t, ref.t)
    return ref


def test_lockstep_is_used(monkeypatch):
    calls = []
    real = E._use_lockstep

    def spy(*a):
        calls.append(real(*a))
        return calls[-1]
    monkeypatch.setattr(E, "_use_lockstep", spy)
    prob = js.ODEProblem(lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 1.0), p=np.array([28.0]))
    ps = np.linspace(20.0, 30.0, 70)[:, None]
    js.solve(js.EnsembleProblem(prob, ps=ps), js.Tsit5(), trajectories=70, saveat=[0.0, 1.0])
    js.solve(js.EnsembleProblem(prob, ps=ps), js.Tsit5(), trajectories=70, saveat=[0.0, 1.0],
             tstops=[0.5])
    js.solve(js.EnsembleProblem(prob, ps=ps[:8]), js.Tsit5(), trajectories=8)
    assert calls == [True, False, False]


@pytest.mark.parametrize("alg", [js.Tsit5(), js.DP5(), js.Vern7()], ids=lambda a: type(a).__name__)
def test_lorenz_forward(monkeypatch, alg):
    rng = np.random.default_rng(1)
    N = 150                                    # not a multiple of the 64 lanes
    ps = rng.uniform(20.0, 30.0, (N, 1))
    prob = js.ODEProblem(lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 3.0), p=np.array([28.0]))
    ref = _check(monkeypatch, js.EnsembleProblem(prob, ps=ps), alg, N,
                 saveat=[0.0, 0.25, 1.7, 3.0], rtol=1e-3, atol=1e-6)
    assert all(r.value == "Success" for r in ref.retcodes)


@pytest.mark.parametrize("alg", [js.Tsit5(), js.DP5(), js.Vern7()], ids=lambda a: type(a).__name__)
def test_backward_u0s_ps_interval(monkeypatch, alg):
    rng = np.random.default_rng(2)
    N = 97
    u0s = rng.uniform(0.5, 2.0, (N, 2))
    ps = np.column_stack([rng.uniform(1.0, 2.0, N), rng.uniform(0.5, 1.5, N)])
    prob = js.ODEProblem(forced, np.array([1.0, 0.0]), (4.0, -1.0), p=np.array([1.0, 1.0]))
    ref = _check(monkeypatch, js.EnsembleProblem(prob, u0s=u0s, ps=ps), alg, N, saveat=0.7,
                 rtol=1e-8, atol=1e-9)
    assert ref.t[0] == 4.0 and ref.t[-1] == -1.0


def test_saveat_without_t0_and_default(monkeypatch):
    rng = np.random.default_rng(3)
    N = 65
    u0s = rng.uniform(0.5, 2.0, (N, 2))
    prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 5.0),
                         p=np.array([1.5, 1.0, 3.0, 1.0]))
    ep = js.EnsembleProblem(prob, u0s=u0s)
    _check(monkeypatch, ep, js.Tsit5(), N, saveat=[0.5, 2.0, 5.0], rtol=1e-5, atol=1e-7)
    _check(monkeypatch, ep, js.Tsit5(), N)                        # saves at t0 and t1
    _check(monkeypatch, ep, js.DP5(), N, dt=1e-3, rtol=1e-7)       # given first step


@pytest.mark.parametrize("alg,dt", [(js.RK4(), 0.01), (js.Euler(), 0.003)],
                         ids=["RK4", "Euler"])
def test_fixed_steps(monkeypatch, alg, dt):
    rng = np.random.default_rng(4)
    N = 70
    ps = rng.uniform(20.0, 30.0, (N, 1))
    prob = js.ODEProblem(lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 1.0), p=np.array([28.0]))
    ref = _check(monkeypatch, js.EnsembleProblem(prob, ps=ps), alg, N, dt=dt,
                 saveat=[0.0, 0.333, 1.0])
    assert all(r.value == "Success" for r in ref.retcodes)


def test_fixed_step_unstable(monkeypatch):
    N = 66
    ps = np.linspace(0.1, 3.0, N)[:, None]
    prob = js.ODEProblem(blowup, np.array([1.0]), (0.0, 2.0), p=np.array([1.0]))
    ref = _check(monkeypatch, js.EnsembleProblem(prob, ps=ps), js.RK4(), N, dt=0.01,
                 saveat=[0.0, 0.2, 0.45, 2.0])
    rc = {r.value for r in ref.retcodes}
    assert "Success" in rc and "Unstable" in rc


def test_failures_next_to_successes(monkeypatch):
    # blow-up (u' = p u^2) for the larger p: DtLessThanMin or Unstable next to successes;
    # one start where f overflows: InitialFailure
    N = 80
    ps = np.linspace(0.1, 1.5, N)[:, None]
    u0s = np.ones((N, 1))
    u0s[7, 0] = 1e200                       # f(u0) overflows
    prob = js.ODEProblem(blowup, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
    ref = _check(monkeypatch, js.EnsembleProblem(prob, u0s=u0s, ps=ps), js.Tsit5(), N,
                 saveat=[0.0, 0.5, 1.0], rtol=1e-6, atol=1e-6)
    rc = {r.value for r in ref.retcodes}
    assert "Success" in rc and "InitialFailure" in rc
    assert rc & {"DtLessThanMin", "Unstable"}
    assert ref.stats[:, 4].sum() > 0          # rejected steps next to accepted ones
    assert np.isnan(ref.u[-1, -1]).all()


def test_maxiters_next_to_successes(monkeypatch):
    N = 70
    ps = np.linspace(0.5, 40.0, N)[:, None]
    prob = js.ODEProblem(vdp, np.array([2.0, 0.0]), (0.0, 20.0), p=np.array([1.0]))
    ref = _check(monkeypatch, js.EnsembleProblem(prob, ps=ps), js.Tsit5(), N,
                 saveat=[0.0, 5.0, 20.0], rtol=1e-6, atol=1e-6, maxiters=400)
    rc = {r.value for r in ref.retcodes}
    assert "Success" in rc and "MaxIters" in rc


def test_shared_parameters_one_row(monkeypatch):
    rng = np.random.default_rng(5)
    N = 64
    u0s = rng.normal(size=(N, 3)) + np.array([1.0, 1.0, 20.0])
    prob = js.ODEProblem(lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 2.0), p=np.array([28.0]))
    _check(monkeypatch, js.EnsembleProblem(prob, u0s=u0s), js.Vern7(), N,
           saveat=np.linspace(0.0, 2.0, 9), rtol=1e-9, atol=1e-9)


def decay_with_zero(du, u, p, t):  # u[0] stays exactly 0: its error scale is 0 at atol = 0
    du[0] = 0.0 * u[1]
    du[1] = -p[0] * u[1]


def test_zero_atol_on_a_zero_component(monkeypatch):
    # atol = 0 and a component that is exactly zero: a zero error scale.  Before
    # 2026-12-02 the error norm divided by it (ZeroDivisionError in a single solve, a
    # SystemError out of the parallel ensemble); a zero error on a zero scale adds nothing
    prob = js.ODEProblem(decay_with_zero, np.array([0.0, 1.0]), (0.0, 2.0), p=np.array([1.0]))
    sol = js.solve(prob, js.Tsit5(), rtol=1e-8, atol=0.0)
    assert sol.retcode == js.ReturnCode.Success
    assert sol.u[-1][0] == 0.0
    assert abs(sol.u[-1][1] - np.exp(-2.0)) < 1e-7
    N = 70
    ps = np.linspace(0.5, 2.0, N)[:, None]
    ref = _check(monkeypatch, js.EnsembleProblem(prob, ps=ps), js.Tsit5(), N,
                 saveat=[0.0, 1.0, 2.0], rtol=1e-8, atol=0.0)
    assert all(r == js.ReturnCode.Success for r in ref.retcodes)
    assert np.abs(ref.u[:, -1, 1] - np.exp(-2.0 * ps[:, 0])).max() < 1e-7


def reshaping(du, u, p, t):       # reshape needs a contiguous u: no column-view batch form
    v = u.reshape((1, 2))
    du[0] = v[0, 1]
    du[1] = -p[0] * v[0, 0]


def test_batch_form_falls_back_to_calls_per_lane(monkeypatch):
    from jitsolve.errors import CompileError
    from jitsolve.functions import compile_batch_cfunc
    with pytest.raises(CompileError, match="f_batch_t form") as first:
        compile_batch_cfunc(reshaping, "f", "f_batch_t")
    with pytest.raises(CompileError) as again:      # remembered, not compiled again
        compile_batch_cfunc(reshaping, "f", "f_batch_t")
    assert again.value is first.value
    N = 70
    ps = np.linspace(0.5, 2.0, N)[:, None]
    prob = js.ODEProblem(reshaping, np.array([1.0, 0.0]), (0.0, 3.0), p=np.array([1.0]))
    ref = _check(monkeypatch, js.EnsembleProblem(prob, ps=ps), js.Tsit5(), N,
                 saveat=[0.0, 1.5, 3.0], rtol=1e-8, atol=1e-8)
    w = np.sqrt(ps[:, 0])
    assert np.abs(ref.u[:, -1, 0] - np.cos(3.0 * w)).max() < 1e-6


def test_batch_form_of_a_fixed_signature_dispatcher(monkeypatch):
    # a dispatcher compiled only for contiguous rows cannot take column views: the batch
    # form recompiles its Python function (same arithmetic, same bits)
    from numba import njit

    from jitsolve.functions import F_SIGNATURE, compile_batch_cfunc
    fixed = njit(F_SIGNATURE, error_model="numpy")(lorenz)
    assert not fixed._can_compile
    compile_batch_cfunc(fixed, "f", "f_batch_t")           # no CompileError
    rng = np.random.default_rng(6)
    N = 66
    ps = rng.uniform(20.0, 30.0, (N, 1))
    prob = js.ODEProblem(fixed, np.array([1.0, 0.0, 0.0]), (0.0, 1.0), p=np.array([28.0]))
    _check(monkeypatch, js.EnsembleProblem(prob, ps=ps), js.Tsit5(), N, saveat=[0.0, 1.0],
           rtol=1e-7, atol=1e-7)


def forced_decay(du, u, p, t):    # no parameters: the batch's parameter block is empty
    du[0] = -u[0] + np.sin(t)
    du[1] = -2.0 * u[1]


def test_problem_without_parameters(monkeypatch):
    N = 100
    u0s = np.random.default_rng(7).uniform(0.5, 2.0, (N, 2))
    prob = js.ODEProblem(forced_decay, np.array([1.0, 1.0]), (0.0, 3.0))
    ref = _check(monkeypatch, js.EnsembleProblem(prob, u0s=u0s), js.Tsit5(), N,
                 saveat=[0.0, 1.3, 3.0], rtol=1e-7, atol=1e-9)
    assert np.abs(ref.u[:, -1, 1] - u0s[:, 1] * np.exp(-6.0)).max() < 1e-8


def test_batch_form_runs_the_lanes_in_simd_vectors():
    # the point of the column layout: the user's arithmetic vectorised across the lanes
    # (consecutive vector loads and stores, no gathers); a change that loses it would only
    # show as a slower ensemble
    import re

    from jitsolve.functions import compile_batch_cfunc
    cf = compile_batch_cfunc(lorenz, "f", "f_batch_t")
    ir = cf.inspect_llvm()
    assert "masked.gather" not in ir
    assert re.search(r"load <\d+ x double>", ir) and re.search(r"store <\d+ x double>", ir)
