"""Audit of the gradient API (forty-second session): the stiff methods' continuous
adjoints and forward sensitivities take ``J`` / ``J_p`` from the user's derivatives
(``jac`` / ``paramjac``, else rows of ``vjp``) before complex steps, so ``f`` need not
compile for complex states; an ensemble gradient asked for more trajectories than its
rows; a custom loss whose value is not a number."""
import math

import numpy as np
import pytest
from numba import njit

import jitsolve as js
from jitsolve.errors import InvalidProblemError


@njit
def f_real_only(du, u, p, t):        # math.exp has no complex128 form: no complex twin
    du[0] = -p[0] * math.exp(0.1 * u[0]) * u[0]
    du[1] = -p[1] * u[1] + u[0]


@njit
def f_any(du, u, p, t):              # the same f with a complex twin (np.exp)
    du[0] = -p[0] * np.exp(0.1 * u[0]) * u[0]
    du[1] = -p[1] * u[1] + u[0]


@njit
def jac(J, u, p, t):
    e = math.exp(0.1 * u[0])
    J[0, 0] = -p[0] * e * (1.0 + 0.1 * u[0])
    J[0, 1] = 0.0
    J[1, 0] = 1.0
    J[1, 1] = -p[1]


@njit
def paramjac(Jp, u, p, t):
    Jp[0, 0] = -math.exp(0.1 * u[0]) * u[0]
    Jp[0, 1] = 0.0
    Jp[1, 0] = 0.0
    Jp[1, 1] = -u[1]


@njit
def vjp(ou, op, lam, u, p, t):
    e = math.exp(0.1 * u[0])
    ou[0] = -p[0] * e * (1.0 + 0.1 * u[0]) * lam[0] + lam[1]
    ou[1] = -p[1] * lam[1]
    op[0] = -e * u[0] * lam[0]
    op[1] = -u[1] * lam[1]


@njit
def vjp_zero(ou, op, lam, u, p, t):
    ou[:] = 0.0
    op[:] = 0.0


T = np.array([0.5, 1.0])
LOSS = js.L2Loss(T, np.zeros((2, 2)))
CONTINUOUS = [js.InterpolatingAdjoint(), js.QuadratureAdjoint(), js.BacksolveAdjoint(),
              js.ForwardSensitivity()]


def _prob(f=f_real_only, **derivs):
    return js.ODEProblem(js.ODEFunction(f, **derivs), np.array([1.0, 0.5]), (0.0, 1.0),
                         np.array([1.0, 2.0]))


@pytest.fixture(scope="module")
def reference():
    """The explicit discrete adjoint at tight tolerances (it takes the user's vjp)."""
    _, g = js.gradient(_prob(vjp=vjp), js.Tsit5(), LOSS, wrt=("p", "u0"), rtol=1e-11,
                       atol=1e-13)
    return g


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.KenCarp4()], ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("derivs", ["jac+paramjac", "jac+vjp"])
@pytest.mark.parametrize("sensealg", CONTINUOUS, ids=lambda s: type(s).__name__)
def test_stiff_continuous_sensitivities_take_user_derivatives(alg, derivs, sensealg,
                                                              reference):
    # they compiled f's complex twin whatever was given: CompileError for this f (the
    # forward stiff solve needs J: jac; J_p from paramjac, else from the vjp's rows)
    kw = dict(jac=jac, paramjac=paramjac) if derivs == "jac+paramjac" else dict(jac=jac,
                                                                                vjp=vjp)
    _, g = js.gradient(_prob(**kw), alg, LOSS, wrt=("p", "u0"), sensealg=sensealg,
                       rtol=1e-9, atol=1e-11)
    for k in ("p", "u0"):
        np.testing.assert_allclose(g[k], reference[k], rtol=2e-6, atol=1e-9)


@pytest.mark.parametrize("sensealg", CONTINUOUS[:3], ids=lambda s: type(s).__name__)
def test_stiff_continuous_adjoint_reads_the_users_vjp(sensealg):
    # with J = J_p = 0 (a vjp of zeros) the adjoint does not move between observations:
    # dL/dp = 0 and dL/du0 = the loss gradients summed (u(0.5), u(1) from the forward)
    prob = _prob(f_any, vjp=vjp_zero)      # the forward's J by complex step of f_any
    sol = js.solve(prob, js.Rodas5P(), saveat=T, rtol=1e-9, atol=1e-11)
    _, g = js.gradient(prob, js.Rodas5P(), LOSS, wrt=("p", "u0"), sensealg=sensealg,
                       rtol=1e-9, atol=1e-11)
    assert np.array_equal(g["p"], np.zeros(2))
    np.testing.assert_allclose(g["u0"], sol.u.sum(axis=0), rtol=1e-7)


def decay(du, u, p, t):
    du[0] = -p[0] * u[0]


def test_ensemble_gradient_refuses_more_trajectories_than_rows():
    prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), np.array([1.0]))
    ens = js.EnsembleProblem(prob, ps=np.ones((5, 1)))
    loss = js.L2Loss(np.array([1.0]), np.zeros((1, 1)))
    for call in (lambda: js.solve(ens, js.Tsit5(), trajectories=7, saveat=[1.0]),
                 lambda: js.gradient(ens, js.Tsit5(), loss, wrt="p", trajectories=7),
                 lambda: js.gradient(ens, js.Rodas5P(), loss, wrt="p", trajectories=7)):
        with pytest.raises(InvalidProblemError, match=r"^trajectories: 7 requested but "
                                                      r"u0s/ps hold 5"):
            call()
    val, g = js.gradient(ens, js.Tsit5(), loss, wrt="p", trajectories=3)
    assert np.shape(g["p"]) == (3, 1)


@pytest.mark.parametrize("value", [lambda U: U[:, 0] ** 2, lambda U: None,
                                   lambda U: "1.0", lambda U: 1.0 + 2.0j])
def test_custom_loss_value_must_be_a_real_number(value):
    prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), np.array([1.0]))
    loss = js.Loss(value, lambda U: 2.0 * U, t_data=np.array([0.5, 1.0]))
    with pytest.raises(InvalidProblemError, match=r"^value: the loss must return a real "
                                                  r"number, got"):
        js.gradient(prob, js.Tsit5(), loss, wrt="p")
    good = js.Loss(lambda U: np.sum(U ** 2), lambda U: 2.0 * U, t_data=np.array([0.5, 1.0]))
    v, g = js.gradient(prob, js.Tsit5(), good, wrt="p", rtol=1e-10, atol=1e-12)
    e = np.exp(-np.array([0.5, 1.0]))
    assert abs(v - np.sum(e ** 2)) < 1e-8
    # d/dp sum exp(-2 p t) = sum -2 t exp(-2 p t)
    assert abs(g["p"][0] - np.sum(-2.0 * np.array([0.5, 1.0]) * e ** 2)) < 1e-7
