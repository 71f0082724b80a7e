"""``dt`` and a ``saveat`` interval longer than the span (forty-seventh session): an SDE
solve takes them as an ODE solve does (and as SciML does) -- one step over the span, the
saves at ``t0`` and ``t1`` -- where it refused them before while the ODE accepted them.
The results are those of ``dt`` (or ``saveat``) equal to the span, bit for bit."""
import numpy as np
import pytest

import jitsolve as js


def decay(du, u, p, t):
    du[0] = -p[0] * u[0]


def additive(du, u, p, t):
    du[0] = 0.1


SDE = js.SDEProblem(decay, additive, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
ODE = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))


def _same(a, b):
    assert np.array_equal(a.t, b.t) and np.array_equal(a.u, b.u)
    assert a.retcode == b.retcode == js.ReturnCode.Success


@pytest.mark.parametrize("alg", [js.EM(), js.SRIW1(), js.SRA1()], ids=lambda a: type(a).__name__)
def test_fixed_step_longer_than_the_span_is_one_step(alg):
    long = js.solve(SDE, alg, dt=5.0, adaptive=False, seed=2, save_noise=True)
    one = js.solve(SDE, alg, dt=1.0, adaptive=False, seed=2, save_noise=True)
    _same(long, one)
    assert long.t.tolist() == [0.0, 1.0] and np.array_equal(long.W, one.W)
    ode = js.solve(ODE, js.RK4(), dt=5.0)                 # what the ODE side does
    assert ode.t.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("adaptive", [False, True])
def test_saveat_interval_longer_than_the_span_saves_the_ends(adaptive):
    kw = dict(dt=0.01, adaptive=adaptive, seed=4)
    long = js.solve(SDE, js.SRIW1(), saveat=5.0, **kw)
    _same(long, js.solve(SDE, js.SRIW1(), saveat=1.0, **kw))
    assert long.t.tolist() == [0.0, 1.0]
    assert js.solve(ODE, js.Tsit5(), saveat=5.0).t.tolist() == [0.0, 1.0]


def test_ensemble_and_gradient_take_them_too():
    ens = js.EnsembleProblem(SDE, u0s=np.linspace(0.5, 1.5, 3)[:, None])
    a = js.solve(ens, js.EM(), trajectories=3, dt=5.0, adaptive=False, seed=1)
    b = js.solve(ens, js.EM(), trajectories=3, dt=1.0, adaptive=False, seed=1)
    assert np.array_equal(a.u, b.u) and a.u.shape == (3, 2, 1)
    loss = js.L2Loss(np.array([1.0]), np.array([[0.3]]))
    va, ga = js.gradient(SDE, js.EM(), loss, wrt="p", dt=5.0, adaptive=False, seed=1)
    vb, gb = js.gradient(SDE, js.EM(), loss, wrt="p", dt=1.0, adaptive=False, seed=1)
    assert va == vb and np.array_equal(ga["p"], gb["p"]) and np.isfinite(ga["p"]).all()
