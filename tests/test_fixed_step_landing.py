"""Fixed steps land on the span's end without a sliver step (``kernels.cpu.erk.LAND_RTOL``).

``t`` is a rounded sum of the steps: after 4,000 steps of 0.001 it was 3.3e-13 short of
4.0, beyond the old landing tolerance (1e-10 of ``dt``), so every loop took a 4,001st
step of 3.3e-13 and an every-step solve saved a state at 3.99999999999967 and again at
4.0 (found by the callback audit: a DiscreteCallback fired once more)."""
import numpy as np
import pytest
from numba import njit

import jitsolve as js


@njit
def decay(du, u, p, t):
    for i in range(u.size):
        du[i] = -u[i]


def _check(sol, nsteps, t1=4.0):
    assert sol.t.size == nsteps + 1
    assert sol.t[-1] == t1
    assert np.diff(sol.t).min() > 0.5e-3


@pytest.mark.parametrize("alg, kw", [(js.Euler(), {}), (js.RK4(), {}),
                                     (js.Tsit5(), {"adaptive": False})],
                         ids=["Euler", "RK4", "Tsit5-fixed"])
def test_4000_steps_of_a_thousandth(alg, kw):
    sol = js.solve(js.ODEProblem(decay, np.ones(2), (0.0, 4.0)), alg, dt=0.001, **kw)
    _check(sol, 4000)
    assert sol.stats.naccept == 4000


def test_a_large_state_and_a_backward_span():
    """The threaded fixed-step loop (states of 32,768 entries and more) and a backward
    span follow the same rule."""
    sol = js.solve(js.ODEProblem(decay, np.ones(40000), (0.0, 4.0)), js.RK4(), dt=0.001,
                   saveat=[4.0])
    assert sol.stats.naccept == 4000
    back = js.solve(js.ODEProblem(decay, np.ones(2), (4.0, 0.0)), js.RK4(), dt=0.001)
    assert back.t.size == 4001 and back.t[-1] == 0.0


def test_an_ensemble_and_a_stiff_method():
    prob = js.ODEProblem(decay, np.ones(2), (0.0, 4.0))
    ens = js.EnsembleProblem(prob, u0s=np.ones((64, 2)))
    es = js.solve(ens, js.RK4(), trajectories=64, dt=0.001)
    assert np.all(np.asarray(es.stats)[:, 3] == 4000)           # naccept of each
    sol = js.solve(prob, js.ImplicitEuler(), dt=0.001, adaptive=False)
    _check(sol, 4000)


def test_a_short_last_step_is_kept():
    """A span that is not a multiple of ``dt`` still ends with its short step (0.001 after
    1,333 steps of 0.003)."""
    sol = js.solve(js.ODEProblem(decay, np.ones(2), (0.0, 4.0)), js.RK4(), dt=0.003)
    assert sol.t.size == 1335
    assert abs((sol.t[-1] - sol.t[-2]) - 0.001) < 1e-12
