"""Regression tests from the audit of the linear/fit layer: ``check_gradient`` and
finite differences with respect to ``kappa`` of ODE problems, and the validation of
``fit``'s options, regularisers and log file."""
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


# ----------------------------------------------------------------- fit options and log
def _fit_problem():
    # u = A^-1 b; the loss wants u = 1, so the optimum is b = (2, 4, 5)
    return js.LinearProblem(np.diag([2.0, 4.0, 5.0]), np.ones(3)), js.L2Loss(None, np.ones(3))


def _fit(**kw):
    prob, loss = _fit_problem()
    return js.fit(prob, js.Direct(), loss, np.ones(3), wrt="b", progress=False, **kw)


def test_fit_unwritable_log_fails_before_any_solve():
    calls = []

    def reg(x):
        calls.append(1)
        return 0.0, np.zeros_like(x)
    with pytest.raises(js.errors.InvalidProblemError, match="^log: cannot write an HDF5 file"):
        _fit(log="/nonexistent/dir/fit.h5", regularizer=reg)
    assert calls == []


def test_fit_log_that_fails_at_the_end_keeps_the_result(tmp_path):
    import os
    path = tmp_path / "fit.h5"

    def spoil(x, loss):         # the log path becomes a directory during the fit
        if path.is_file():
            os.remove(path)
            os.mkdir(path)
    with pytest.warns(RuntimeWarning, match="could not write the log"):
        res = _fit(log=str(path), callback=spoil)
    np.testing.assert_allclose(res.p, [2.0, 4.0, 5.0], rtol=1e-5)
    assert res.success and path.is_dir()


@pytest.mark.parametrize("kw, match", [
    (dict(bounds=(1, 2, 3)), r"^bounds: expected a pair \(lo, hi\) or 3 pairs"),
    (dict(bounds=(np.ones(2), 5.0)), r"^bounds: expected \(lo, hi\) with numbers or arrays of p0's shape"),
    (dict(bounds=(10.0, 0.1)), r"^bounds: the lower bound exceeds the upper one at 3 entries"),
    (dict(bounds=(0.0, 5.0), method="BFGS"), r"^bounds: method 'BFGS' ignores bounds"),
    (dict(method="foo"), r"^method: expected one of \['L-BFGS-B', 'BFGS', 'CG', 'SLSQP'\], got 'foo'"),
    (dict(maxiter=0), r"^maxiter: expected an integer >= 1, got 0"),
    (dict(regularizer=3), r"^regularizer: expected js.Tikhonov, js.TotalVariation or a callable"),
    (dict(regularizer=lambda x: 1.0), r"^regularizer: must return \(value, gradient\)"),
    (dict(regularizer=js.Tikhonov(1.0, x_ref=np.ones(2))), r"^x_ref: expected the shape of x \(3,\)"),
], ids=["bounds-len", "bounds-shape", "bounds-order", "bounds-bfgs", "method", "maxiter",
        "regularizer", "regularizer-return", "x_ref"])
def test_fit_bad_options_are_clear_errors(kw, match):
    with pytest.raises(js.errors.InvalidProblemError, match=match):
        _fit(**kw)


def test_regularizer_bad_arguments():
    with pytest.raises(js.errors.InvalidProblemError, match="^alpha: expected a real number, got None"):
        js.Tikhonov(None)
    with pytest.raises(js.errors.InvalidProblemError, match=r"^eps: must be > 0, got 0.0"):
        js.TotalVariation(1.0, eps=0.0)


def test_fit_bounds_as_arrays_and_pairs():
    # optimum (2, 4, 5) clipped to the box
    res = _fit(bounds=(np.zeros(3), np.full(3, 3.0)))
    np.testing.assert_allclose(res.p, [2.0, 3.0, 3.0], rtol=1e-5)
    res = _fit(bounds=[(0.0, 3.0), (0.0, None), (None, 4.5)])
    np.testing.assert_allclose(res.p, [2.0, 4.0, 4.5], rtol=1e-4)
