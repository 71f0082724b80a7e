"""A signed ``dt`` (forty-eighth session): on a backward span (``t1 < t0``) a negative
``dt`` is its magnitude, as SciML's ``dt`` is signed with the direction of time, and gives
the solve of the positive ``dt`` bit for bit (ODE and SDE, fixed and adaptive steps,
ensembles, gradients); a negative ``dt`` on a forward span is refused, naming the
direction."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError


def decay(du, u, p, t):
    du[0] = -p[0] * u[0] + np.sin(t)


def additive(du, u, p, t):
    du[0] = 0.1


P = np.array([0.7])
ODE = js.ODEProblem(decay, np.array([1.0]), (1.0, 0.0), p=P)
SDE = js.SDEProblem(decay, additive, np.array([1.0]), (1.0, 0.0), p=P)


def _same(a, b):
    assert a.retcode == b.retcode == js.ReturnCode.Success
    assert np.array_equal(a.t, b.t) and np.array_equal(a.u, b.u)


@pytest.mark.parametrize("prob, alg, kw", [
    (ODE, js.RK4(), dict(adaptive=False)),
    (ODE, js.Tsit5(), {}),
    (ODE, js.Rodas5P(), {}),
    (ODE, js.KenCarp4(), dict(adaptive=False)),
    (SDE, js.EM(), dict(adaptive=False, seed=2)),
    (SDE, js.SRIW1(), dict(seed=2)),
    (SDE, js.SRA1(), dict(adaptive=False, seed=2, save_noise=True)),
], ids=["RK4", "Tsit5", "Rodas5P", "KenCarp4", "EM", "SRIW1", "SRA1"])
def test_negative_dt_on_a_backward_span_is_its_magnitude(prob, alg, kw):
    neg = js.solve(prob, alg, dt=-0.05, **kw)
    pos = js.solve(prob, alg, dt=0.05, **kw)
    _same(neg, pos)
    assert neg.t[0] == 1.0 and neg.t[-1] == 0.0 and np.all(np.diff(neg.t) < 0)
    if kw.get("adaptive", True) is False:
        assert len(neg.t) == 21


def test_ensembles_and_gradients_take_it():
    ens = js.EnsembleProblem(SDE, u0s=np.array([[1.0], [2.0]]))
    _same(js.solve(ens, js.EM(), trajectories=2, dt=-0.1, adaptive=False, seed=1),
          js.solve(ens, js.EM(), trajectories=2, dt=0.1, adaptive=False, seed=1))
    loss = js.L2Loss(np.array([0.5, 0.0]), np.zeros((2, 1)))
    for prob, alg, kw in ((ODE, js.RK4(), {}), (SDE, js.EM(), dict(seed=3))):
        a = js.gradient(prob, alg, loss, wrt="p", dt=-0.05, adaptive=False, **kw)
        b = js.gradient(prob, alg, loss, wrt="p", dt=0.05, adaptive=False, **kw)
        assert a[0] == b[0] and np.array_equal(a[1]["p"], b[1]["p"])


@pytest.mark.parametrize("prob, alg", [(ODE, js.RK4()), (SDE, js.EM())], ids=["ODE", "SDE"])
def test_negative_dt_on_a_forward_span_is_refused(prob, alg):
    fwd = js.remake(prob, tspan=(0.0, 1.0))
    with pytest.raises(InvalidProblemError, match=r"^dt: -0\.1 is negative but tspan runs "
                                                  r"forward \(0\.0 to 1\.0\)"):
        js.solve(fwd, alg, dt=-0.1, adaptive=False)
    with pytest.raises(InvalidProblemError, match=r"^dt: must be nonzero"):
        js.solve(prob, alg, dt=0.0, adaptive=False)


@pytest.mark.parametrize("prob, alg", [(ODE, js.RK4()), (ODE, js.Tsit5()), (SDE, js.EM())],
                         ids=["RK4", "Tsit5", "EM"])
def test_a_dt_that_does_not_move_t_is_refused(prob, alg):
    """A step below the spacing of floats near the span's ends left t in place (the
    forty-eighth session's audit): RK4 repeated one state until maxiters, Tsit5 saved
    duplicate times.  Refused, either sign."""
    for dt in (1e-300, -1e-300, 1e-17, -1e-17):
        with pytest.raises(InvalidProblemError, match=r"^dt: .* does not move t \(floats "
                                                      r"near t = 1 are 2\.22e-16 apart\)"):
            js.solve(prob, alg, dt=dt, adaptive=isinstance(alg, js.Tsit5), maxiters=100)
    assert js.solve(prob, alg, dt=-1e-3, adaptive=False, maxiters=2000).t.size == 1001
