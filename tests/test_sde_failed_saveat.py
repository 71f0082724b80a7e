"""An SDE path that fails between ``saveat`` times ends its solution at the state it
stopped at (forty-eighth session), as ODE solves do since the forty-seventh
(``tests/test_failed_solve_saveat.py``) and as SciML's solutions do: the retcode says
why, ``sol.t[-1]`` is the failure's time and ``sol.u[-1]`` (and ``sol.W[-1]``) its state
-- the same as the solve that saves every step.  Before, the path ended at the last
``saveat`` time reached.  Ensembles keep their fixed save times.

Model: ``du = u^2 dt + 0.1 u dW``, ``u(0) = 1``: the drift blows up near ``t = 1``; the
span is [0, 2]."""
import numpy as np
import pytest

import jitsolve as js

SAVEAT = np.linspace(0.0, 2.0, 21)


def blowup(du, u, p, t):
    for i in range(u.size):
        du[i] = u[i] * u[i]


def mult(du, u, p, t):
    for i in range(u.size):
        du[i] = 0.1 * u[i]


def additive(du, u, p, t):
    du[0] = 0.1


PROB = js.SDEProblem(blowup, mult, np.array([1.0]), (0.0, 2.0))
STRAT = js.SDEProblem(blowup, mult, np.array([1.0]), (0.0, 2.0), interpretation="stratonovich")
ADD = js.SDEProblem(blowup, additive, np.array([1.0]), (0.0, 2.0))

# fixed steps on a grid that holds every saveat time: the same steps with and without
# ``saveat``, so the every-step solve is the reference, bit for bit
FIXED = [(js.EM(), PROB), (js.EulerHeun(), STRAT), (js.Milstein(), PROB),
         (js.Milstein(), STRAT), (js.SRIW1(), PROB), (js.SRA1(), ADD)]


@pytest.mark.parametrize("alg, prob", FIXED,
                         ids=[f"{type(a).__name__}-{p.interpretation}" for a, p in FIXED])
def test_failed_fixed_step_path_ends_at_the_failure(alg, prob):
    kw = dict(dt=0.025, adaptive=False, seed=3, save_noise=True)
    ref = js.solve(prob, alg, **kw)
    sol = js.solve(prob, alg, saveat=SAVEAT, **kw)
    assert sol.retcode == ref.retcode == js.ReturnCode.Unstable
    n = len(sol.t) - 1
    np.testing.assert_array_equal(sol.t[:n], SAVEAT[:n])       # the saveat times reached
    assert SAVEAT[n - 1] < sol.t[-1] < SAVEAT[n]               # then the failure's time
    assert sol.t[-1] == ref.t[-1]
    np.testing.assert_array_equal(sol.u[-1], ref.u[-1])
    np.testing.assert_array_equal(sol.W[-1], ref.W[-1])
    assert sol.u.shape == (n + 1, 1) and sol.W.shape == (n + 1, 1)
    k = np.searchsorted(ref.t, SAVEAT[:n])                     # the saves: rows of ref
    np.testing.assert_array_equal(sol.u[:n], ref.u[k])


ADAPTIVE = [(js.SRIW1(), PROB), (js.SRA1(), ADD)]


@pytest.mark.parametrize("alg, prob", ADAPTIVE, ids=[type(a).__name__ for a, _ in ADAPTIVE])
def test_failed_adaptive_path_ends_at_the_failure(alg, prob):
    """Adaptive steps are clamped to the save times, so the every-step solve takes
    other steps: the failure row is checked for its place and against the path's
    Brownian motion (``W`` at that time from a fixed-step solve's noise is not the same
    draw), and a path stopped by ``maxiters`` ends where its accepted steps reached."""
    sol = js.solve(prob, alg, saveat=SAVEAT, seed=5, save_noise=True, dt=1e-3)
    assert not sol.successful
    n = len(sol.t) - 1
    np.testing.assert_array_equal(sol.t[:n], SAVEAT[:n])
    assert SAVEAT[n - 1] < sol.t[-1] < SAVEAT[n]
    assert np.all(np.isfinite(sol.W)) and sol.W.shape == sol.u.shape
    short = js.solve(prob, alg, saveat=SAVEAT, seed=5, save_noise=True, dt=1e-3, maxiters=30)
    assert short.retcode == js.ReturnCode.MaxIters
    assert short.stats.naccept + short.stats.nreject == 30
    m = len(short.t) - 1
    assert short.t[m] > short.t[m - 1] and np.all(np.isfinite(short.u))
    # the same steps as the long solve up to there: its saves agree bit for bit
    np.testing.assert_array_equal(short.u[:m], sol.u[:m])


def test_a_failure_on_a_save_time_adds_no_row():
    """A path that stops exactly on its last save time (every step saved) keeps one row
    there."""
    ref = js.solve(PROB, js.EM(), dt=0.025, adaptive=False, seed=3)
    sol = js.solve(PROB, js.EM(), dt=0.025, adaptive=False, seed=3, saveat=ref.t)
    assert sol.retcode == ref.retcode and np.array_equal(sol.t, ref.t)
    np.testing.assert_array_equal(sol.u, ref.u)


def test_ensembles_keep_their_save_times():
    ens = js.EnsembleProblem(PROB, u0s=np.array([[1.0], [0.1]]))
    sol = js.solve(ens, js.EM(), trajectories=2, dt=0.025, adaptive=False, seed=3,
                   saveat=SAVEAT)
    assert np.array_equal(sol.t, SAVEAT)
    assert sol.retcodes[0] != js.ReturnCode.Success and sol.retcodes[1] == js.ReturnCode.Success


def test_gradient_names_the_failure_time():
    """The gradient's forward solve saves at the loss times: its error now names where the
    path failed (1.325), not the last loss time it reached (1.3)."""
    ref = js.solve(PROB, js.EM(), dt=0.025, adaptive=False, seed=3)
    assert ref.t[-1] == pytest.approx(1.325)
    loss = js.L2Loss(SAVEAT[1:], np.zeros((20, 1)))
    with pytest.raises(js.errors.SolveFailedError, match=r"Unstable at t = 1\.325$"):
        js.gradient(PROB, js.EM(), loss, wrt="u0", dt=0.025, adaptive=False, seed=3,
                    sensealg=js.FiniteDifference())
    with pytest.raises(js.errors.SolveFailedError, match=r"Unstable at t = 1\.325$"):
        js.gradient(PROB, js.EM(), loss, wrt="u0", dt=0.025, adaptive=False, seed=3)
