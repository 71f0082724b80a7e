"""Ensembles save as single solves do: with ``saveat`` on a method with an interpolant
(``jitsolve.ode.interpolates_saveat``: Tsit5, DP5, Vern7 on small states) the save times
are not stops and a time inside a step is that step's dense output.  Every trajectory of
``solve(EnsembleProblem(...), alg, saveat=t)`` must be, bit for bit, ``solve(remake(prob,
u0=u0s[i], p=ps[i]), alg, saveat=t)``: saved states, statistics (nf, naccept, nreject)
and return code -- through ``erk_ensemble`` (one trajectory per thread, fewer than
``LOCKSTEP_MIN`` trajectories) and through the lockstep kernel (64 lanes per thread),
with one first-class call of ``f`` per lane and with its batch form.  The ensemble
gradients differentiate exactly those saves."""
import numpy as np
import pytest

import jitsolve as js
from ode_models import lotka
from ensemble_modes import bits, solve_mode

METHODS = [js.Tsit5(), js.DP5(), js.Vern7()]
MODES = ("general", "percall", "batched")


def forced(du, u, p, t):          # non-autonomous: the stage and save times matter
    du[0] = u[1]
    du[1] = -p[0] * u[0] - 0.1 * u[1] + np.sin(p[1] * t)


def vdp(du, u, p, t):             # stiffer for larger mu: runs out of iterations
    du[0] = u[1]
    du[1] = p[0] * (1.0 - u[0] * u[0]) * u[1] - u[0]


FORCED = js.ODEProblem(forced, np.array([1.0, 0.0]), (0.0, 4.0), p=np.array([1.0, 1.0]))


def _singles(prob, alg, u0s, ps, **kw):
    return [js.solve(js.remake(prob, u0=u0s[i], p=ps[i]), alg, **kw) for i in range(len(u0s))]


def _check(monkeypatch, prob, alg, u0s, ps, modes=MODES, **kw):
    """Every trajectory of the ensemble, in each mode, is its single solve bit for bit."""
    N = len(u0s)
    singles = _singles(prob, alg, u0s, ps, **kw)
    ep = js.EnsembleProblem(prob, u0s=u0s, ps=ps)
    for mode in modes:
        es = solve_mode(monkeypatch, mode, ep, alg, N, **kw)
        for i, s in enumerate(singles):
            # the save times reached; a failed single solve then ends with the state it
            # stopped at (its own time), which the ensemble's fixed times do not hold
            m = min(s.t.size, es.t.size)
            k = int(np.argmin(np.append(s.t[:m] == es.t[:m], False)))
            assert k == s.t.size or (not s.successful and k == s.t.size - 1), (mode, i)
            assert np.array_equal(bits(es.u[i, :k]), bits(s.u[:k])), (mode, i)
            assert np.isnan(es.u[i, k:]).all(), (mode, i)
            st = s.stats
            assert list(es.stats[i]) == list(st.asdict().values()), \
                (mode, i)
            assert es.retcodes[i] == s.retcode, (mode, i)
            assert np.array_equal(es.t[:k], s.t[:k]), (mode, i)
    return singles


def _draw(N, seed, u0_lo=0.5, u0_hi=2.0):
    rng = np.random.default_rng(seed)
    u0s = rng.uniform(u0_lo, u0_hi, (N, 2))
    ps = np.column_stack([rng.uniform(1.0, 2.0, N), rng.uniform(0.5, 1.5, N)])
    return u0s, ps


@pytest.mark.parametrize("alg", METHODS, ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("span", ["forward", "backward"])
def test_saveat_array_inside_steps_t0_t1(monkeypatch, alg, span):
    """Save times inside steps, at t0 and at t1; N = 70 (lockstep, not a multiple of the
    lanes) and N = 20 (erk_ensemble)."""
    if span == "forward":
        prob = FORCED
        ts = np.array([0.0, 0.013, 0.5, 0.51, 0.52, 1.7, 2.9, 3.3, 4.0])
    else:
        prob = js.remake(FORCED, tspan=(4.0, -1.0))
        ts = np.array([4.0, 3.95, 2.0, 1.37, 1.36, 0.5, -0.2, -1.0])
    u0s, ps = _draw(70, 11)
    kw = dict(saveat=ts, rtol=1e-6, atol=1e-8)
    singles = _check(monkeypatch, prob, alg, u0s, ps, modes=("percall", "batched"), **kw)
    _check(monkeypatch, prob, alg, u0s[:20], ps[:20], modes=("general",), **kw)
    # the saves are interpolated: no more steps than a solve saving only at t1
    s0 = singles[0]
    free = js.solve(js.remake(prob, u0=u0s[0], p=ps[0]), alg, saveat=ts[-1:], rtol=1e-6,
                    atol=1e-8)
    assert s0.stats.naccept == free.stats.naccept
    assert not np.isin(ts[1:-1], s0.steps_t).all()
    assert all(s.retcode == js.ReturnCode.Success for s in singles)


@pytest.mark.parametrize("alg", METHODS, ids=lambda a: type(a).__name__)
def test_interval_saveat(monkeypatch, alg):
    """``saveat`` a number: every 0.3 from t0 (and t1); per-trajectory u0s and ps."""
    u0s, ps = _draw(66, 12)
    prob = js.remake(FORCED, tspan=(0.0, 5.0))
    _check(monkeypatch, prob, alg, u0s, ps, saveat=0.3, rtol=1e-7, atol=1e-9)


def test_backward_interval_and_general_mode(monkeypatch):
    u0s, ps = _draw(64, 13)
    prob = js.remake(FORCED, tspan=(3.0, 0.0))
    _check(monkeypatch, prob, js.Tsit5(), u0s, ps, saveat=0.25, rtol=1e-5, atol=1e-7)


def test_shared_parameters_and_dense_saves(monkeypatch):
    """Many saves per step (several in one step for every lane), parameters shared."""
    rng = np.random.default_rng(14)
    N = 64
    u0s = rng.uniform(0.5, 2.0, (N, 2))
    prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 5.0),
                         p=np.array([1.5, 1.0, 3.0, 1.0]))
    ps = np.broadcast_to(prob.p, (N, 4))
    for alg in METHODS:
        _check(monkeypatch, prob, alg, u0s, ps, saveat=np.linspace(0.0, 5.0, 201), rtol=1e-4,
               atol=1e-6)


def test_failures_keep_their_saves(monkeypatch):
    """Lanes that run out of iterations stop saving (NaN rows after) next to successes;
    their saves up to there are still those of the single solves."""
    N = 70
    u0s = np.tile([2.0, 0.0], (N, 1))
    ps = np.linspace(0.5, 40.0, N)[:, None]
    prob = js.ODEProblem(vdp, np.array([2.0, 0.0]), (0.0, 20.0), p=np.array([1.0]))
    singles = _check(monkeypatch, prob, js.Vern7(), u0s, ps, saveat=np.linspace(0.0, 20.0, 41),
                     rtol=1e-6, atol=1e-6, maxiters=300)
    rc = {s.retcode.value for s in singles}
    assert "Success" in rc and "MaxIters" in rc


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Vern7()], ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("span", ["forward", "backward"])
def test_ensemble_gradient_of_interpolated_saves(alg, span):
    """The ensemble gradient is the gradient of what the ensemble solve returns: its value
    is the loss of the ensemble's (interpolated) saves bit for bit, each trajectory's
    gradient the single-trajectory DiscreteAdjoint's."""
    N = 6
    u0s, ps = _draw(N, 15)
    if span == "forward":
        prob, td = FORCED, np.array([0.0, 0.37, 1.1, 1.13, 2.5, 4.0])
    else:
        prob, td = js.remake(FORCED, tspan=(4.0, 0.0)), np.array([3.9, 2.2, 2.15, 0.7, 0.0])
    rng = np.random.default_rng(16)
    data = rng.uniform(0.0, 1.0, (td.size, 2))
    loss = js.L2Loss(td, data)
    kw = dict(rtol=1e-7, atol=1e-9)
    ep = js.EnsembleProblem(prob, u0s=u0s, ps=ps)
    v, g = js.gradient(ep, alg, loss, wrt=("p", "u0"), **kw)
    es = js.solve(ep, alg, saveat=td, **kw)
    vals = [loss.value(es.u[i]) for i in range(N)]
    assert v == pytest.approx(sum(vals), rel=1e-14)
    for i in range(N):
        pi = js.remake(prob, u0=u0s[i], p=ps[i])
        s = js.solve(pi, alg, saveat=td, **kw)
        assert not np.isin(td[1:-1], s.steps_t).all()      # saves inside steps
        vi, gi = js.gradient(pi, alg, loss, wrt=("p", "u0"), **kw)
        assert vi == vals[i]
        np.testing.assert_allclose(g["p"][i], gi["p"], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(g["u0"][i], gi["u0"], rtol=1e-12, atol=1e-15)
