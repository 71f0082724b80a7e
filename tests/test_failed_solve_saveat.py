"""A solve that fails between ``saveat`` times ends its solution at the state it
stopped at (forty-seventh session): the retcode says why, ``sol.t[-1]`` is the failure's
time and ``sol.u[-1]`` its state -- the same as the solve that saves every step -- as
SciML's solutions do.  Before, the solution ended at the last ``saveat`` time reached,
and everything computed after it (up to 0.1 of a 2.0 span below) was dropped.

Model: ``u' = u^2``, ``u(0) = 1``, which blows up at ``t = 1``; the span is [0, 2].
(SDE paths: ``tests/test_sde_failed_saveat.py``, forty-eighth session.)"""
import numpy as np
import pytest

import jitsolve as js

SAVEAT = np.linspace(0.0, 2.0, 21)


def blowup(du, u, p, t):
    for i in range(u.size):
        du[i] = u[i] * u[i]


# (method, options, whether ``saveat`` times are stops: the reference then steps onto
# them with ``tstops``; else ``saveat`` comes from the interpolant along the same steps)
CASES = [
    (js.Tsit5, {}, False),
    (js.Tsit5, {"maxiters": 20}, False),
    (js.Tsit5, {"adaptive": False, "dt": 0.03}, False),
    (js.RK4, {"adaptive": False, "dt": 0.03}, True),
    (js.Rodas5P, {}, False),
    (js.Rodas5P, {"maxiters": 20}, False),
    (js.KenCarp4, {}, False),
    (js.KenCarp4, {"adaptive": False, "dt": 0.03}, True),
    (js.Kvaerno5, {"maxiters": 20}, False),
    (js.ImplicitEuler, {"adaptive": False, "dt": 0.03}, True),
]


@pytest.mark.parametrize("method, kw, stops", CASES,
                         ids=[f"{m.__name__}-{'-'.join(k) or 'adaptive'}" for m, k, _ in CASES])
def test_failed_solve_ends_at_the_failure(method, kw, stops):
    prob = js.ODEProblem(blowup, np.array([1.0]), (0.0, 2.0))
    ref = js.solve(prob, method(), tstops=SAVEAT if stops else None, **kw)
    sol = js.solve(prob, method(), saveat=SAVEAT, **kw)
    assert not sol.successful and sol.retcode == ref.retcode
    n = len(sol.t) - 1
    np.testing.assert_array_equal(sol.t[:n], SAVEAT[:n])       # the saveat times reached
    assert SAVEAT[n - 1] < sol.t[-1] < SAVEAT[n]               # then the failure's time
    assert sol.t[-1] == ref.t[-1]
    np.testing.assert_array_equal(sol.u[-1], ref.u[-1])
    assert sol.u.shape == (n + 1, 1)


def test_failed_etdrk4_ends_at_the_failure():
    prob = js.SplitODEProblem(np.array([-1.0, -2.0]), blowup, np.array([2.0, 2.0]),
                              (0.0, 2.0))
    ref = js.solve(prob, js.ETDRK4(), dt=0.03, tstops=SAVEAT)
    sol = js.solve(prob, js.ETDRK4(), dt=0.03, saveat=SAVEAT)
    assert sol.retcode == ref.retcode == js.ReturnCode.Unstable
    assert sol.t[-1] == ref.t[-1] and sol.t[-1] not in SAVEAT
    np.testing.assert_array_equal(sol.u[-1], ref.u[-1])


def test_failed_newton_krylov_solve_ends_at_the_failure():
    """The Newton-Krylov path of grid problems (``dense_max`` below the unknowns)."""
    g = js.Grid((8, 8), extent=((0.0, 1.0), (0.0, 1.0)), bc=js.Dirichlet(0.0))
    prob = js.SplitODEProblem(js.Laplacian(g), blowup, np.full(g.shape, 3.0), (0.0, 2.0))
    ref = js.solve(prob, js.KenCarp4(dense_max=10), maxiters=8)
    sol = js.solve(prob, js.KenCarp4(dense_max=10), maxiters=8, saveat=SAVEAT)
    assert sol.retcode == ref.retcode == js.ReturnCode.MaxIters
    assert sol.t.tolist() == [0.0, ref.t[-1]] and 0.0 < ref.t[-1] < SAVEAT[1]
    np.testing.assert_array_equal(sol.u[-1], ref.u[-1])

