"""Audit of the ODE API (forty-second session): a stiff solve whose only callback is a
``DiscreteCallback``; stiff and ensemble-gradient paths of a problem without ``p``;
fixed steps that end exactly on ``t1``; an interpolant table corrupted on disk."""
import h5py
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import FileFormatError

STIFF = [js.Rodas5P(), js.Rosenbrock23(), js.KenCarp4(), js.ImplicitEuler()]


def decay(du, u, p, t):
    du[0] = -u[0]


def at_one(u, t, p):
    return t == 1.0


def dose(u, t, p):
    u[0] += 1.0


@pytest.mark.parametrize("alg", STIFF, ids=lambda a: type(a).__name__)
def test_stiff_solve_with_only_a_discrete_callback(alg):
    # the stiff loop typed its continuous-event landing with an empty slot: TypingError
    prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 2.0))
    first_order = isinstance(alg, js.ImplicitEuler)
    sol = js.solve(prob, alg, callback=js.DiscreteCallback(at_one, dose), tstops=[1.0],
                   rtol=1e-6 if first_order else 1e-10, atol=1e-9 if first_order else 1e-12)
    assert sol.retcode is js.ReturnCode.Success
    assert len(sol.events) == 1 and sol.events[0][0] == 1.0
    tol = 1e-3 if first_order else 1e-7
    assert abs(sol.events[0][1][0] - np.exp(-1.0)) < tol        # the state before the dose
    assert abs(sol.u[-1, 0] - (np.exp(-1.0) + 1.0) * np.exp(-1.0)) < tol


def two_rates(du, u, p, t):
    du[0] = -u[0]
    du[1] = -2.0 * u[1]


NO_P = js.ODEProblem(two_rates, np.array([1.0, 1.0]), (0.0, 1.0))     # p defaults to empty


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.KenCarp4()], ids=lambda a: type(a).__name__)
def test_stiff_ensemble_of_a_problem_without_parameters(alg):
    # the broadcast empty parameter block reached the kernel read-only: TypingError
    u0s = np.array([[1.0, 1.0], [2.0, 0.5]])
    es = js.solve(js.EnsembleProblem(NO_P, u0s=u0s), alg, trajectories=2, saveat=[1.0],
                  rtol=1e-9, atol=1e-11)
    assert es.retcode is js.ReturnCode.Success
    for i in range(2):
        single = js.solve(js.remake(NO_P, u0=u0s[i]), alg, saveat=[1.0], rtol=1e-9, atol=1e-11)
        np.testing.assert_array_equal(es.u[i], single.u)
    np.testing.assert_allclose(es.u[:, 0], u0s * np.exp([-1.0, -2.0]), rtol=1e-6)


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P()], ids=lambda a: type(a).__name__)
def test_ensemble_gradient_of_a_problem_without_parameters(alg):
    u0s = np.array([[1.0, 1.0], [2.0, 0.5]])
    loss = js.L2Loss(np.array([1.0]), np.zeros((1, 2)))
    val, g = js.gradient(js.EnsembleProblem(NO_P, u0s=u0s), alg, loss, wrt=("u0",),
                         trajectories=2, saveat=[1.0], rtol=1e-10, atol=1e-12)
    e = np.exp([-1.0, -2.0])
    # 0.5 |u(1)|^2 per trajectory, u(1) = e * u0: d/du0 = e^2 u0
    np.testing.assert_allclose(np.asarray(g["u0"]).reshape(2, 2), e * e * u0s, rtol=1e-6)
    assert abs(val - 0.5 * ((e * u0s) ** 2).sum()) < 1e-8


def rotate(du, u, p, t):
    du[0] = u[1]
    du[1] = -u[0]


@pytest.mark.parametrize("alg", [js.RK4(), js.Tsit5()] + STIFF, ids=lambda a: type(a).__name__)
def test_fixed_steps_end_on_t1_without_a_sliver_step(alg):
    # 1,000 steps of 0.01 summed fall 1.7e-13 short of 10: the stiff loop took a last
    # step of that size (its landing tolerance was relative to the distance, 1e-12)
    sol = js.solve(js.ODEProblem(rotate, np.array([0.0, 1.0]), (0.0, 10.0)), alg, dt=0.01,
                   adaptive=False)
    assert sol.t.size == 1001 and sol.stats.naccept == 1000
    assert sol.t[-1] == 10.0 and np.diff(sol.t).min() > 0.0099


def test_fixed_steps_end_on_t1_on_the_newton_krylov_path():
    g = js.Grid((40, 40), bc=js.Dirichlet(0.0))
    x = np.linspace(0.0, 1.0, 40)
    u0 = np.outer(np.sin(np.pi * x), np.sin(np.pi * x))
    alg = js.KenCarp4(dense_max=100)
    prob = js.ODEProblem(js.Laplacian(g), u0, (0.0, 0.01))
    from jitsolve.ode_stiff import newton_krylov
    assert newton_krylov(prob, alg)
    # the Newton-Krylov loop took adaptive steps whatever ``adaptive`` said
    sol = js.solve(prob, alg, dt=1e-4, adaptive=False)
    assert sol.retcode is js.ReturnCode.Success
    assert sol.t.size == 101 and sol.t[-1] == 0.01 and np.diff(sol.t).min() > 0.99e-4
    assert sol.stats.naccept == 100 and sol.stats.nreject == 0
    ref = js.solve(js.remake(prob), js.KenCarp4(), dt=1e-4, adaptive=False)    # dense path
    np.testing.assert_allclose(sol.u[-1], ref.u[-1], rtol=1e-6, atol=1e-9)


def test_corrupt_interpolant_table_is_refused_at_load(tmp_path):
    sol = js.solve(js.ODEProblem(rotate, np.array([0.0, 1.0]), (0.0, 10.0)), js.Tsit5())
    path = tmp_path / "sol.h5"
    sol.to_hdf5(path)
    ts = np.linspace(0.0, 10.0, 9)
    np.testing.assert_array_equal(js.load(path)(ts), sol(ts))
    with h5py.File(path, "r+") as h:
        k = h["dense_k"][:, :3]
        del h["dense_k"]
        h["dense_k"] = k
    with pytest.raises(FileFormatError, match="corrupt ODESolution: field 'dense_k' has shape"):
        js.load(path)
