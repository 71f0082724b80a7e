"""Explicit ForwardSensitivity with the user's own Jacobians (``jac``, ``paramjac``).

The tangents then take ``J dY + J_p dp`` from ``jac``/``paramjac`` evaluated once per
stage instead of the complex step of ``f``: the same gradient to rounding, and a right-
hand side that cannot be compiled for complex numbers is differentiated all the same.
"""
import math

import numpy as np
import pytest

import jitsolve as js
from ode_models import lotka, lotka_jac, lotka_paramjac


def logistic_exp(du, u, p, t):
    # math.exp has no complex overload in Numba: f cannot be compiled for complex states
    du[0] = p[0] * u[0] * (1.0 - u[0]) * math.exp(-p[1] * t)


def logistic_exp_jac(J, u, p, t):
    J[0, 0] = p[0] * (1.0 - 2.0 * u[0]) * math.exp(-p[1] * t)


def logistic_exp_paramjac(Jp, u, p, t):
    e = math.exp(-p[1] * t)
    Jp[0, 0] = u[0] * (1.0 - u[0]) * e
    Jp[0, 1] = -t * p[0] * u[0] * (1.0 - u[0]) * e


P0 = np.array([1.3, 0.9, 0.8, 0.7])
T_OBS = np.linspace(0.5, 5.0, 10)
DATA = np.ones((10, 2))


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Vern7(), js.RK4()])
@pytest.mark.parametrize("wrt", [("p",), ("u0",), ("p", "u0")])
def test_user_jacobians_match_complex_step(alg, wrt):
    kw = dict(rtol=1e-9, atol=1e-9) if alg.adaptive else dict(dt=0.05)
    loss = js.L2Loss(T_OBS, DATA)
    plain = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 5.0), p=P0)
    user = js.ODEProblem(js.ODEFunction(lotka, jac=lotka_jac, paramjac=lotka_paramjac),
                         np.array([1.0, 1.0]), (0.0, 5.0), p=P0)
    v0, g0 = js.gradient(plain, alg, loss, wrt=wrt, sensealg=js.ForwardSensitivity(), **kw)
    v1, g1 = js.gradient(user, alg, loss, wrt=wrt, sensealg=js.ForwardSensitivity(), **kw)
    va, ga = js.gradient(user, alg, loss, wrt=wrt, sensealg=js.DiscreteAdjoint(), **kw)
    assert v1 == v0
    for name in wrt:
        np.testing.assert_allclose(g1[name], g0[name], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g1[name], ga[name], rtol=1e-10, atol=1e-13)


def test_jac_without_paramjac_falls_back_to_the_complex_step_for_p():
    prob = js.ODEProblem(js.ODEFunction(lotka, jac=lotka_jac), np.array([1.0, 1.0]), (0.0, 5.0),
                         p=P0)
    plain = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 5.0), p=P0)
    loss = js.L2Loss(T_OBS, DATA)
    _, g = js.gradient(prob, js.Tsit5(), loss, wrt="p", sensealg=js.ForwardSensitivity(),
                       rtol=1e-9, atol=1e-9)
    _, g0 = js.gradient(plain, js.Tsit5(), loss, wrt="p", sensealg=js.ForwardSensitivity(),
                        rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(g["p"], g0["p"])      # the same complex-step tangents


def test_no_complex_compile_needed():
    fun = js.ODEFunction(logistic_exp, jac=logistic_exp_jac, paramjac=logistic_exp_paramjac)
    p = np.array([2.0, 0.3])
    prob = js.ODEProblem(fun, np.array([0.1]), (0.0, 4.0), p=p)
    t = np.linspace(0.5, 4.0, 8)
    loss = js.L2Loss(t, np.full((8, 1), 0.5))
    val, g = js.gradient(prob, js.Tsit5(), loss, wrt=("p", "u0"),
                         sensealg=js.ForwardSensitivity(), rtol=1e-10, atol=1e-12)
    # central differences of the whole solve (the steps move with p: tolerance-level)
    def J(pp, u0):
        q = js.ODEProblem(fun, np.array([u0]), (0.0, 4.0), p=pp)
        return loss.value(js.solve(q, js.Tsit5(), saveat=t, rtol=1e-12, atol=1e-14).u)
    eps = 1e-6
    fd = [(J(p + eps * e, 0.1) - J(p - eps * e, 0.1)) / (2 * eps) for e in np.eye(2)]
    np.testing.assert_allclose(g["p"], fd, rtol=1e-5)
    np.testing.assert_allclose(g["u0"][0], (J(p, 0.1 + eps) - J(p, 0.1 - eps)) / (2 * eps),
                               rtol=1e-5)
    assert np.all(np.abs(g["p"]) > 1e-3)
    # the complex-step path cannot take this f
    with pytest.raises(js.errors.CompileError):
        js.gradient(js.ODEProblem(logistic_exp, np.array([0.1]), (0.0, 4.0), p=p), js.Tsit5(),
                    loss, wrt="p", sensealg=js.ForwardSensitivity(), rtol=1e-10, atol=1e-12)
