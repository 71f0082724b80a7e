"""Audit of events and split problems (forty-third session): a continuous callback whose
root falls exactly on a step's end (``t1``, a ``tstops`` time, a fixed step's grid) fired
again and again (a dose given 23 to 10^5 times, MaxIters, a terminating event at the wrong
time, a ``ZeroDivisionError`` in the ESDIRK loop); the continuous adjoints returned
silently wrong gradients through callbacks; a complex ``L`` lost its imaginary part; a sum
of operators as ``L`` was refused under the name ``f``."""
import math

import numpy as np
import pytest
import scipy.sparse as sp

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError


def decay(du, u, p, t):
    du[0] = -u[0]


def at_half(u, t, p):
    return t - 0.5


def at_end(u, t, p):
    return t - 1.0


def dose(u, t, p):
    u[0] += 1.0


PROB = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0))
ALGS = [(js.Tsit5(), {}), (js.RK4(), {"dt": 0.1}), (js.Rodas5P(), {}), (js.KenCarp4(), {}),
        (js.ImplicitEuler(), {})]
IDS = ["Tsit5", "RK4", "Rodas5P", "KenCarp4", "ImplicitEuler"]


@pytest.mark.parametrize("alg, kw", ALGS, ids=IDS)
def test_a_dose_on_a_tstop_is_given_once(alg, kw):
    sol = js.solve(PROB, alg, callback=js.ContinuousCallback(at_half, dose), tstops=[0.5],
                   rtol=1e-8, atol=1e-10, **kw)
    assert sol.retcode == js.ReturnCode.Success
    assert len(sol.events) == 1
    assert sol.events[0][0] == 0.5
    exact = math.exp(-1.0) + math.exp(-0.5)
    tol = 1e-4 if isinstance(alg, (js.RK4, js.ImplicitEuler)) else 1e-6
    if isinstance(alg, js.ImplicitEuler):
        tol = 5e-3
    assert abs(sol.u[-1, 0] - exact) < tol


@pytest.mark.parametrize("alg, kw", ALGS, ids=IDS)
def test_a_root_at_t1_is_one_event(alg, kw):
    sol = js.solve(PROB, alg, callback=js.ContinuousCallback(at_end, dose), **kw)
    assert sol.retcode == js.ReturnCode.Success
    assert [float(e[0]) for e in sol.events] == [1.0]
    assert sol.t[-1] == 1.0


@pytest.mark.parametrize("alg, kw", [(js.RK4(), {"dt": 0.1}), (js.RK4(), {"dt": 0.01}),
                                     (js.Tsit5(), {})], ids=["RK4-0.1", "RK4-0.01", "Tsit5"])
def test_a_terminating_root_on_the_step_grid_stops_on_it(alg, kw):
    cond = at_half if isinstance(alg, js.RK4) else at_end
    sol = js.solve(PROB, alg, callback=js.ContinuousCallback(cond, terminate=True), **kw)
    assert sol.retcode == js.ReturnCode.Terminated
    assert sol.t[-1] == (0.5 if isinstance(alg, js.RK4) else 1.0)


def ball(du, u, p, t):
    du[0] = u[1]
    du[1] = -p[0]


def kick(u, t, p):
    u[1] += p[1]


@pytest.mark.parametrize("sensealg", [js.InterpolatingAdjoint(), js.BacksolveAdjoint(),
                                      js.QuadratureAdjoint()],
                         ids=lambda s: type(s).__name__)
def test_gradients_through_callbacks_are_refused_but_by_finite_differences(sensealg):
    """(js.DiscreteAdjoint and js.ForwardSensitivity differentiate a DiscreteCallback's
    jumps: tests/test_callback_gradient.py.)"""
    prob = js.ODEProblem(ball, np.array([1.0, 0.0]), (0.0, 1.0), np.array([1.0, 0.3]))
    loss = js.L2Loss(np.array([1.0]), np.zeros((1, 2)))
    cb = js.DiscreteCallback(lambda u, t, p: t >= 0.5 and u[1] < 0.0, kick)
    with pytest.raises(UnsupportedAlgorithmError, match="^callback: "):
        js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=sensealg, callback=cb)
    # the kick's size p[1] enters the loss: finite differences see it
    val, g = js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=js.FiniteDifference(),
                         callback=cb, rtol=1e-10, atol=1e-12)
    assert abs(g["p"][1]) > 0.1


def zero(du, u, p, t):
    for i in range(u.size):
        du[i] = 0.0


@pytest.mark.parametrize("L", [np.array([-1 + 5j, -2 - 3j]),
                               np.array([[-1j, 0.0], [0.0, -1.0]]),
                               sp.diags([-1 + 1j, -2.0]).tocsr()],
                         ids=["diagonal", "dense", "sparse"])
def test_a_complex_linear_part_is_refused(L):
    with pytest.raises(InvalidProblemError, match="^L: complex"):
        js.SplitODEProblem(L, zero, np.ones(2), (0.0, 1.0))


def test_a_sum_of_operators_as_L_names_L_and_the_boundary_term():
    g = js.Grid((6, 5), bc=js.Dirichlet(1.0))
    L = 0.05 * js.Laplacian(g) + 0.02 * js.Laplacian(g)
    prob = js.SplitODEProblem(L, zero, np.zeros(g.shape), (0.0, 0.1))
    with pytest.raises(UnsupportedAlgorithmError, match=r"^L: .*boundary_term\(\)"):
        js.solve(prob, js.Tsit5())


def drift(du, u, p, t):
    du[0] = 1.0
    du[1] = 0.0


def oscillating(u, t, p):
    return np.sin(20.0 * u[0])


def count(u, t, p):
    u[1] += 1.0


@pytest.mark.parametrize("alg, kw", [(js.Tsit5(), {}), (js.Vern7(), {}),
                                     (js.RK4(), {"dt": 0.5}), (js.Rodas5P(), {})],
                         ids=["Tsit5", "Vern7", "RK4", "Rodas5P"])
@pytest.mark.parametrize("direction", [0, 1, -1])
def test_every_root_inside_one_long_step_is_found(alg, kw, direction):
    """sin(20 t) has six roots in (0, 1); a smooth problem takes steps far longer than
    their spacing (0.157): ten samples a step (SciML's ``interp_points``) see them all;
    four missed two."""
    prob = js.ODEProblem(drift, np.zeros(2), (0.0, 1.0))
    sol = js.solve(prob, alg, callback=js.ContinuousCallback(oscillating, count,
                                                             direction=direction), **kw)
    roots = np.arange(1, 7) * np.pi / 20
    if direction == 1:
        roots = roots[1::2]          # sin(20 t) rises through its even roots
    elif direction == -1:
        roots = roots[0::2]
    got = np.array([float(e[0]) for e in sol.events])
    assert got.shape == roots.shape
    np.testing.assert_allclose(got, roots, atol=1e-9)
    assert sol.u[-1, 1] == roots.size
