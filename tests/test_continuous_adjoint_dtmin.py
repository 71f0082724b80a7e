"""The explicit continuous adjoints honour ``dtmin`` (``solve``'s option) in their own
backward solve: a step the controller shrinks below it fails the gradient with a
``SolveFailedError`` saying so, as the forward solve stops with ``DtLessThanMin``; a
``dtmin`` below every step changes nothing (bit for bit)."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import SolveFailedError


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


P = np.array([1.5, 1.0, 3.0, 1.0])
T = np.linspace(0.5, 10.0, 20)
KW = dict(rtol=1e-6, atol=1e-6)


def _setup():
    prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 10.0), p=P)
    loss = js.L2Loss(T, np.ones((20, 2)))
    sol = js.solve(prob, js.Tsit5(), tstops=T, **KW)
    return prob, loss, float(np.min(np.abs(np.diff(sol.t))))


@pytest.mark.parametrize("sa", [js.BacksolveAdjoint(), js.InterpolatingAdjoint(),
                                js.QuadratureAdjoint()])
def test_small_dtmin_changes_nothing(sa):
    prob, loss, hmin = _setup()
    v0, g0 = js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=sa, **KW)
    v1, g1 = js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=sa, dtmin=0.5 * hmin, **KW)
    assert v1 == v0 and np.array_equal(g1["p"], g0["p"])


def test_backsolve_stops_below_dtmin():
    prob, loss, hmin = _setup()
    # the forward solve takes steps of at least ~2 hmin away from its landings; the
    # backsolve's own controller goes below that (its error control also covers lam)
    assert js.solve(prob, js.Tsit5(), tstops=T, dtmin=2.0 * hmin, **KW).successful
    with pytest.raises(SolveFailedError, match="BacksolveAdjoint failed .* below dtmin"):
        js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=js.BacksolveAdjoint(),
                    dtmin=2.0 * hmin, **KW)
