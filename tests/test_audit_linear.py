"""Regression tests from the audit of the linear/fit layer: ``check_gradient`` and
finite differences with respect to ``kappa`` of ODE problems, the 1-D boundary terms,
and the validation of ``fit``'s options."""
import numpy as np
import pytest

import jitsolve as js


def _heat(scale, level):
    g = js.Grid((6, 6), bc=js.Dirichlet(0.0))
    rng = np.random.default_rng(0)
    kappa = level * (1 + 0.3 * rng.random(g.shape))
    x, y = g.mesh()
    u0 = np.sin(np.pi * x) * np.sin(np.pi * y)
    t1 = 1e-3 / level
    prob = js.ODEProblem(scale * js.Diffusion(g, kappa), u0, (0.0, t1))
    loss = js.L2Loss(np.array([t1]), 0.5 * u0[None])
    return prob, loss, dict(dt=t1 / 20, adaptive=False)


@pytest.mark.parametrize("scale, level", [(0.5, 1.0), (1.0, 100.0)])
def test_check_gradient_kappa_ode_scaled_and_large(scale, level):
    prob, loss, kw = _heat(scale, level)
    rep = js.check_gradient(prob, js.RK4(), loss, wrt="kappa", verbose=False, **kw)
    assert rep["passed"] and abs(rep["order"] - 2) < 0.2, rep


def test_finite_difference_kappa_of_a_scaled_operator():
    prob, loss, kw = _heat(0.5, 1.0)
    _, adj = js.gradient(prob, js.RK4(), loss, wrt="kappa", **kw)
    _, fd = js.gradient(prob, js.RK4(), loss, wrt="kappa", sensealg=js.FiniteDifference(), **kw)
    np.testing.assert_allclose(fd["kappa"], adj["kappa"], rtol=1e-5, atol=1e-8 * np.abs(adj["kappa"]).max())
